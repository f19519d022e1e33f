"""The one URL check: which strings verify treats as links (case files, ingest, the report)."""

from __future__ import annotations

import re
from typing import Any

WEB_URL = re.compile(r"^https?://[^\s\"'<>`]+$", re.IGNORECASE)
_SCHEME = re.compile(r"^https?://", re.IGNORECASE)


def is_web_url(value: object) -> bool:
    """An http(s) URL with no space, quote or angle bracket: the only links verify records or renders."""
    return isinstance(value, str) and bool(WEB_URL.match(value))


def looks_like_link(text: str) -> bool:
    """Whether a command-line item is meant as a link (http/https), not a file; ``is_web_url`` then vets it."""
    return bool(_SCHEME.match(text.strip()))


def safe_url(url: Any) -> str | None:
    """The URL if it is http(s), else None: nothing else becomes a link."""
    return url if is_web_url(url) else None
