"""Frames in S3-compatible object storage (`--images s3`): the one module that uses boto3.

Configuration is the standard one, from the environment only (never argv): ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION`` / ``AWS_REGION`` and
``AWS_ENDPOINT_URL`` (an S3-compatible server: MinIO, SeaweedFS, Ceph…; unset for AWS itself), with
boto3's own fallbacks (``~/.aws``, instance roles) when the keys are not set; plus
``VERIFY_S3_BUCKET`` and ``VERIFY_S3_PREFIX``, where verify puts frames.

Objects are named by content, ``<prefix>/<sha256 of the JPEG>.jpg``, so the same frame is stored
once whatever workspace or project sends it, and an upload is never needed twice. Credentials are
held here and in the Label Studio storage only; no message, log or record carries them.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping
from urllib.parse import urlsplit

from verify.errors import OptionError, StorageAuthError, StorageError

ENV_BUCKET = "VERIFY_S3_BUCKET"
ENV_PREFIX = "VERIFY_S3_PREFIX"
DEFAULT_PREFIX = "verify/frames"
UPLOAD_THREADS = 8
PRESIGN_TTL_MIN = 60  # the presigned URLs Label Studio hands the reviewers' browsers stay valid this long


@dataclass(frozen=True)
class S3Settings:
    """Where frames go; the credentials are kept out of repr (and so out of any message)."""

    bucket: str
    prefix: str
    endpoint: str | None  # None: AWS's own endpoint for the region
    region: str | None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """The bucket and prefix as a URI, and the endpoint (no credentials), for messages and the custody log."""
        return f"s3://{self.bucket}/{self.prefix}/" + (f" at {self.endpoint}" if self.endpoint else "")


def configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether a bucket is configured (``auto`` then picks s3)."""
    return bool((env if env is not None else os.environ).get(ENV_BUCKET, "").strip())


def settings(env: Mapping[str, str] | None = None) -> S3Settings:
    """The S3 settings from the environment (pure over ``env``); OptionError when no bucket is named."""
    env = env if env is not None else os.environ
    bucket = env.get(ENV_BUCKET, "").strip()
    if not bucket:
        raise OptionError("images", f"s3 needs a bucket: give --s3-bucket or set {ENV_BUCKET} (and AWS_ENDPOINT_URL for a server other "
                                    "than AWS, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for its credentials)")
    endpoint = (env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or "").strip().rstrip("/") or None
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OptionError("images", "AWS_ENDPOINT_URL is not an http(s) address; set it to the S3 server's URL, "
                                        "e.g. https://minio.example.org:9000")
        if parts.username or parts.password:
            raise OptionError("images", "AWS_ENDPOINT_URL carries credentials in the address; remove them and set "
                                        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY instead")
    prefix = env.get(ENV_PREFIX, DEFAULT_PREFIX).strip().strip("/") or DEFAULT_PREFIX
    return S3Settings(bucket=bucket, prefix=prefix, endpoint=endpoint,
                      region=(env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip() or None,
                      access_key=env.get("AWS_ACCESS_KEY_ID") or None, secret_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
                      session_token=env.get("AWS_SESSION_TOKEN") or None)


def object_key(prefix: str, sha256: str) -> str:
    """The object holding a JPEG whose sha256 is ``sha256`` (pure)."""
    return f"{prefix}/{sha256}.jpg"


def object_uri(bucket: str, key: str) -> str:
    """The ``s3://`` URI a task carries; Label Studio resolves it through the project's S3 storage (pure)."""
    return f"s3://{bucket}/{key}"


class ObjectStore:
    """One bucket of an S3-compatible server, reached with boto3."""

    def __init__(self, config: S3Settings):
        import boto3  # here, not at the top: a push without S3 does not pay for importing it
        from botocore.config import Config

        self.config = config
        session = boto3.session.Session(aws_access_key_id=config.access_key, aws_secret_access_key=config.secret_key,
                                        aws_session_token=config.session_token, region_name=config.region)
        # path-style addressing: S3-compatible servers rarely have a DNS name per bucket
        style = "path" if config.endpoint else "auto"
        self._session = session
        self._s3 = session.client("s3", endpoint_url=config.endpoint, config=Config(
            s3={"addressing_style": style}, retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10, read_timeout=60, max_pool_connections=UPLOAD_THREADS * 2))

    def __repr__(self) -> str:  # never the credentials
        return f"ObjectStore({self.config.where!r})"

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Turn boto3's failures into one line naming the setting to fix (never a credential)."""
        from botocore.exceptions import (BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError,
                                         ParamValidationError)

        c = self.config
        where = c.endpoint or "AWS S3"
        try:
            yield
        except NoCredentialsError:
            raise StorageAuthError(f"no S3 credentials to {what}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                   "(or configure ~/.aws)") from None
        except EndpointConnectionError:
            raise StorageError(f"cannot reach the S3 endpoint {where} to {what}: check AWS_ENDPOINT_URL "
                               "and that the server is running") from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if code in ("NoSuchBucket",) or (status == 404 and code in ("404", "NotFound", "")):
                raise StorageError(f"{where}: bucket {c.bucket!r} does not exist: create it, or set {ENV_BUCKET} "
                                   "to an existing bucket") from None
            if status == 403 or code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied",
                                         "ExpiredToken", "InvalidToken", "403"):
                raise StorageAuthError(f"{where}: S3 refused the credentials ({code or status}) to {what} "
                                       f"{c.bucket!r}: check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
                                       "AWS_SESSION_TOKEN, and the key's rights on the bucket") from None
            raise StorageError(f"{where}: S3 refused to {what} {c.bucket!r} ({code or status}); check {ENV_BUCKET} "
                               "and AWS_ENDPOINT_URL") from None
        except ParamValidationError:
            raise OptionError("images", f"{c.bucket!r} is not a valid bucket name: set {ENV_BUCKET} to the bucket's name") from None
        except BotoCoreError as exc:
            raise StorageError(f"cannot {what} at the S3 endpoint {where} ({type(exc).__name__}): check "
                               "AWS_ENDPOINT_URL and AWS_DEFAULT_REGION") from None

    def check(self) -> None:
        """One cheap request: the bucket exists and the credentials are accepted."""
        with self._call("read the bucket"):
            self._s3.head_bucket(Bucket=self.config.bucket)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._call("look for a frame in bucket"):
            try:
                self._s3.head_object(Bucket=self.config.bucket, Key=key)
                return True
            except ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                    return False
                raise

    def put(self, key: str, path: Path) -> None:
        with self._call("upload a frame to bucket"), open(path, "rb") as handle:
            self._s3.put_object(Bucket=self.config.bucket, Key=key, Body=handle, ContentType="image/jpeg")

    def store(self, files: dict[str, Path]) -> int:
        """Make sure each object key → local file is in the bucket (looked up first, uploaded when absent,
        several at a time); return how many were uploaded."""
        def one(item: tuple[str, Path]) -> bool:
            key, path = item
            if self.exists(key):
                return False
            self.put(key, path)
            return True

        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
            return sum(pool.map(one, files.items()))

    def credentials(self) -> tuple[str | None, str | None, str | None]:
        """(key id, secret, session token) as boto3 resolved them, to hand to Label Studio's storage."""
        found = self._session.get_credentials()
        if found is None:
            return self.config.access_key, self.config.secret_key, self.config.session_token
        frozen = found.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token


def endpoint_address(endpoint: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address an S3 endpoint's host resolves to (None for AWS or an unresolvable name)."""
    if not endpoint:
        return None
    host = urlsplit(endpoint).hostname or ""
    try:
        return ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError):
        return None


def configured_endpoint(env: Mapping[str, str] | None = None) -> str | None:
    """The S3 endpoint configured in the environment (AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL), if any."""
    env = env if env is not None else os.environ
    return (env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or "").strip().rstrip("/") or None


# Label Studio 1.23's SSRF protection refuses storage endpoints in these networks (core/utils/io.py validate_ip)
LABEL_STUDIO_BANNED_SUBNETS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "233.252.0.0/24", "240.0.0.0/4", "255.255.255.255/32", "::/128", "::1/128", "::ffff:0:0/96",
    "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001:0000::/32", "2001:20::/28", "2001:db8::/32",
    "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8",
)


def label_studio_server_settings(endpoint: str | None) -> tuple[dict[str, str], str | None]:
    """What the local Label Studio needs to serve frames from the S3 endpoint ``endpoint`` (pure but for
    resolving its host): (environment, text of a settings module or None).

    - Its SSRF protection refuses storage endpoints on loopback or private networks: the same list is
      kept banned, with exactly the endpoint's address carved out of it.
    - Its Content-Security-Policy allows pictures from itself only: the endpoint's origin is added to
      ``img-src`` (and ``media-src``/``connect-src``), since the browser follows the presigned redirect there.
    """
    if not endpoint:
        return {}, None
    env: dict[str, str] = {}
    address = endpoint_address(endpoint)
    if address is not None:
        kept: list[str] = []
        for subnet in LABEL_STUDIO_BANNED_SUBNETS:
            network = ipaddress.ip_network(subnet)
            if network.version == address.version and address in network:
                kept.extend(str(n) for n in network.address_exclude(ipaddress.ip_network(f"{address}/{address.max_prefixlen}")))
            else:
                kept.append(subnet)
        if len(kept) != len(LABEL_STUDIO_BANNED_SUBNETS):
            env = {"USE_DEFAULT_BANNED_SUBNETS": "false", "USER_ADDITIONAL_BANNED_SUBNETS": ",".join(kept)}
    parts = urlsplit(endpoint)
    origin = f"{parts.scheme}://{parts.netloc}"
    module = (
        '"""Written by `verify server start`: Label Studio\'s settings, and the S3 endpoint frames come from\n'
        'allowed in its Content-Security-Policy (the reviewers\' browsers follow presigned redirects there)."""\n'
        "# base first: label_studio's module reads settings (through this module) while it loads\n"
        "from label_studio.core.settings.base import *  # noqa: F401,F403\n"
        "from label_studio.core.settings.label_studio import *  # noqa: F401,F403\n\n"
        f"S3_ORIGIN = {origin!r}\n"
        "for _name in ('CSP_IMG_SRC', 'CSP_MEDIA_SRC', 'CSP_CONNECT_SRC'):\n"
        "    if _name in globals() and S3_ORIGIN not in globals()[_name]:\n"
        "        globals()[_name] = (*globals()[_name], S3_ORIGIN)\n"
        "# the labeling page shows a picture it fetched as a blob: URL, which Label Studio's own img-src leaves out\n"
        "if 'CSP_IMG_SRC' in globals() and 'blob:' not in CSP_IMG_SRC:\n"
        "    CSP_IMG_SRC = (*CSP_IMG_SRC, 'blob:')\n"
    )
    return env, module
