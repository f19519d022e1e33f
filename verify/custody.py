"""Custody: an append-only, hash-chained log of every action, and the audit that re-checks it all.

``custody.log`` in the workspace holds one JSON object per line: sequence number, UTC time,
action, verify version, OS user and host, what went in and what came out (paths with
sha256), details (e.g. which Label Studio users' annotations were pulled), the previous
entry's hash and the entry's own hash (sha256 of the entry without ``hash``, canonical JSON).
Editing, removing or reordering an entry breaks the chain; the newest hash is also kept in
the workspace database, so cutting entries off the end is caught too.

``audit`` re-hashes every stored artefact against the workspace's manifest (verify.db):
evidence copies, platform info files, frames, archived exports, reports and the case file;
lists what changed, what is missing and what is unexpected; and checks the log.

Before a command writes, it records its intent in the workspace (``begin``, under the write lock): which
command, which areas it may write, and which files were already unlogged. A run killed between committing
its files and logging them leaves that intent open, and the next writing command logs those files as
"recovered", naming the run. Files no intent explains (added behind verify's back) are never logged
automatically: ``audit`` fails on them until a person accepts them (``accept``, its own "accept" entry),
and ``accepted`` lists those acceptances for the report.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from verify import __version__
from verify.clock import now_utc
from verify.errors import CustodyError, IntegrityError, ManifestMissing, NotAcceptable, RolledBack, VerifyError
from verify.files import file_sha256

LOG = "custody.log"
HEAD = "custody_head"
GENESIS = "0" * 64
LISTED = 100  # outputs listed one by one up to this many; beyond, a count, a digest and a listing file
LISTINGS = "custody"  # custody/NNNNNN-outputs.sha256: the sha256sum-style listing behind an entry's digest
AREAS = ("evidence", "frames", "exports", "reports", "timestamps", LISTINGS)
# Files the log records that must still be there with the hash it last recorded (reports are rewritten:
# the latest entry counts; pictures of an earlier Markdown report may be pruned by a later one).
KEPT = ("evidence/", "frames/", "exports/", "reports/", "case.yaml")
INTENT = "custody_intent"  # workspace meta: the command now writing; left behind when it was killed
# Where each command may write files; a command not named here may write anywhere the log covers.
SCOPES: dict[str, tuple[str, ...]] = {
    "ingest": ("evidence/",), "frames": ("frames/",), "push": ("frames/",), "adjudicate": ("frames/",),
    "pull": ("exports/",), "merge": ("reports/",), "report": ("reports/",),
    "sync": ("frames/", "exports/", "reports/"), "accept": (),
}


def files_digest(items: Iterable[tuple[str, str]]) -> str:
    """sha256 of ``sha256sum``-style lines ("SHA  PATH\\n", sorted by path): checkable with coreutils."""
    text = "".join(f"{sha}  {path}\n" for path, sha in sorted(items))
    return hashlib.sha256(text.encode()).hexdigest()


def described(items: list[tuple[str, str]]) -> dict[str, Any]:
    """Files (path, sha256) for a log entry: listed when few, always counted and digested."""
    out: dict[str, Any] = {"count": len(items), "digest": files_digest(items)}
    if len(items) <= LISTED:
        out["files"] = [{"path": p, "sha256": s} for p, s in sorted(items)]
    return out


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def record(ws: Any, action: str, inputs: list[tuple[str, str]] | None = None,
           outputs: list[tuple[str, str]] | None = None, **details: Any) -> dict[str, Any]:
    """Append one entry for ``action`` and move the head; return the entry.

    Call after the action's own state is committed: a crash in between leaves the action
    done but unlogged, never logged but undone.
    """
    from verify import timestamps

    path = ws.path(LOG)
    last = _last_entry(path)
    seq = (last["seq"] + 1) if last else 1
    entry = {
        "seq": seq,
        "at": now_utc(),
        "action": action,
        "verify": __version__,
        "os_user": _os_user(),
        "host": socket.gethostname(),
        "inputs": described(inputs or []),
        "outputs": _with_listing(ws, seq, outputs or []),
        "details": details,
        "prev": last["hash"] if last else GENESIS,
    }
    stamping = timestamps.configured(ws)
    if stamping:  # the log itself says stamps were being made, and how many exist: deleting them all is then seen
        entry["timestamps"] = {"tsa": stamping, "tokens_before": len(ws.timestamps())}
    entry["hash"] = entry_hash(entry)
    line = json.dumps(entry, sort_keys=True, ensure_ascii=True) + "\n"  # ASCII: no terminal tricks, one line
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    with ws.transaction():
        ws.set_meta(HEAD, f"{entry['seq']}:{entry['hash']}")
    timestamps.stamp_action(ws, entry, outputs or [])  # anchored outside the workspace, when an authority is configured
    return entry


def _with_listing(ws: Any, seq: int, outputs: list[tuple[str, str]]) -> dict[str, Any]:
    """Outputs for an entry; beyond ``LISTED`` files, the listing behind the digest is kept in custody/ so that
    the audit can still check each file against the log (``sha256sum -c`` reads it too)."""
    out = described(outputs)
    if "files" not in out:
        from verify.files import atomic_write

        name = f"{LISTINGS}/{seq:06d}-outputs.sha256"
        ws.path(LISTINGS).mkdir(exist_ok=True)
        atomic_write(ws.path(name), "".join(f"{sha}  {p}\n" for p, sha in sorted(outputs)).encode(), mode=0o444)
        out["listing"] = name
    return out


def record_files(ws: Any, action: str, paths: Iterable[Path], inputs: list[tuple[str, str]] | None = None,
                 **details: Any) -> list[tuple[str, str]]:
    """Hash files an action wrote, add those inside reports/ to the manifest, log the action; return (path, sha256)."""
    outputs = []
    for path in paths:
        path = Path(path).resolve()
        try:
            name = str(path.relative_to(ws.root.resolve()))
        except ValueError:  # written outside the workspace (--out)
            name = str(path)
        outputs.append((name, file_sha256(path)))
    kept = json.loads(ws.get_meta("reports_manifest") or "{}")
    kept.update({name: sha for name, sha in outputs if name.startswith("reports/")})
    kept = {name: sha for name, sha in kept.items() if ws.path(name).exists() or name in dict(outputs)}
    with ws.transaction():
        ws.set_meta("reports_manifest", json.dumps(kept, sort_keys=True))
    record(ws, action, inputs=inputs, outputs=outputs, **details)
    return outputs


def _last_entry(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - (1 << 20)))
        tail = f.read().decode(errors="replace").splitlines()
    for line in reversed(tail):
        if line.strip():
            try:
                return json.loads(line)
            except ValueError:
                raise CustodyError(f"{path}: its last entry is damaged; run `verify audit` and restore the log from a backup")
    return None


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no name for this uid (containers): the number will do
        return f"uid {os.getuid()}"


# --- checking ---------------------------------------------------------------------------------


@dataclass
class LogCheck:
    entries: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    head: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def check_log(ws: Any) -> LogCheck:
    """Walk the chain: every line parses, numbers run on, each hash is right and links to the one before,
    and the last one is the head the workspace recorded."""
    path = ws.path(LOG)
    result = LogCheck()
    recorded = ws.get_meta(HEAD)
    if not path.exists():
        if recorded:
            result.problems.append(f"{LOG} is missing, but the workspace recorded {recorded.split(':')[0]} entries")
        else:
            result.problems.append(f"{LOG} is missing (no action has been logged)")
        return result
    prev, seq, before_last = GENESIS, 0, GENESIS
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        result.problems.append(f"{LOG}: the last entry is cut off (the file was truncated or a write was torn)")
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            entry = json.loads(raw)
        except ValueError:
            result.problems.append(f"{LOG} line {number}: not a log entry (damaged or edited)")
            return result
        if entry.get("seq") != seq + 1:
            result.problems.append(f"{LOG} line {number}: entry {entry.get('seq')} where {seq + 1} was expected (entries removed or reordered)")
        if entry.get("prev") != prev:
            result.problems.append(f"{LOG} line {number}: does not link to the entry before it (edited, removed or inserted)")
        if entry_hash(entry) != entry.get("hash"):
            result.problems.append(f"{LOG} line {number} ({entry.get('action')}): its content does not match its hash (edited)")
        before_last = prev
        prev, seq = entry.get("hash"), entry.get("seq", seq + 1)
        result.entries += 1
    result.head = f"{seq}:{prev}"
    if recorded and recorded != result.head:
        r_seq, r_hash = recorded.split(":")
        if int(r_seq) > seq:
            result.problems.append(f"{LOG} ends at entry {seq}, but the workspace recorded {r_seq}: entries were cut off the end")
        elif int(r_seq) == seq - 1 and r_hash == before_last:
            # written, then killed before the workspace recorded it: the action may not have finished
            result.notes.append(f"{LOG}: entry {seq} was written but not confirmed (verify was interrupted?)")
        else:
            result.problems.append(f"{LOG}: its last entry ({seq}) is not the one the workspace recorded ({r_seq})")
    return result


@dataclass
class AuditResult:
    checked: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    # against the custody log
    rolled_back: list[str] = field(default_factory=list)  # a head from an earlier report (--against) the log no longer holds
    rewritten: list[str] = field(default_factory=list)  # the workspace's record of a file differs from the log's
    removed: list[str] = field(default_factory=list)  # the log records a file the workspace no longer has
    unlogged: list[str] = field(default_factory=list)  # the workspace holds a file the log never recorded
    why: dict[str, str] = field(default_factory=dict)  # path → what the log says about it
    notes: list[str] = field(default_factory=list)
    log: LogCheck = field(default_factory=LogCheck)
    timestamps: Any = None  # timestamps.TimestampCheck

    def to_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "changed": self.changed, "missing": self.missing, "unexpected": self.unexpected,
                "against_log": {"rewritten": self.rewritten, "removed": self.removed, "unlogged": self.unlogged,
                                "why": self.why},
                "notes": self.notes, "rolled_back": self.rolled_back,
                "log": {"entries": self.log.entries, "head": self.log.head, "problems": self.log.problems,
                        "notes": self.log.notes},
                "timestamps": self.timestamps.to_json() if self.timestamps else None}

    @property
    def files_ok(self) -> bool:
        return not (self.changed or self.missing or self.unexpected or self.rewritten or self.removed or self.unlogged)

    def raise_for_problems(self) -> None:
        if self.rolled_back:
            more = f" (and {len(self.rolled_back) - 1} more)" if len(self.rolled_back) > 1 else ""
            raise RolledBack(f"rolled back: {self.rolled_back[0]}{more}")
        problems = self.log.problems + (self.timestamps.problems if self.timestamps else [])
        if problems:
            raise CustodyError(f"custody log: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        if not self.files_ok:
            against = len(self.rewritten) + len(self.removed) + len(self.unlogged)
            raise IntegrityError(f"{len(self.changed)} changed, {len(self.missing)} missing, {len(self.unexpected)} unexpected "
                                 f"of {self.checked} stored files" + (f", {against} not as the custody log recorded"
                                                                      if against else "") + " (listed above)")


def manifest(ws: Any) -> dict[str, str]:
    """Every artefact the workspace says it holds: relative path → sha256."""
    expected: dict[str, str] = {}
    for video in ws.videos():
        expected[video.evidence] = video.sha256
    for capture in ws.captures():
        if capture.record.get("info_sha256"):
            expected[capture.info_file] = capture.record["info_sha256"]
    for frame in ws.frames():
        expected[frame.file] = frame.sha256
    for strip in ws.contexts():  # context strips (verify.media.context), kept beside their video's frames
        expected[strip.file] = strip.sha256
    for export in ws.exports():
        expected[export.file] = export.sha256
    expected.update(json.loads(ws.get_meta("reports_manifest") or "{}"))
    expected["case.yaml"] = ws.get_meta("case_sha256") or ""
    for token in ws.timestamps():
        expected[token["file"]] = token["sha256"]
    return expected


def read_entries(ws: Any) -> list[dict[str, Any]]:
    """The log's entries that parse (``check_log`` says whether the whole log is sound)."""
    path = ws.path(LOG)
    entries = []
    if path.exists():
        for raw in path.read_bytes().splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def logged_files(ws: Any, entries: list[dict[str, Any]]) -> tuple[dict[str, tuple[str, int, str]], dict[str, str], list[str]]:
    """What the log says the workspace should hold: path → (sha256, entry, action) as last recorded; the listing files
    behind digested entries (path → sha256); and folders an old digest-only entry covers without naming its files."""
    latest: dict[str, tuple[str, int, str]] = {}
    listings: dict[str, str] = {}
    vague: list[str] = []
    for entry in entries:
        outputs = entry.get("outputs") or {}
        files = [(f.get("path"), f.get("sha256")) for f in outputs.get("files") or []]
        if "files" not in outputs and outputs.get("count"):
            listing = outputs.get("listing")
            listed = _listing(ws, listing, outputs.get("digest")) if listing else None
            if listed is not None:
                listings[listing] = outputs["digest"]
                files = listed
            elif listing:
                listings[listing] = outputs.get("digest", "")  # missing or changed: the file check says so
            else:  # logged by a verify that kept only the digest: these files cannot be checked one by one
                inputs = (entry.get("inputs") or {}).get("files") or []
                vague.append(f"frames/{inputs[0]['sha256'][:16]}/" if entry.get("action") == "extract" and inputs
                             else {"pull": "exports/", "report": "reports/"}.get(entry.get("action"), ""))
        for path, sha in files:
            if isinstance(path, str) and not path.startswith("/") and path.startswith(KEPT):
                latest[path] = (sha, entry.get("seq", 0), entry.get("action", "?"))
    return latest, listings, [v for v in vague if v]


def _listing(ws: Any, listing: str, digest: str | None) -> list[tuple[str, str]] | None:
    """The (path, sha256) pairs of an entry's listing file; None when it is missing or not the one the entry digested."""
    path = ws.path(listing)
    text = path.read_bytes() if path.is_file() else b""
    if hashlib.sha256(text).hexdigest() != digest:
        return None
    return [tuple(reversed(line.split("  ", 1))) for line in text.decode(errors="replace").splitlines()]  # type: ignore[misc]


def _against_log(ws: Any, result: AuditResult, expected: dict[str, str], entries: list[dict[str, Any]]) -> None:
    """Every file the log recorded must still be held with the hash last recorded; every held file must be in the log."""
    latest, _, vague = logged_files(ws, entries)
    for path, (sha, seq, action) in sorted(latest.items()):
        held = expected.get(path)
        if held is None:
            if path.startswith("reports/report-assets/") and not ws.path(path).exists():
                continue  # a picture a later Markdown report no longer shows, pruned
            result.removed.append(path)
            result.why[path] = f"custody.log entry {seq} ({action}) recorded it; the workspace no longer does"
        elif held != sha:
            result.rewritten.append(path)
            result.why[path] = (f"custody.log entry {seq} ({action}) recorded sha256 {sha[:16]}…; "
                                f"the workspace now records {held[:16]}…")
    unsure, interrupted = 0, 0
    intent = current_intent(ws)
    before = set(intent.get("unlogged_before") or ()) if intent else set()
    for path in sorted(expected):
        if path in latest or path.startswith(("timestamps/", f"{LISTINGS}/")):
            continue
        if any(path.startswith(prefix) for prefix in vague):
            unsure += 1
            continue
        result.unlogged.append(path)
        if intent and explains(intent, path, before):
            interrupted += 1
            result.why[path] = (f"written by `verify {intent.get('command')}` (started {intent.get('started_at')}), which "
                                "stopped before logging it: run it again to complete its entry")
        else:
            result.why[path] = ("no custody.log entry records it and no interrupted verify run explains it (added behind "
                                "verify's back?); once a person has checked it: verify audit --accept FILE --note WHY")
    if interrupted:
        result.notes.append(f"{interrupted} file(s) were written by `verify {intent.get('command')}` (pid {intent.get('pid')}, "
                            f"started {intent.get('started_at')}), which did not finish: the next writing command logs them")
    if unsure:
        result.notes.append(f"{unsure} files are covered by log entries that give only a digest of their listing (an "
                            "earlier verify); they were checked against the workspace, not one by one against the log")


def unlogged_files(ws: Any, entries: list[dict[str, Any]] | None = None) -> list[tuple[str, str]]:
    """Files the workspace records and holds that no log entry records: (path, sha256), sorted."""
    latest, _, vague = logged_files(ws, read_entries(ws) if entries is None else entries)
    return sorted((path, sha) for path, sha in manifest(ws).items()
                  if path not in latest and sha and not path.startswith(("timestamps/", f"{LISTINGS}/"))
                  and not any(path.startswith(prefix) for prefix in vague) and ws.path(path).is_file())


def current_intent(ws: Any) -> dict[str, Any] | None:
    """The intent of the command now writing, or of one killed (or failed) before it finished; None: none open."""
    raw = ws.get_meta(INTENT)
    try:
        intent = json.loads(raw) if raw else None
    except ValueError:
        return None
    return intent if isinstance(intent, dict) else None


def explains(intent: dict[str, Any], path: str, before: set[str] | None = None) -> bool:
    """Whether ``intent``'s run may have written ``path``: inside its scope, and not already unlogged when it began."""
    if before is None:
        before = set(intent.get("unlogged_before") or ())
    return path.startswith(tuple(intent.get("scope") or ())) and path not in before


def begin(ws: Any, command: str = "") -> dict[str, Any] | None:
    """Under the write lock, before ``command`` writes: complete the entry of a run that stopped between committing
    files and logging them, then record this run's intent. Return the "recovered" entry (None: nothing to complete).

    Only files the open intent explains are logged: inside that run's scope and not already unlogged when it began.
    Any other unlogged file stays unlogged, and ``audit`` fails on it until a person runs ``accept``.
    Nothing is recorded in a workspace without a log (made by ``Workspace.create``, not ``verify init``).
    """
    if not ws.path(LOG).exists():
        return None
    unlogged = unlogged_files(ws)
    interrupted = current_intent(ws)
    before = set(interrupted.get("unlogged_before") or ()) if interrupted else set()
    done = [(p, s) for p, s in unlogged if interrupted and explains(interrupted, p, before)]
    entry = None
    if done and interrupted:
        run = {k: interrupted.get(k) for k in ("command", "started_at", "pid", "os_user", "host", "head")}
        entry = record(ws, "recovered", outputs=done, intent=run,
                       why=f"committed by `verify {run['command']}` (started {run['started_at']}), which stopped "
                           "before logging them")
    logged = {p for p, _ in done}
    intent = {"command": command or "?", "scope": list(SCOPES.get(command, KEPT)), "started_at": now_utc(),
              "pid": os.getpid(), "os_user": _os_user(), "host": socket.gethostname(), "head": ws.get_meta(HEAD),
              "unlogged_before": [p for p, _ in unlogged if p not in logged]}
    with ws.transaction():
        ws.set_meta(INTENT, json.dumps(intent, sort_keys=True))
    return entry


def end(ws: Any) -> None:
    """The command finished (everything it committed is logged): its intent is closed."""
    if not ws.path(LOG).exists():
        return
    with ws.transaction():
        ws.set_meta(INTENT, None)


def _relative(ws: Any, name: str) -> str | None:
    """``name`` (relative to the workspace, to the current folder, or absolute) as a path inside the workspace; None: outside."""
    given = Path(name)
    if not given.is_absolute():
        given = ws.root / given if (ws.root / given).exists() or not given.exists() else Path.cwd() / given
    for root, full in ((Path(os.path.abspath(ws.root)), Path(os.path.abspath(given))), (ws.root.resolve(), given.resolve())):
        try:
            relative = str(full.relative_to(root))
        except ValueError:
            continue
        return relative if relative != "." else None
    return None


def accept(ws: Any, names: list[str], note: str = "") -> dict[str, Any]:
    """Log a person's acceptance of files the audit finds UNLOGGED, as one "accept" entry; return it.

    Every file must be in the workspace, recorded by it, held with its recorded sha256, and in no log entry;
    otherwise nothing is logged.

    Raises:
        NotAcceptable: a file is outside the workspace, not recorded by it, changed, or not unlogged.
    """
    with ws.lock(command="accept"):  # held by the caller already (re-entrant), or taken here for a library caller
        return _accept(ws, names, note)


def _accept(ws: Any, names: list[str], note: str) -> dict[str, Any]:
    unlogged = dict(unlogged_files(ws))
    expected = manifest(ws)
    chosen: dict[str, str] = {}
    for name in names:
        relative = _relative(ws, name)
        if relative is None:
            raise NotAcceptable(f"{name}: not a file in the workspace {ws.root}; only its UNLOGGED files can be accepted")
        if relative not in unlogged:
            if not ws.path(relative).is_file() or relative not in expected:
                why = "the workspace does not record it" if ws.path(relative).is_file() else "there is no such file"
            elif file_sha256(ws.path(relative)) != expected[relative]:
                why = "it does not match its record (CHANGED)"
            else:
                why = "the custody log already records it"
            raise NotAcceptable(f"{relative}: not an UNLOGGED file ({why}); only files `verify audit` lists as UNLOGGED "
                                "can be accepted")
        if file_sha256(ws.path(relative)) != unlogged[relative]:
            raise NotAcceptable(f"{relative}: it does not match its record (CHANGED), so it cannot be accepted")
        chosen[relative] = unlogged[relative]
    if not chosen:
        raise NotAcceptable("no file given to accept")
    return record(ws, "accept", outputs=sorted(chosen.items()), by=_os_user(), note=note,
                  why="accepted by a person after checking: no logged verify action wrote these files")


def accepted(ws: Any) -> list[dict[str, Any]]:
    """Every file a person accepted (``accept``), oldest first: file, sha256, accepted_at, by, host, note, log_seq."""
    found = []
    for entry in read_entries(ws):
        if entry.get("action") != "accept":
            continue
        outputs = entry.get("outputs") or {}
        files = [(f.get("path"), f.get("sha256")) for f in outputs.get("files") or []]
        if "files" not in outputs and outputs.get("listing"):
            files = _listing(ws, outputs["listing"], outputs.get("digest")) or []
        details = entry.get("details") or {}
        for path, sha in files:
            found.append({"file": path, "sha256": sha, "accepted_at": entry.get("at"),
                          "by": details.get("by") or entry.get("os_user"), "host": entry.get("host"),
                          "note": details.get("note") or "", "log_seq": entry.get("seq")})
    return found


def audit(ws: Any, ca_file: Path | None = None, heads: Iterable[str] = (),
          against: Iterable[tuple[str, str]] = ()) -> AuditResult:
    """Re-hash every stored artefact against the manifest; find the unexpected; check the log, the manifest
    against the log, the time-stamp tokens, and any head recorded elsewhere (``heads``: "SEQ:HASH").

    ``against``: (where it comes from, "SEQ:HASH") for each report the editor holds: a head the log no longer
    holds, or holds with another hash, is a rollback (``rolled_back``; ``RolledBack``, exit 18).

    Raises:
        OptionError: ``ca_file`` holds no usable certificate, or a head is not SEQ:HASH.
    """
    from verify import timestamps
    from verify.errors import OptionError

    result = AuditResult()
    expected = manifest(ws)
    entries = read_entries(ws)
    _, listings, _ = logged_files(ws, entries)
    expected.update(listings)
    for relative, sha in sorted(expected.items()):
        path = ws.path(relative)
        result.checked += 1
        if not path.is_file():
            result.missing.append(relative)
        elif file_sha256(path) != sha:
            result.changed.append(relative)
    last_seq = entries[-1].get("seq", 0) if entries else 0
    for area in AREAS:
        for path in sorted(ws.path(area).rglob("*")):
            if path.is_file() or path.is_symlink():
                relative = str(path.relative_to(ws.root))
                if relative == f"{LISTINGS}/{last_seq + 1:06d}-outputs.sha256":
                    result.notes.append(f"{relative}: written for an entry that was never logged (verify was interrupted)")
                elif relative not in expected:
                    result.unexpected.append(relative)
    result.log = check_log(ws)
    for entry in entries:
        count = (entry.get("outputs") or {}).get("count")
        details = entry.get("details") or {}
        if entry.get("action") == "recovered":
            run = details.get("intent") or {}
            by = f"`verify {run.get('command')}` (started {run.get('started_at')})" if run else "a run"
            result.notes.append(f"custody.log entry {entry.get('seq')} logged {count} file(s) after the fact: written by "
                                f"{by} that stopped before logging them (or entries removed by hand; only time-stamped "
                                "heads tell the two apart)")
        elif entry.get("action") == "accept":
            result.notes.append(f"custody.log entry {entry.get('seq')}: {count} file(s) no verify action wrote were accepted "
                                f"by {details.get('by') or entry.get('os_user')} at {entry.get('at')}"
                                + (f" ({details['note']})" if details.get("note") else ""))
    if ws.path(LOG).exists() and not any("not a log entry" in p for p in result.log.problems):
        _against_log(ws, result, {k: v for k, v in expected.items() if k not in listings}, entries)
    else:
        result.notes.append("files were not checked against the custody log: the log is missing or damaged")
    hashes = {e.get("seq"): e.get("hash") for e in entries}
    for head in heads:
        seq, _, digest = head.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise OptionError("head", f"{head!r} is not SEQ:SHA256 (e.g. from a report's custody_head)")
        if hashes.get(int(seq)) != digest:
            result.log.problems.append(f"entry {seq} with hash {digest[:16]}… (recorded outside the workspace) is "
                                       + ("not in the log: entries were cut off" if int(seq) not in hashes
                                          else "not the log's entry {seq}: the log was rewritten".format(seq=seq)))
    for origin, head in against:
        seq, _, digest = head.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise OptionError("against", f"{origin}: its custody_head {head!r} is not SEQ:SHA256")
        if hashes.get(int(seq)) != digest:
            result.rolled_back.append(
                f"{origin} was built from custody.log entry {seq} ({digest[:16]}…), which the workspace "
                + (f"no longer holds (the log ends at entry {max(hashes, default=0)}): entries were cut off"
                   if int(seq) not in hashes else "holds with another hash: the log was rewritten"))
    stamped = [e for e in entries if isinstance(e.get("timestamps"), dict)]
    result.timestamps = timestamps.check(ws, hashes, ca_file, stamped, entries[-1] if entries else None)
    return result


def require_manifest(root: Path) -> None:
    from verify.workspace import DB_NAME

    if not (root / DB_NAME).is_file():
        raise ManifestMissing(f"{root}: no manifest ({DB_NAME}) to audit against: this is not a verify workspace, "
                              "or its database was deleted; restore it from a backup")
