"""The one URL check: which strings verify treats as links (case files, ingest, the report), and the one place
a link's login (``user:password@``) is taken out before anything is stored or printed."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# no space, quote, angle bracket or backtick; no control character, bidirectional override or undecodable byte
WEB_URL = re.compile(r"^https?://[^\s\"'<>`\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                     r"\ud800-\udfff]+$", re.IGNORECASE)
_SCHEME = re.compile(r"^https?://", re.IGNORECASE)
_LOGIN = re.compile(r"^([a-z][a-z0-9+.-]*://)([^/?#]*)@", re.IGNORECASE)


def is_web_url(value: object) -> bool:
    """An http(s) URL with no space, quote, angle bracket or control character: the only links verify records or renders."""
    return isinstance(value, str) and bool(WEB_URL.match(value))


def looks_like_link(text: str) -> bool:
    """Whether a command-line item is meant as a link (http/https), not a file; ``is_web_url`` then vets it."""
    return bool(_SCHEME.match(text.strip()))


def safe_url(url: Any) -> str | None:
    """The URL if it is http(s), else None: nothing else becomes a link."""
    return url if is_web_url(url) else None


def has_login(url: object) -> bool:
    """Whether a URL carries a login (``user@`` or ``user:password@`` before its host)."""
    return isinstance(url, str) and bool(_LOGIN.match(url.strip()))


def without_login(url: str) -> str:
    """The URL with its login (``user:password@``) taken out; any other URL as it is.

    Everything up to the last ``@`` before the path is the login (a password may hold ``@``)."""
    m = _LOGIN.match(url)
    if not m:
        return url
    return m.group(1) + url[m.end():]


LOGIN_DROPPED = ("the login (user:password@) in {what} was taken out: verify never stores or prints credentials; "
                 "{how}")
