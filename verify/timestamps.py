"""Trusted timestamps (RFC 3161): anchoring the custody log, the evidence and the reports outside the workspace.

The custody log's hash chain shows that entries were not edited *relative to each other*; it
cannot show that the whole end of the log was not cut off and the workspace rewritten to
match. A time-stamp authority (TSA) can: it signs "this sha256 existed at this time" with a
key the workspace's owner does not hold. After each action verify asks the configured
authorities (none by default; `verify init CASE --tsa URL`) to stamp

- the new log entry's hash (kind ``head``): every entry before it is covered through the chain;
- each evidence copy and platform info file an ingest or capture wrote (kind ``evidence``);
- each report file (kind ``report``).

The message imprint is always the plain sha256 of the thing stamped (the entry's ``hash`` field,
or the file's sha256), so anyone can check a token with OpenSSL alone::

    openssl ts -verify -in timestamps/000012-head-ab12….tsr -digest <sha256> -CAfile tsa-ca.pem
    openssl ts -verify -in timestamps/000003-evidence-….tsr -data evidence/<sha256>.mp4 -CAfile tsa-ca.pem

Each token (the TSA's whole response, DER) is written read-only to ``timestamps/`` and recorded
in the workspace. ``check`` verifies them offline: the response is granted, the imprint is the
expected sha256, the signature and certificate chain verify against the CA certificates the
*user* supplies (never ones taken from the workspace), and each ``head`` token's entry is still
in the log with that hash. A TSA that does not answer costs a warning: the action stands, and
the next stamped entry covers it through the chain.

This is the one module that uses ``rfc3161-client`` (and ``cryptography`` to read certificates).
"""

from __future__ import annotations

import hashlib
import logging
import netrc
import os
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verify.errors import OptionError
from verify.files import atomic_write
from verify.urls import has_login, is_web_url, without_login

log = logging.getLogger(__name__)

FOLDER = "timestamps"
META = "tsa_urls"
ENV_USER, ENV_PASSWORD = "VERIFY_TSA_USER", "VERIFY_TSA_PASSWORD"  # an authority's login: never argv, never stored
TIMEOUT_S = 15.0
MAX_RESPONSE = 1 << 20  # a time-stamp response is a few KB
SHA256_OID = "2.16.840.1.101.3.4.2.1"
# AlgorithmIdentifier { id-sha256, NULL }, DER
_SHA256_ALGORITHM = bytes.fromhex("300d06096086480165030402010500")
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]*@")


def shown_url(url: str) -> str:
    """A URL fit to print or log: any user:password@ is replaced by ***@."""
    return _CREDENTIALS.sub("***@", url)


# --- configuration ---------------------------------------------------------------------------


def configured(ws: Any) -> list[str]:
    """The time-stamp authorities the workspace stamps with (empty: none, the default)."""
    import json

    return json.loads(ws.get_meta(META) or "[]")


def configure(ws: Any, urls: list[str]) -> None:
    """Set the authorities to stamp with (``[]`` or ``["none"]`` turns stamping off).

    A URL's login (``user:password@``) is taken out before it is stored: an authority that needs one gets it
    from ``VERIFY_TSA_USER`` and ``VERIFY_TSA_PASSWORD``, or from a netrc file (``$NETRC``, else ``~/.netrc``).

    Raises:
        OptionError: a URL is not http(s).
    """
    import json

    urls = [without_login(u) for u in urls if u.lower() != "none"]
    for url in urls:
        if not is_web_url(url):
            raise OptionError("tsa", f"{shown_url(url)!r} is not an http(s) URL of a time-stamp authority")
    ws.update_meta(**{META: json.dumps(urls) if urls else None})


# --- stamping ----------------------------------------------------------------------------------


def request_der(digest: bytes, nonce: int) -> bytes:
    """A TimeStampReq (RFC 3161 §2.4.1) for a sha256 ``digest``: version 1, the imprint, a nonce, certReq true.

    Built directly (a handful of DER bytes) because the imprint must be the sha256 itself: that is
    what makes a token checkable with ``openssl ts -verify -digest``/``-data`` and no verify at all.
    """
    if len(digest) != 32:
        raise ValueError("a sha256 digest is 32 bytes")
    imprint = _tlv(0x30, _SHA256_ALGORITHM + _tlv(0x04, digest))
    number = nonce.to_bytes(max(1, (nonce.bit_length() + 8) // 8), "big")  # room for the sign bit: always positive
    return _tlv(0x30, _tlv(0x02, b"\x01") + imprint + _tlv(0x02, number) + b"\x01\x01\xff")


def _tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def fetch_token(url: str, digest_hex: str) -> tuple[bytes, str]:
    """Ask one TSA to stamp ``digest_hex``; return (the response DER, its genTime in ISO 8601).

    The answer is checked before it is kept: granted, the imprint we asked for, our nonce.

    Raises:
        OSError: the TSA could not be reached or answered with an HTTP error.
        ValueError: the answer is not a granted time-stamp response for this request.
    """
    from rfc3161_client import PKIStatus, decode_timestamp_response

    digest = bytes.fromhex(digest_hex)
    nonce = secrets.randbits(63)
    request = urllib.request.Request(url, data=request_der(digest, nonce), method="POST",
                                     headers={"Content-Type": "application/timestamp-query"})
    with _opener(url).open(request, timeout=TIMEOUT_S) as answer:  # noqa: S310 (http(s) only, checked)
        data = answer.read(MAX_RESPONSE + 1)
    if len(data) > MAX_RESPONSE:
        raise ValueError("answer larger than 1 MB: not a time-stamp response")
    try:
        response = decode_timestamp_response(data)
    except Exception as exc:  # the library's own parse errors
        raise ValueError(f"not a time-stamp response ({type(exc).__name__})")
    if PKIStatus(response.status) != PKIStatus.GRANTED:
        raise ValueError(f"the authority refused (status {response.status}: {' '.join(response.status_string)})")
    info = response.tst_info
    if info.message_imprint.hash_algorithm.dotted_string != SHA256_OID or info.message_imprint.message != digest:
        raise ValueError("the token stamps another message than the one sent")
    if info.nonce != nonce:
        raise ValueError("the token's nonce is not the one sent (a replayed answer?)")
    return data, info.gen_time.isoformat()


def login_for(url: str) -> tuple[str, str] | None:
    """The login to answer an authority's HTTP authentication with: $VERIFY_TSA_USER and $VERIFY_TSA_PASSWORD,
    else the netrc file's entry for its host (``$NETRC``, else ``~/.netrc``); None: no login."""
    user, password = os.environ.get(ENV_USER), os.environ.get(ENV_PASSWORD)
    if user and password is not None:
        return user, password
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        entry = netrc.netrc(os.environ.get("NETRC") or None).authenticators(host)
    except (OSError, netrc.NetrcParseError):  # no netrc file, or one that cannot be read: no login
        return None
    return (entry[0], entry[2] or "") if entry and entry[0] else None


def _opener(url: str) -> urllib.request.OpenerDirector:
    """A URL opener that answers the authority's Basic authentication (a 401) with its login, if there is one;
    the login goes only to that URL's host, and only when asked."""
    login = login_for(url)
    if login is None or has_login(url):
        return urllib.request.build_opener()
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, url, *login)
    return urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords))


def stamp(ws: Any, kind: str, subject: str, digest_hex: str, log_seq: int) -> str | None:
    """Stamp one sha256 with the first configured TSA that answers; keep the token; return its file (None: not stamped)."""
    errors = []
    for url in configured(ws):
        try:
            data, gen_time = fetch_token(url, digest_hex)
        except (OSError, ValueError) as exc:
            errors.append(f"{shown_url(url)}: {getattr(exc, 'reason', None) or exc}")
            continue
        name = f"{FOLDER}/{log_seq:06d}-{kind}-{digest_hex[:16]}.tsr"
        ws.path(FOLDER).mkdir(exist_ok=True)
        atomic_write(ws.path(name), data, mode=0o444)
        ws.add_timestamp(name, kind, subject, digest_hex, log_seq, shown_url(url), gen_time, hashlib.sha256(data).hexdigest())
        return name
    if errors:
        log.warning("no time-stamp authority stamped %s (%s): %s; the next stamped log entry covers it through the chain",
                    subject, kind, "; ".join(errors))
    return None


def stamp_action(ws: Any, entry: dict[str, Any], outputs: list[tuple[str, str]]) -> list[str]:
    """After a logged action: stamp the entry's hash, and what an ingest, capture or report wrote."""
    if not configured(ws):
        return []
    made = [stamp(ws, "head", f"custody.log entry {entry['seq']}", entry["hash"], entry["seq"])]
    if entry["action"] in ("ingest", "capture", "report"):
        kind = "report" if entry["action"] == "report" else "evidence"
        for path, sha in outputs:
            if "/report-assets/" not in f"/{path}":
                made.append(stamp(ws, kind, path, sha, entry["seq"]))
    return [m for m in made if m]


# --- checking (offline) ------------------------------------------------------------------------


@dataclass
class TimestampCheck:
    tokens: int = 0
    verified: int = 0  # signatures and chains checked against the user's CA certificates
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    anchored_seq: int = 0  # the newest log entry a valid head token covers
    anchored_at: str = ""
    anchored_by: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "signatures_verified": self.verified, "problems": self.problems, "notes": self.notes,
                "anchored": {"log_entry": self.anchored_seq, "at": self.anchored_at, "tsa": self.anchored_by}
                if self.anchored_seq else None}


def load_certificates(path: Path) -> list[Any]:
    """The CA certificates (PEM, one or more) the user trusts for time-stamp authorities.

    Raises:
        OptionError: the file cannot be read or holds no PEM certificate.
    """
    from cryptography import x509

    try:
        data = Path(path).read_bytes()
        certificates = x509.load_pem_x509_certificates(data)
    except OSError as exc:
        raise OptionError("tsa_ca", f"{path}: cannot read it ({exc.strerror})")
    except ValueError:
        raise OptionError("tsa_ca", f"{path}: holds no PEM certificate; give the time-stamp authority's CA certificate(s) in PEM")
    return certificates


def verifier(certificates: list[Any]) -> Any:
    """An rfc3161-client verifier: self-signed certificates are roots, the others intermediates."""
    from rfc3161_client import VerifierBuilder

    builder = VerifierBuilder()
    roots = [c for c in certificates if c.issuer == c.subject]
    if not roots:
        raise OptionError("tsa_ca", "holds no self-signed (root) certificate; include the authority's root CA")
    for cert in roots:
        builder = builder.add_root_certificate(cert)
    for cert in certificates:
        if cert.issuer != cert.subject:
            builder = builder.add_intermediate_certificate(cert)
    return builder.build()


def check(ws: Any, log_hashes: dict[int, str], ca_file: Path | None = None, stamped: list[dict[str, Any]] | None = None,
          last: dict[str, Any] | None = None) -> TimestampCheck:
    """Check every stored token offline against what it stamps; with ``ca_file``, also its signature and chain.

    ``log_hashes``: seq → hash of every entry now in the custody log. ``stamped``: the log entries recorded while
    stamping was on (each says how many tokens the workspace held before it); ``last``: the log's last entry. A
    workspace holding fewer tokens than its log says it had, or whose stamping was turned off without a logged
    ``init --tsa none``, fails: its stamps were deleted.
    """
    from rfc3161_client import PKIStatus, VerificationError, decode_timestamp_response

    result = TimestampCheck()
    tokens = ws.timestamps()
    checker = verifier(load_certificates(ca_file)) if ca_file else None
    made = max(stamped or [], key=lambda e: e["timestamps"].get("tokens_before") or 0, default=None)
    if made and len(tokens) < (made["timestamps"].get("tokens_before") or 0):
        result.problems.append(
            f"custody.log entry {made.get('seq')} records {made['timestamps']['tokens_before']} time-stamp token(s) made "
            f"before it, but the workspace holds {len(tokens)}: stamps were deleted (the workspace may have been rolled "
            "back; check it against a report you hold: verify audit --against REPORT.json)")
    if last is not None and isinstance(last.get("timestamps"), dict) and not configured(ws):
        result.problems.append(
            f"custody.log entry {last.get('seq')} was stamped by {', '.join(shown_url(u) for u in last['timestamps'].get('tsa') or [])}, "
            "but the workspace no longer names a time-stamp authority, and no `verify init --tsa none` was logged: "
            "its time-stamp settings were removed behind verify's back")
    if not configured(ws) and not tokens and not result.problems:
        result.notes.append("the custody log is not externally anchored: no time-stamp authority is configured "
                            "(`verify init CASE --tsa URL`); the log proves its own order, not its completeness")
        return result
    for token in tokens:
        result.tokens += 1
        name = token["file"]
        try:
            data = ws.path(name).read_bytes()
            response = decode_timestamp_response(data)
        except OSError:
            result.problems.append(f"{name}: the time-stamp token is missing")
            continue
        except Exception:
            result.problems.append(f"{name}: not a time-stamp token any more (damaged or replaced)")
            continue
        digest = bytes.fromhex(token["digest"])
        imprint = response.tst_info.message_imprint
        if (PKIStatus(response.status) != PKIStatus.GRANTED or imprint.hash_algorithm.dotted_string != SHA256_OID
                or imprint.message != digest):
            result.problems.append(f"{name}: does not stamp the sha256 the workspace says it does ({token['subject']})")
            continue
        if checker is not None:
            try:
                checker.verify(response, digest)
                result.verified += 1
            except VerificationError as exc:
                result.problems.append(f"{name}: its signature or certificate chain does not verify against the given CA ({exc})")
                continue
        if token["kind"] == "head":
            held = log_hashes.get(token["log_seq"])
            if held != token["digest"]:
                result.problems.append(
                    f"{name}: the authority stamped custody.log entry {token['log_seq']} at {token['gen_time']}, but the log "
                    + ("no longer holds that entry: entries were cut off" if held is None else "holds another entry there: it was rewritten"))
                continue
            if token["log_seq"] >= result.anchored_seq:
                result.anchored_seq, result.anchored_at, result.anchored_by = token["log_seq"], token["gen_time"], token["tsa"]
    if checker is None and tokens:
        result.notes.append(f"{len(tokens)} time-stamp tokens match what they stamp; their signatures were not checked "
                            "(give the authority's CA certificate with --tsa-ca FILE)")
    last = max(log_hashes) if log_hashes else 0
    if result.anchored_seq and result.anchored_seq < last:
        result.notes.append(f"custody.log entries {result.anchored_seq + 1}–{last} are not externally anchored yet "
                            "(the authority did not answer, or no action has run since); the next stamped entry covers them")
    elif not result.anchored_seq and last:
        result.notes.append("no custody.log entry is externally anchored (no time-stamp authority answered yet)")
    return result
