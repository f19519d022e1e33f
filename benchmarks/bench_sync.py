"""Sync speed against raw Label Studio calls, measured in one run against the same local server.

    .venv/bin/python benchmarks/bench_sync.py [--frames 10000] [--port 8391]

Starts its own Label Studio (verify.server, SQLite, a temporary home), builds a workspace with
N distinct frames (the fixture frames cloned under new keys), then prints:

1. push of N new frames, against one raw ``import_tasks`` of the same task JSON (best of two);
2. re-push with nothing new, against one minimal task listing (``include="id,data,meta"``, page
   1000), alternating, best of three;
3. full pull of N annotated tasks, against one raw JSON export of the same project (best of two);
4. incremental pull after 10 annotations were edited (target: under 1 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import replace
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.generate import generate  # noqa: E402
from verify.labelstudio import server  # noqa: E402
from verify.media.frames import extract  # noqa: E402
from verify.media.ingest import ingest  # noqa: E402
from verify.labelstudio.client import LabelStudioClient  # noqa: E402
from verify.labelstudio.pull import pull  # noqa: E402
from verify.labelstudio.project import build_task, frame_urls, link_frames  # noqa: E402
from verify.labelstudio.push import push  # noqa: E402
from verify.workspace import Workspace  # noqa: E402

CASE = ROOT / "configs" / "spin-boldak-2021.yaml"


def clock(func):
    start = time.perf_counter()
    value = func()
    return time.perf_counter() - start, value


def workspace_with(tmp: Path, n: int) -> Workspace:
    footage = generate(tmp / "footage")
    ws = Workspace.create(tmp / "ws", CASE)
    ingest(ws, [p for p in footage if p.stem == "militants_at_gate"], source_id="militants-at-gate")
    extract(ws)
    real = ws.frames()
    video = ws.videos()[0]
    clones = [replace(f, key=f"clone{i:06d}" + f.key[11:], t_ms=f.t_ms + 10_000 * (i + 1))
              for i, f in ((i, real[i % len(real)]) for i in range(n - len(real)))]
    ws.record_frames(video.sha256, clones, video.frames_status, video.frames_note, video.metadata)
    return ws


def main(n: int, port: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="verify-bench-sync-"))
    os.environ["VERIFY_HOME"] = str(tmp / "home")
    base = tmp / "home" / "label-studio"
    print(f"starting Label Studio on port {port} …")
    state = server.start(port, base=base)
    try:
        creds = server.credentials(base)
        client = LabelStudioClient(state.url, creds["api_key"])
        ws = workspace_with(tmp, n)
        frames = ws.frames()
        video = ws.videos()[0]
        files_root = Path(state.files_root)
        folder, urls = frame_urls(ws, frames, files_root)
        link_frames(ws.root, frames, folder)
        tasks = [build_task(f, video, urls[f.key], ws.id) for f in frames]
        print(f"{len(frames)} frames, Label Studio {client.version()}")

        # 1. push against one raw import of the same task JSON (each into a new project; best of two)
        raws, pushes = [], []
        for round_ in range(2):
            raw_project = client.ls.projects.create(title=f"raw import {round_}", label_config=_config(ws)).id
            raws.append(clock(lambda: client.ls.projects.import_tasks(id=raw_project, request=tasks, return_task_ids=True))[0])
            took, result = clock(lambda: push(ws, client, files_root, new_project=round_ > 0))
            assert result.imported == len(frames), result
            pushes.append(took)
        raw, took = min(raws), min(pushes)
        print(f"push {n} new frames:        {took:6.2f} s   raw import_tasks: {raw:6.2f} s   ratio {took / raw:.2f} (target ≤ 1.20)")

        # 2. re-push with nothing new against one minimal listing (alternating; best of three)
        project = result.project_id
        listings, repushes = [], []
        for _ in range(3):
            listing, count = clock(lambda: sum(1 for _ in client.ls.tasks.list(project=project, fields="task_only",
                                                                                  include="id,data,meta", page_size=1000)))
            took, again = clock(lambda: push(ws, client, files_root))
            assert again.imported == 0 and count == len(frames)
            listings.append(listing)
            repushes.append(took)
        listing, took = min(listings), min(repushes)
        print(f"re-push, nothing new:       {took:6.2f} s   one task listing: {listing:6.2f} s   ratio {took / listing:.2f} "
              f"(target ≤ 1.20), {again.imported} imported")

        # 3. full pull of annotated tasks against one raw export of the same project
        me = client.whoami()["id"]
        answer = [{"type": "choices", "from_name": "claim_taliban_flag_raised", "to_name": "frame", "value": {"choices": ["Supports"]}}]
        annotated = [{**t, "annotations": [{"result": answer, "completed_by": me}]} for t in tasks]
        pull_project = client.ls.projects.create(title="annotated", label_config=_config(ws)).id
        client.ls.projects.import_tasks(id=pull_project, request=annotated, return_task_ids=True)
        keys = client.task_keys(pull_project)
        ws.update_meta(project_id=str(pull_project))  # adopt the annotated project as the workspace's
        ws.record_tasks(pull_project, keys)
        exports, pulls = [], []
        for _ in range(2):  # alternating; best of two
            export, data = clock(lambda: client.export_json(pull_project))
            took, pulled = clock(lambda: pull(ws, client, full=True))
            exports.append(export)
            pulls.append(took)
        export, took = min(exports), min(pulls)
        assert pulled.annotations == len(frames)
        print(f"full pull of {n} tasks:      {took:6.2f} s   one raw export:   {export:6.2f} s   ratio {took / export:.2f} "
              f"(target ≤ 1.20), {len(pulled.export_files)} pages archived, {len(data) / 1e6:.1f} MB")

        # 4. incremental pull after 10 edited annotations
        changed = [{"type": "choices", "from_name": "claim_taliban_flag_raised", "to_name": "frame", "value": {"choices": ["Contradicts"]}}]
        ids = [a.id for a in ws.annotations()[:10]]
        for annotation in ids:
            client.ls.annotations.update(id=annotation, result=changed)
        took, inc = clock(lambda: pull(ws, client))
        print(f"incremental pull, 10 edits: {took:6.2f} s   ({inc.tasks} tasks exported; target < 1 s)")
    finally:
        server.stop(base)
        shutil.rmtree(tmp, ignore_errors=True)


def _config(ws: Workspace) -> str:
    from verify.labelstudio.config import build_config

    return build_config(ws.case)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--port", type=int, default=8391)
    args = parser.parse_args()
    main(args.frames, args.port)
