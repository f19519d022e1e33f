"""Links: capture a post's video with yt-dlp and keep what the platform says about it.

The one module that imports yt-dlp (through its Python API, no subprocess). ``capture``
downloads the best single file with video into a folder and returns yt-dlp's info dict;
``provenance_from_info`` maps that dict onto the fields a verifier records. Cookies given for
logged-in platforms are passed to yt-dlp by path and never copied: every ``cookies`` value and
``Cookie`` header is removed from the info dict before it is archived.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from verify.case import ID_PATTERN, SIDES
from verify.clock import now_utc
from verify.urls import is_web_url, looks_like_link
from verify.errors import MediaError, VerifyError

FORMAT = "best[vcodec!=none][acodec!=none]/best[vcodec!=none]/bestvideo*+bestaudio/best"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


@dataclass
class Capture:
    url: str  # as given
    path: Path  # the downloaded file
    info: dict[str, Any]  # yt-dlp's info dict, JSON-ready, cookies removed
    captured_at: str  # UTC, ISO 8601


@dataclass
class LinkItem:
    """One line of a `verify ingest --from` list."""

    url: str
    source: str | None = None
    claims: tuple[str, ...] = ()
    side: str | None = None
    notes: str | None = None
    line: int = 0
    extra: dict[str, str] = field(default_factory=dict)


def yt_dlp_version() -> str:
    from yt_dlp.version import __version__

    return __version__


def parse_size(text: str) -> int:
    """'500M', '2G', '800k' or a number of bytes → bytes."""
    match = _SIZE.match(text or "")
    if not match:
        raise VerifyError(f"--max-size {text!r}: give a size like 500M, 2G or 800k")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


class _QuietLogger:
    """yt-dlp's messages stay out of the terminal; the failure reaches the user as one line."""

    def debug(self, msg: str) -> None:
        pass

    info = warning = debug

    def error(self, msg: str) -> None:
        pass


def without_cookies(value: Any) -> Any:
    """The info dict with every ``cookies`` entry and ``Cookie`` header removed."""
    if isinstance(value, dict):
        return {k: without_cookies(v) for k, v in value.items() if k.lower() not in ("cookies", "cookie", "set-cookie")}
    if isinstance(value, list):
        return [without_cookies(v) for v in value]
    return value


def capture(url: str, folder: Path, max_bytes: int | None = None, cookies: Path | None = None) -> Capture:
    """Download the post's video into ``folder`` with yt-dlp.

    Raises:
        MediaError: one line naming what went wrong (not found, private, unsupported site, no
            network, larger than ``max_bytes``, no video).
    """
    import yt_dlp

    if cookies is not None and not Path(cookies).is_file():
        raise VerifyError(f"--cookies {cookies}: file not found")
    options: dict[str, Any] = {
        "format": FORMAT,
        "outtmpl": str(folder / "capture.%(ext)s"),
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "logger": _QuietLogger(),
        "socket_timeout": 60,
        "retries": 2,
        "overwrites": True,
    }
    if max_bytes:
        options["max_filesize"] = max_bytes
    if cookies:
        options["cookiefile"] = str(cookies)
    captured_at = now_utc()
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=True)
            clean = without_cookies(ydl.sanitize_info(info))
    except yt_dlp.utils.DownloadError as exc:
        raise MediaError(_reason(str(exc))) from None
    except yt_dlp.utils.YoutubeDLError as exc:
        raise MediaError(_reason(str(exc))) from None
    if info is None:
        raise MediaError("yt-dlp found nothing to download")
    if info.get("_type") == "playlist":
        raise MediaError("the link is a playlist or a page with several videos; give the link of one post")
    files = [Path(d["filepath"]) for d in info.get("requested_downloads") or [] if d.get("filepath")]
    files = [f for f in files if f.is_file()]
    if not files:
        size = info.get("filesize") or info.get("filesize_approx")
        if max_bytes and size and size > max_bytes:
            raise MediaError(f"the video is larger than --max-size ({size:,} > {max_bytes:,} bytes)")
        raise MediaError("nothing was downloaded" + (f" (larger than --max-size {max_bytes:,} bytes?)" if max_bytes else ""))
    return Capture(url=url, path=files[0], info=clean, captured_at=captured_at)


def _reason(message: str) -> str:
    """yt-dlp's error as one short line."""
    line = message.replace("ERROR: ", "").splitlines()[0]
    line = re.sub(r"\s*\(caused by .*\)$", "", line)
    line = re.sub(r"^\[[\w:]+\] [^:]*: ", "", line)
    lowered = line.lower()
    if "unsupported url" in lowered:
        return "no video found on that page (unsupported site or not a video post)"
    if any(s in lowered for s in ("name or service not known", "temporary failure in name resolution", "connection refused",
                                  "network is unreachable", "timed out")):
        return f"cannot reach the site ({line}); check the network and the link"
    if "private" in lowered or "login" in lowered or "sign in" in lowered:
        return f"{line} (a private or login-only post: pass --cookies FILE from a logged-in browser)"
    return line[:300]


def read_info_json(path: Path) -> dict[str, Any]:
    """A yt-dlp ``.info.json`` file given with a video.

    Raises:
        MediaError: not readable, not JSON, or not a yt-dlp info dict.
    """
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MediaError(f"info JSON {path}: cannot read it ({exc})")
    if not isinstance(info, dict) or not any(k in info for k in ("extractor", "webpage_url", "id")):
        raise MediaError(f"info JSON {path}: not a yt-dlp info file (no extractor, webpage_url or id)")
    return without_cookies(info)


def sidecar_for(video: Path) -> Path | None:
    """``NAME.info.json`` beside ``NAME.EXT``, as yt-dlp writes it."""
    for candidate in (video.with_suffix(".info.json"), video.parent / f"{video.name}.info.json"):
        if candidate.is_file():
            return candidate
    return None


def provenance_from_info(info: dict[str, Any]) -> dict[str, Any]:
    """The provenance fields a verifier records, from a yt-dlp info dict (pure).

    ``posted_at`` comes from yt-dlp's ``timestamp`` (or ``upload_date``); for a plain web
    page yt-dlp may take it from the server's Last-Modified header, so the capture record
    keeps both fields as yt-dlp gave them.
    """
    posted = None
    if isinstance(info.get("timestamp"), (int, float)):
        posted = datetime.fromtimestamp(info["timestamp"], timezone.utc).isoformat(timespec="seconds")
    elif isinstance(info.get("upload_date"), str) and re.match(r"^\d{8}$", info["upload_date"]):
        d = info["upload_date"]
        posted = f"{d[:4]}-{d[4:6]}-{d[6:]}"
    url = info.get("webpage_url") or info.get("original_url")
    return {
        "url": url if is_web_url(url) else None,
        "platform": info.get("extractor_key") or info.get("extractor"),
        "uploader": info.get("uploader") or info.get("channel") or info.get("creator"),
        "posted_at": posted,
        "title": info.get("title") or info.get("fulltitle"),
    }


def capture_record(url: str | None, info: dict[str, Any], captured_at: str, how: str) -> dict[str, Any]:
    """What is kept about one capture (pure): the platform's own fields, verbatim."""
    from verify import __version__

    keys = ("webpage_url", "extractor", "extractor_key", "id", "display_id", "title", "description", "uploader",
            "uploader_id", "uploader_url", "channel", "channel_id", "timestamp", "upload_date", "duration",
            "format_id", "format", "ext", "width", "height", "filesize", "view_count", "like_count")
    return {
        "url_given": url,
        "canonical_url": info.get("webpage_url"),
        "captured_at": captured_at,
        "how": how,
        "platform_fields": {k: info[k] for k in keys if info.get(k) is not None},
        "tools": {"verify": __version__, "yt-dlp": yt_dlp_version()},
    }


def source_id_for(info: dict[str, Any]) -> str:
    """A case-style source id for a captured post: extractor and post id."""
    raw = f"{info.get('extractor_key') or info.get('extractor') or 'link'}-{info.get('id') or 'post'}".lower()
    slug = re.sub(r"[^a-z0-9_-]+", "-", raw).strip("-")[:60] or "link"
    slug = slug if slug[0].isalpha() else f"link-{slug}"
    return slug if ID_PATTERN.match(slug) else "link"


def read_link_list(path: Path) -> list[LinkItem]:
    """Links from a file: one URL a line (blank lines and # comments skipped), or a CSV with a
    ``url`` column and optional ``source``, ``claims`` (separated by ; or spaces), ``side``, ``notes``.

    Raises:
        VerifyError: unreadable file, or a CSV without a url column.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise VerifyError(f"--from {path}: cannot read it ({exc.strerror})")
    first = next((line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")), "")
    items = []
    if "," in first and not looks_like_link(first):
        reader = csv.DictReader(io.StringIO(text))
        fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
        if "url" not in fields:
            raise VerifyError(f"--from {path}: a CSV needs a 'url' column (found: {', '.join(fields) or 'none'})")
        for number, row in enumerate(reader, start=2):
            get = lambda name: (row.get(fields[name]) or "").strip() if name in fields else ""  # noqa: E731
            url = get("url")
            if not url or url.startswith("#"):
                continue
            side = get("side") or None
            if side and side not in SIDES:
                raise VerifyError(f"--from {path}: line {number}: side {side!r} is not one of {', '.join(SIDES)}")
            items.append(LinkItem(url=url, source=get("source") or None,
                                  claims=tuple(c for c in re.split(r"[;\s]+", get("claims")) if c),
                                  side=side, notes=get("notes") or None, line=number))
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if line and not line.startswith("#"):
                items.append(LinkItem(url=line, line=number))
    return items
