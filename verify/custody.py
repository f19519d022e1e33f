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
from verify.errors import CustodyError, IntegrityError, ManifestMissing

LOG = "custody.log"
HEAD = "custody_head"
GENESIS = "0" * 64
LISTED = 100  # outputs listed one by one up to this many; beyond, a count and a digest
AREAS = ("evidence", "frames", "exports", "reports")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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
    path = ws.path(LOG)
    last = _last_entry(path)
    entry = {
        "seq": (last["seq"] + 1) if last else 1,
        "at": _now(),
        "action": action,
        "verify": __version__,
        "os_user": _os_user(),
        "host": socket.gethostname(),
        "inputs": described(inputs or []),
        "outputs": described(outputs or []),
        "details": details,
        "prev": last["hash"] if last else GENESIS,
    }
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
    return entry


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


def _now() -> str:
    from verify.workspace import now_utc

    return now_utc()


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
    log: LogCheck = field(default_factory=LogCheck)

    @property
    def files_ok(self) -> bool:
        return not (self.changed or self.missing or self.unexpected)

    def raise_for_problems(self) -> None:
        if not self.log.ok:
            raise CustodyError(f"custody log: {self.log.problems[0]}"
                               + (f" (and {len(self.log.problems) - 1} more)" if len(self.log.problems) > 1 else ""))
        if not self.files_ok:
            raise IntegrityError(f"{len(self.changed)} changed, {len(self.missing)} missing, {len(self.unexpected)} unexpected "
                                 f"of {self.checked} stored files (listed above)")


def manifest(ws: Any) -> dict[str, str]:
    """Every artefact the workspace says it holds: relative path → sha256."""
    expected: dict[str, str] = {}
    for video in ws.videos():
        expected[video["evidence"]] = video["sha256"]
    for capture in ws.db.execute("SELECT info_file, record FROM captures").fetchall():
        sha = json.loads(capture[1]).get("info_sha256")
        if sha:
            expected[capture[0]] = sha
    for frame in ws.db.execute("SELECT file, sha256 FROM frames").fetchall():
        expected[frame[0]] = frame[1]
    for export in ws.exports():
        expected[export["file"]] = export["sha256"]
    expected.update(json.loads(ws.get_meta("reports_manifest") or "{}"))
    expected["case.yaml"] = ws.get_meta("case_sha256") or ""
    return expected


def audit(ws: Any) -> AuditResult:
    """Re-hash every stored artefact against the manifest; find the unexpected; check the log."""
    result = AuditResult()
    expected = manifest(ws)
    for relative, sha in sorted(expected.items()):
        path = ws.path(relative)
        result.checked += 1
        if not path.is_file():
            result.missing.append(relative)
        elif file_sha256(path) != sha:
            result.changed.append(relative)
    for area in AREAS:
        for path in sorted(ws.path(area).rglob("*")):
            if path.is_file() or path.is_symlink():
                relative = str(path.relative_to(ws.root))
                if relative not in expected:
                    result.unexpected.append(relative)
    result.log = check_log(ws)
    return result


def require_manifest(root: Path) -> None:
    from verify.workspace import DB_NAME

    if not (root / DB_NAME).is_file():
        raise ManifestMissing(f"{root}: no manifest ({DB_NAME}) to audit against: this is not a verify workspace, "
                              "or its database was deleted; restore it from a backup")
