"""verify killed with SIGKILL at many points of ingest, frames, push, pull and report: every state
file still opens, and a re-run completes with the same result as an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, SEED_CASE

pytestmark = pytest.mark.integration

STAGES = ("ingest", "frames", "push", "pull", "report")
POINTS = 10  # kill points per stage, spread over the stage's uninterrupted running time


def _verify(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "verify", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)


def _args(stage: str, footage: dict) -> list[str]:
    if stage == "ingest":
        return ["ingest", str(footage["militants_at_gate"]), str(footage["civilians_refused_vertical"])]
    return [stage]


def _signature(stage: str, ws: Path, label_studio: dict) -> object:
    """What a stage leaves behind, independent of timing."""
    with closing(sqlite3.connect(ws / "verify.db")) as db:
        if stage == "ingest":
            return sorted(db.execute("SELECT sha256, source_id, evidence, size FROM videos").fetchall())
        if stage == "frames":
            return sorted(db.execute("SELECT key, sha256, pixel_sha256, t_ms FROM frames").fetchall())
        if stage == "push":
            project = int(db.execute("SELECT value FROM meta WHERE key = 'project_id'").fetchone()[0])
            tasks = db.execute("SELECT frame_key, task_id FROM tasks WHERE project_id = ?", (project,)).fetchall()
            headers = {"Authorization": f"Token {label_studio['api_key']}"}
            listed = httpx.get(f"{label_studio['url']}/api/tasks", headers=headers, timeout=60,
                               params={"project": project, "page_size": 1000, "fields": "task_only", "include": "id,meta"}).json()["tasks"]
            keys = Counter(t["meta"]["verify_key"] for t in listed)
            return {"tasks": sorted(k for k, _ in tasks), "server": sorted(keys.items())}
        if stage == "pull":
            return sorted(db.execute("SELECT id, task_id, reviewer, result FROM annotations").fetchall())
    report = json.loads((ws / "reports" / "report.json").read_text())
    return [(c["id"], c["verdict"]) for c in report["claims"]]


def _state_opens(ws: Path) -> None:
    from verify import custody
    from verify.workspace import Workspace

    with closing(sqlite3.connect(ws / "verify.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    workspace = Workspace.open(ws)
    assert workspace.videos() is not None and workspace.frames() is not None
    log = custody.check_log(workspace)
    assert log.ok, log.problems
    for path in (ws / "reports").glob("*.json"):
        json.loads(path.read_text())


@pytest.fixture(scope="module")
def snapshots(label_studio, footage, tmp_path_factory):
    """One uninterrupted run, with a copy of the workspace before each stage and its result after."""
    base = tmp_path_factory.mktemp("kill")
    ws = base / "ws"
    env = {"LABEL_STUDIO_URL": label_studio["url"], "LABEL_STUDIO_API_KEY": label_studio["api_key"],
           "VERIFY_FILES_ROOT": str(label_studio["files_root"]), "VERIFY_WORKSPACE": str(ws),
           "VERIFY_HOME": str(label_studio["home"])}
    assert _verify(env, "init", str(SEED_CASE)).returncode == 0
    before, after, took = {}, {}, {}
    for stage in STAGES:
        before[stage] = base / f"before-{stage}"
        shutil.copytree(ws, before[stage])
        start = time.monotonic()
        done = _verify(env, *_args(stage, footage))
        took[stage] = time.monotonic() - start
        assert done.returncode == 0, done.stdout + done.stderr
        if stage == "push":  # one reviewer answer, so that the pull has something to bring
            project = json.loads(_verify(env, "status", "--json").stdout)["label_studio"]["project_id"]
            headers = {"Authorization": f"Token {label_studio['api_key']}"}
            task = httpx.get(f"{label_studio['url']}/api/tasks", headers=headers, timeout=60,
                             params={"project": project, "fields": "task_only"}).json()["tasks"][0]
            httpx.post(f"{label_studio['url']}/api/tasks/{task['id']}/annotations/", headers=headers, timeout=60, json={
                "result": [{"type": "choices", "from_name": "claim_taliban_flag_raised", "to_name": "frame",
                            "value": {"choices": ["Supports"]}}]}).raise_for_status()
        after[stage] = _signature(stage, ws, label_studio)
    return {"env": env, "before": before, "after": after, "took": took, "base": base}


@pytest.mark.parametrize("stage", STAGES)
def test_killed_anywhere_in_a_stage_a_rerun_gives_the_same_result(snapshots, footage, label_studio, stage, tmp_path):
    # how long the stage takes from this state: the quicker of two uninterrupted runs, the fixture's and one
    # now on a copy (the fixture's may have paid one-time costs, or this one met a busy moment: the quicker
    # of the two is the stage's time, as with two runs here, one run of the stage fewer)
    ws = tmp_path / "calibrate"
    shutil.copytree(snapshots["before"][stage], ws)
    start = time.monotonic()
    assert _verify({**snapshots["env"], "VERIFY_WORKSPACE": str(ws)}, *_args(stage, footage)).returncode == 0
    took = min(time.monotonic() - start, snapshots["took"][stage])
    tried = []
    for point in range(POINTS):
        delay = took * (point + 0.5) / POINTS  # spread over the whole run, start-up included
        ws = tmp_path / f"ws{point}"
        shutil.copytree(snapshots["before"][stage], ws)
        env = {**snapshots["env"], "VERIFY_WORKSPACE": str(ws)}
        child = subprocess.Popen([sys.executable, "-m", "verify", *_args(stage, footage)], cwd=ROOT,
                                 env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        killed = child.poll() is None
        if killed:
            child.send_signal(signal.SIGKILL)
        child.wait(60)
        _state_opens(ws)
        again = _verify(env, *_args(stage, footage))
        assert again.returncode == 0, f"{stage}, killed at {delay:.2f} s: {again.stdout}{again.stderr}"
        assert _signature(stage, ws, label_studio) == snapshots["after"][stage], f"{stage}, killed at {delay:.2f} s"
        audit = _verify(env, "audit")
        assert audit.returncode == 0, f"{stage}, killed at {delay:.2f} s: {audit.stdout}{audit.stderr}"
        tried.append((round(delay, 2), killed))
    print(f"{stage}: {sum(k for _, k in tried)} of {POINTS} runs killed mid-way (stage takes {took:.2f} s), at {tried}")
    assert sum(k for _, k in tried) >= POINTS // 2
