"""The local Label Studio: started, checked and stopped by verify, on SQLite, bound to loopback.

Everything lives under ``VERIFY_HOME`` (default ``~/.local/share/verify``)::

    label-studio/
      credentials.json   url, admin login, API key, local reviewer logins (mode 600, the only secrets file)
      server.pid         the running server's process id
      server.log         its output
      data/              Label Studio's own data directory (SQLite database, uploads)
      files/             the only folder Label Studio may serve local files from

Sign-up is closed except through the organization's invite link; local-files serving is
confined to ``files/``.
"""

from __future__ import annotations

import json
import os
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

DEFAULT_PORT = 8080
HOST = "127.0.0.1"
START_TIMEOUT_S = 240.0


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
    return ServerStatus(running, url, pid, str(base), creds.get("files_root", ""), message)


def start(port: int | None = None, base: Path | None = None, timeout: float = START_TIMEOUT_S) -> ServerStatus:
    """Start the local Label Studio (or find it running) and wait until it answers.

    Raises:
        ServerError: Label Studio is not installed, the port is taken, or it did not come up
            (the message names the log file).
    """
    base = base or home()
    creds = credentials(base)
    current = status(base)
    if current.running and (port is None or current.url.endswith(f":{port}")):
        current.message = "already running"
        return current
    if current.pid:
        stop(base)
    if creds is None:
        creds = {
            "admin_email": "admin@verify.local",
            "admin_password": secrets.token_urlsafe(16),
            "api_key": secrets.token_hex(20),
            "reviewers": [],
        }
    port = port or creds.get("port") or DEFAULT_PORT
    if not _port_free(port):
        raise ServerError(f"port {port} on {HOST} is already in use; choose another with `verify server start --port N`")
    files_root = base / "files"
    data_dir = base / "data"
    files_root.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    creds.update(url=f"http://{HOST}:{port}", port=port, files_root=str(files_root))
    save_credentials(creds, base)

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
        "DJANGO_DB": "sqlite",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
    }
    for leaked in ("LABEL_STUDIO_API_KEY", "LABEL_STUDIO_URL"):
        env.pop(leaked, None)
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
            return ServerStatus(True, creds["url"], process.pid, str(base), str(files_root), "started")
        time.sleep(1)
    raise ServerError(f"Label Studio did not answer within {timeout:.0f} s; see {base / 'server.log'}")


def stop(base: Path | None = None, wait: float = 30.0) -> ServerStatus:
    base = base or home()
    pid = _pid(base)
    if pid is None:
        (base / "server.pid").unlink(missing_ok=True)
        return ServerStatus(False, home=str(base), message="not running")
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    (base / "server.pid").unlink(missing_ok=True)
    return ServerStatus(False, home=str(base), message="stopped")


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
