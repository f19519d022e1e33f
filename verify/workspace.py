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

import dataclasses
import fcntl
import functools
import itertools
import json
import os
import shutil
import sqlite3
import sys
import threading
import uuid
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from verify.case import Case, load_case
from verify.clock import now_utc
from verify.errors import WorkspaceBusy, WorkspaceError
from verify.files import atomic_write
from verify.records import Annotation, Capture, Context, Export, Frame, Reupload, Video

DB_NAME = "verify.db"
CONTEXT_PREFIX = "context-"  # the keys of context strips (frames' keys are hex)
SCHEMA_VERSION = 4

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
    duplicate_of TEXT,
    fingerprint TEXT
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
CREATE TABLE IF NOT EXISTS reuploads (
    video_sha256 TEXT NOT NULL REFERENCES videos(sha256),
    original_sha256 TEXT NOT NULL REFERENCES videos(sha256),
    share REAL NOT NULL,
    frames INTEGER NOT NULL,
    span TEXT NOT NULL,
    mirrored INTEGER NOT NULL,
    speed REAL NOT NULL,
    PRIMARY KEY (video_sha256, original_sha256)
);
CREATE TABLE IF NOT EXISTS timestamps (
    file TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    digest TEXT NOT NULL,
    log_seq INTEGER NOT NULL,
    tsa TEXT NOT NULL,
    gen_time TEXT NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contexts (
    frame_key TEXT PRIMARY KEY REFERENCES frames(key),
    key TEXT NOT NULL UNIQUE,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    pictures TEXT NOT NULL,
    maker TEXT NOT NULL,
    made_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS context_uploads (
    project_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    url TEXT NOT NULL,
    PRIMARY KEY (project_id, key)
);
CREATE TABLE IF NOT EXISTS objects (
    endpoint TEXT NOT NULL,  -- the S3 endpoint URL ('' for AWS), never with credentials
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,  -- <prefix>/<sha256>.jpg: named by content
    sha256 TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    PRIMARY KEY (endpoint, bucket, key)
);
CREATE TABLE IF NOT EXISTS context_tasks (
    project_id INTEGER NOT NULL,
    frame_key TEXT NOT NULL REFERENCES frames(key),
    context_key TEXT NOT NULL,
    PRIMARY KEY (project_id, frame_key)
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

MIGRATE_2_TO_3 = """
BEGIN;
ALTER TABLE frames ADD COLUMN fingerprint TEXT;
UPDATE meta SET value = '3' WHERE key = 'schema_version';
COMMIT;
"""
MIGRATE_3_TO_4 = """
BEGIN;
CREATE TABLE IF NOT EXISTS timestamps (file TEXT PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL, digest TEXT NOT NULL,
                                       log_seq INTEGER NOT NULL, tsa TEXT NOT NULL, gen_time TEXT NOT NULL, sha256 TEXT NOT NULL);
UPDATE meta SET value = '4' WHERE key = 'schema_version';  -- (reuploads: created by SCHEMA on open)
COMMIT;
"""
ANNOTATION_COLUMNS = ("id", "project_id", "task_id", "frame_key", "reviewer_id", "reviewer", "was_cancelled",
                      "ground_truth", "result", "created_at", "updated_at", "export_file")
MIGRATIONS = {"1": MIGRATE_1_TO_2, "2": MIGRATE_2_TO_3, "3": MIGRATE_3_TO_4}  # from schema version: one transaction each, all or nothing


class Workspace:
    """An open workspace. Use ``Workspace.open`` or ``Workspace.create``."""

    def __init__(self, root: Path, db: sqlite3.Connection):
        self.root = root
        self.db = db
        self._case: Case | None = None
        self.read_only = False  # opened from a read-only folder or disk: status and audit work, nothing is written
        self._holder: tuple[int, int] | None = None  # (thread id, depth) while this object holds the write lock

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
        except sqlite3.OperationalError as exc:
            if not _read_only(root, exc):
                raise WorkspaceError(f"{root / DB_NAME}: cannot read the workspace database ({exc}); restore it from a backup")
            ws = cls(root, _connect_read_only(root / DB_NAME))
            ws.read_only = True
            version = ws.get_meta("schema_version")
            if version != str(SCHEMA_VERSION):
                raise WorkspaceError(f"{root}: read-only, and of workspace schema {version}; make it writable once so this "
                                     f"verify can upgrade it to schema {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise WorkspaceError(f"{root / DB_NAME}: cannot read the workspace database ({exc}); restore it from a backup")
        if not ws.read_only and not _writable(root):  # SQLite quietly fell back to reading
            ws.read_only = True
            if version != str(SCHEMA_VERSION):
                raise WorkspaceError(f"{root}: read-only, and of workspace schema {version}; make it writable once so this "
                                     f"verify can upgrade it to schema {SCHEMA_VERSION}")
        while version in MIGRATIONS:  # 1: a frame could be a task of one project only; 2: no fingerprints
            ws.db.executescript(MIGRATIONS[version])
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
    def reading(self) -> Iterator[None]:
        """A consistent picture for a reader (audit): the write lock when the workspace is writable, else a shared
        lock on the existing lock file (a writer elsewhere still makes this wait-free check fail with WorkspaceBusy)."""
        if not self.read_only:
            with self.lock(recover=False):  # a reader sees the workspace as it is
                yield
            return
        try:
            fd = os.open(self.root / ".lock", os.O_RDONLY)
        except OSError:  # never written to: nobody to wait for
            yield
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise WorkspaceBusy(f"{self.root}: workspace is in use by another verify; wait for it to finish and retry")
            yield
        finally:
            os.close(fd)

    @contextmanager
    def lock(self, recover: bool = True, command: str = "") -> Iterator[None]:
        """Hold the workspace's write lock; a second verify process gets WorkspaceBusy.

        Taking it cleans up after a verify that was killed: its half-written files are removed and,
        with ``recover``, what it committed but had not yet logged is logged, then ``command``'s intent is
        recorded before it writes, and closed when it finishes (``custody.begin``, ``custody.end``).

        Re-entrant in the thread that holds it: a stage called by another stage (``sync`` calls push, pull
        and report; the CLI holds it around a stage) runs under the outer hold and its intent.
        """
        me = threading.get_ident()
        if self._holder and self._holder[0] == me:
            self._holder = (me, self._holder[1] + 1)
            try:
                yield
            finally:
                self._holder = (me, self._holder[1] - 1)
            return
        if self.read_only:
            raise WorkspaceError(f"{self.root}: the workspace is read-only (its folder or disk), so verify cannot change it; "
                                 "`verify status` and `verify audit` work on it as it is")
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
            self._holder = (me, 1)
            self._remove_leftovers()
            if recover:
                from verify import custody  # the log is custody's; it reads and writes through this workspace

                custody.begin(self, command)
            yield
            if recover:  # not after an error or a kill: the intent stays open for the next writer to complete
                custody.end(self)
        finally:
            self._holder = None
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

    def update_meta(self, **values: str | None) -> None:
        """Set several meta keys in one transaction (None removes a key)."""
        with self.transaction():
            for key, value in values.items():
                self.set_meta(key, value)

    # --- videos ---------------------------------------------------------------------------------

    def videos(self) -> list[Video]:
        """Every ingested video, in the order they were ingested."""
        return [_video(row) for row in self.db.execute("SELECT * FROM videos ORDER BY rowid")]

    def video(self, sha256: str) -> Video | None:
        row = self.db.execute("SELECT * FROM videos WHERE sha256 = ?", (sha256,)).fetchone()
        return _video(row) if row else None

    def add_video(self, video: Video) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO videos (sha256, source_id, original_path, evidence, size, ingested_at, metadata, provenance,"
                " frames_status, frames_note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (video.sha256, video.source_id, video.original_path, video.evidence, video.size, video.ingested_at,
                 _json(video.metadata), _json(video.provenance), video.frames_status, video.frames_note),
            )

    # --- frames ---------------------------------------------------------------------------------

    def frames(self, video_sha256: str | None = None, fingerprints: bool = True) -> list[Frame]:
        """Every frame (of one video), by video and time; ``fingerprints=False`` leaves out the re-upload
        fingerprints (a third of a frame's memory), for stages that do not match re-uploads."""
        columns = ", ".join(c for c in FRAME_COLUMNS if fingerprints or c != "fingerprint")
        if video_sha256:
            rows = self.db.execute(f"SELECT {columns} FROM frames WHERE video_sha256 = ? ORDER BY t_ms", (video_sha256,))
        else:
            rows = self.db.execute(f"SELECT {columns} FROM frames ORDER BY video_sha256, t_ms")
        rows.row_factory = None  # plain tuples, in the record's field order: a third faster than named rows at 100,000
        return [_frame(values) for values in rows]

    def has_frames(self) -> bool:
        return self.db.execute("SELECT 1 FROM frames LIMIT 1").fetchone() is not None

    def record_frames(self, video_sha256: str, frames: list[Frame], status: str, note: str | None,
                      metadata: dict[str, Any]) -> None:
        """Store a video's extracted frames (a frame already stored under its key is kept) and its extraction outcome."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO frames (key, video_sha256, t_ms, frame_index, shot, file, sha256, pixel_sha256,"
                " phash, width, height, sharpness, extractor, duplicate_of, fingerprint)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(f.key, f.video_sha256, f.t_ms, f.frame_index, f.shot, f.file, f.sha256, f.pixel_sha256, f.phash,
                  f.width, f.height, f.sharpness, _json(f.extractor), f.duplicate_of, f.fingerprint) for f in frames],
            )
            db.execute("UPDATE videos SET frames_status = ?, frames_note = ?, metadata = ? WHERE sha256 = ?",
                       (status, note, _json(metadata), video_sha256))

    def record_frames_failed(self, video_sha256: str, note: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE videos SET frames_status = 'failed', frames_note = ? WHERE sha256 = ?", (note, video_sha256))

    def link_reuploads(self, links: dict[str, str | None]) -> None:
        """Set (or clear, with None) each frame's ``duplicate_of``: frame key → key of the frame it re-uploads."""
        with self.transaction() as db:
            db.executemany("UPDATE frames SET duplicate_of = ? WHERE key = ?", [(o, k) for k, o in links.items()])

    def reuploads(self) -> list[Reupload]:
        """Which videos re-upload which earlier ones (as last found by ``verify frames``)."""
        rows = self.db.execute("SELECT * FROM reuploads ORDER BY video_sha256, share DESC")
        return [Reupload(**{**dict(r), "mirrored": bool(r["mirrored"])}) for r in rows]

    def record_reuploads(self, found: list[Reupload]) -> None:
        """Replace what is known of re-uploads with ``found`` (matching runs over every video each time)."""
        with self.transaction() as db:
            db.execute("DELETE FROM reuploads")
            db.executemany("INSERT INTO reuploads (video_sha256, original_sha256, share, frames, span, mirrored, speed)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(r.video_sha256, r.original_sha256, r.share, r.frames, r.span, r.mirrored, r.speed) for r in found])

    # --- Label Studio tasks and uploaded images ------------------------------------------------

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

    def record_tasks(self, project_id: int, tasks: dict[str, int], keep_projects: tuple[int, ...] | None = None) -> None:
        """Record frame key → task id in a project; with ``keep_projects``, forget the tasks of every other project
        (those of a project the workspace no longer uses, after ``push --new-project``)."""
        known = dict(self.db.execute("SELECT frame_key, task_id FROM tasks WHERE project_id = ?", (project_id,)).fetchall())
        with self.transaction() as db:
            if keep_projects is not None:
                marks = ",".join("?" * len(keep_projects))
                db.execute(f"DELETE FROM tasks WHERE project_id NOT IN ({marks})", keep_projects)
            db.executemany("INSERT OR REPLACE INTO tasks (frame_key, project_id, task_id) VALUES (?, ?, ?)",
                           [(key, project_id, task) for key, task in tasks.items() if known.get(key) != task])

    def uploads(self, project_id: int) -> dict[str, str]:
        """Frame key (or context strip key) → URL of the copy uploaded to a project (upload mode)."""
        rows = self.db.execute("SELECT frame_key, url FROM uploads WHERE project_id = ?", (project_id,))
        urls = dict(rows.fetchall())
        urls.update(self._rows("SELECT key, url FROM context_uploads WHERE project_id = ?", (project_id,)))
        return urls

    def record_uploads(self, project_id: int, urls: dict[str, str]) -> None:
        """Record uploaded copies: frames by their key, context strips by theirs ("context-…")."""
        strips = {key: url for key, url in urls.items() if key.startswith(CONTEXT_PREFIX)}
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO uploads (project_id, frame_key, url) VALUES (?, ?, ?)",
                           [(project_id, key, url) for key, url in urls.items() if key not in strips])
            db.executemany("INSERT OR REPLACE INTO context_uploads (project_id, key, url) VALUES (?, ?, ?)",
                           [(project_id, key, url) for key, url in strips.items()])

    def stored_objects(self, endpoint: str, bucket: str) -> set[str]:
        """Keys of the objects known to be in an S3 bucket (--images s3), recorded once each."""
        return {row[0] for row in self._rows("SELECT key FROM objects WHERE endpoint = ? AND bucket = ?", (endpoint, bucket))}

    def record_objects(self, endpoint: str, bucket: str, objects: dict[str, str]) -> None:
        """Record objects (key → sha256 of their content) as being in the bucket; a key already recorded keeps its row."""
        now = now_utc()
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO objects (endpoint, bucket, key, sha256, uploaded_at) VALUES (?, ?, ?, ?, ?)",
                           [(endpoint, bucket, key, sha, now) for key, sha in objects.items()])

    # --- context strips (the pictures around a keyframe, shown beside it) --------------------------

    def contexts(self) -> list[Context]:
        """Every context strip made, by frame (empty in a read-only workspace made before strips existed)."""
        return [_context(row) for row in self._rows("SELECT * FROM contexts ORDER BY frame_key")]

    def record_contexts(self, contexts: list[Context]) -> None:
        """Store strips (one per frame: a strip made again replaces the frame's earlier one)."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO contexts (frame_key, key, file, sha256, width, height, pictures, maker, made_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(c.frame_key, c.key, c.file, c.sha256, c.width, c.height, _json(c.pictures), _json(c.maker), c.made_at)
                 for c in contexts],
            )

    def record_context_tasks(self, project_id: int, shown: dict[str, str]) -> None:
        """Record which strip (its key) each frame's task in a project was imported with: frame key → strip key."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO context_tasks (project_id, frame_key, context_key) VALUES (?, ?, ?)",
                           [(project_id, frame, strip) for frame, strip in shown.items()])

    def shown_contexts(self, project_id: int | None = None) -> dict[str, Context]:
        """Frame key → the strip its task in a project (default: the review project) shows reviewers."""
        project = project_id if project_id is not None else self.get_meta("project_id")
        if project is None:
            return {}
        rows = self._rows("SELECT c.* FROM context_tasks t JOIN contexts c ON c.key = t.context_key"
                          " WHERE t.project_id = ?", (int(project),))
        return {row["frame_key"]: _context(row) for row in rows}

    def _rows(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        """Rows of a table added after schema 4 (created on open); none when a read-only workspace predates it."""
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if self.read_only and "no such table" in str(exc):
                return []
            raise

    # --- annotations and exports ------------------------------------------------------------------

    def annotations(self) -> list[Annotation]:
        """The pulled annotations of the review project, of the adjudication project (lead decisions on frames) and of
        the claim-decisions project (lead decisions on claims, frame key "claim:…")."""
        projects = [int(p) for p in (self.get_meta("project_id"), self.get_meta("adjudication_project_id"),
                                     self.get_meta("claims_project_id")) if p]
        if not projects:
            return []
        marks = ",".join("?" * len(projects))
        rows = self.db.execute(f"SELECT * FROM annotations WHERE project_id IN ({marks}) ORDER BY project_id, task_id, id",
                               projects)
        return [_annotation(row) for row in rows]

    def replace_annotations(self, project_id: int, annotations: Iterable[Annotation], tasks: list[int] | None = None,
                            **meta: str | None) -> None:
        """Replace a project's annotations (only those of ``tasks``, when given) and set ``meta``, all at once.

        ``annotations`` may be a generator that writes as it goes (a pull archives and records each export page
        before yielding its annotations): they are drawn outside any transaction and wait, a page at a time, in a
        temporary table of this connection (gone if verify dies), so none is held in memory; one transaction
        at the end swaps them in, so a pull that fails part-way leaves the old annotations as they were.
        """
        columns = ANNOTATION_COLUMNS
        self.db.execute(f"CREATE TEMP TABLE IF NOT EXISTS incoming_annotations ({', '.join(columns)})")
        with self.transaction() as db:
            db.execute("DELETE FROM temp.incoming_annotations")
        rows = ((a.id, project_id, a.task_id, a.frame_key, a.reviewer_id, a.reviewer, a.was_cancelled, a.ground_truth,
                 json.dumps(a.result), a.created_at, a.updated_at, a.export_file) for a in annotations)
        while chunk := list(itertools.islice(rows, 1000)):  # the next chunk is drawn between transactions
            with self.transaction() as db:
                db.executemany(f"INSERT INTO temp.incoming_annotations VALUES ({', '.join('?' * len(columns))})", chunk)
        with self.transaction() as db:
            if tasks is None:
                db.execute("DELETE FROM annotations WHERE project_id = ?", (project_id,))
            for start in range(0, len(tasks or []), 500):
                page = tasks[start:start + 500]
                db.execute(f"DELETE FROM annotations WHERE project_id = ? AND task_id IN ({','.join('?' * len(page))})",
                           (project_id, *page))
            db.execute(f"INSERT OR REPLACE INTO annotations ({', '.join(columns)}) "
                       f"SELECT {', '.join(columns)} FROM temp.incoming_annotations")
            db.execute("DELETE FROM temp.incoming_annotations")
            for key, value in meta.items():
                self.set_meta(key, value)

    def add_export(self, export: Export) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO exports (file, sha256, pulled_at, project_id, tasks, annotations)"
                       " VALUES (?, ?, ?, ?, ?, ?)",
                       (export.file, export.sha256, export.pulled_at, export.project_id, export.tasks, export.annotations))

    def exports(self) -> list[Export]:
        """Every archived export, oldest first."""
        return [Export(**dict(r)) for r in self.db.execute("SELECT * FROM exports ORDER BY pulled_at, file")]

    def exports_in_use(self) -> list[Export]:
        """The archived exports the workspace's current annotations come from."""
        rows = self.db.execute("SELECT * FROM exports WHERE file IN (SELECT DISTINCT export_file FROM annotations)"
                               " ORDER BY pulled_at, file")
        return [Export(**dict(r)) for r in rows]

    # --- captures of links ------------------------------------------------------------------------

    def captures(self, video_sha256: str | None = None) -> list[Capture]:
        if video_sha256:
            rows = self.db.execute("SELECT * FROM captures WHERE video_sha256 = ? ORDER BY id", (video_sha256,))
        else:
            rows = self.db.execute("SELECT * FROM captures ORDER BY id")
        return [_capture(row) for row in rows]

    def capture_of(self, url: str) -> Capture | None:
        """The latest capture of a link, matched by the URL as given or by the canonical URL."""
        row = self.db.execute(
            "SELECT * FROM captures WHERE url_given = ? OR canonical_url = ? ORDER BY id DESC LIMIT 1", (url, url)
        ).fetchone()
        return _capture(row) if row else None

    def add_capture(self, video_sha256: str, info_file: str, record: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO captures (video_sha256, url_given, canonical_url, captured_at, info_file, record)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (video_sha256, record.get("url_given"), record.get("canonical_url"), record["captured_at"], info_file,
                 _json(record)),
            )

    # --- trusted timestamps (RFC 3161 tokens kept in timestamps/) ---------------------------------

    def add_timestamp(self, file: str, kind: str, subject: str, digest: str, log_seq: int, tsa: str, gen_time: str,
                      sha256: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO timestamps (file, kind, subject, digest, log_seq, tsa, gen_time, sha256)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (file, kind, subject, digest, log_seq, tsa, gen_time, sha256))

    def timestamps(self) -> list[dict[str, Any]]:
        """Every time-stamp token the workspace holds, oldest first."""
        return [dict(r) for r in self.db.execute("SELECT * FROM timestamps ORDER BY log_seq, file")]

    def path(self, relative: str) -> Path:
        return self.root / relative


def _read_only(root: Path, exc: Exception) -> bool:
    """Whether opening failed because the workspace cannot be written (not because the database is damaged)."""
    text = str(exc).lower()
    return ("readonly" in text or "read-only" in text or "unable to open" in text) and not _writable(root)


def read_frames(root: Path, fingerprints: bool = True) -> list[Frame]:
    """``Workspace.frames()`` of the workspace at ``root``, read on a read-only connection of its own: for a thread
    that reads them while the caller's connection goes on (an SQLite connection stays in the thread that made it)."""
    with closing(sqlite3.connect(_uri(root / DB_NAME, "mode=ro"), uri=True, timeout=30)) as db:
        return Workspace(root, db).frames(fingerprints=fingerprints)


def _writable_fs(root: Path) -> bool:
    return not (os.statvfs(root).f_flag & os.ST_RDONLY)


def _writable(root: Path) -> bool:
    return os.access(root, os.W_OK) and os.access(root / DB_NAME, os.W_OK) and _writable_fs(root)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Open for reading without writing anything: the journal must already be merged (a verify that finished
    closes it), since a read-only folder cannot hold SQLite's shared-memory file."""
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        try:
            db = sqlite3.connect(_uri(path, "mode=ro"), uri=True)
            db.execute("SELECT 1 FROM meta LIMIT 1")
        except sqlite3.OperationalError:
            raise WorkspaceError(f"{path}: read-only, with changes still in its journal ({wal.name}); make the workspace "
                                 "writable once (any verify command merges them), then it can be read read-only")
    else:
        db = sqlite3.connect(_uri(path, "mode=ro&immutable=1"), uri=True)
    db.row_factory = sqlite3.Row
    return db


def _uri(path: Path, query: str) -> str:
    """SQLite's URI for a database file (a "?", "#" or "%" in the folder's name escaped), with ``query``."""
    return f"{path.absolute().as_uri()}?{query}"


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level="DEFERRED")
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(SCHEMA)
    return db


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _video(row: sqlite3.Row) -> Video:
    return Video(**{**dict(row), "metadata": json.loads(row["metadata"]), "provenance": json.loads(row["provenance"])})


FRAME_COLUMNS = tuple(f.name for f in dataclasses.fields(Frame))  # the frames table's columns, named as the record's
_VIDEO, _EXTRACTOR = FRAME_COLUMNS.index("video_sha256"), FRAME_COLUMNS.index("extractor")


def _frame(values: tuple) -> Frame:
    """A frame from its column values in ``FRAME_COLUMNS`` order (the fingerprint, last, may be left out)."""
    fields = list(values)
    fields[_VIDEO] = sys.intern(fields[_VIDEO])
    fields[_EXTRACTOR] = _extractor(fields[_EXTRACTOR])
    return Frame(*fields)


@functools.lru_cache(maxsize=256)
def _extractor(text: str | None) -> dict[str, Any]:
    """The extractor record, parsed once per distinct text: every frame of an extraction shares one (read-only)
    dict, which keeps 100,000 frames in about a third of the memory (~1.2 KB each instead of ~3.7 KB)."""
    return json.loads(text) if text else {}


def _annotation(row: sqlite3.Row) -> Annotation:
    return Annotation(**{**dict(row), "was_cancelled": bool(row["was_cancelled"]), "ground_truth": bool(row["ground_truth"]),
                         "result": json.loads(row["result"])})


def _context(row: sqlite3.Row) -> Context:
    return Context(**{**dict(row), "pictures": json.loads(row["pictures"]), "maker": json.loads(row["maker"])})


def _capture(row: sqlite3.Row) -> Capture:
    return Capture(**{**dict(row), "record": json.loads(row["record"])})


def locked(command: str):
    """A stage function (its first argument the workspace) that runs holding the workspace's write lock, under
    ``command``'s custody intent, whether the CLI or a library caller calls it (``Workspace.lock``)."""
    def wrap(stage):
        @functools.wraps(stage)
        def run(ws: "Workspace", *args: Any, **kwargs: Any) -> Any:
            with ws.lock(command=command):
                return stage(ws, *args, **kwargs)
        return run
    return wrap
