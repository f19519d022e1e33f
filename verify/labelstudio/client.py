"""The one module that talks to Label Studio (through label-studio-sdk and its httpx client).

Every call goes through ``_call``, which turns transport and API failures into one-line
``ServerError``/``AuthError``/``ProjectMissing`` messages naming the server and what to do.
The API key is held here and never appears in a message.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from label_studio_sdk.label_interface import LabelInterface

from verify.errors import AuthError, ProjectMissing, ServerError

NO_RETRY = {"max_retries": 0}
IMPORT_BATCH = 10_000  # tasks per import request (about 10-20 MB of JSON): each request costs the server ~0.15 s beyond its
# tasks, so 10,000 frames go in two (1,000 + 9,000: 0.3-0.4 s less than three), 100,000 in eleven
FIRST_IMPORT = 1000  # tasks in a push's first import: the server starts on them while the next batch is built
UPLOAD_BATCH = 100  # files per upload request: Label Studio's limit
LIST_PAGE = 1000  # tasks per listing page


class LabelStudioClient:
    """A connection to one Label Studio server with one API key (legacy token or personal access token)."""

    def __init__(self, url: str, api_key: str, timeout: float = 120.0):
        if not url:
            raise ServerError("no Label Studio URL: pass --url, set LABEL_STUDIO_URL, or run `verify server start`")
        if not api_key:
            raise AuthError(f"{url}: no API key: set LABEL_STUDIO_API_KEY (Account & Settings → Access Token in Label Studio)")
        self.url = url.rstrip("/")
        self._key = api_key
        self.user: dict[str, Any] = {}  # filled by whoami()
        self.ls = LabelStudio(base_url=self.url, api_key=api_key, timeout=timeout)
        # verify's own requests (listings, exports, imports, uploads) share one connection pool: a client per
        # request costs a TLS context each (0.1 s), which at 100,000 frames is most of what verify adds to a sync
        self._web = httpx.Client(timeout=timeout)
        self._timeout = timeout
        # label-studio-sdk 2.1 joins the token-refresh path to the base URL without a trailing
        # slash, which drops a sub-path (https://host/label-studio → https://host/api/token/refresh/):
        # a personal access token then fails behind a sub-path. Give it the slash it needs.
        tokens = getattr(self.ls._client_wrapper, "_tokens_client", None)
        if tokens is not None and hasattr(tokens, "_base_url"):
            tokens._base_url = self.url + "/"

    def __repr__(self) -> str:  # never show the key
        return f"LabelStudioClient({self.url!r})"

    # --- error handling ------------------------------------------------------------------

    @contextmanager
    def _call(self, what: str, project: int | None = None) -> Iterator[None]:
        try:
            yield
        except ApiError as exc:
            raise self._api_error(exc, what, project) from None
        except httpx.TimeoutException:
            raise ServerError(f"{self.url}: Label Studio did not answer in time while trying to {what}; retry, or check the server's load") from None
        except httpx.HTTPError as exc:
            raise ServerError(
                f"{self.url}: cannot reach Label Studio to {what} ({type(exc).__name__}); "
                "is it running (`verify server status`) and is --url / LABEL_STUDIO_URL right?"
            ) from None
        except json.JSONDecodeError:
            raise ServerError(f"{self.url}: the answer to '{what}' is not Label Studio's JSON; check --url / LABEL_STUDIO_URL") from None

    def _api_error(self, exc: ApiError, what: str, project: int | None) -> ServerError:
        status = exc.status_code or 0
        detail = ""
        if isinstance(exc.body, dict):
            detail = str(exc.body.get("detail") or exc.body.get("validation_errors") or "")[:200]
        if status == 401:
            hint = "legacy tokens are disabled on this server: use a personal access token, or start it with --enable-legacy-api-token" if "legacy" in detail.lower() else "set LABEL_STUDIO_API_KEY to a valid access token (Account & Settings in Label Studio)"
            return AuthError(f"{self.url}: the API key was refused (401) while trying to {what}; {hint}")
        if status == 403:
            return AuthError(f"{self.url}: this account may not {what} (403); use an account with access to the project")
        if status == 404 and project is not None:
            return ProjectMissing(
                f"{self.url}: project {project} is gone from the server; run `verify push --new-project` to create a new one "
                "(annotations already pulled stay in the workspace)"
            )
        if status == 404:
            return ServerError(f"{self.url}: not found (404) while trying to {what}; is --url the Label Studio address (default port 8080)?")
        if status >= 500:
            return ServerError(f"{self.url}: Label Studio failed ({status}) while trying to {what}; retry, and check the server log")
        if 200 <= status < 300:  # the SDK could not read the answer: not Label Studio's JSON
            seen = " ".join(str(exc.body)[:80].split())
            return ServerError(f"{self.url}: the answer to '{what}' ({status}) is not Label Studio's JSON ({seen!r}); "
                               "is --url / LABEL_STUDIO_URL a Label Studio?")
        return ServerError(f"{self.url}: Label Studio refused to {what} ({status}): {detail or 'no detail'}")

    # --- connection -------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """Check the connection and the key; return the user the key belongs to."""
        with self._call("check the API key"):
            user = self.ls.users.whoami()
        self.user = {"id": user.id, "email": user.email, "username": user.username}
        return self.user

    def version(self) -> str:
        with self._call("read the server version"):
            info = self.ls.versions.get()
        release = getattr(info, "release", None) or (info.get("release") if isinstance(info, dict) else None)
        return str(release or "unknown")

    # --- projects ---------------------------------------------------------------------------

    def get_project(self, project_id: int) -> dict[str, Any]:
        with self._call("read the project", project=project_id):
            p = self.ls.projects.get(id=project_id)
        return {"id": p.id, "title": p.title, "description": p.description or "", "label_config": p.label_config,
                "maximum_annotations": p.maximum_annotations, "instructions": p.expert_instruction or ""}

    def find_projects(self, marker: str) -> list[dict[str, Any]]:
        """Projects whose description carries ``marker`` (the workspace id)."""
        with self._call("list projects"):
            found = [p for p in self.ls.projects.list(page_size=100) if marker in (p.description or "")]
        return [{"id": p.id, "title": p.title, "description": p.description or ""} for p in found]

    def create_project(self, title: str, description: str, label_config: str, instructions: str,
                       maximum_annotations: int) -> int:
        with self._call("create the project"):
            p = self.ls.projects.create(
                title=title, description=description, label_config=label_config,
                expert_instruction=instructions, show_instruction=bool(instructions),
                maximum_annotations=maximum_annotations, show_skip_button=True,
                show_annotation_history=False, enable_empty_annotation=True,
                request_options=NO_RETRY,
            )
        return p.id

    def update_project(self, project_id: int, **fields: Any) -> None:
        with self._call("update the project", project=project_id):
            self.ls.projects.update(id=project_id, **fields)

    def ensure_local_storage(self, project_id: int, path: str, listed: bool = True) -> int:
        """A Local Files import storage for ``path`` (absolute, under the server's document root); ``listed``
        False: the project has no storage yet (made just now), so the existing ones are not listed."""
        with self._call("set up local-files storage", project=project_id):
            for storage in self.ls.import_storage.local.list(project=project_id) if listed else ():
                if storage.path == path:
                    return storage.id
            storage = self.ls.import_storage.local.create(
                project=project_id, path=path, use_blob_urls=True, title="verify frames", request_options=NO_RETRY
            )
        return storage.id

    def ensure_s3_storage(self, project_id: int, bucket: str, prefix: str, endpoint: str | None, region: str | None,
                          access_key: str | None, secret_key: str | None, session_token: str | None,
                          presign_ttl_min: int) -> int:
        """An S3 import storage for ``bucket``/``prefix`` (through which the server resolves the tasks'
        ``s3://`` URIs to presigned URLs), made once; an existing one gets the current credentials.
        Never synced: verify imports the tasks itself."""
        fields = dict(bucket=bucket, prefix=prefix, s3endpoint=endpoint or "", region_name=region or "",
                      aws_access_key_id=access_key or "", aws_secret_access_key=secret_key or "",
                      aws_session_token=session_token or "", presign=True, presign_ttl=presign_ttl_min,
                      use_blob_urls=True, recursive_scan=True, title="verify frames (S3)")
        with self._call("set up S3 storage", project=project_id):
            try:
                for storage in self.ls.import_storage.s3.list(project=project_id):
                    if storage.bucket == bucket and (storage.prefix or "") == prefix and (storage.s3endpoint or "") == (endpoint or ""):
                        self.ls.import_storage.s3.update(storage.id, project=project_id, **fields, request_options=NO_RETRY)
                        return storage.id
                return self.ls.import_storage.s3.create(project=project_id, **fields, request_options=NO_RETRY).id
            except ApiError as exc:
                body = exc.body.get("detail") or exc.body.get("validation_errors") or exc.body if isinstance(exc.body, dict) else exc.body
                detail = " ".join(str(body)[:300].split())  # Label Studio's error body leads with its version: the detail
                if exc.status_code == 400 or (exc.status_code == 403 and "not allowed" in detail):
                    raise ServerError(
                        f"{self.url}: Label Studio refused the S3 storage s3://{bucket}/{prefix} ({exc.status_code}: "
                        f"{detail[:200]}); it must reach {endpoint or 'AWS S3'} with the credentials verify uses, and "
                        "an endpoint on a loopback or private network must be allowed by its SSRF protection "
                        "(USE_DEFAULT_BANNED_SUBNETS / USER_ADDITIONAL_BANNED_SUBNETS; `verify server start` does it "
                        "for AWS_ENDPOINT_URL)") from None
                raise

    # --- tasks --------------------------------------------------------------------------------

    def task_keys(self, project_id: int) -> dict[str, int]:
        """Map of verify frame key (``meta.verify_key``, set on every task verify makes) → task id for
        every task in the project: one light listing of ids and meta only, page by page, so that no
        request or answer grows with the project and no page is kept once read."""
        keys: dict[str, int] = {}
        with self._call("list the project's tasks", project=project_id):
            for task in self._task_pages(project_id, "id,meta"):
                key = (task.get("meta") or {}).get("verify_key")
                if key:
                    keys.setdefault(key, task["id"])
        return keys

    def _task_pages(self, project_id: int, include: str, query: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The project's tasks (only the ``include`` fields; filtered and ordered by ``query``), in pages of
        LIST_PAGE, asking for no page past the last (the SDK's pager asks for one more, which on a large project
        costs a whole filtered query)."""
        params: dict[str, Any] = {"project": project_id, "page_size": LIST_PAGE, "fields": "task_only", "include": include}
        if query:
            params["query"] = json.dumps(query)
        page = 1
        while True:
            answer = self._get("api/tasks", {**params, "page": page}, timeout=300).json()
            tasks = answer.get("tasks") if isinstance(answer, dict) else answer
            if not isinstance(tasks, list):
                raise ServerError(f"{self.url}: the task listing of project {project_id} is not Label Studio's; check --url / LABEL_STUDIO_URL")
            yield from tasks
            if len(tasks) < LIST_PAGE or not isinstance(answer, dict) or page * LIST_PAGE >= (answer.get("total") or 0):
                return
            page += 1

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]] | TaskJSON) -> list[int] | None:
        """Import tasks (or tasks already encoded by ``encode_tasks``) without retries (a retried import would
        duplicate tasks); return the new task ids in the order given, or None if the server did not list them.

        The task JSON is posted as it is: the SDK's encoder walks every value of every task (0.1–0.5 ms a task),
        which verify's plain dicts do not need. Raises ServerError when the outcome is unclear; the caller
        reconciles by listing.
        """
        encoded = tasks if isinstance(tasks, TaskJSON) else encode_tasks(tasks)
        with self._call("import tasks", project=project_id):
            answer = _check(self._web.post(f"{self.url}/api/projects/{project_id}/import", params={"return_task_ids": "true"},
                                           content=encoded.body, headers={**self._auth(), "Content-Type": "application/json"},
                                           timeout=self._timeout)).json()
        ids = answer.get("task_ids") if isinstance(answer, dict) else None
        return list(ids) if isinstance(ids, list) and len(ids) == encoded.count else None

    def export_json(self, project_id: int, ids: list[int] | None = None) -> bytes:
        """The project's JSON export (annotations included) as raw bytes: every task, or only ``ids``."""
        params: dict[str, Any] = {"exportType": "JSON", "download_all_tasks": "true"}
        if ids is not None:
            params["ids[]"] = [str(i) for i in ids]  # the SDK's ``ids`` is not understood by the server
        with self._call("export annotations", project=project_id):
            return self._get(f"api/projects/{project_id}/export", params, timeout=600).content

    def upload_files(self, project_id: int, files: list[tuple[str, Path]]) -> dict[str, str]:
        """Upload files (≤ UPLOAD_BATCH per request, each under its own field name) without making
        tasks of them; return name → the URL the server serves it at (``/data/upload/…``)."""
        urls: dict[str, str] = {}
        for batch in batched(files, UPLOAD_BATCH):
            handles = [open(path, "rb") for _, path in batch]
            try:
                parts = [(f"file{i}", (name, handle, "image/jpeg")) for i, ((name, _), handle) in enumerate(zip(batch, handles))]
                with self._call("upload frames", project=project_id):
                    answer = _check(self._web.post(f"{self.url}/api/projects/{project_id}/import", files=parts, timeout=600,
                                                   params={"commit_to_project": "false"}, headers=self._auth()))
                    ids = answer.json().get("file_upload_ids") or []
                    listed = self._get(f"api/projects/{project_id}/file-uploads", {"ids": json.dumps(ids)}).json()
            finally:
                for handle in handles:
                    handle.close()
            for upload in listed:
                stored = upload["file"]  # upload/<project>/<8 hex>-<name as sent>
                urls[stored.rsplit("/", 1)[-1].split("-", 1)[-1]] = "/data/" + stored
        missing = [name for name, _ in files if name not in urls]
        if missing:
            raise ServerError(f"{self.url}: the server did not keep {len(missing)} uploaded frames (e.g. {missing[0]}); retry")
        return urls

    def changed_tasks(self, project_id: int, since: str) -> tuple[list[int], str | None]:
        """Ids of the tasks updated after ``since`` (a server timestamp, ``%Y-%m-%dT%H:%M:%S.%fZ``), and the newest
        ``updated_at`` among them (None when none changed): one query gives both, so an incremental pull asks once.

        Creating, editing or deleting an annotation updates its task's ``updated_at`` (checked
        on Label Studio 1.23.2), so this finds every task whose annotations changed.
        """
        query = {"filters": {"conjunction": "and", "items": [
            {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": since}]},
            "ordering": ["-tasks:updated_at"]}
        with self._call("list the tasks changed since the last pull", project=project_id):
            tasks = list(self._task_pages(project_id, "id,updated_at", query))
        newest = _server_timestamp(datetime.fromisoformat(tasks[0]["updated_at"])) if tasks else None
        return sorted(t["id"] for t in tasks), newest

    def latest_update(self, project_id: int) -> str | None:
        """The newest ``updated_at`` among the project's tasks (server time, microseconds), or None if empty."""
        query = {"ordering": ["-tasks:updated_at"]}
        with self._call("read the project's latest change", project=project_id):
            for task in self.ls.tasks.list(project=project_id, fields="task_only", include="id,updated_at",
                                           query=json.dumps(query), page_size=1):
                return _server_timestamp(task.updated_at)
        return None

    # --- users --------------------------------------------------------------------------------

    def users(self) -> list[dict[str, Any]]:
        with self._call("list users"):
            return [{"id": u.id, "email": u.email, "username": u.username,
                     "name": " ".join(filter(None, [u.first_name, u.last_name]))} for u in self.ls.users.list()]

    def add_reviewer(self, email: str, password: str) -> dict[str, Any]:
        """Create a reviewer account the way a person would: sign up through the organization's invite link."""
        with self._call("create an invite link"):
            invite_url = self.url + self._get_json("api/invite")["invite_url"]
        with self._call("sign the reviewer up"):
            with httpx.Client(base_url=self.url, follow_redirects=False, timeout=60) as web:
                _check(web.get(invite_url))
                csrf = web.cookies.get("csrftoken", "")
                answer = web.post(
                    invite_url,
                    data={"email": email, "password": password, "csrfmiddlewaretoken": csrf, "allow_newsletters": "false"},
                    headers={"Referer": invite_url},
                )
                if answer.status_code != 302:
                    raise ServerError(f"{self.url}: signing up {email} failed (an account with that email may exist, or the password is too weak)")
        user = next((u for u in self.users() if u["email"] == email), None)
        if user is None:
            raise ServerError(f"{self.url}: {email} was signed up but does not appear among the users")
        return user

    def _get_json(self, path: str) -> Any:
        """GET an endpoint the SDK does not wrap, with the SDK's own auth headers."""
        return self._get(path, {}).json()

    def _get(self, path: str, params: dict[str, Any], timeout: float = 60) -> httpx.Response:
        return _check(self._web.get(f"{self.url}/{path}", params=params, headers=self._auth(), timeout=timeout))

    def _auth(self) -> dict[str, str]:
        """The SDK's own auth header (it refreshes personal access tokens)."""
        return {k: v for k, v in self.ls._client_wrapper.get_headers().items() if k.lower() in ("authorization", "x-api-key")}


def _server_timestamp(value: Any) -> str:
    """Label Studio's own timestamp format (the one its Datetime filters parse)."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def _check(response: httpx.Response) -> httpx.Response:
    """Raise ApiError for an error status, so that ``_call`` words it like the SDK's errors."""
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = response.text[:200]
        raise ApiError(status_code=response.status_code, body=body, headers=dict(response.headers))
    return response


TESTED_RELEASE = "1.23.2"  # the Label Studio release verify's tests run against
# Published advisories and the release that fixed each; a server older than any of them gets a warning.
ADVISORIES = (
    ("1.7.2", "GHSA-cpmr-mw4j-99r7", "path traversal: unauthenticated reading of files under /label_studio/core/"),
)
ADVISORIES_URL = "https://github.com/HumanSignal/label-studio/security/advisories"


def version_warning(version: str) -> str | None:
    """A one-line warning when a server's release is older than a fix for a published advisory
    (or than the release verify is tested against); None when it is current enough (pure)."""
    def parse(text: str) -> tuple[int, ...] | None:
        parts = text.strip().lstrip("v").split(".")[:3]
        return tuple(int(p) for p in parts) if parts and all(p.isdigit() for p in parts) else None

    found = parse(version)
    if found is None:
        return f"cannot tell which Label Studio release this is ({version!r}); make sure it is at least {TESTED_RELEASE}"
    missed = [(fixed, ghsa, what) for fixed, ghsa, what in ADVISORIES if found < parse(fixed)]
    if missed:
        fixed, ghsa, what = missed[-1]
        return (f"Label Studio {version} is older than {fixed}, which fixed {ghsa} ({what})"
                f"{f' and {len(missed) - 1} more' if len(missed) > 1 else ''}; upgrade it (advisories: {ADVISORIES_URL})")
    if found < parse(TESTED_RELEASE):
        return (f"Label Studio {version} is older than {TESTED_RELEASE}, the release verify is tested with; later releases "
                f"carry security fixes ({ADVISORIES_URL}): upgrade it")
    return None


def validate_config(label_config: str) -> None:
    """Parse the config with the SDK's own LabelInterface (as the server will)."""
    LabelInterface(label_config)


def region_errors(label_config: str, regions: list[dict[str, Any]]) -> list[list[str]]:
    """For each region (an annotation or prediction result item), what the SDK's LabelInterface finds wrong with it
    against ``label_config`` (an empty list: it fits). The server accepts predictions with unknown labels silently."""
    interface = LabelInterface(label_config)
    return [interface.validate_region(region, return_errors=True) for region in regions]


def new_password() -> str:
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class TaskJSON:
    """Tasks encoded for one import request: encoding 5,000 tasks takes ~0.07 s, which a push does beside the
    previous import rather than between two."""

    count: int
    body: bytes


def encode_tasks(tasks: list[dict[str, Any]]) -> TaskJSON:
    return TaskJSON(len(tasks), json.dumps(tasks, ensure_ascii=False).encode())


def batched(items: list[Any], size: int | None = None) -> Iterable[list[Any]]:
    """``items`` in lists of ``size`` (default: ``IMPORT_BATCH``, read at call time)."""
    size = size or IMPORT_BATCH
    for start in range(0, len(items), size):
        yield items[start : start + size]


def import_batches(items: list[Any]) -> list[list[Any]]:
    """``items`` in import requests (pure): a first one of at most FIRST_IMPORT, then IMPORT_BATCH each (both read
    at call time), so that the server waits on the building of a fifth of a batch, not a whole one."""
    head = min(FIRST_IMPORT, IMPORT_BATCH)
    return [items[:head], *batched(items[head:])] if items else []
