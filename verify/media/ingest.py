"""Ingest: take a video in as evidence, from a file or from a link.

A link is captured with yt-dlp (``verify.media.links``) and the downloaded bytes are then ingested
like a file, with the platform's metadata as provenance and its info JSON archived beside the
evidence. For each file: decide by its content (not its name) whether it is a video container, refuse
playlists and concat lists (they make the decoder read other files), copy its bytes once into
``evidence/`` while hashing them, make that copy read-only, probe it (``verify.media.decode``) in an
isolated process, and record its provenance. One bad file is one failed result; the others
go on.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from verify import custody
from verify.case import SIDES, Source, iso_datetime
from verify.clock import now_utc
from verify.errors import MediaError, OptionError
from verify.files import atomic_write
from verify.media.isolate import report_failure, run_isolated
from verify.media.decode import probe
from verify.media.links import (
    LinkItem,
    capture,
    capture_record,
    provenance_from_info,
    read_info_json,
    sidecar_for,
    source_id_for,
)
from verify.records import Capture, Video
from verify.terminal import from_bytes, shown
from verify.urls import LOGIN_DROPPED, has_login, is_web_url, looks_like_link, without_login
from verify.workspace import Workspace, locked

log = logging.getLogger(__name__)

CHUNK = 1 << 20
PROBE_TIMEOUT_S = 60.0

# Leading bytes of the containers FFmpeg reads. Anything else is refused.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "mp4/mov"),
    (4, b"moov", "mov"),
    (4, b"mdat", "mov"),
    (4, b"wide", "mov"),
    (4, b"free", "mov"),
    (0, b"\x1a\x45\xdf\xa3", "matroska/webm"),
    (0, b"FLV", "flv"),
    (0, b"OggS", "ogg"),
    (0, b"\x00\x00\x01\xba", "mpeg-ps"),
    (0, b"\x00\x00\x01\xb3", "mpeg-video"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf/wmv"),
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
)
# Text formats that FFmpeg would follow to other files or URLs.
_REFERENCING = (b"#EXTM3U", b"ffconcat", b"#EXT-X-", b"<?xml", b"[playlist]", b"file '", b"file \"")


@dataclass
class IngestResult:
    path: str
    ok: bool
    sha256: str = ""
    source_id: str = ""
    known: bool = False
    message: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def sniff_container(head: bytes) -> str:
    """Name the container from a file's first bytes, or raise MediaError saying what it is instead."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise MediaError("empty file (0 bytes)")
    if any(stripped.startswith(sig) for sig in _REFERENCING):
        raise MediaError("a playlist or concat list, which would make the decoder read other files; ingest the media it points to instead")
    for offset, signature, name in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return name
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if len(head) > 376 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47:
        return "mpeg-ts"
    if stripped[:1] in (b"<", b"{", b"["):
        raise MediaError("a text/HTML/JSON document, not a video; save the video itself (e.g. with yt-dlp)")
    if head[:3] == b"\xff\xd8\xff" or head[:8] == b"\x89PNG\r\n\x1a\n":
        raise MediaError("a still image, not a video")
    raise MediaError("not a recognised video container (mp4, mov, mkv, webm, avi, flv, ts, ogg, wmv, gif)")


def _copy_and_hash(src: Path, evidence_dir: Path) -> tuple[str, Path, int, str]:
    """Copy ``src`` into ``evidence_dir`` while hashing what was copied; return (sha256, temp path, size, container).

    The source must hold still: its size, modification time and inode are compared before and after, and the
    bytes copied must be as many as it had, so a file still downloading or truncated meanwhile is refused
    rather than kept as a torn copy. Nothing is left behind on any failure (a full disk included).

    Raises:
        MediaError: not a video container, changed while copied, unreadable, or the disk is full.
    """
    digest = hashlib.sha256()
    tmp = evidence_dir / f".incoming-{os.getpid()}-{hashlib.sha256(os.fsencode(src)).hexdigest()[:16]}"
    size = 0
    container = ""
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            before = os.fstat(fin.fileno())
            while True:
                try:
                    chunk = fin.read(CHUNK)
                except OSError as exc:
                    raise MediaError(f"cannot read: {exc.strerror}")
                if not chunk:
                    break
                if size == 0:
                    container = sniff_container(chunk[:4096])
                digest.update(chunk)
                _write(fout, chunk)
                size += len(chunk)
            if size == 0:
                sniff_container(b"")
            _write(fout, b"", flush=True)
            after, now = os.fstat(fin.fileno()), os.stat(src)
        changed = [what for what, a, b in (("size", before.st_size, after.st_size), ("modification time", before.st_mtime_ns,
                                                                                       after.st_mtime_ns),
                                            ("file (replaced)", (before.st_dev, before.st_ino), (now.st_dev, now.st_ino)),
                                            ("size on disk now", before.st_size, now.st_size)) if a != b]
        if changed or size != before.st_size:
            raise MediaError(f"changed while it was being copied ({', '.join(changed) or 'fewer bytes than its size'}: "
                             f"{before.st_size} bytes before, {size} copied, {now.st_size} now); nothing was kept; "
                             "ingest it again once it is complete")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest.hexdigest(), tmp, size, container


def _write(fout: Any, chunk: bytes, flush: bool = False) -> None:
    try:
        fout.write(chunk)
        if flush:
            fout.flush()
            os.fsync(fout.fileno())
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise MediaError("no space left on the workspace's disk; nothing was kept; free space and ingest it again")
        raise MediaError(f"cannot write the evidence copy: {exc.strerror}")


def resolve_source(
    ws: Workspace, source_id: str | None, overrides: dict[str, Any], sha256: str, info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The provenance record for a video: the case's source, then what the platform says
    (yt-dlp's info, filling only fields the case leaves empty), then fields given on the command line."""
    case = ws.case
    for key, value in overrides.items():  # bytes that are not UTF-8 (argv): refused as the other bad values are
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str) and from_bytes(item)[0] != item:
                raise OptionError(key, f"'{shown(item)}' holds bytes that are not UTF-8 text; type it again in UTF-8")
    if source_id:
        source = case.source(source_id)
        if source is None:
            known = ", ".join(s.id for s in case.sources) or "none"
            raise OptionError("source_id", f"{source_id!r} is not a source of case {case.id!r} (known: {known}); add it to the case file or leave it out")
    elif info:
        source = Source(id=source_id_for(info), title=info.get("title") or "Captured post")
    else:
        source = Source(id=f"unattributed-{sha256[:8]}", title="Unattributed video (provenance not recorded)")
    provenance = source.provenance()
    for key, value in (provenance_from_info(info) if info else {}).items():
        if value and not provenance.get(key):
            provenance[key] = value
    for key, value in overrides.items():  # a flag not given (graphic=False) keeps the case's value
        if value not in (None, "", (), False):
            provenance[key] = list(value) if isinstance(value, tuple) else value
    if overrides.get("posted_at") and iso_datetime(overrides["posted_at"]) is None:
        raise OptionError("posted_at", f"{overrides['posted_at']!r} is not an ISO 8601 date or time; write e.g. 2021-07-14 "
                                       "or 2021-07-14T09:12Z")
    if provenance["side"] not in SIDES:
        raise OptionError("side", f"{provenance['side']!r} is not allowed; use one of {', '.join(SIDES)}")
    unknown = [c for c in provenance["claims"] if c not in {c.id for c in case.claims}]
    if unknown:
        raise OptionError("claims", f"{unknown[0]!r} is not a claim of case {case.id!r}; use one of {', '.join(c.id for c in case.claims)}")
    url = provenance.get("url")
    if has_login(url):  # a case file's, a platform's or an option's: never stored (``ingest`` says so once)
        url = provenance["url"] = without_login(url)
    if url and not is_web_url(url):
        raise OptionError("url", f"{url!r}: only http:// or https:// links (without spaces, quotes or <>) are recorded")
    return provenance


def ingest_file(
    ws: Workspace, path: str | Path, source_id: str | None = None, overrides: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None, capture: dict[str, Any] | None = None,
) -> IngestResult:
    """Ingest one video file into the workspace; never raises for a bad file, returns ok=False.

    ``info``: yt-dlp's info dict for the file (from a download or an ``.info.json``);
    ``capture``: the capture record (``links.capture_record``) to keep with it.
    """
    src = Path(path)
    name, raw_name = from_bytes(str(src))  # a name that is not UTF-8 is kept as \xNN text, its bytes in hex
    result = IngestResult(path=name, ok=False)
    info, capture = _clean(info), _clean(capture)
    try:
        if not src.exists():
            if src.is_symlink():
                raise MediaError("a symbolic link to nothing (or to itself, in a loop); give the video file itself")
            raise MediaError("file not found")
        if not src.is_file():
            raise MediaError("not a regular file")
        sha, tmp, size, container = _copy_and_hash(src, ws.path("evidence"))
    except MediaError as exc:
        result.message = str(exc)
        return result
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            result.message = "a symbolic link that loops back on itself; give the video file itself"
        else:
            result.message = f"cannot read: {exc.strerror}"
        return result
    result.sha256 = sha
    existing = ws.video(sha)
    if existing:
        tmp.unlink(missing_ok=True)
        result.ok, result.known, result.source_id = True, True, existing.source_id
        result.message = f"already ingested as source {existing.source_id} (sha256 {sha[:12]}…)"
        if capture:
            _keep_capture(ws, sha, info or {}, capture)
            result.message += "; this capture is recorded with it"
        return result
    try:
        provenance = resolve_source(ws, source_id, overrides or {}, sha, info)
    except OptionError as exc:  # a value from a link list's row (options given to ``ingest`` are checked up front)
        tmp.unlink(missing_ok=True)
        result.message = str(exc)
        return result
    outcome = run_isolated(probe, (str(tmp),), PROBE_TIMEOUT_S)
    if not outcome.ok:
        report_failure(str(src), outcome, shown=True)
        tmp.unlink(missing_ok=True)
        result.message = outcome.error
        return result
    suffix = src.suffix.lower() if re.fullmatch(r"\.[a-z0-9]{1,5}", src.suffix.lower()) else ".bin"
    evidence = ws.path("evidence") / f"{sha}{suffix}"
    os.replace(tmp, evidence)
    os.chmod(evidence, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    metadata = {**outcome.value, "container": container, "size_bytes": size}
    original, raw_original = from_bytes(str(src.resolve()))
    if raw_original:  # lossless: the exact bytes of a name that is not UTF-8
        metadata["original_path_bytes"] = raw_original
    try:
        ws.add_video(Video(sha256=sha, source_id=provenance["source_id"], original_path=original,
                           evidence=str(evidence.relative_to(ws.root)), size=size, ingested_at=now_utc(), metadata=metadata,
                           provenance=provenance))
    except BaseException:  # e.g. the disk filled up: no evidence copy without its record
        evidence.unlink(missing_ok=True)
        raise
    custody.record(ws, "ingest", inputs=[(original, sha)], outputs=[(str(evidence.relative_to(ws.root)), sha)],
                   source_id=provenance["source_id"], size=size, container=container,
                   **({"original_path_bytes": raw_original} if raw_original else {}))
    if capture or info:
        _keep_capture(ws, sha, info or {}, capture or capture_record(None, info or {}, now_utc(), "info JSON given with the file"))
    result.ok, result.source_id, result.metadata = True, provenance["source_id"], metadata
    result.message = f"ingested as source {provenance['source_id']} (sha256 {sha[:12]}…, {metadata['width']}×{metadata['height']}, {metadata['codec'] or 'unknown codec'})"
    return result


_LOGIN_IN_TEXT = re.compile(r"(?<=://)[^/?#\s@]*(?:@[^/?#\s@]*)*@")


def _clean(value: Any) -> Any:
    """What a platform or an info JSON gave, fit to store: logins taken out of any URL in it (user:password@), and
    bytes that are not UTF-8 (JSON's lone surrogates) written as \\xNN."""
    if isinstance(value, str):
        return from_bytes(_LOGIN_IN_TEXT.sub("", value))[0]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _keep_capture(ws: Workspace, sha: str, info: dict[str, Any], record: dict[str, Any]) -> None:
    """Archive the platform's info JSON (read-only, cookies removed) and record the capture."""
    number = len(ws.captures(sha)) + 1
    name = f"evidence/{sha}.capture{number}.info.json"
    data = json.dumps(info, indent=1, ensure_ascii=False, sort_keys=True).encode()
    atomic_write(ws.path(name), data, mode=0o444)
    record = {**record, "info_sha256": hashlib.sha256(data).hexdigest()}
    ws.add_capture(sha, name, record)
    custody.record(ws, "capture", inputs=[(record.get("url_given") or record.get("canonical_url") or "info JSON", sha)],
                   outputs=[(name, record["info_sha256"])], how=record.get("how"), canonical_url=record.get("canonical_url"),
                   title=info.get("title"), uploader=info.get("uploader"))


def ingest_link(
    ws: Workspace, url: str, source_id: str | None = None, overrides: dict[str, Any] | None = None,
    refresh: bool = False, max_bytes: int | None = None, cookies: Path | None = None,
) -> IngestResult:
    """Capture a post's video with yt-dlp and ingest it; never raises for a bad link.

    A link captured before (same URL as given, or same canonical URL) is not fetched again
    unless ``refresh``; a refresh is kept as a new capture, and as a new video if its bytes differ.
    """
    if has_login(url):
        url = without_login(url)
        log.warning(LOGIN_DROPPED.format(what=f"the link {shown(url)}",
                                         how="a platform that needs a login takes a cookies file (--cookies)"))
    result = IngestResult(path=url, ok=False)
    if not is_web_url(url):
        result.message = "not an http(s) link"
        return result
    known = ws.capture_of(url)
    if known and not refresh:
        return _already_captured(ws, result, known, "; --refresh captures it again")
    folder = Path(tempfile.mkdtemp(prefix=".link-", dir=ws.path("evidence")))
    try:
        try:
            got = capture(url, folder, max_bytes, cookies)
        except MediaError as exc:
            result.message = str(exc)
            return result
        canonical = got.info.get("webpage_url")
        again = ws.capture_of(canonical) if canonical and canonical != url else None
        if again and not refresh:
            return _already_captured(ws, result, again, f" (as {canonical})")
        record = capture_record(url, got.info, got.captured_at, "downloaded with yt-dlp")
        result = ingest_file(ws, got.path, source_id, overrides, got.info, record)
        result.path = url
        if result.ok and refresh and known:
            result.message = ("re-captured: " + ("the same bytes as before" if result.known else "new bytes, kept as a new video")
                              + f" (source {result.source_id}, sha256 {result.sha256[:12]}…)")
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _already_captured(ws: Workspace, result: IngestResult, earlier: Capture, note: str) -> IngestResult:
    video = ws.video(earlier.video_sha256)
    result.ok, result.known, result.sha256, result.source_id = True, True, video.sha256, video.source_id
    result.message = f"already captured {earlier.captured_at} as source {video.source_id}{note}"
    return result


def ingest_with_sidecar(
    ws: Workspace, path: str | Path, source_id: str | None, overrides: dict[str, Any], info_json: Path | None = None
) -> IngestResult:
    """Ingest a local file, taking provenance from a yt-dlp info JSON given or lying beside it."""
    sidecar = info_json or sidecar_for(Path(path))
    if sidecar is None:
        return ingest_file(ws, path, source_id, overrides)
    try:
        info = read_info_json(sidecar)
    except MediaError as exc:
        return IngestResult(path=from_bytes(str(path))[0], ok=False, message=str(exc))
    info = _clean(info)
    record = capture_record(info.get("original_url"), info, now_utc(),
                            f"info JSON {from_bytes(Path(sidecar).name)[0]} given with the file")
    return ingest_file(ws, path, source_id, overrides, info, record)


def _without_login(overrides: dict[str, Any]) -> dict[str, Any]:
    """The options with the login taken out of --url, said once."""
    url = overrides.get("url")
    if not has_login(url):
        return overrides
    log.warning(LOGIN_DROPPED.format(what="--url", how=f"recorded as {shown(without_login(url))}"))
    return {**overrides, "url": without_login(url)}


@locked("ingest")
def ingest(
    ws: Workspace,
    items: list[str | Path],
    source_id: str | None = None,
    overrides: dict[str, Any] | None = None,
    progress: Callable[[IngestResult], None] | None = None,
    info_json: Path | None = None,
    refresh: bool = False,
    max_bytes: int | None = None,
    cookies: Path | None = None,
) -> list[IngestResult]:
    """Ingest files and links; each result says ok or why not.

    Raises:
        OptionError: ``source_id`` or an override is not acceptable (checked before any input is taken in).
    """
    overrides = _without_login(overrides or {})
    resolve_source(ws, source_id, overrides, "0" * 64)  # the options hold for every input: check them once
    results = []
    for item in items:
        if isinstance(item, str) and looks_like_link(item):
            result = ingest_link(ws, item, source_id, overrides, refresh, max_bytes, cookies)
        else:
            result = ingest_with_sidecar(ws, item, source_id, overrides or {}, info_json)
        results.append(result)
        if progress:
            progress(result)
    return results


@locked("ingest")
def ingest_listed(
    ws: Workspace,
    items: list[LinkItem],
    source_id: str | None = None,
    overrides: dict[str, Any] | None = None,
    progress: Callable[[IngestResult], None] | None = None,
    refresh: bool = False,
    max_bytes: int | None = None,
    cookies: Path | None = None,
) -> list[IngestResult]:
    """Ingest the links of a link list (``links.read_link_list``); a row's source, side, claims and notes
    win over ``source_id`` and ``overrides``, and a bad value in a row fails that row only.

    Raises:
        OptionError: ``source_id`` or an override is not acceptable (checked before any link is fetched).
    """
    overrides = overrides or {}
    overrides = _without_login(overrides)
    resolve_source(ws, source_id, overrides, "0" * 64)
    results = []
    for item in items:
        given = {**overrides, "side": item.side or overrides.get("side"), "claims": item.claims or overrides.get("claims")}
        if item.notes:
            given["description"] = item.notes
        result = ingest_link(ws, item.url, item.source or source_id, given, refresh, max_bytes, cookies)
        results.append(result)
        if progress:
            progress(result)
    return results
