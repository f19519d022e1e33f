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
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

STAGES = ("ingest", "frames", "push", "pull", "report")
POINTS = 10  # kill points per stage, spread over how long the stage holds the workspace lock uninterrupted


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
    before, after = {}, {}
    for stage in STAGES:
        before[stage] = base / f"before-{stage}"
        shutil.copytree(ws, before[stage])
        done = _verify(env, *_args(stage, footage))
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
    return {"env": env, "before": before, "after": after, "base": base}


def _lock_held_by(ws: Path, pid: int) -> bool:
    """Whether the process ``pid`` has taken the workspace's write lock (it writes its pid into the lock file then):
    read from the file, so the test's polling never takes a database lock the child might wait for."""
    try:
        return (ws / ".lock").read_text().strip() == str(pid)
    except OSError:
        return False


def _open_intent(ws: Path) -> dict | None:
    """The intent a run left open in the workspace (custody): the run was killed after it began writing and
    before it finished; None when none is open."""
    from verify import custody

    with closing(sqlite3.connect(ws / "verify.db")) as db:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (custody.INTENT,)).fetchone()
    return json.loads(row[0]) if row and row[0] else None


def _start(stage: str, footage: dict, env: dict, ws: Path) -> subprocess.Popen:
    (ws / ".lock").unlink(missing_ok=True)  # the copied lock file names an earlier run's pid
    return subprocess.Popen([sys.executable, "-m", "verify", *_args(stage, footage)], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _run_and_kill(stage: str, footage: dict, env: dict, ws: Path, delay: float) -> tuple[bool, bool]:
    """Start the stage in ``ws``; once it holds the workspace lock, wait ``delay`` s and SIGKILL it if it still runs.
    Return (killed, mid_stage): mid-stage when the kill left its intent open, i.e. it had begun and not finished."""
    child = _start(stage, footage, env, ws)
    try:
        wait_for(lambda: _lock_held_by(ws, child.pid) or child.poll() is not None, 120,
                 f"`verify {stage}` (pid {child.pid}) to take the workspace lock or exit")
        if child.poll() is None:
            time.sleep(delay)  # where the kill lands; what the test requires does not depend on it
        killed = child.poll() is None
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.wait(60)
    intent = _open_intent(ws)
    return killed, bool(killed and intent and intent.get("pid") == child.pid)


@pytest.mark.parametrize("stage", STAGES)
def test_killed_anywhere_in_a_stage_a_rerun_gives_the_same_result(snapshots, footage, label_studio, stage, tmp_path):
    """Kill points are spread over how long the stage held the lock in an uninterrupted run here; the machine's load
    moves where they land, so nothing required depends on it: every run, killed or not, must leave a workspace that
    opens and that a re-run completes to the uninterrupted run's result, and at least one kill must have landed
    mid-stage (the run's intent left open). When none did (the runs finished first, or were killed before they
    began writing), the kill points are tried again, earlier, then later, until one does or the attempts run out."""
    ws = tmp_path / "calibrate"
    shutil.copytree(snapshots["before"][stage], ws)
    env = {**snapshots["env"], "VERIFY_WORKSPACE": str(ws)}
    child = _start(stage, footage, env, ws)
    wait_for(lambda: _lock_held_by(ws, child.pid) or child.poll() is not None, 120, f"`verify {stage}` to take the lock")
    start = time.monotonic()
    assert child.wait(300) == 0, f"{stage} failed uninterrupted"
    took = time.monotonic() - start  # how long it held the lock (and exited), as far as spreading the points goes
    delays = [took * (point + 0.5) / POINTS for point in range(POINTS)]
    # should no kill land mid-stage: earlier and earlier (the run finished first), then the moments in between
    retries = [took * 0.5 ** k for k in range(2, 2 + POINTS)] + [took * (point + 0.25) / POINTS for point in range(POINTS)]
    tried = []
    for attempt, delay in enumerate(delays + retries):
        if attempt >= len(delays) and any(mid for _, _, mid in tried):
            break
        ws = tmp_path / f"ws{attempt}"
        shutil.copytree(snapshots["before"][stage], ws)
        env = {**snapshots["env"], "VERIFY_WORKSPACE": str(ws)}
        killed, mid = _run_and_kill(stage, footage, env, ws, delay)
        said = f"{stage}, {'killed' if killed else 'not killed'} {delay:.2f} s after it took the lock"
        _state_opens(ws)
        again = _verify(env, *_args(stage, footage))
        assert again.returncode == 0, f"{said}: {again.stdout}{again.stderr}"
        assert _signature(stage, ws, label_studio) == snapshots["after"][stage], said
        audit = _verify(env, "audit")
        assert audit.returncode == 0, f"{said}: {audit.stdout}{audit.stderr}"
        tried.append((round(delay, 2), killed, mid))
    print(f"{stage}: {sum(k for _, k, _ in tried)} of {len(tried)} runs killed, {sum(m for _, _, m in tried)} mid-stage "
          f"(the lock held {took:.2f} s uninterrupted): {tried}")
    assert any(mid for _, _, mid in tried), f"{stage}: no kill landed while the stage was writing: {tried}"
