"""Sync speed and memory against raw Label Studio calls, measured in one run against the same server.

    .venv/bin/python benchmarks/bench_sync.py [--frames 10000] [--database sqlite|postgresql]
                                              [--images local|upload|s3] [--port 8391] [--rounds 3]
                                              [--only-push | --only-pull]

Starts its own Label Studio (verify.server; SQLite, or PostgreSQL in a cluster verify creates; a
temporary home) and, for ``--images s3``, its own SeaweedFS S3 server on loopback (as the tests
do, tests/s3server.py). Builds a workspace with N frames (the fixture frames cloned under new keys:
the clones share a dozen pictures, so an S3 push stores only those, while ``upload`` sends one
file per frame). verify's own work runs in a separate worker process (so its peak memory, the
worker's VmHWM, counts neither the benchmark's raw references nor Label Studio); the raw
references run here. For each step it prints verify's wall time and CPU seconds, and the CPU
seconds Label Studio (its process group) and PostgreSQL (the postmaster and its backends) spent
meanwhile, read from /proc:

1. push of N new frames into a new project, against a raw import of the same task JSON (plain HTTP, one
   request per 10,000 tasks) into a project made before the clock starts: a plain one (the issue's
   reference), and one set up as verify's push sets one up (same config, reviewers per task,
   instructions and storage: what the server spends on an import into such a project). --rounds
   rounds of the three, their order turning; printed: best against best (the target), each round's
   ratio and their median. A first push, not counted, serves the frames; before it, the server's
   first import is done on 200 tasks (see ``_warm_up``);
2. re-push with nothing new (0 imports, 0 uploads), against one minimal task listing (the
   ``include=id,meta`` pages verify reads; alternating, best of --rounds + 1);
3. full pull of N annotated tasks, against one raw JSON export of the same project (best of --rounds);
4. incremental pull after 10 annotations were edited (target: under 1 s);
5. verify's peak memory (target: 500 MB).

At 100,000 frames a whole run takes about 40 minutes: ``--only-push`` measures steps 1 and 5,
``--only-pull`` steps 3 (verify's full pull alone: the raw export takes 12 minutes), 4 and 5.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Only what a sync imports is imported here: the worker process (spawned) imports this module again, and its
# baseline memory should be verify's, not the footage generator's (the media stages are imported in workspace_with).
from verify.labelstudio import server  # noqa: E402
from verify.labelstudio.client import LabelStudioClient, batched  # noqa: E402
from verify.labelstudio.project import build_task, frame_urls, link_frames  # noqa: E402
from verify.workspace import Workspace  # noqa: E402

CASE = ROOT / "configs" / "spin-boldak-2021.yaml"
TICK = os.sysconf("SC_CLK_TCK")
RAW_BATCH = 10_000  # tasks per raw import request: one request up to 10,000 frames (as before); 10 at 100,000


def workspace_with(tmp: Path, n: int) -> Workspace:
    from fixtures.generate import generate
    from verify.media.frames import extract
    from verify.media.ingest import ingest

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


# --- verify's side: a worker process ------------------------------------------------------------


def worker(conn, ws_root: str, url: str, api_key: str, files_root: str | None, images: str) -> None:
    """Runs verify's push and pull on command; answers (wall s, cpu s, result summary) per step, and its peak RSS."""
    from verify.labelstudio.pull import pull
    from verify.labelstudio.push import push

    ws = Workspace.open(Path(ws_root))
    client = LabelStudioClient(url, api_key)
    client.whoami()
    root = Path(files_root) if files_root else None
    conn.send(_peak_mb())  # the baseline: Python, verify and the SDK imported, nothing done yet
    while True:
        command = conn.recv()
        if command is None:
            conn.send(_peak_mb())
            return
        cpu, start = time.process_time(), time.perf_counter()
        if command == "push-new":
            result = push(ws, client, root, new_project=True, images=images)
            summary = {"project": result.project_id, "imported": result.imported, "images": result.images}
        elif command == "push":
            result = push(ws, client, root, images=images)
            summary = {"project": result.project_id, "imported": result.imported, "images": result.images}
        elif command.startswith("adopt:"):  # the annotated project becomes the workspace's
            project = int(command.split(":")[1])
            ws.update_meta(project_id=str(project), server_url=client.url)
            ws.record_tasks(project, client.task_keys(project))
            summary = {}
        else:
            result = pull(ws, client, full=command == "pull-full")
            summary = {"tasks": result.tasks, "annotations": result.annotations, "pages": len(result.export_files)}
        conn.send((time.perf_counter() - start, time.process_time() - cpu, {**summary, "peak": _peak_mb()}))


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM). Not ru_maxrss: a spawned process starts from a vfork of its
    parent, and the kernel carries the parent's peak into the child's ru_maxrss across the exec (measured here: a
    child of a parent holding 600 MB reports 615 MB, against 15 MB of its own), so the worker reported the
    benchmark's own memory."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


# --- the servers' side: CPU seconds from /proc --------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2:].split()  # fields from the 3rd (state) on


def server_cpu(ls_session: int, postmaster: int | None) -> tuple[float, float]:
    """CPU seconds so far of Label Studio (every process of its session, and their reaped children)
    and of PostgreSQL (the postmaster, its live backends, and the backends it has reaped)."""
    ls = pg = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields is None:
            continue
        ppid, session = int(fields[1]), int(fields[3])
        own, reaped = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
        if session == ls_session:
            ls += own + reaped
        if postmaster and int(entry) == postmaster:
            pg += own + reaped
        elif postmaster and ppid == postmaster:
            pg += own
    return ls / TICK, pg / TICK


class Meter:
    """Wall time, and the servers' CPU seconds, of one step."""

    def __init__(self, ls_session: int, postmaster: int | None):
        self.ls_session, self.postmaster = ls_session, postmaster

    def __call__(self, func):
        ls0, pg0 = server_cpu(self.ls_session, self.postmaster)
        start = time.perf_counter()
        value = func()
        wall = time.perf_counter() - start
        ls1, pg1 = server_cpu(self.ls_session, self.postmaster)
        return {"wall": wall, "ls": ls1 - ls0, "pg": pg1 - pg0 if self.postmaster else None, "value": value}


def _servers(m: dict, verify_cpu: float | None = None) -> str:
    mine = f"verify CPU {verify_cpu:5.2f} s, " if verify_cpu is not None else ""
    database = f", PostgreSQL CPU {m['pg']:5.2f} s" if m["pg"] is not None else ""
    return f"[{mine}Label Studio CPU {m['ls']:5.2f} s{database}]"


def main(n: int, port: int, database: str, images: str, rounds: int = 3, only_push: bool = False,
         only_pull: bool = False) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="verify-bench-sync-"))
    os.environ["VERIFY_HOME"] = str(tmp / "home")
    base = tmp / "home" / "label-studio"
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        if images == "s3":
            from tests.s3server import running

            s3 = stack.enter_context(running(tmp / "s3"))
            os.environ.update(AWS_ACCESS_KEY_ID=s3["access_key"], AWS_SECRET_ACCESS_KEY=s3["secret_key"],
                              AWS_ENDPOINT_URL=s3["endpoint"], AWS_DEFAULT_REGION=s3["region"],
                              VERIFY_S3_BUCKET=s3["bucket"], VERIFY_S3_PREFIX="bench")
        print(f"starting Label Studio on port {port} ({database}) …", flush=True)
        started = time.perf_counter()
        stack.callback(_stop, base)
        state = server.start(port, base=base, database=database)
        print(f"  up in {time.perf_counter() - started:.0f} s; images: {images}", flush=True)
        creds = server.credentials(base)
        client = LabelStudioClient(state.url, creds["api_key"])
        me = client.whoami()["id"]
        ws = workspace_with(tmp, n)
        frames = ws.frames()
        video = ws.videos()[0]
        files_root = Path(state.files_root) if images == "local" else None
        meter = Meter(state.pid, _postmaster(creds))
        context = multiprocessing.get_context("spawn")
        here, there = context.Pipe()
        process = context.Process(target=worker, args=(there, str(ws.root), state.url, creds["api_key"],
                                                        str(files_root) if files_root else None, images))
        process.start()
        baseline = here.recv()

        def verify_step(command: str) -> dict:
            def ask():
                here.send(command)
                return here.recv()
            m = meter(ask)
            m["wall"], m["cpu"], m["value"] = m["value"]
            return m

        print(f"{len(frames)} frames, Label Studio {client.version()}", flush=True)

        claims = [c.id for c in ws.case.claims]  # the same task JSON verify's push sends (its "bears" fields too)
        _warm_up(state.url, creds["api_key"], client, ws, frames, video, claims)
        ratios: dict[str, float] = {}
        took = again = None
        if only_pull:  # --only-pull: no pushes; the annotated project below is imported raw
            tasks = [build_task(f, video, url, ws.id, claims=claims) for f, url in zip(frames, _urls(ws, frames, images, state, {}))]
        else:
            took, again, tasks = _pushes(n, ws, frames, video, claims, images, state, creds, client, meter, verify_step, rounds,
                                         ratios)
        if only_push:  # --only-push: the pushes alone (at 100,000 frames the pulls take most of an hour)
            here.send(None)
            peak = here.recv()
            process.join(60)
            print(f"verify's peak memory:       {peak:7.0f} MB (its worker process's VmHWM); {baseline:.0f} MB before any work")
            print(f"summary: frames={n} database={database} images={images} push={ratios['push']:.2f} peak={peak:.0f}MB",
                  flush=True)
            return

        # 3. full pull of annotated tasks against one raw export of the same project (none with --only-pull)
        answer = [{"type": "choices", "from_name": "claim_taliban_flag_raised", "to_name": "frame", "value": {"choices": ["Supports"]}}]
        pull_project = client.ls.projects.create(title="annotated", label_config=_config(ws)).id
        _raw_import(state.url, creds["api_key"], pull_project,
                    [{**t, "annotations": [{"result": answer, "completed_by": me}]} for t in tasks], size=5000)
        del tasks
        verify_step(f"adopt:{pull_project}")
        exports, pulls = [], []
        for _ in range(1 if only_pull else rounds):  # alternating; best of --rounds
            if not only_pull:
                exports.append(meter(lambda: _raw_export(state.url, creds["api_key"], pull_project)))
            pulls.append(verify_step("pull-full"))
        pulled = min(pulls, key=lambda m: m["wall"])
        assert pulled["value"]["annotations"] == len(frames), pulled
        print(f"full pull of {n} tasks:      {pulled['wall']:7.2f} s {_servers(pulled, pulled['cpu'])}, "
              f"{pulled['value']['pages']} pages archived", flush=True)
        if exports:
            export = min(exports, key=lambda m: m["wall"])
            ratios["full pull"] = pulled["wall"] / export["wall"]
            print(f"  one raw export:            {export['wall']:7.2f} s {_servers(export)}   ratio {ratios['full pull']:.2f} "
                  f"(target ≤ 1.20), {export['value'] / 1e6:.1f} MB", flush=True)

        # 4. incremental pull after 10 edited annotations
        changed = [{"type": "choices", "from_name": "claim_taliban_flag_raised", "to_name": "frame", "value": {"choices": ["Contradicts"]}}]
        for annotation in [a.id for a in ws.annotations()[:10]]:
            client.ls.annotations.update(id=annotation, result=changed)
        inc = verify_step("pull")
        print(f"incremental pull, 10 edits: {inc['wall']:7.2f} s {_servers(inc, inc['cpu'])} "
              f"({inc['value']['tasks']} tasks exported; target < 1 s)", flush=True)

        # 5. verify's peak memory
        here.send(None)
        peak = here.recv()
        process.join(60)
        steps = ", ".join(f"{name} {m['value']['peak']:.0f}" for name, m in
                          (("push", took), ("re-push", again), ("full pull", pulled), ("incremental pull", inc)) if m)
        print(f"verify's peak memory:       {peak:7.0f} MB (its worker process's VmHWM; target ≤ 500 MB); "
              f"{baseline:.0f} MB after imports, before any work; peak after each step: {steps} MB")
        shown = " ".join(f"{name.replace(' ', '-')}={ratio:.2f}" for name, ratio in ratios.items())
        print(f"summary: frames={n} database={database} images={images} {shown} incremental={inc['wall']:.2f}s "
              f"peak={peak:.0f}MB", flush=True)


def _pushes(n, ws, frames, video, claims, images, state, creds, client, meter, verify_step, rounds, ratios):
    """Steps 1 and 2: push against a raw import, re-push against a listing; (best push, best re-push, the task JSON)."""
    # 1. push against a raw import of the same task JSON into a project made before the clock starts: a plain one
    # (the reference), and one set up as verify's (same config, reviewers per task, instructions, storage);
    # each round runs the three, in an order that turns from round to round
    first = verify_step("push-new")
    print(f"first push (serves the frames: {first['value']['images']}): {first['wall']:6.2f} s "
          f"{_servers(first, first['cpu'])}", flush=True)
    tasks = [build_task(f, video, url, ws.id, claims=claims) for f, url in zip(frames, _urls(ws, frames, images, state, first))]
    runs: dict[str, list[dict]] = {"push": [], "raw": [], "same": []}
    for round_ in range(rounds):
        kinds = list(runs)
        for kind in kinds[round_ % 3:] + kinds[:round_ % 3]:
            if kind == "push":
                runs["push"].append(verify_step("push-new"))
                continue
            if kind == "raw":
                project = client.ls.projects.create(title=f"raw import {round_}", label_config=_config(ws)).id
            else:
                project = _set_up_as_verify(client, ws, images, state, f"set up as verify's {round_}")
            runs[kind].append(meter(lambda p=project: _raw_import(state.url, creds["api_key"], p, tasks)))
    best = {kind: min(found, key=lambda m: m["wall"]) for kind, found in runs.items()}
    took, raw = best["push"], best["raw"]
    assert took["value"]["imported"] == len(frames), took
    ratios["push"] = took["wall"] / raw["wall"]
    print(f"push {n} new frames:        {took['wall']:7.2f} s {_servers(took, took['cpu'])}\n"
          f"  raw import (plain HTTP):   {raw['wall']:7.2f} s {_servers(raw)}   ratio {ratios['push']:.2f} (target ≤ 1.20); "
          f"{_rounds(runs['push'], runs['raw'])}\n"
          f"  raw import into a project set up as verify's: {best['same']['wall']:5.2f} s {_servers(best['same'])}   ratio "
          f"{took['wall'] / best['same']['wall']:.2f}; {_rounds(runs['push'], runs['same'])}\n"
          f"  each run: pushes {_walls(runs['push'])}, raw imports {_walls(runs['raw'])}, raw imports into a project set "
          f"up as verify's {_walls(runs['same'])}", flush=True)

    # 2. re-push with nothing new against one minimal listing (alternating; best of rounds + 1)
    project = took["value"]["project"]
    listings, repushes = [], []
    for _ in range(rounds + 1):
        listings.append(meter(lambda: _listing(state.url, creds["api_key"], project)))
        repushes.append(verify_step("push"))
    listing, again = min(listings, key=lambda m: m["wall"]), min(repushes, key=lambda m: m["wall"])
    assert again["value"]["imported"] == 0 and len(listing["value"]) == len(frames)
    ratios["re-push"] = again["wall"] / listing["wall"]
    print(f"re-push, nothing new:       {again['wall']:7.2f} s {_servers(again, again['cpu'])}, "
          f"{again['value']['imported']} imported, images: {again['value']['images']}\n"
          f"  one minimal listing:       {listing['wall']:7.2f} s {_servers(listing)}   ratio {ratios['re-push']:.2f} "
          f"(target ≤ 1.20)", flush=True)
    return took, again, tasks


def _rounds(pushes: list[dict], references: list[dict]) -> str:
    """Each round's ratio (a push against the reference run beside it), sorted, and their median."""
    ratios = sorted(p["wall"] / r["wall"] for p, r in zip(pushes, references))
    return f"each round's ratio, sorted: {' '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f})"


def _set_up_as_verify(client: LabelStudioClient, ws: Workspace, images: str, state, title: str) -> int:
    """A project set up as verify's push sets one up (its config with the context strip, reviewers per task,
    instructions, and the storage its frames are served through), by verify's client; its id."""
    from verify.labelstudio import objects
    from verify.labelstudio.config import build_config, instructions_html
    from verify.labelstudio.project import attach_bucket

    project = client.create_project(title, "set up as verify's", build_config(ws.case), instructions_html(ws.case),
                                    ws.case.review.reviewers_per_frame)
    if images == "local":
        client.ensure_local_storage(project, str(frame_urls(ws, [], Path(state.files_root))[0]), listed=False)
    elif images == "s3":
        attach_bucket(client, project, objects.ObjectStore(objects.settings()))
    return project


def _walls(runs: list[dict]) -> str:
    return " ".join(f"{m['wall']:.2f}" for m in runs) + " s"


def _warm_up(url: str, api_key: str, client: LabelStudioClient, ws: Workspace, frames: list, video, claims) -> None:
    """A fresh Label Studio spends about a second more on its first import (measured: 3.7 s of CPU against 2.5 s for
    the same 10,000 tasks): one small project made, changed and imported into before anything is timed."""
    warm = client.ls.projects.create(title="warm-up", label_config=_config(ws)).id
    client.update_project(warm, expert_instruction="<p>warm-up</p>")
    _raw_import(url, api_key, warm, [build_task(f, video, f"/warm-up/{f.key}.jpg", ws.id, claims=claims) for f in frames[:200]])


def _urls(ws: Workspace, frames: list, images: str, state, first: dict) -> list[str]:
    """The image URL of each frame as verify's push gave them (for the raw import of the same task JSON)."""
    if images == "local":
        folder, urls = frame_urls(ws, frames, Path(state.files_root))
        link_frames(ws.root, frames, folder)
    elif images == "upload":
        urls = ws.uploads(first["value"]["project"])
    else:
        from verify.labelstudio import objects

        config = objects.settings()
        urls = {f.key: objects.object_uri(config.bucket, objects.object_key(config.prefix, f.sha256)) for f in frames}
    return [urls[f.key] for f in frames]


def _raw_import(url: str, api_key: str, project: int, tasks: list[dict], size: int = RAW_BATCH) -> list[int]:
    """A raw import of the task JSON with plain HTTP, one request per ``size`` tasks (as Label Studio's docs show it:
    the JSON posted to /api/projects/ID/import); the new task ids."""
    import httpx

    ids: list[int] = []
    with httpx.Client(headers={"Authorization": f"Token {api_key}"}, timeout=3600) as web:
        for batch in batched(tasks, size):
            answer = web.post(f"{url}/api/projects/{project}/import", params={"return_task_ids": "true"},
                              content=json.dumps(batch, ensure_ascii=False).encode(), headers={"Content-Type": "application/json"})
            answer.raise_for_status()
            ids += answer.json()["task_ids"]
    return ids


def _listing(url: str, api_key: str, project: int) -> dict[str, int]:
    """One minimal listing of the project's tasks with plain HTTP: ids and meta, pages of 1,000."""
    import httpx

    keys, page = {}, 1
    with httpx.Client(headers={"Authorization": f"Token {api_key}"}, timeout=600) as web:
        while True:
            answer = web.get(f"{url}/api/tasks", params={"project": project, "page": page, "page_size": 1000,
                                                          "fields": "task_only", "include": "id,meta"}).json()
            keys.update((t["meta"]["verify_key"], t["id"]) for t in answer["tasks"])
            if len(answer["tasks"]) < 1000 or page * 1000 >= answer["total"]:
                return keys
            page += 1


def _raw_export(url: str, api_key: str, project: int) -> int:
    """One raw JSON export of every task (plain HTTP, as Label Studio's own client makes it); its size in bytes."""
    import httpx

    answer = httpx.get(f"{url}/api/projects/{project}/export", params={"exportType": "JSON", "download_all_tasks": "true"},
                       headers={"Authorization": f"Token {api_key}"}, timeout=3600)
    answer.raise_for_status()
    return len(answer.content)


def _postmaster(creds: dict) -> int | None:
    data = (creds.get("database") or {}).get("data_dir")
    try:
        return int((Path(data) / "postmaster.pid").read_text().split()[0]) if data else None
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _stop(base: Path) -> None:
    server.stop(base)
    cluster = (base / "postgres").resolve()
    if cluster.exists() and not str(cluster).startswith(str(base.resolve())):  # as root: in the postgres user's home
        shutil.rmtree(cluster, ignore_errors=True)


def _config(ws: Workspace) -> str:
    from verify.labelstudio.config import build_config

    return build_config(ws.case)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--port", type=int, default=8391)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--images", choices=("local", "upload", "s3"), default="local")
    parser.add_argument("--rounds", type=int, default=3,
                        help="best of this many pushes, raw imports, pulls and exports (re-push: one more): the machine's noise (about ±15%% between runs at 10,000 frames on 2 cores) weighs less with more; 1 at 100,000 frames")
    parser.add_argument("--only-push", action="store_true", help="measure the pushes only (no re-push, no pulls)")
    parser.add_argument("--only-pull", action="store_true",
                        help="measure the pulls only: one full pull, without the raw export, then the incremental pull")
    args = parser.parse_args()
    if args.only_pull and (args.only_push or args.images == "upload"):
        parser.error("--only-pull goes with neither --only-push nor --images upload (its URLs come from a push)")
    main(args.frames, args.port, args.database, args.images, max(1, args.rounds), args.only_push, args.only_pull)
