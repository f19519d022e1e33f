"""Push under faults, against the real Label Studio: verify killed mid-push, a connection
dropped after the server stored an import, 5xx answers, the server killed and restarted.
After each, a re-run converges: every frame exactly one task, zero duplicates."""

from __future__ import annotations

import hashlib
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import ROOT, SEED_CASE
from tests.waiting import wait_for
from verify.cli import main

pytestmark = pytest.mark.integration

# Three import batches (the last one short), as 4,500 frames once made with verify's 2,000-task batches; the batch
# is made smaller here (IMPORT_BATCH is read at call time; in the killed verify by BATCHED), so the same three
# imports, the faults between them and the convergence checks run on 1,000 tasks instead of 4,500. What the
# tests prove is about batches (a fault after the first is stored, before the last): not about their size.
IMPORT_BATCH = 400
FRAMES = 1000
# `python -m verify ARGS` with IMPORT_BATCH set first (for the verify killed in a child process)
BATCHED = ("import sys\nfrom verify.labelstudio import client\nclient.IMPORT_BATCH = int(sys.argv.pop(1))\n"
           "from verify.cli import main\nmain(prog_name='verify')")


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch):
    from verify.labelstudio import client

    monkeypatch.setattr(client, "IMPORT_BATCH", IMPORT_BATCH)


class FaultyProxy:
    """An HTTP proxy in front of Label Studio that misbehaves on cue.

    ``plan``: list of (method, path regex, action), each used once, in order of matching:
    ``drop-after`` forwards the request, then closes the connection without an answer;
    ``500-after`` forwards it, then answers 500; ``502-before`` answers 502 without forwarding.
    ``settled()`` waits until the server has answered every request a client sent through the proxy.
    """

    def __init__(self, upstream: str, prefix: str = ""):
        self.upstream = upstream.rstrip("/")
        self.prefix = prefix
        self.plan: list[tuple[str, str, str]] = []
        self.done: list[str] = []
        self._lock = threading.Lock()
        self._open: set = set()  # the connections accepted and not yet closed
        self._busy = 0  # requests come in and not yet answered (counted before their first byte is read)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one_request(self):
                select.select([self.connection], [], [])  # a request (or the end of the connection) comes
                with proxy._lock:
                    proxy._busy += 1
                try:
                    super().handle_one_request()
                finally:
                    with proxy._lock:
                        proxy._busy -= 1

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self.path.startswith(proxy.prefix + "/"):
                    return self._answer(404, b'{"detail": "not under the sub-path"}')
                self.path = self.path[len(proxy.prefix):]
                action = proxy._take(self.command, self.path)
                if action == "502-before":
                    return self._answer(502, b'{"detail": "bad gateway"}')
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
                with httpx.Client(timeout=300) as client:
                    answer = client.request(self.command, proxy.upstream + self.path, content=body, headers=headers)
                if action == "drop-after":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if action == "500-after":
                    return self._answer(500, b'{"detail": "server error"}')
                self._answer(answer.status_code, answer.content, answer.headers.get("content-type", "application/json"))

            def _answer(self, status, content, ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            def get_request(self):  # accepted and recorded under one lock: settled() sees it waiting or open
                with proxy._lock:
                    request = super().get_request()
                    proxy._open.add(request[0])
                return request

            def shutdown_request(self, request):
                with proxy._lock:
                    proxy._open.discard(request)
                super().shutdown_request(request)

            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], ConnectionError):  # an answer to a client killed meanwhile: no news
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{prefix}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _take(self, method: str, path: str) -> str | None:
        for i, (m, pattern, action) in enumerate(self.plan):
            if m == method and re.search(pattern, path):
                del self.plan[i]
                self.done.append(f"{action} {method} {path}")
                return action
        return None

    def _idle(self) -> bool:
        """No request on its way: none being handled, and no bytes waiting on a connection (a request not yet
        read, or a client's end not yet seen) nor a connection waiting to be accepted."""
        with self._lock:
            waiting = select.select([self.server.socket, *self._open], [], [], 0)[0]
            return not waiting and self._busy == 0

    def settled(self, timeout: float = 300) -> None:
        """Wait until every request a client sent through the proxy has been forwarded and answered by the server
        (a client killed mid-request included: the server goes on with it)."""
        wait_for(self._idle, timeout, lambda: f"the server to answer every request sent through the proxy ({self._busy} still in hand)")

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def base(label_studio, footage, tmp_path_factory):
    """A workspace with one real video's frames, cloned to FRAMES distinct frames."""
    from verify.media.frames import extract
    from verify.media.ingest import ingest
    from verify.workspace import Workspace

    ws = Workspace.create(tmp_path_factory.mktemp("faults") / "ws", SEED_CASE)
    [r] = ingest(ws, [footage["militants_at_gate"]], source_id="militants-at-gate")
    extract(ws)
    real = ws.frames()
    with ws.transaction() as db:
        columns = [c[1] for c in db.execute("PRAGMA table_info(frames)")]
        rows = db.execute(f"SELECT {', '.join(columns)} FROM frames").fetchall()
        for i in range(FRAMES - len(real)):
            row = dict(zip(columns, rows[i % len(rows)]))
            row["key"] = f"clone{i:05d}" + row["key"][10:]
            row["t_ms"] = row["t_ms"] + 10_000 * (i + 1)
            db.execute(f"INSERT INTO frames ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                       [row[c] for c in columns])
    assert len(ws.frames()) == FRAMES
    return ws


@pytest.fixture
def ws(base, tmp_path):
    """A fresh copy of the base workspace (its own project on the server)."""
    import shutil

    from verify.workspace import Workspace

    copy = tmp_path / "ws"
    shutil.copytree(base.root, copy, symlinks=True)
    workspace = Workspace.open(copy)
    tag = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:6]
    with workspace.transaction() as db:
        workspace.set_meta("workspace_id", base.id + "-" + tag)  # a distinct workspace per test…
        # …with its own frames (keys), so that no test finds another test's project by its frame keys
        db.execute("UPDATE frames SET key = CASE WHEN key LIKE 'clone%' THEN 'clone' || ? || substr(key, 6) ELSE ? || key END",
                   (tag, tag))
    return Workspace.open(copy)


def _env(label_studio, ws, url=None) -> dict:
    return {"LABEL_STUDIO_URL": url or label_studio["url"], "LABEL_STUDIO_API_KEY": label_studio["api_key"],
            "VERIFY_FILES_ROOT": str(label_studio["files_root"]), "VERIFY_WORKSPACE": str(ws.root),
            "VERIFY_HOME": str(label_studio["home"])}


def _push(env: dict):
    return CliRunner().invoke(main, ["push"], env=env, catch_exceptions=False)


def _keys(label_studio, project: int) -> Counter:
    headers = {"Authorization": f"Token {label_studio['api_key']}"}
    keys, page = Counter(), 1
    while True:
        answer = httpx.get(f"{label_studio['url']}/api/tasks", headers=headers, timeout=120,
                           params={"project": project, "page": page, "page_size": 1000, "fields": "task_only", "include": "id,meta"})
        if answer.status_code == 404:
            break
        answer.raise_for_status()
        tasks = answer.json()["tasks"]
        keys.update(t["meta"]["verify_key"] for t in tasks)
        if len(tasks) < 1000:
            break
        page += 1
    return keys


def _count(label_studio, project: int) -> int:
    """The project's task count (cheap: one project read)."""
    headers = {"Authorization": f"Token {label_studio['api_key']}"}
    return httpx.get(f"{label_studio['url']}/api/projects/{project}", headers=headers, timeout=60).json()["task_number"]


def _converged(label_studio, ws) -> Counter:
    project = int(ws.get_meta("project_id"))
    keys = _keys(label_studio, project)
    assert len(keys) == FRAMES, f"{len(keys)} distinct frames on the server for {FRAMES}"
    assert max(keys.values()) == 1, f"duplicates: {[k for k, n in keys.items() if n > 1][:5]}"
    assert sorted(keys) == sorted(f.key for f in ws.frames())
    return keys


def _first_push_of_a_few(label_studio, ws, env):
    """Create the project with the real frames only, so that the big push is the one under test."""
    with ws.transaction() as db:
        clones = db.execute("SELECT * FROM frames WHERE key LIKE 'clone%'").fetchall()
        columns = [d[0] for d in db.execute("SELECT * FROM frames LIMIT 1").description]
        db.execute("DELETE FROM frames WHERE key LIKE 'clone%'")
    first = _push(env)
    assert first.exit_code == 0, first.output
    with ws.transaction() as db:
        db.executemany(f"INSERT INTO frames ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", clones)
    return int(ws.get_meta("project_id"))


def test_a_connection_dropped_after_the_server_stored_an_import_is_reconciled(label_studio, ws):
    proxy = FaultyProxy(label_studio["url"])
    try:
        env = _env(label_studio, ws, proxy.url)
        proxy.plan = [("POST", r"/api/projects/\d+/import", "drop-after"), ("POST", r"/api/projects/\d+/import", "500-after")]
        result = _push(env)
        assert result.exit_code == 0, result.output
        assert len(proxy.done) == 2, proxy.done  # both faults happened, both imports had been stored
        keys = _converged(label_studio, ws)
        print(f"dropped connection and 500 after storing: {len(keys)} tasks, none duplicated ({proxy.done})")
    finally:
        proxy.close()


def test_a_502_before_storing_fails_clearly_and_a_rerun_converges(label_studio, ws):
    proxy = FaultyProxy(label_studio["url"])
    try:
        env = _env(label_studio, ws, proxy.url)
        proxy.plan = [("POST", r"/api/projects/\d+/import", "502-before")]
        failed = _push(env)
        assert failed.exit_code == 7 and "Traceback" not in failed.output, failed.output
        assert f"{proxy.url}: Label Studio failed (502)" in failed.output
        assert len(failed.output.strip().splitlines()[-1]) < 300
        again = _push(env)
        assert again.exit_code == 0, again.output
        _converged(label_studio, ws)
    finally:
        proxy.close()


def test_verify_killed_mid_push_then_rerun_converges(label_studio, ws):
    # through a plain proxy (no faults planned): it tells when the server has answered every request of the killed
    # verify; the next batch's import may be on its way when the kill comes, and the server stores it all the same
    proxy = FaultyProxy(label_studio["url"])
    try:
        env = _env(label_studio, ws, proxy.url)
        project = _first_push_of_a_few(label_studio, ws, env)
        before = _count(label_studio, project)
        child = subprocess.Popen([sys.executable, "-c", BATCHED, str(IMPORT_BATCH), "push"], cwd=ROOT, env={**os.environ, **env},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if _count(label_studio, project) > before:  # the first batch is in
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        child.wait(30)
        assert child.returncode == -signal.SIGKILL, "push finished before it could be killed"
        proxy.settled()  # else the re-run could list the tasks before an import in flight is stored, and import it again
        partial = _count(label_studio, project)
        assert before < partial < FRAMES
        again = _push(env)
        assert again.exit_code == 0, again.output
        _converged(label_studio, ws)
    finally:
        proxy.close()
    print(f"killed after {partial} of {FRAMES} tasks; the re-run imported the rest, no duplicates")


def test_label_studio_killed_and_restarted_mid_push_then_rerun_converges(label_studio, ws):
    from verify.labelstudio import server

    env = _env(label_studio, ws)
    project = _first_push_of_a_few(label_studio, ws, env)
    before = _count(label_studio, project)
    outcome = {}
    pusher = threading.Thread(target=lambda: outcome.setdefault("result", _push(env)))
    pusher.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and pusher.is_alive():
        if _count(label_studio, project) > before:
            pid = int((label_studio["base"] / "server.pid").read_text())
            os.killpg(pid, signal.SIGKILL)  # the server and its workers, no goodbye
            break
        time.sleep(0.02)
    pusher.join(300)
    result = outcome["result"]
    assert result.exit_code == 7, result.output  # cannot reach Label Studio: one line, the server's exit code
    assert "cannot reach Label Studio" in result.output or "did not answer" in result.output or "failed" in result.output
    port = int(label_studio["url"].rsplit(":", 1)[1])
    server.start(port, base=label_studio["base"])
    again = _push(env)
    assert again.exit_code == 0, again.output
    keys = _converged(label_studio, ws)
    print(f"server killed mid-push and restarted: {len(keys)} tasks, none duplicated")


def test_a_sub_path_address_with_a_personal_access_token(label_studio, ws):
    """Label Studio behind a reverse proxy at https://host/label-studio, with a PAT (a JWT refresh token)."""
    from tests.conftest import personal_access_token

    pat = personal_access_token(label_studio)
    proxy = FaultyProxy(label_studio["url"], prefix="/label-studio")
    try:
        env = {**_env(label_studio, ws, proxy.url), "LABEL_STUDIO_API_KEY": pat}
        pushed = _push(env)
        assert pushed.exit_code == 0, pushed.output
        assert f"reviewers label at {proxy.url}/projects/" in pushed.output
        pulled = CliRunner().invoke(main, ["pull"], env=env, catch_exceptions=False)
        assert pulled.exit_code == 0 and pat not in pulled.output, pulled.output
        _converged(label_studio, ws)
    finally:
        proxy.close()


def test_upload_mode_sends_the_images_through_the_api_once(label_studio, ws):
    """For a server that does not share this disk: frames go up through the import API (≤ 100 per request)."""
    import sqlite3
    from contextlib import closing

    env = {k: v for k, v in _env(label_studio, ws).items() if k != "VERIFY_FILES_ROOT"}
    with ws.transaction() as db:  # a few hundred frames are enough here: three upload requests
        db.execute("DELETE FROM frames WHERE key IN (SELECT key FROM frames ORDER BY key LIMIT -1 OFFSET 250)")
    pushed = CliRunner().invoke(main, ["push", "--images", "upload"], env=env, catch_exceptions=False)
    assert pushed.exit_code == 0, pushed.output
    assert "images: uploaded to the server (250 new)" in pushed.output
    project = int(ws.get_meta("project_id"))
    headers = {"Authorization": f"Token {label_studio['api_key']}"}
    tasks = httpx.get(f"{label_studio['url']}/api/tasks", headers=headers, timeout=60,
                      params={"project": project, "page_size": 1000, "fields": "task_only"}).json()["tasks"]
    assert len(tasks) == 250 and all(t["data"]["image"].startswith(f"/data/upload/{project}/") for t in tasks)
    assert all(t["meta"]["verify_key"] == t["data"]["frame_key"] for t in tasks)
    image = httpx.get(label_studio["url"] + tasks[0]["data"]["image"], headers=headers, timeout=60)
    assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"
    with closing(sqlite3.connect(ws.root / "verify.db")) as db:
        key = tasks[0]["data"]["frame_key"]
        path, sha = db.execute("SELECT file, sha256 FROM frames WHERE key = ?", (key,)).fetchone()
    assert hashlib.sha256(image.content).hexdigest() == sha  # the very bytes of the stored frame
    again = CliRunner().invoke(main, ["push", "--images", "upload"], env=env, catch_exceptions=False)
    assert "0 tasks imported" in again.output and "(0 new)" in again.output
