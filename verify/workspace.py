"""The workspace: one folder per case, its state in SQLite, its files beside it.

Layout::

    WORKSPACE/
      verify.db          state (videos, frames, tasks, annotations, exports); crash-safe
      case.yaml          the case file as given to `verify init` (its sha256 is in verify.db)
      evidence/          untouched evidentiary copies, named by sha256, read-only
      frames/            extracted keyframes (JPEG), one folder per video
      exports/           every raw Label Studio export, exactly as pulled
      reports/           generated reports

SQLite gives transactions (a killed run leaves the last committed state) and the lock file
keeps two verify processes from writing the same workspace at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from verify.case import Case, load_case
from verify.errors import WorkspaceBusy, WorkspaceError

DB_NAME = "verify.db"
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    sha256 TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    original_path TEXT NOT NULL,
    evidence TEXT NOT NULL,
    size INTEGER NOT NULL,
    ingested_at TEXT NOT NULL,
    metadata TEXT NOT NULL,
    provenance TEXT NOT NULL,
    frames_status TEXT,
    frames_note TEXT
);
CREATE TABLE IF NOT EXISTS frames (
    key TEXT PRIMARY KEY,
    video_sha256 TEXT NOT NULL REFERENCES videos(sha256),
    t_ms REAL NOT NULL,
    frame_index INTEGER NOT NULL,
    shot INTEGER NOT NULL,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    pixel_sha256 TEXT NOT NULL,
    phash TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    sharpness REAL NOT NULL,
    extractor TEXT NOT NULL,
    duplicate_of TEXT
);
CREATE INDEX IF NOT EXISTS frames_by_video ON frames(video_sha256, t_ms);
CREATE TABLE IF NOT EXISTS tasks (
    frame_key TEXT NOT NULL REFERENCES frames(key),
    project_id INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    PRIMARY KEY (project_id, frame_key)
);
CREATE TABLE IF NOT EXISTS uploads (
    project_id INTEGER NOT NULL,
    frame_key TEXT NOT NULL REFERENCES frames(key),
    url TEXT NOT NULL,
    PRIMARY KEY (project_id, frame_key)
);
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER NOT NULL,
    project_id INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    frame_key TEXT,
    reviewer_id INTEGER,
    reviewer TEXT NOT NULL,
    was_cancelled INTEGER NOT NULL,
    ground_truth INTEGER NOT NULL,
    result TEXT NOT NULL,
    created_at TEXT,
    updated_at TEXT,
    export_file TEXT NOT NULL,
    PRIMARY KEY (project_id, id)
);
CREATE TABLE IF NOT EXISTS captures (
    id INTEGER PRIMARY KEY,
    video_sha256 TEXT NOT NULL REFERENCES videos(sha256),
    url_given TEXT,
    canonical_url TEXT,
    captured_at TEXT NOT NULL,
    info_file TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS captures_by_url ON captures(url_given);
CREATE INDEX IF NOT EXISTS captures_by_canonical ON captures(canonical_url);
CREATE TABLE IF NOT EXISTS exports (
    file TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    pulled_at TEXT NOT NULL,
    project_id INTEGER NOT NULL,
    tasks INTEGER NOT NULL,
    annotations INTEGER NOT NULL
);
"""

MIGRATE_1_TO_2 = """
BEGIN;
ALTER TABLE tasks RENAME TO tasks_v1;
CREATE TABLE tasks (frame_key TEXT NOT NULL REFERENCES frames(key), project_id INTEGER NOT NULL,
                    task_id INTEGER NOT NULL, PRIMARY KEY (project_id, frame_key));
INSERT INTO tasks SELECT frame_key, project_id, task_id FROM tasks_v1;
DROP TABLE tasks_v1;
UPDATE meta SET value = '2' WHERE key = 'schema_version';
COMMIT;
"""


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Workspace:
    """An open workspace. Use ``Workspace.open`` or ``Workspace.create``."""

    def __init__(self, root: Path, db: sqlite3.Connection):
        self.root = root
        self.db = db
        self._case: Case | None = None

    # --- opening -------------------------------------------------------------------------

    @classmethod
    def create(cls, root: str | Path, case_path: str | Path) -> "Workspace":
        """Create a workspace for a case, or open it again if it is already for that case.

        Raises:
            CaseError: the case file is bad.
            WorkspaceError: the folder already holds a workspace for another case.
        """
        root = Path(root)
        case = load_case(case_path)
        if (root / DB_NAME).exists():
            ws = cls.open(root)
            if ws.case.id != case.id:
                raise WorkspaceError(
                    f"{root}: already a workspace for case {ws.case.id!r}; choose another folder with --workspace"
                )
            if ws.case.sha256 != case.sha256:
                ws._install_case(Path(case_path), case)
            return ws
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("evidence", "frames", "exports", "reports"):
            (root / sub).mkdir(exist_ok=True)
        ws = cls(root, _connect(root / DB_NAME))
        with ws.transaction():
            ws.set_meta("schema_version", str(SCHEMA_VERSION))
            ws.set_meta("workspace_id", uuid.uuid4().hex[:12])
            ws.set_meta("created_at", now_utc())
        ws._install_case(Path(case_path), case)
        return ws

    @classmethod
    def open(cls, root: str | Path) -> "Workspace":
        """Open an existing workspace.

        Raises:
            WorkspaceError: there is no workspace at ``root``.
        """
        root = Path(root)
        if not (root / DB_NAME).is_file():
            raise WorkspaceError(
                f"{root}: not a verify workspace (no {DB_NAME}); run `verify init CASE.yaml` there or pass --workspace"
            )
        try:
            ws = cls(root, _connect(root / DB_NAME))
            version = ws.get_meta("schema_version")
        except sqlite3.DatabaseError as exc:
            raise WorkspaceError(f"{root / DB_NAME}: cannot read the workspace database ({exc}); restore it from a backup")
        if version == "1":  # verify 0.1: a frame could be a task of one project only
            ws.db.executescript(MIGRATE_1_TO_2)  # one transaction: all or nothing
            version = ws.get_meta("schema_version")
        if version != str(SCHEMA_VERSION):
            raise WorkspaceError(f"{root}: workspace schema {version}, this verify reads {SCHEMA_VERSION}; use a newer verify")
        return ws

    def _install_case(self, path: Path, case: Case) -> None:
        text = path.read_text(encoding="utf-8")
        atomic_write(self.root / "case.yaml", text.encode("utf-8"))
        with self.transaction():
            self.set_meta("case_sha256", case.sha256)
            self.set_meta("case_origin", str(path.resolve()))
        self._case = None

    @property
    def case(self) -> Case:
        if self._case is None:
            self._case = load_case(self.root / "case.yaml")
        return self._case

    @property
    def id(self) -> str:
        return self.get_meta("workspace_id") or ""

    # --- locking and transactions ---------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the workspace's write lock; a second verify process gets WorkspaceBusy."""
        path = self.root / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                raise WorkspaceBusy(
                    f"{self.root}: workspace is in use by verify (pid {holder}); wait for it to finish and retry"
                )
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            self._remove_leftovers()
            yield
        finally:
            os.close(fd)

    def _remove_leftovers(self) -> None:
        """Half-written files of a verify process that was killed (we hold the lock: none is running)."""
        patterns = {"evidence": (".incoming-*", ".link-*", ".*.tmp"), "frames": (".tmp-*",),
                    "exports": (".*.tmp",), "reports": (".*.tmp", "report-assets/.*.tmp")}
        for area, globs in patterns.items():
            for pattern in globs:
                for leftover in self.path(area).glob(pattern):
                    if leftover.is_dir():
                        shutil.rmtree(leftover, ignore_errors=True)
                    else:
                        leftover.unlink(missing_ok=True)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.db:
            yield self.db

    # --- key/value meta ---------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self.db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # --- records ------------------------------------------------------------------------------

    def videos(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM videos ORDER BY rowid").fetchall()
        return [_decode(row, "metadata", "provenance") for row in rows]

    def video(self, sha256: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM videos WHERE sha256 = ?", (sha256,)).fetchone()
        return _decode(row, "metadata", "provenance") if row else None

    def frames(self, video_sha256: str | None = None) -> list[dict[str, Any]]:
        if video_sha256:
            rows = self.db.execute("SELECT * FROM frames WHERE video_sha256 = ? ORDER BY t_ms", (video_sha256,))
        else:
            rows = self.db.execute("SELECT * FROM frames ORDER BY video_sha256, t_ms")
        return [_decode(row, "extractor") for row in rows.fetchall()]

    def tasks(self) -> dict[str, int]:
        """Frame key → task id in the workspace's review project (empty before the first push)."""
        project = self.get_meta("project_id")
        if project is None:
            return {}
        rows = self.db.execute("SELECT frame_key, task_id FROM tasks WHERE project_id = ?", (int(project),))
        return dict(rows.fetchall())

    def task_ids(self, project_id: int) -> list[int]:
        """Ids of the tasks verify made in a project (review or adjudication)."""
        rows = self.db.execute("SELECT task_id FROM tasks WHERE project_id = ? ORDER BY task_id", (project_id,))
        return [r[0] for r in rows.fetchall()]

    def annotations(self) -> list[dict[str, Any]]:
        """The pulled annotations of the review project and of the adjudication project (lead decisions)."""
        projects = [int(p) for p in (self.get_meta("project_id"), self.get_meta("adjudication_project_id")) if p]
        if not projects:
            return []
        marks = ",".join("?" * len(projects))
        rows = self.db.execute(f"SELECT * FROM annotations WHERE project_id IN ({marks}) ORDER BY project_id, task_id, id", projects)
        return [_decode(row, "result") for row in rows.fetchall()]

    def captures(self, video_sha256: str | None = None) -> list[dict[str, Any]]:
        if video_sha256:
            rows = self.db.execute("SELECT * FROM captures WHERE video_sha256 = ? ORDER BY id", (video_sha256,))
        else:
            rows = self.db.execute("SELECT * FROM captures ORDER BY id")
        return [_decode(row, "record") for row in rows.fetchall()]

    def capture_of(self, url: str) -> dict[str, Any] | None:
        """The latest capture of a link, matched by the URL as given or by the canonical URL."""
        row = self.db.execute(
            "SELECT * FROM captures WHERE url_given = ? OR canonical_url = ? ORDER BY id DESC LIMIT 1", (url, url)
        ).fetchone()
        return _decode(row, "record") if row else None

    def exports_in_use(self) -> list[dict[str, Any]]:
        """The archived exports the workspace's current annotations come from."""
        rows = self.db.execute("SELECT * FROM exports WHERE file IN (SELECT DISTINCT export_file FROM annotations)"
                               " ORDER BY pulled_at, file")
        return [dict(r) for r in rows.fetchall()]

    def exports(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM exports ORDER BY pulled_at, file").fetchall()]

    def path(self, relative: str) -> Path:
        return self.root / relative


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level="DEFERRED")
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(SCHEMA)
    return db


def _decode(row: sqlite3.Row, *json_fields: str) -> dict[str, Any]:
    record = dict(row)
    for name in json_fields:
        if record.get(name) is not None:
            record[name] = json.loads(record[name])
    return record


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file so that a crash leaves either the old or the new content, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

