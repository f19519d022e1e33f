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
import shutil
import stat
from pathlib import Path

import psycopg
import pytest

from tests.test_faults import FaultyProxy, _keys
from tests.test_integration import (  # noqa: F401  (a fixture and tests, collected here against PostgreSQL)
    loop,
    test_an_annotation_edited_on_the_server_is_reflected_and_the_old_export_kept,
    test_push_sends_every_frame_but_reuploads_once_and_a_second_push_adds_nothing,
    test_verdicts_match_what_the_reviewers_entered,
)
from click.testing import CliRunner

from verify.cli import main
from verify.errors import ServerError
from verify.labelstudio import server
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
