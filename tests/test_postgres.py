"""Label Studio on PostgreSQL: verify's own cluster, and the tests that matter run against it.

`label_studio_pg` (tests/conftest.py) is a second local Label Studio, started by
`verify.labelstudio.server.start(database="postgresql")`: verify creates a PostgreSQL cluster
(Debian's postgresql), starts it on loopback, and runs Label Studio on it. Here the push/pull
loop of tests/test_integration.py runs again, its fixture and tests unchanged, with
``label_studio`` meaning that server (the module's own fixture below takes the place of
conftest's for every test and fixture of this module); the push faults of tests/test_faults.py
run on a copy of that loop's workspace (small import batches instead of 4,500 frames), with a
database outage in the middle of a push besides.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import time
import uuid
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from tests.conftest import _free_port, cli
from tests.test_faults import FaultyProxy, _keys
from tests.test_integration import (  # noqa: F401  (a fixture and tests, collected here against PostgreSQL)
    loop,
    test_an_annotation_edited_on_the_server_is_reflected_and_the_old_export_kept,
    test_push_sends_every_frame_but_reuploads_once_and_a_second_push_adds_nothing,
    test_verdicts_match_what_the_reviewers_entered,
)
from tests.waiting import wait_for
from click.testing import CliRunner

from verify.cli import main
from verify.errors import ServerError
from verify.labelstudio import server
from verify.labelstudio.client import LabelStudioClient
from verify.workspace import Workspace

pytestmark = pytest.mark.integration


S3_PREFIX = "verify-on-postgresql"


@pytest.fixture(scope="module")
def label_studio(label_studio_pg, s3_server):
    """In this module, "the" Label Studio is the one on PostgreSQL, and frames go through the session's S3
    server (the settings are in the environment for the module's duration, so `--images auto` picks s3)."""
    settings = {"AWS_ACCESS_KEY_ID": s3_server["access_key"], "AWS_SECRET_ACCESS_KEY": s3_server["secret_key"],
                "AWS_ENDPOINT_URL": s3_server["endpoint"], "AWS_DEFAULT_REGION": s3_server["region"],
                "VERIFY_S3_BUCKET": s3_server["bucket"], "VERIFY_S3_PREFIX": S3_PREFIX}
    unset = ("AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE")
    saved = {name: os.environ.get(name) for name in (*settings, *unset)}
    os.environ.update(settings)
    for name in unset:
        os.environ.pop(name, None)
    yield label_studio_pg
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _database(label_studio) -> dict:
    return server.credentials(label_studio["base"])["database"]


def test_label_studio_keeps_its_tasks_in_verify_s_own_postgresql(loop, label_studio):
    db = _database(label_studio)
    assert db["engine"] == "postgresql" and db["port"] and len(db["password"]) >= 24
    with psycopg.connect(host="127.0.0.1", port=db["port"], dbname=db["name"], user=db["user"],
                         password=db["password"], connect_timeout=10) as conn:
        keys = {row[0] for row in conn.execute("SELECT data->>'frame_key' FROM task WHERE project_id = %s", (loop["project"],))}
        listening = conn.execute("SHOW listen_addresses").fetchone()[0]
        socket_dir = conn.execute("SHOW unix_socket_directories").fetchone()[0]
    assert keys == {t["data"]["frame_key"] for t in loop["tasks"]}  # the tasks verify pushed are rows of PostgreSQL's table
    assert listening == "127.0.0.1"
    assert Path(socket_dir) == Path(db["data_dir"]).parent / "socket"
    state = server.status(label_studio["base"])
    assert state.running and state.database.startswith("postgresql (verify's own, 127.0.0.1:")


def test_tasks_point_at_the_bucket_and_label_studio_serves_the_frames_bytes_from_it(loop, s3_server):
    import base64
    import hashlib

    import httpx

    task = loop["tasks"][0]
    resolver = task["data"]["image"]  # Label Studio hands out its resolver for the task's s3:// URI
    assert resolver.startswith(f"/tasks/{task['id']}/resolve/?fileuri="), resolver
    uri = base64.urlsafe_b64decode(resolver.split("fileuri=", 1)[1]).decode()
    assert uri.startswith(f"s3://{s3_server['bucket']}/{S3_PREFIX}/") and uri.endswith(".jpg"), uri
    answer = httpx.get(loop["url"] + resolver, headers=loop["admin"], timeout=60, follow_redirects=True)
    assert answer.status_code == 200 and str(answer.url).startswith(s3_server["endpoint"] + "/")  # presigned redirect
    assert hashlib.sha256(answer.content).hexdigest() == uri.rsplit("/", 1)[1].removesuffix(".jpg")  # named by content


def test_the_database_password_is_only_in_the_mode_600_credentials(label_studio):
    db = _database(label_studio)
    creds = label_studio["base"] / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600 and db["password"] in creds.read_text()
    data = Path(db["data_dir"])
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    if os.geteuid() == 0:  # PostgreSQL refuses root: the cluster belongs to the postgres user, in its own home
        import pwd

        assert data.stat().st_uid == pwd.getpwnam("postgres").pw_uid
        assert (label_studio["base"] / "postgres").resolve() == data.parent
    seen = [label_studio["base"] / "server.log", data.parent / "postgres.log"]
    assert not [p for p in seen if db["password"] in p.read_text(errors="replace")]
    for pid in filter(str.isdigit, os.listdir("/proc")):  # nor in any process's command line
        try:
            assert db["password"].encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass


def test_a_home_set_up_on_sqlite_is_not_switched_to_postgresql(tmp_path):
    base = tmp_path / "label-studio"
    server.save_credentials({"url": "http://127.0.0.1:9", "api_key": "k", "admin_email": "a@b", "admin_password": "p",
                             "reviewers": [], "database": {"engine": "sqlite"}}, base)
    with pytest.raises(ServerError, match=r"keeps its projects in sqlite, not postgresql; start it with --database sqlite"):
        server.start(8999, base=base, database="postgresql")


def test_an_existing_postgresql_is_passed_through_and_its_password_not_kept(tmp_path, monkeypatch):
    base = tmp_path / "label-studio"
    creds = {"url": "http://127.0.0.1:9", "database": {"engine": "postgresql"}}
    monkeypatch.setenv("DJANGO_DB", "default")
    for name, value in {"POSTGRE_HOST": "db.internal", "POSTGRE_PORT": "6432", "POSTGRE_NAME": "ls",
                        "POSTGRE_USER": "ls", "LABEL_STUDIO_POSTGRE_PASSWORD": "s3cret"}.items():
        monkeypatch.setenv(name, value)
    env = server._database_env(base, creds)
    assert env == {"DJANGO_DB": "default", "POSTGRE_HOST": "db.internal", "POSTGRE_PORT": "6432", "POSTGRE_NAME": "ls",
                   "POSTGRE_USER": "ls", "POSTGRE_PASSWORD": "s3cret"}
    saved = (base / "credentials.json").read_text()
    assert "s3cret" not in saved and json.loads(saved)["database"]["host"] == "db.internal"
    assert not (base / "postgres").exists()  # no cluster of verify's own
    monkeypatch.delenv("POSTGRE_HOST")
    with pytest.raises(ServerError, match=r"uses the PostgreSQL at db.internal:6432: set POSTGRE_HOST"):
        server._database_env(base, json.loads(saved))


class OutageProxy(FaultyProxy):
    """FaultyProxy with one more action: ``postgres-down`` stops verify's own PostgreSQL, then forwards the request."""

    def __init__(self, upstream: str, database: dict):
        super().__init__(upstream)
        self.database = database

    def _take(self, method: str, path: str) -> str | None:
        action = super()._take(method, path)
        if action == "postgres-down":
            server._stop_postgres(self.database)
            return None
        return action


def test_on_postgresql_dropped_imports_and_a_database_outage_mid_push_converge(loop, label_studio, tmp_path, monkeypatch):
    from verify.labelstudio import client

    copy = tmp_path / "ws"
    shutil.copytree(loop["ws"], copy, symlinks=True)
    ws = Workspace.open(copy)
    with ws.transaction():
        ws.set_meta("workspace_id", ws.id + "-faults")  # not the loop's workspace: its own project
    monkeypatch.setattr(client, "IMPORT_BATCH", 2)  # several import requests from the loop's few frames
    frames = {t["data"]["frame_key"] for t in loop["tasks"]}
    assert len(frames) >= 7
    proxy = OutageProxy(label_studio["url"], _database(label_studio))
    env = {**loop["env"], "VERIFY_WORKSPACE": str(copy), "LABEL_STUDIO_URL": proxy.url}
    try:
        # the first import is stored but its answer lost, the second stored but answered 500, the third meets
        # a stopped database: verify reconciles the first two by listing, and stops at the third with one line
        proxy.plan = [("POST", r"/api/projects/\d+/import", "drop-after"), ("POST", r"/api/projects/\d+/import", "500-after"),
                      ("POST", r"/api/projects/\d+/import", "postgres-down")]
        failed = CliRunner().invoke(main, ["push", "--new-project"], env=env, catch_exceptions=False)
        assert len(proxy.done) == 3, proxy.done
        assert failed.exit_code == 7 and "Traceback" not in failed.output, failed.output
        assert len(failed.output.strip().splitlines()[-1]) < 300
    finally:
        proxy.close()
    project = int(ws.get_meta("project_id"))
    assert project != loop["project"]
    restarted = server.start(base=label_studio["base"])  # `verify server start`: Label Studio runs; its database comes back
    assert restarted.message == "already running" and restarted.url == label_studio["url"]
    again = CliRunner().invoke(main, ["push"], env={**env, "LABEL_STUDIO_URL": label_studio["url"]}, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    keys = _keys(label_studio, project)
    assert set(keys) == frames and max(keys.values()) == 1, f"duplicates: {[k for k, n in keys.items() if n > 1][:5]}"
    pulled = CliRunner().invoke(main, ["pull"], env={**env, "LABEL_STUDIO_URL": label_studio["url"]}, catch_exceptions=False)
    assert pulled.exit_code == 0, pulled.output


def test_a_refused_api_key_on_an_existing_postgresql_stops_the_server_with_one_line(tmp_path, monkeypatch):
    base = tmp_path / "label-studio"
    creds = {"url": "http://127.0.0.1:9", "api_key": "k" * 40, "admin_email": "admin-0a1b2c3d@verify.local",
             "database": {"engine": "postgresql", "host": "db.internal", "port": "6432", "name": "ls"}}
    stopped = []
    monkeypatch.setattr(server, "stop", lambda base, database_too=True: stopped.append(database_too))
    for detail, advice in [("Invalid token.", "that database already holds admin-0a1b2c3d@verify.local with another token: "
                                              "set VERIFY_HOME to a new folder"),
                           ("Authentication token no longer valid: legacy token authentication has been disabled for this "
                            "organization", "legacy API tokens are disabled for the organization in that database")]:
        monkeypatch.setattr(server.httpx, "get", lambda url, **kw: httpx.Response(401, json={"detail": detail}))
        with pytest.raises(ServerError) as refused:
            server._check_api_key(base, creds)
        text = str(refused.value)
        assert text.startswith("Label Studio on the PostgreSQL at db.internal:6432 refused the API key of ") and advice in text
        assert "\n" not in text and "k" * 40 not in text
    assert stopped == [False, False]  # Label Studio only: the database is not verify's to stop
    monkeypatch.setattr(server.httpx, "get", lambda url, **kw: httpx.Response(200, json={"id": 1}))
    server._check_api_key(base, creds)
    assert len(stopped) == 2


# --- a second replica on the same database: to its home, an existing PostgreSQL ------------------------------


@pytest.fixture(scope="module")
def replica(loop, label_studio, tmp_path_factory):
    """A second Label Studio, started by `verify server start` in a new VERIFY_HOME on the same PostgreSQL database as
    ``label_studio``, named only by Label Studio's own settings (DJANGO_DB, POSTGRE_*): to this home an existing
    PostgreSQL, not its own; to the desk, a second replica. Stopped at the end (the last test stops it first)."""
    db = _database(label_studio)
    home = tmp_path_factory.mktemp("verify-home-replica")
    base = home / "label-studio"
    env = {"VERIFY_HOME": str(home), "DJANGO_DB": "default", "POSTGRE_HOST": "127.0.0.1", "POSTGRE_PORT": str(db["port"]),
           "POSTGRE_NAME": db["name"], "POSTGRE_USER": db["user"], "POSTGRE_PASSWORD": db["password"]}
    began = time.monotonic()
    try:
        started = CliRunner().invoke(main, ["server", "start", "--port", str(_free_port())], env=env, catch_exceptions=False)
        seconds = time.monotonic() - began
        log = (base / "server.log").read_text(errors="replace")[-6000:] if (base / "server.log").exists() else "(no log)"
        assert started.exit_code == 0, f"{started.output}\n--- server.log ---\n{log}"
        print(f"the replica started in {seconds:.1f} s")
        creds = server.credentials(base)
        yield {"env": env, "home": home, "base": base, "url": creds["url"], "api_key": creds["api_key"],
               "admin_email": creds["admin_email"], "output": started.output, "seconds": seconds, "database": db}
    finally:
        server.stop(base)


def test_a_second_replica_uses_the_existing_postgresql_and_never_writes_its_password_down(replica, label_studio):
    db, where = replica["database"], f"postgresql at 127.0.0.1:{replica['database']['port']}"
    assert f"database: {where}" in replica["output"]
    shown = CliRunner().invoke(main, ["server", "status"], env=replica["env"], catch_exceptions=False)
    assert shown.exit_code == 0 and f"running at {replica['url']}" in shown.output and f"database: {where}" in shown.output
    assert "verify's own" not in shown.output
    saved = replica["base"] / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600 and db["password"] not in saved.read_text()
    assert json.loads(saved.read_text())["database"] == {"engine": "postgresql", "host": "127.0.0.1", "port": str(db["port"]),
                                                          "name": db["name"]}
    assert db["password"] not in (replica["base"] / "server.log").read_text(errors="replace")
    assert not (replica["base"] / "postgres").exists()  # no cluster of its own
    # an admin of its own: Label Studio keeps the first admin of an email it already holds, with its token
    first = server.credentials(label_studio["base"])["admin_email"]
    assert re.fullmatch(r"admin-[0-9a-f]{8}@verify\.local", replica["admin_email"]) and replica["admin_email"] != first


def test_both_replicas_take_both_keys_and_list_the_same_project(replica, label_studio, loop):
    admins = {label_studio["api_key"]: server.credentials(label_studio["base"])["admin_email"],
              replica["api_key"]: replica["admin_email"]}
    for url in (label_studio["url"], replica["url"]):  # the tokens live in the shared database
        for key, email in admins.items():
            answer = httpx.get(f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {key}"}, timeout=60)
            assert answer.status_code == 200 and answer.json()["email"] == email, (url, answer.text)
    through_replica = LabelStudioClient(replica["url"], replica["api_key"]).task_keys(loop["project"])
    assert through_replica == {t["data"]["frame_key"]: t["id"] for t in loop["tasks"]}


def test_a_pull_through_the_replica_brings_the_loop_s_annotations(replica, loop, tmp_path):
    copy = tmp_path / "ws"
    shutil.copytree(loop["ws"], copy, symlinks=True)
    # `verify pull` pulls from the server the workspace pushed to and refuses another address (verify/labelstudio/pull.py);
    # a push through the replica would move the workspace to it: here the copy is moved by hand
    Workspace.open(copy).update_meta(server_url=replica["url"])
    env = {**loop["env"], "VERIFY_WORKSPACE": str(copy), "LABEL_STUDIO_URL": replica["url"], "LABEL_STUDIO_API_KEY": replica["api_key"]}
    pulled = cli(env, "pull", "--full")
    assert f"on {len(loop['tasks'])} tasks (full export)" in pulled.output

    def annotations(ws: Path) -> list:
        with closing(sqlite3.connect(ws / "verify.db")) as conn:
            return sorted(conn.execute("SELECT id, project_id, task_id, frame_key, reviewer, was_cancelled, result, updated_at "
                                       "FROM annotations WHERE project_id = ?", (loop["project"],)).fetchall())

    assert annotations(copy) == annotations(loop["ws"]) and len(annotations(copy)) >= 4


# --- nginx in front of both replicas: the reverse proxy of README.md's "Several replicas" -------------------------


def _nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


NGINX_CONF = """\
{user}worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;
events {{ worker_connections 256; }}
http {{
    log_format upstreams "$status\t$request_method\t$request_uri\t$upstream_addr\t$upstream_status\t$request_length\t$request_time";
    access_log {dir}/access.log upstreams;
    client_body_temp_path {dir}/temp/body;
    proxy_temp_path {dir}/temp/proxy;
    fastcgi_temp_path {dir}/temp/fastcgi;
    uwsgi_temp_path {dir}/temp/uwsgi;
    scgi_temp_path {dir}/temp/scgi;
    upstream label_studio {{  # round-robin over both replicas
        server {first};
        server {second};
    }}
    server {{  # what README.md asks of the proxy
        listen 127.0.0.1:{port};
        client_max_body_size 50m;
        large_client_header_buffers 4 16k;
        location / {{
            proxy_pass http://label_studio;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 60s;
        }}
    }}
    server {{  # nginx's own defaults (request lines of at most 8 KB), in front of the same replicas
        listen 127.0.0.1:{default_port};
        location / {{
            proxy_pass http://label_studio;
            proxy_set_header Host $host;
        }}
    }}
    server {{  # in front of a replica that is down: nginx answers 502
        listen 127.0.0.1:{down_port};
        location / {{
            proxy_pass http://127.0.0.1:{dead_port};
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def proxy(replica, label_studio, tmp_path_factory):
    """A real nginx (Debian's), run as a child process on loopback ports with its own prefix, config, logs and temp
    folders, in front of both replicas: round-robin, read timeout 60 s, bodies of 50 MB, request lines of 16 KB, as
    README.md asks; its access log records which replica answered each request. Two more servers of the same nginx:
    one with nginx's defaults, one in front of a port where nothing listens."""
    binary = _nginx()
    if binary is None:
        pytest.skip("needs nginx (scripts/test.sh installs it)")
    folder = tmp_path_factory.mktemp("nginx")
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / "temp" / name).mkdir(parents=True)
    ports = {"port": _free_port(), "default_port": _free_port(), "down_port": _free_port(), "dead_port": _free_port()}
    upstreams = {urlsplit(label_studio["url"]).netloc, urlsplit(replica["url"]).netloc}
    assert len(upstreams) == 2 and len(set(ports.values())) == 4
    config = NGINX_CONF.format(user="user root;\n" if os.geteuid() == 0 else "", dir=folder, first=urlsplit(label_studio["url"]).netloc,
                               second=urlsplit(replica["url"]).netloc, **ports)
    (folder / "nginx.conf").write_text(config)
    with open(folder / "stderr.log", "wb") as stderr:
        process = subprocess.Popen([binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log"),
                                    "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{ports['port']}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                logs = "".join(p.read_text(errors="replace") for p in (folder / "stderr.log", folder / "error.log") if p.exists())
                pytest.fail(f"nginx did not answer (exit {process.returncode}):\n{logs[-4000:]}", pytrace=False)
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield {"url": url, "default_url": f"http://127.0.0.1:{ports['default_port']}", "down_url": f"http://127.0.0.1:{ports['down_port']}",
               "upstreams": upstreams, "access_log": folder / "access.log", "config": config, "folder": folder}
    finally:
        process.terminate()  # SIGTERM: nginx's fast shutdown, the master stops its worker
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


LOG_MARK = "/health?verify-log-mark="


def _settled_log(proxy: dict) -> list[str]:
    """nginx's access log, once it holds every request answered so far: the lines up to a marker request's own.

    nginx writes a request's line after it has answered it, so right after an answer its line may not be there
    yet. The marker (a GET of /health with a query of its own) is sent after those answers arrived; nginx's one
    worker wrote each earlier request's line in the same step as that request's last bytes, before it took the
    marker, so once the marker's line is in the log (waited for, with a deadline) every earlier line is too."""
    mark = f"{LOG_MARK}{uuid.uuid4().hex}"
    assert httpx.get(proxy["url"] + mark, timeout=60).status_code == 200

    def through_the_mark() -> list[str] | None:
        lines = proxy["access_log"].read_text().splitlines()
        at = next((i for i, line in enumerate(lines) if line.split("\t")[2:3] == [mark]), None)
        return None if at is None else lines[:at + 1]

    return wait_for(through_the_mark, 60, f"nginx's access log to record the request {mark}")


def _log_position(proxy: dict) -> int:
    """Where the requests answered from now on begin in nginx's access log (its line count, once settled)."""
    return len(_settled_log(proxy))


def _proxied_requests(proxy: dict, since: int = 0) -> list[dict]:
    """The requests nginx's access log holds from line ``since`` on, every one answered so far included (the
    markers of ``_settled_log`` left out)."""
    names = ("status", "method", "uri", "upstream", "upstream_status", "length", "seconds")
    lines = [line for line in _settled_log(proxy)[since:] if not line.split("\t")[2].startswith(LOG_MARK)]
    return [{**dict(zip(names, line.split("\t"))), "status": int(line.split("\t")[0])} for line in lines]


@pytest.fixture(scope="module")
def proxied(proxy, loop, tmp_path_factory):
    """A copy of the loop's workspace (another workspace to the server) pushed into a new project through nginx:
    `verify --workspace COPY push --url PROXY --new-project`. Yields the CLI's env, the copy, the new project, the
    push's output and the requests nginx passed on for it."""
    copy = tmp_path_factory.mktemp("proxied") / "ws"
    shutil.copytree(loop["ws"], copy, symlinks=True)
    ws = Workspace.open(copy)
    with ws.transaction():
        ws.set_meta("workspace_id", ws.id + "-proxy")  # not the loop's workspace: its own project
    env = {**loop["env"], "VERIFY_WORKSPACE": str(copy), "LABEL_STUDIO_URL": proxy["url"]}
    since = _log_position(proxy)
    pushed = cli(env, "--workspace", str(copy), "push", "--url", proxy["url"], "--new-project")
    yield {"env": env, "ws": copy, "project": int(Workspace.open(copy).get_meta("project_id")), "output": pushed.output,
           "requests": _proxied_requests(proxy, since)}


def test_a_push_through_nginx_reaches_both_replicas_imports_each_frame_once_and_a_second_adds_nothing(
        proxied, proxy, loop, label_studio, replica):
    frames = {t["data"]["frame_key"] for t in loop["tasks"]}
    project, copy = proxied["project"], proxied["ws"]
    assert project != loop["project"] and Workspace.open(copy).get_meta("server_url") == proxy["url"]
    assert f"project {project} created: {len(frames)} tasks imported, 0 already there" in proxied["output"], proxied["output"]
    assert f"reviewers label at {proxy['url']}/projects/{project}/" in proxied["output"]
    for direct in (label_studio, replica):  # each replica, asked directly, holds every frame once
        keys = _keys(direct, project)
        assert set(keys) == frames and max(keys.values()) == 1, (direct["url"], [k for k, n in keys.items() if n > 1][:5])
    requests = proxied["requests"]
    assert requests and all(r["status"] < 400 and r["upstream"] in proxy["upstreams"] for r in requests), requests
    imports = [r for r in requests if r["method"] == "POST" and r["uri"].startswith(f"/api/projects/{project}/import")]
    assert len(imports) == 1 and imports[0]["status"] == 201, imports
    assert {r["upstream"] for r in requests} == proxy["upstreams"], requests  # round-robin: verify's requests reached both

    since = _log_position(proxy)
    again = cli(proxied["env"], "--workspace", str(copy), "push", "--url", proxy["url"])
    assert f"project {project} found: 0 tasks imported, {len(frames)} already there" in again.output, again.output
    assert not [r for r in _proxied_requests(proxy, since) if r["method"] == "POST" and "/import" in r["uri"]]
    assert _keys(replica, project) == _keys(label_studio, project) == {key: 1 for key in frames}


def test_a_full_pull_through_nginx_brings_an_annotation_made_on_one_replica(proxied, proxy, replica, loop):
    project, copy = proxied["project"], proxied["ws"]
    key, task = sorted(LabelStudioClient(replica["url"], replica["api_key"]).task_keys(project).items())[0]
    choice = {"type": "choices", "from_name": "claim_taliban_flag_raised", "to_name": "frame", "value": {"choices": ["Supports"]}}
    made = httpx.post(f"{replica['url']}/api/tasks/{task}/annotations/", headers={"Authorization": f"Token {replica['api_key']}"},
                      json={"result": [choice], "lead_time": 3}, timeout=60)
    assert made.status_code == 201, made.text
    since = _log_position(proxy)
    pulled = cli(proxied["env"], "--workspace", str(copy), "pull", "--full", "--url", proxy["url"])
    assert f"pulled 1 submission: 1 review, 0 skips, 0 cannot review, by 1 reviewer on {len(loop['tasks'])} tasks (full export)" in pulled.output, pulled.output
    with closing(sqlite3.connect(copy / "verify.db")) as conn:
        rows = conn.execute("SELECT task_id, frame_key, reviewer, was_cancelled, result FROM annotations WHERE project_id = ?",
                            (project,)).fetchall()
    assert [row[:4] for row in rows] == [(task, key, replica["admin_email"], 0)] and json.loads(rows[0][4]) == [choice]
    exports = [r for r in _proxied_requests(proxy, since) if r["uri"].startswith(f"/api/projects/{project}/export")]
    assert exports and all(r["status"] == 200 for r in exports), exports


def test_nginx_passes_an_export_page_of_500_task_ids_with_16k_request_lines_and_its_default_answers_414(proxied, proxy, label_studio):
    project = proxied["project"]
    client = LabelStudioClient(proxy["url"], label_studio["api_key"])
    real = sorted(client.task_keys(project).values())
    ids = real + [9_000_000 + i for i in range(500 - len(real))]  # a page of a large project: 500 ids of 7 digits
    since = _log_position(proxy)
    exported = json.loads(client.export_json(project, ids))  # verify's own request for an export page
    assert sorted(t["id"] for t in exported) == real
    [page] = [r for r in _proxied_requests(proxy, since) if "/export" in r["uri"]]
    assert page["status"] == 200 and len(page["uri"]) > 8192, len(page["uri"])  # longer than nginx's default buffer
    refused = httpx.get(f"{proxy['default_url']}/api/projects/{project}/export", timeout=60,
                        headers={"Authorization": f"Token {label_studio['api_key']}"},
                        params={"exportType": "JSON", "download_all_tasks": "true", "ids[]": [str(i) for i in ids]})
    assert refused.status_code == 414


def test_a_502_from_nginx_is_one_line_and_exit_7(proxy, loop):
    failed = cli(loop["env"], "reviewers", "list", "--url", proxy["down_url"], code=7)
    lines = failed.output.strip().splitlines()
    assert len(lines) == 1 and "502" in lines[0] and "Traceback" not in failed.output, failed.output


def test_stopping_the_replica_leaves_the_first_server_and_its_postgresql_running(replica, label_studio):
    stopped = CliRunner().invoke(main, ["server", "stop"], env=replica["env"], catch_exceptions=False)
    assert stopped.exit_code == 0 and "Label Studio stopped" in stopped.output, stopped.output
    assert not server.status(replica["base"]).running and not server._healthy(replica["url"])
    db = _database(label_studio)
    assert server._postgres("pg_ctl", "status", "-D", db["data_dir"], check=False, cwd=Path(db["data_dir"]).parent).returncode == 0
    assert server.status(label_studio["base"]).running
    answer = httpx.get(f"{label_studio['url']}/api/current-user/whoami", headers={"Authorization": f"Token {label_studio['api_key']}"},
                       timeout=60)
    assert answer.status_code == 200
