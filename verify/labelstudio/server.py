"""The local Label Studio: started, checked and stopped by verify, bound to loopback, on SQLite
(the default) or PostgreSQL.

Everything lives under ``VERIFY_HOME`` (default ``~/.local/share/verify``)::

    label-studio/
      credentials.json   url, admin login, API key, local reviewer logins, the database password
                         (mode 600, the only secrets file)
      server.pid         the running server's process id
      server.log         its output
      data/              Label Studio's own data directory (SQLite database, uploads)
      files/             the only folder Label Studio may serve local files from
      postgres/          with ``database="postgresql"``: verify's own PostgreSQL cluster (data/, socket/,
                         postgres.log), listening on 127.0.0.1 only, password login

PostgreSQL refuses to run as root. Run as root, verify runs ``initdb``, ``pg_ctl`` and the server
as the ``postgres`` system user, and keeps the cluster where that user can reach it: in its home
(``/var/lib/postgresql/verify/<hash of this home>``), owned by it, with ``postgres`` here a
symbolic link to it. An existing PostgreSQL is used instead when Label Studio's own settings
name it (``POSTGRE_HOST``, ``POSTGRE_PORT``, ``POSTGRE_NAME``, ``POSTGRE_USER``,
``POSTGRE_PASSWORD``, passed through); its password is then never written down.

Sign-up is closed except through the organization's invite link; local-files serving is
confined to ``files/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from verify.errors import ServerError
from verify.files import atomic_write
from verify.labelstudio import objects

DEFAULT_PORT = 8080
HOST = "127.0.0.1"
START_TIMEOUT_S = 240.0
KILL_WAIT_S = 30.0  # how long `server stop` waits for killed processes to be gone (a bound on a hang)
DATABASES = ("sqlite", "postgresql")
# Label Studio's own database settings (core/settings/base.py; each also read with a LABEL_STUDIO_ or HEARTEX_ prefix)
POSTGRES_SETTINGS = ("POSTGRE_NAME", "POSTGRE_USER", "POSTGRE_PASSWORD", "POSTGRE_HOST", "POSTGRE_PORT")
SETTING_PREFIXES = ("LABEL_STUDIO_", "HEARTEX_", "")


def home() -> Path:
    return Path(os.environ.get("VERIFY_HOME") or Path.home() / ".local" / "share" / "verify") / "label-studio"


@dataclass
class ServerStatus:
    running: bool
    url: str = ""
    pid: int | None = None
    home: str = ""
    files_root: str = ""
    message: str = ""
    database: str = ""  # "sqlite", "postgresql (verify's own, port N)" or "postgresql at host:port"


def credentials(base: Path | None = None) -> dict[str, Any] | None:
    path = (base or home()) / "credentials.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ServerError(f"{path}: cannot read the local server's credentials ({exc}); delete the file and run `verify server start` again")


def save_credentials(creds: dict[str, Any], base: Path | None = None) -> None:
    base = base or home()
    base.mkdir(parents=True, exist_ok=True)
    atomic_write(base / "credentials.json", json.dumps(creds, indent=2).encode(), mode=0o600)
    os.chmod(base / "credentials.json", 0o600)


def _pid(base: Path) -> int | None:
    try:
        pid = int((base / "server.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _executable() -> str:
    beside = Path(sys.executable).parent / "label-studio"
    found = str(beside) if beside.exists() else shutil.which("label-studio")
    if not found:
        raise ServerError("Label Studio is not installed in this environment; install it with `pip install -e '.[server]'`")
    return found


def status(base: Path | None = None) -> ServerStatus:
    base = base or home()
    creds = credentials(base)
    pid = _pid(base)
    if not creds:
        return ServerStatus(False, home=str(base), message="no local server set up yet; run `verify server start`")
    url = creds["url"]
    running = pid is not None and _healthy(url)
    message = "running" if running else ("starting or unhealthy" if pid else "stopped")
    return ServerStatus(running, url, pid, str(base), creds.get("files_root", ""), message, _describe(creds))


def start(port: int | None = None, base: Path | None = None, timeout: float = START_TIMEOUT_S,
          database: str | None = None, s3_endpoint: str | None = None) -> ServerStatus:
    """Start the local Label Studio (or find it running) and wait until it answers.

    ``database``: "sqlite" or "postgresql" (verify's own cluster, or the existing one that
    ``POSTGRE_HOST`` and the other ``POSTGRE_*`` settings name); default: the one this home
    was set up with, else PostgreSQL when ``DJANGO_DB=default`` and ``POSTGRE_HOST`` are set,
    else SQLite.

    Raises:
        ServerError: Label Studio or PostgreSQL is not installed, the port is taken, the home
            was set up with the other database, or it did not come up (the message names the log file).
    """
    base = base or home()
    creds = credentials(base)
    if database is not None and database not in DATABASES:
        raise ServerError(f"unknown database {database!r}: choose one of {', '.join(DATABASES)}")
    if database is None and creds is None and _setting("POSTGRE_HOST") and _setting("DJANGO_DB") in ("default", "postgresql"):
        database = "postgresql"  # a new home, and Label Studio's own settings name an existing PostgreSQL
    had = (creds.get("database") or {}).get("engine", "sqlite") if creds else None
    if database and had and database != had:
        raise ServerError(f"the local server in {base} keeps its projects in {had}, not {database}; start it with "
                          f"--database {had}, or set VERIFY_HOME to another folder for a server on {database}")
    own = (creds or {}).get("database") or {}
    if own.get("data_dir") and _pid(base):  # Label Studio runs: its PostgreSQL must too (it may have stopped on its own)
        port_before = own.get("port")
        _start_postgres(base, creds)
        if own.get("port") != port_before:  # it came back on another port: Label Studio restarts with that one
            stop(base, database_too=False)
    current = status(base)
    if current.running and (port is None or current.url.endswith(f":{port}")):
        current.message = "already running"
        return current
    if current.pid:
        stop(base, database_too=False)
    if creds is None:
        creds = {
            # an admin of this home's own: Label Studio creates the admin named by LABEL_STUDIO_USERNAME only when
            # that email is new to its database, and otherwise keeps the stored user, password and token ("User
            # already exists"), so a second home on the same PostgreSQL (another replica, a wiped VERIFY_HOME)
            # sharing one email would hold a key the server rejects
            "admin_email": f"admin-{secrets.token_hex(4)}@verify.local",
            "admin_password": secrets.token_urlsafe(16),
            "api_key": secrets.token_hex(20),
            "reviewers": [],
            "database": {"engine": database or "sqlite"},
        }
    port = port or creds.get("port") or DEFAULT_PORT
    if not _port_free(port):
        raise ServerError(f"port {port} on {HOST} is already in use; choose another with `verify server start --port N`")
    files_root = base / "files"
    data_dir = base / "data"
    files_root.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    creds.update(url=f"http://{HOST}:{port}", port=port, files_root=str(files_root))
    # the S3 endpoint the server may read frames from: the one given, else AWS_ENDPOINT_URL, else the one it
    # was last started with (a restart without the setting keeps the reviewers' pictures loading)
    endpoint = s3_endpoint if s3_endpoint is not None else (objects.configured_endpoint() or creds.get("s3_endpoint"))
    creds["s3_endpoint"] = endpoint
    creds.setdefault("database", {"engine": "sqlite"})
    save_credentials(creds, base)
    database_env = _database_env(base, creds)  # starts verify's own PostgreSQL when it is the one

    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": creds["admin_email"],
        "LABEL_STUDIO_PASSWORD": creds["admin_password"],
        "LABEL_STUDIO_USER_TOKEN": creds["api_key"],
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(files_root),
        "LABEL_STUDIO_HOST": "",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
    }
    for leaked in ("LABEL_STUDIO_API_KEY", "LABEL_STUDIO_URL"):
        env.pop(leaked, None)
    for name in ("DJANGO_DB", "DATABASE_NAME", *POSTGRES_SETTINGS):  # only what _database_env chose reaches the server
        for prefix in SETTING_PREFIXES:
            env.pop(prefix + name, None)
    env.update(database_env)
    env.update(_s3_env(base, endpoint, env))
    log = open(base / "server.log", "ab")
    process = subprocess.Popen(
        [_executable(), "start", "--no-browser", "--host", HOST, "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=base,
    )
    log.close()
    atomic_write(base / "server.pid", str(process.pid).encode())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"Label Studio exited with code {process.returncode} while starting; see {base / 'server.log'}")
        if _healthy(creds["url"]):
            if creds["database"].get("host") and not creds["database"].get("data_dir"):  # an existing PostgreSQL
                _check_api_key(base, creds)
            return ServerStatus(True, creds["url"], process.pid, str(base), str(files_root), "started", _describe(creds))
        time.sleep(1)
    raise ServerError(f"Label Studio did not answer within {timeout:.0f} s; see {base / 'server.log'}")


def _check_api_key(base: Path, creds: dict[str, Any]) -> None:
    """On a database that other servers share, Label Studio may have kept an admin or a setting that refuses this
    home's API key (the email already taken, the token changed, legacy tokens disabled for the organization): ask
    who we are once; if refused, stop the server (the next start checks again) and say so."""
    try:
        answer = httpx.get(f"{creds['url']}/api/current-user/whoami", headers={"Authorization": f"Token {creds['api_key']}"},
                           timeout=30)
    except httpx.HTTPError as exc:
        stop(base, database_too=False)
        raise ServerError(f"Label Studio at {creds['url']} did not answer whether it accepts this home's API key ({exc}); "
                          f"see {base / 'server.log'}") from None
    if answer.status_code == 200:
        return
    try:
        body = answer.json()
    except ValueError:
        body = None
    detail = str(body.get("detail") or "") if isinstance(body, dict) else ""
    stop(base, database_too=False)
    db = creds["database"]
    said = f"HTTP {answer.status_code}" + (f": {' '.join(detail.split())[:160]}" if detail else "")
    if "legacy" in detail:
        todo = ("legacy API tokens are disabled for the organization in that database: enable them in its organization "
                "settings and run `verify server start` again")
    else:
        todo = (f"that database already holds {creds['admin_email']} with another token: set VERIFY_HOME to a new folder "
                "(a new admin of its own) and run `verify server start` again")
    raise ServerError(f"Label Studio on the PostgreSQL at {db['host']}:{db['port']} refused the API key of {base} ({said}), "
                      f"so it was stopped; {todo}")


S3_SETTINGS_MODULE = "verify_label_studio_settings"


def _s3_env(base: Path, endpoint: str | None, env: dict[str, str]) -> dict[str, str]:
    """What lets the server read frames from the S3 endpoint (``s3_endpoint``, default AWS_ENDPOINT_URL):
    its address carved out of the SSRF block list, its origin allowed in the CSP (a settings module in ``base``)."""
    extra, module = objects.label_studio_server_settings(endpoint)
    path = base / f"{S3_SETTINGS_MODULE}.py"
    if module is None:
        path.unlink(missing_ok=True)
        return extra
    atomic_write(path, module.encode())
    return {**extra, "DJANGO_SETTINGS_MODULE": S3_SETTINGS_MODULE,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(base), env.get("PYTHONPATH")]))}


def stop(base: Path | None = None, wait: float = 30.0, database_too: bool = True) -> ServerStatus:
    """Stop the local Label Studio, and verify's own PostgreSQL with it (unless ``database_too`` is False)."""
    base = base or home()
    pid = _pid(base)
    if pid is None:
        (base / "server.pid").unlink(missing_ok=True)
    else:
        _stop_label_studio(base, pid, wait)
    database = (credentials(base) or {}).get("database") or {}
    if database_too and database.get("data_dir"):
        _stop_postgres(database)
    return ServerStatus(False, home=str(base), message="stopped" if pid else "not running")


def _stop_label_studio(base: Path, pid: int, wait: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid) or _group_alive(pid):  # the server, or a process it started, outlived SIGTERM
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # SIGKILL is sent, not done: until every process of the server is gone (reaped; a process closes its sockets
    # before it exits, so its port is free by then), a `server status` or a `server start` on the same port right
    # after this one would still find it. Bounded: a process stuck in the kernel can outlive SIGKILL for a while,
    # and `stop` says so rather than report a stopped server.
    deadline = time.monotonic() + KILL_WAIT_S
    while True:
        _alive(pid)  # reaps the server if it is this process's child
        if not _group_alive(pid):
            break
        if time.monotonic() >= deadline:
            raise ServerError(f"Label Studio (process group {pid}) was sent SIGKILL and has not exited after "
                              f"{KILL_WAIT_S:g} s; run `verify server stop` again")
        time.sleep(0.05)
    (base / "server.pid").unlink(missing_ok=True)


def _group_alive(pid: int) -> bool:
    """Whether a process of the server's process group (it was started in a session of its own) still runs.
    A zombie does not count: it holds no port or file any more, and the one waiting for it may be another process."""
    proc = Path("/proc")
    if not proc.is_dir():  # no /proc to read: any process of the group, zombie or not
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # gone meanwhile
            continue
        if len(fields) > 2 and fields[2] == str(pid) and fields[0] != "Z":  # state, ppid, pgrp
            return True
    return False


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- the database -------------------------------------------------------------------------------


def _describe(creds: dict[str, Any]) -> str:
    db = creds.get("database") or {}
    if db.get("engine") != "postgresql":
        return "sqlite"
    if db.get("data_dir"):
        return f"postgresql (verify's own, 127.0.0.1:{db.get('port')}, data in {db['data_dir']})"
    return f"postgresql at {db.get('host')}:{db.get('port')}"


def _setting(name: str) -> str | None:
    """One of Label Studio's settings from the environment, as Label Studio reads it (prefixes first)."""
    for prefix in SETTING_PREFIXES:
        if os.environ.get(prefix + name) is not None:
            return os.environ[prefix + name]
    return None


def _database_env(base: Path, creds: dict[str, Any]) -> dict[str, str]:
    """The environment that tells Label Studio its database; starts verify's own PostgreSQL if needed.

    Updates (and saves) ``creds["database"]``."""
    db = creds.setdefault("database", {"engine": "sqlite"})
    if db.get("engine") != "postgresql":
        return {"DJANGO_DB": "sqlite"}
    if _setting("POSTGRE_HOST") is not None and not db.get("data_dir"):  # an existing PostgreSQL: pass its settings through
        given = {name: _setting(name) for name in POSTGRES_SETTINGS if _setting(name) is not None}
        db.update(host=given["POSTGRE_HOST"], port=given.get("POSTGRE_PORT", "5432"), name=given.get("POSTGRE_NAME", "postgres"))
        save_credentials(creds, base)
        return {"DJANGO_DB": "default", **given}
    if db.get("host") and not db.get("data_dir"):
        raise ServerError(f"the local server in {base} uses the PostgreSQL at {db['host']}:{db['port']}: set POSTGRE_HOST, "
                          "POSTGRE_PORT, POSTGRE_NAME, POSTGRE_USER and POSTGRE_PASSWORD again before `verify server start`")
    _start_postgres(base, creds)
    return {"DJANGO_DB": "default", "POSTGRE_HOST": HOST, "POSTGRE_PORT": str(db["port"]), "POSTGRE_NAME": db["name"],
            "POSTGRE_USER": db["user"], "POSTGRE_PASSWORD": db["password"]}


def postgres_bin() -> Path:
    """The folder of Debian's PostgreSQL server programs (the newest major version installed)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise ServerError("PostgreSQL is not installed: install Debian's `postgresql` package (apt-get install postgresql), "
                      "or start the server without --database postgresql")


def _as_postgres() -> dict[str, Any]:
    """subprocess arguments that run a PostgreSQL program as the ``postgres`` user when verify runs as root
    (PostgreSQL refuses root); nothing otherwise."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise ServerError("running as root, verify runs PostgreSQL as the `postgres` system user, which does not exist: "
                          "install Debian's `postgresql` package (apt-get install postgresql)") from None
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _cluster_dir(base: Path) -> Path:
    """Where verify's own PostgreSQL cluster lives: ``postgres/`` in the home, or, as root, a folder of the
    ``postgres`` user's home that it owns (the verify home is often in /root or a private temporary
    folder it cannot enter), with ``postgres`` in the verify home linking to it."""
    link = base / "postgres"
    if os.geteuid() != 0:
        return link
    owner = pwd.getpwnam("postgres")
    cluster = Path(owner.pw_dir) / "verify" / hashlib.sha256(str(base.resolve()).encode()).hexdigest()[:16]
    for folder in (cluster.parent, cluster):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    if not link.is_symlink():
        link.symlink_to(cluster)
    return cluster


def _postgres(program: str, *args: str, check: bool = True, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run([str(postgres_bin() / program), *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, **_as_postgres(), **kwargs)
    except subprocess.TimeoutExpired:
        raise ServerError(f"PostgreSQL's {program} did not finish within {timeout:.0f} s") from None
    if check and done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).split())[-300:]
        raise ServerError(f"PostgreSQL's {program} failed ({tail})")
    return done


def _start_postgres(base: Path, creds: dict[str, Any]) -> None:
    """Create (once) and start verify's own PostgreSQL cluster: loopback only, password login,
    its socket in its own folder; record its port and password in the credentials."""
    db = creds["database"]
    cluster = _cluster_dir(base)
    data, socket_dir, log = cluster / "data", cluster / "socket", cluster / "postgres.log"
    owner = _as_postgres()
    if not (data / "PG_VERSION").exists():
        db.update(data_dir=str(data), name="labelstudio", user="labelstudio", password=secrets.token_urlsafe(24), created=False)
        save_credentials(creds, base)  # the password is on record before the cluster holds it
        cluster.mkdir(mode=0o700, parents=True, exist_ok=True)
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        pwfile = cluster / "initdb-password"
        atomic_write(pwfile, db["password"].encode(), mode=0o600)
        if owner:
            for path in (socket_dir, pwfile):
                os.chown(path, owner["user"], owner["group"])
        try:
            _postgres("initdb", "-D", str(data), "-U", db["user"], "--auth=scram-sha-256", f"--pwfile={pwfile}",
                      "-E", "UTF8", "--no-locale", cwd=cluster)
        finally:
            pwfile.unlink(missing_ok=True)
        quoted = str(socket_dir).replace("'", "''")
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(f"\n# verify: loopback only, its socket in its own folder\nlisten_addresses = '{HOST}'\n"
                       f"unix_socket_directories = '{quoted}'\n")
    db["data_dir"] = str(data)
    if _postgres("pg_ctl", "status", "-D", str(data), check=False, cwd=cluster).returncode != 0:
        port = db.get("port")
        if not port or not _port_free(int(port)):
            port = _free_port()
        _postgres("pg_ctl", "start", "-w", "-t", "60", "-D", str(data), "-l", str(log), "-o", f"-p {int(port)}",
                  timeout=90, cwd=cluster)
        db["port"] = int(port)
        save_credentials(creds, base)
    if not db.get("created"):
        env = {**os.environ, "PGPASSWORD": db["password"]}
        _postgres("createdb", "-h", HOST, "-p", str(db["port"]), "-U", db["user"], db["name"], env=env, cwd=cluster)
        db["created"] = True
        save_credentials(creds, base)


def _stop_postgres(db: dict[str, Any]) -> None:
    data = Path(db["data_dir"])
    if (data / "postmaster.pid").exists():
        _postgres("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(data), check=False, timeout=90, cwd=data.parent)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]
