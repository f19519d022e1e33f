"""An in-memory Label Studio for fast tests of push, pull and adjudicate.

``FakeLabelStudio`` has the public interface of ``verify.labelstudio.client.LabelStudioClient``
(same method names and signatures: tests/test_reconcile.py checks it) and answers as Label
Studio 1.23.2 does for those calls, as recorded in ../shared/notes/labelstudio.md and
tests/data/ls-1.23.2-export.json:

- project, task, annotation and user ids increase and are never reused;
- imports store tasks as given (``data``, ``meta``) and never de-duplicate;
- the JSON export lists tasks with their annotations (``completed_by`` is a user id);
- creating, editing or deleting an annotation updates its task's ``updated_at`` (server
  time, microseconds), which drives ``changed_tasks`` and ``latest_update``;
- an unknown project is a 404, which the real adapter turns into ``ProjectMissing``.

Errors are raised through the real adapter's own translation (``LabelStudioClient._call``), so
their classes and wording are the ones a user would see.

Beside that interface, helpers for tests (``TEST_HELPERS``): what reviewers and admins do in
the UI (annotate, edit or delete an annotation, delete a project, edit its labeling config),
faults to inject into imports, and ``calls`` (how many times each interface method was called)
so that tests can check that nothing is requested needlessly.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from label_studio_sdk.core.api_error import ApiError

from verify.errors import ServerError
from verify.labelstudio.client import UPLOAD_BATCH, LabelStudioClient, TaskJSON, batched

SERVER_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # Label Studio's timestamps (exports, Datetime filters)
RELEASE = "1.23.2"

# Faults an import can be given (the names of tests/test_faults.py's proxy actions):
IMPORT_FAULTS = {
    "drop-after": "the server stores the tasks, then the connection drops without an answer",
    "500-after": "the server stores the tasks, then answers 500",
    "502-before": "a gateway answers 502; nothing is stored",
    "no-ids": "the server stores the tasks but its answer lists no task ids",
}

PROJECT_FIELDS = {  # what update_project may change (fields of the SDK's projects.update)
    "title", "description", "label_config", "expert_instruction", "show_instruction", "maximum_annotations",
    "show_skip_button", "show_annotation_history", "enable_empty_annotation",
}


class FakeLabelStudio:
    """A Label Studio server and a client of it in one object, in memory (see the module docstring)."""

    TEST_HELPERS = frozenset({
        "annotate", "edit_annotation", "delete_annotation", "delete_project", "edit_config_on_server",
        "fail_import", "project", "projects", "tasks_of", "annotations_of", "keys_of",
    })

    # the real adapter's error translation, so that failures carry its classes and its words
    _call = LabelStudioClient._call
    _api_error = LabelStudioClient._api_error

    def __init__(self, url: str = "http://label-studio.fake:8080", document_root: Path | None = None,
                 admin_email: str = "admin@desk.example"):
        self.url = url.rstrip("/")
        self.user: dict[str, Any] = {}  # filled by whoami(), as the real client does
        self.document_root = document_root  # LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, for local storages
        self.calls: Counter[str] = Counter()  # interface method → number of calls
        self.import_sizes: list[int] = []  # tasks per import request, failed ones included
        self.export_requests: list[list[int] | None] = []  # the ``ids`` of each export request
        self.upload_requests = 0  # multipart upload requests (≤ UPLOAD_BATCH files each)
        self._lock = threading.RLock()  # push runs ensure_local_storage in a background thread
        self._ids: Counter[str] = Counter()
        self._last_time = datetime.now(timezone.utc)
        self._users: dict[int, dict[str, Any]] = {}
        self._passwords: dict[int, str] = {}
        self._projects: dict[int, dict[str, Any]] = {}
        self._tasks: dict[int, dict[str, Any]] = {}
        self._annotations: dict[int, dict[str, Any]] = {}
        self._storages: dict[int, dict[str, Any]] = {}
        self._uploads: dict[str, bytes] = {}  # served URL → bytes
        self._import_faults: dict[int, str] = {}  # import call number → fault
        self._admin = self._new_user(admin_email, "admin-password-0000")

    def __repr__(self) -> str:
        return f"FakeLabelStudio({self.url!r})"

    # --- the LabelStudioClient interface ----------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        self._count("whoami")
        user = self._users[self._admin]
        self.user = {"id": user["id"], "email": user["email"], "username": user["username"]}
        return self.user

    def version(self) -> str:
        self._count("version")
        return RELEASE

    def get_project(self, project_id: int) -> dict[str, Any]:
        with self._lock:
            self._count("get_project")
            p = self._project(project_id, "read the project")
            return {"id": p["id"], "title": p["title"], "description": p["description"] or "",
                    "label_config": p["label_config"], "maximum_annotations": p["maximum_annotations"],
                    "instructions": p["expert_instruction"] or ""}

    def find_projects(self, marker: str) -> list[dict[str, Any]]:
        with self._lock:
            self._count("find_projects")
            return [{"id": p["id"], "title": p["title"], "description": p["description"] or ""}
                    for p in self._projects.values() if marker in (p["description"] or "")]

    def create_project(self, title: str, description: str, label_config: str, instructions: str,
                       maximum_annotations: int) -> int:
        with self._lock:
            self._count("create_project")
            if len(title) < 3 or len(title) > 50:
                self._fail("create the project", status=400, detail={"title": ["Ensure this field has 3 to 50 characters."]})
            project_id = self._next("project")
            self._projects[project_id] = {
                "id": project_id, "title": title, "description": description, "label_config": label_config,
                "expert_instruction": instructions, "show_instruction": bool(instructions),
                "maximum_annotations": maximum_annotations, "show_skip_button": True,
                "show_annotation_history": False, "enable_empty_annotation": True,
            }
            return project_id

    def update_project(self, project_id: int, **fields: Any) -> None:
        with self._lock:
            self._count("update_project")
            unknown = set(fields) - PROJECT_FIELDS
            if unknown:  # the SDK's projects.update takes named fields only
                raise TypeError(f"update() got an unexpected keyword argument {sorted(unknown)[0]!r}")
            self._project(project_id, "update the project").update(fields)

    def ensure_local_storage(self, project_id: int, path: str, listed: bool = True) -> int:
        with self._lock:
            self._count("ensure_local_storage")
            what = "set up local-files storage"
            self._project(project_id, what)
            for storage in self._storages.values() if listed else ():  # not listed: a second one is made, as the server does
                if storage["project"] == project_id and storage["path"] == path:
                    return storage["id"]
            root = self.document_root
            if root is None or not Path(path).is_relative_to(root) or Path(path) == Path(root) or not Path(path).is_dir():
                self._fail(what, project_id, status=400, detail={"path": [
                    f"Path {path} must exist and be a child of LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root}"]})
            storage_id = self._next("storage")
            self._storages[storage_id] = {"id": storage_id, "project": project_id, "path": path, "use_blob_urls": True}
            return storage_id

    def ensure_s3_storage(self, project_id: int, bucket: str, prefix: str, endpoint: str | None, region: str | None,
                          access_key: str | None, secret_key: str | None, session_token: str | None,
                          presign_ttl_min: int) -> int:
        with self._lock:
            self._count("ensure_s3_storage")
            self._project(project_id, "set up S3 storage")
            for storage in self._storages.values():
                if storage["project"] == project_id and storage.get("s3") == (bucket, prefix, endpoint or ""):
                    return storage["id"]
            storage_id = self._next("storage")
            self._storages[storage_id] = {"id": storage_id, "project": project_id, "path": None,
                                          "s3": (bucket, prefix, endpoint or ""), "presign": True, "use_blob_urls": True}
            return storage_id

    def task_keys(self, project_id: int) -> dict[str, int]:
        with self._lock:
            self._count("task_keys")
            keys: dict[str, int] = {}
            for task in self._project_tasks(project_id, "list the project's tasks"):
                key = (task["meta"] or {}).get("verify_key") or (task["data"] or {}).get("frame_key")
                if key:
                    keys.setdefault(key, task["id"])
            return keys

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]] | TaskJSON) -> list[int] | None:
        if isinstance(tasks, TaskJSON):  # as the real client posts it
            tasks = json.loads(tasks.body)
        with self._lock:
            self._count("import_tasks")
            fault = self._import_faults.pop(self.calls["import_tasks"], None)
            self.import_sizes.append(len(tasks))
            what = "import tasks"
            project = self._project(project_id, what)
            if fault == "502-before":
                self._fail(what, status=502, detail="bad gateway")
            needed = set(re.findall(r'value="\$(\w+)"', project["label_config"] or ""))
            for item in tasks:  # validated as a whole before anything is stored
                data = item.get("data", item)
                if not isinstance(data, dict) or needed - set(data):
                    self._fail(what, project_id, status=400, detail={"data": [
                        f"task data lacks {sorted(needed - set(data or {}))} required by the labeling config"]})
            ids = []
            now = self._now()
            for item in tasks:
                task_id = self._next("task")
                data = item["data"] if "data" in item else {k: v for k, v in item.items() if k not in ("meta", "predictions")}
                self._tasks[task_id] = {"id": task_id, "project": project_id, "data": copy.deepcopy(data),
                                        "meta": copy.deepcopy(item.get("meta") or {}),
                                        "predictions": copy.deepcopy(item.get("predictions") or []),
                                        "created_at": now, "updated_at": now, "updated_by": None,
                                        "inner_id": sum(1 for t in self._tasks.values() if t["project"] == project_id) + 1}
                ids.append(task_id)
            if fault == "drop-after":
                self._fail(what, project_id, drop=True)
            if fault == "500-after":
                self._fail(what, project_id, status=500, detail="server error")
            if fault == "no-ids":
                return None
            return ids

    def export_json(self, project_id: int, ids: list[int] | None = None) -> bytes:
        with self._lock:
            self._count("export_json")
            self.export_requests.append(None if ids is None else list(ids))
            tasks = self._project_tasks(project_id, "export annotations")
            if ids:  # an empty list sends no ``ids[]`` parameter at all: every task, as the real client does
                wanted = set(ids)
                tasks = [t for t in tasks if t["id"] in wanted]
            return json.dumps([self._exported(t) for t in tasks]).encode()

    def upload_files(self, project_id: int, files: list[tuple[str, Path]]) -> dict[str, str]:
        with self._lock:
            self._count("upload_files")
            urls: dict[str, str] = {}
            for batch in batched(files, UPLOAD_BATCH):
                self.upload_requests += 1
                self._project(project_id, "upload frames")
                for name, path in batch:
                    content = Path(path).read_bytes()  # the real client opens every file
                    url = f"/data/upload/{project_id}/{secrets.token_hex(4)}-{name}"
                    self._uploads[url] = content
                    urls[name] = url
            return urls

    def changed_tasks(self, project_id: int, since: str) -> tuple[list[int], str | None]:
        with self._lock:
            self._count("changed_tasks")
            what = "list the tasks changed since the last pull"
            tasks = self._project_tasks(project_id, what)
            try:
                mark = datetime.strptime(since, SERVER_TIME).replace(tzinfo=timezone.utc)
            except (TypeError, ValueError):
                self._fail(what, project_id, status=400, detail=f"cannot parse datetime {since!r}")
            changed = sorted((t for t in tasks if t["updated_at"] > mark), key=lambda t: t["updated_at"], reverse=True)
            return sorted(t["id"] for t in changed), changed[0]["updated_at"].strftime(SERVER_TIME) if changed else None

    def latest_update(self, project_id: int) -> str | None:
        with self._lock:
            self._count("latest_update")
            tasks = self._project_tasks(project_id, "read the project's latest change")
            return max(t["updated_at"] for t in tasks).strftime(SERVER_TIME) if tasks else None

    def users(self) -> list[dict[str, Any]]:
        with self._lock:
            self._count("users")
            return [self._user_record(u) for u in self._users.values()]

    def add_reviewer(self, email: str, password: str) -> dict[str, Any]:
        with self._lock:
            self._count("add_reviewer")
            if any(u["email"] == email for u in self._users.values()) or len(password) < 8:
                raise ServerError(f"{self.url}: signing up {email} failed (an account with that email may exist, or the password is too weak)")
            return self._user_record(self._users[self._new_user(email, password)])

    # --- helpers for tests: what people do on the server ------------------------------------

    def annotate(self, project_id: int, task_id: int, user_email: str, result: list[dict[str, Any]],
                 was_cancelled: bool = False) -> int:
        """``user_email`` submits an annotation of a task (a skip with ``was_cancelled``); return its id."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or task["project"] != project_id:
                raise KeyError(f"task {task_id} is not in project {project_id}")
            user = next((u for u in self._users.values() if u["email"] == user_email), None)
            if user is None:
                raise KeyError(f"{user_email} is not a user of this server; add_reviewer() first")
            now = self._now()
            annotation_id = self._next("annotation")
            self._annotations[annotation_id] = {
                "id": annotation_id, "task": task_id, "project": project_id, "completed_by": user["id"],
                "result": [] if was_cancelled else copy.deepcopy(result), "was_cancelled": was_cancelled,
                "ground_truth": False, "created_at": now, "updated_at": now, "updated_by": user["id"],
                "lead_time": 5.0, "unique_id": secrets.token_hex(16),
            }
            task.update(updated_at=now, updated_by=user["id"])
            return annotation_id

    def edit_annotation(self, annotation_id: int, result: list[dict[str, Any]] | None = None,
                        was_cancelled: bool | None = None) -> None:
        """Change an annotation's result (and/or whether it is a skip), as its author would in the UI."""
        with self._lock:
            annotation = self._annotations[annotation_id]
            now = self._now()
            if result is not None:
                annotation["result"] = copy.deepcopy(result)
            if was_cancelled is not None:
                annotation["was_cancelled"] = was_cancelled
            annotation["updated_at"] = now
            self._tasks[annotation["task"]].update(updated_at=now, updated_by=annotation["completed_by"])

    def delete_annotation(self, annotation_id: int) -> None:
        with self._lock:
            annotation = self._annotations.pop(annotation_id)
            self._tasks[annotation["task"]]["updated_at"] = self._now()

    def delete_project(self, project_id: int) -> None:
        """An admin deletes the project with its tasks, annotations and storages."""
        with self._lock:
            del self._projects[project_id]
            for table in (self._tasks, self._annotations, self._storages):
                for key in [k for k, row in table.items() if row["project"] == project_id]:
                    del table[key]
            for url in [u for u in self._uploads if u.startswith(f"/data/upload/{project_id}/")]:
                del self._uploads[url]

    def edit_config_on_server(self, project_id: int, label_config: str) -> None:
        """An admin edits the labeling config in the project settings."""
        with self._lock:
            self._projects[project_id]["label_config"] = label_config

    def fail_import(self, fault: str, after: int = 0) -> None:
        """Make an import request misbehave (see IMPORT_FAULTS): the next one, or the one after ``after`` more."""
        if fault not in IMPORT_FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {sorted(IMPORT_FAULTS)}")
        with self._lock:
            self._import_faults[self.calls["import_tasks"] + after + 1] = fault

    # --- helpers for tests: what is on the server (not counted as calls) --------------------

    def project(self, project_id: int) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._projects[project_id])

    def projects(self) -> list[int]:
        with self._lock:
            return sorted(self._projects)

    def tasks_of(self, project_id: int) -> list[dict[str, Any]]:
        """The project's tasks as the export shows them (annotations included), by id."""
        with self._lock:
            return [self._exported(t) for t in sorted(self._tasks.values(), key=lambda t: t["id"]) if t["project"] == project_id]

    def annotations_of(self, project_id: int) -> list[dict[str, Any]]:
        return [a for t in self.tasks_of(project_id) for a in t["annotations"]]

    def keys_of(self, project_id: int) -> Counter[str]:
        """How many tasks of the project carry each frame key (duplicates show as counts above 1)."""
        return Counter(t["meta"]["verify_key"] for t in self.tasks_of(project_id))

    # --- internals -------------------------------------------------------------------------

    def _count(self, method: str) -> None:
        with self._lock:
            self.calls[method] += 1

    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def _now(self) -> datetime:
        """Server time, strictly increasing (two changes never share a timestamp)."""
        now = datetime.now(timezone.utc)
        self._last_time = max(now, self._last_time + timedelta(microseconds=1))
        return self._last_time

    def _new_user(self, email: str, password: str) -> int:
        user_id = self._next("user")
        self._users[user_id] = {"id": user_id, "email": email, "username": email.split("@")[0],
                                "first_name": "", "last_name": ""}
        self._passwords[user_id] = password
        return user_id

    @staticmethod
    def _user_record(u: dict[str, Any]) -> dict[str, Any]:
        return {"id": u["id"], "email": u["email"], "username": u["username"],
                "name": " ".join(filter(None, [u["first_name"], u["last_name"]]))}

    def _project(self, project_id: int, what: str) -> dict[str, Any]:
        project = self._projects.get(project_id)
        if project is None:
            self._fail(what, project_id, status=404, detail="Not found.")
        return project

    def _project_tasks(self, project_id: int, what: str) -> list[dict[str, Any]]:
        self._project(project_id, what)
        return sorted((t for t in self._tasks.values() if t["project"] == project_id), key=lambda t: t["id"])

    def _fail(self, what: str, project: int | None = None, status: int | None = None, detail: Any = "",
              drop: bool = False) -> None:
        """Raise what the real adapter raises for this failure (its own translation, its own words)."""
        with self._call(what, project):
            if drop:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            body = detail if isinstance(detail, dict) else {"detail": detail}
            raise ApiError(status_code=status, body=body, headers={})

    def _exported(self, task: dict[str, Any]) -> dict[str, Any]:
        """A task as Label Studio 1.23's JSON export writes it (the keys of tests/data/ls-1.23.2-export.json)."""
        stamp = lambda t: t.strftime(SERVER_TIME)  # noqa: E731
        annotations = sorted((a for a in self._annotations.values() if a["task"] == task["id"]), key=lambda a: a["id"])
        return {
            "id": task["id"],
            "annotations": [{
                "id": a["id"], "completed_by": a["completed_by"], "result": copy.deepcopy(a["result"]),
                "was_cancelled": a["was_cancelled"], "ground_truth": a["ground_truth"],
                "created_at": stamp(a["created_at"]), "updated_at": stamp(a["updated_at"]), "draft_created_at": None,
                "lead_time": a["lead_time"], "prediction": {}, "result_count": len(a["result"]),
                "unique_id": a["unique_id"], "import_id": None, "last_action": None, "bulk_created": False,
                "task": task["id"], "project": task["project"], "updated_by": a["updated_by"],
                "parent_prediction": None, "parent_annotation": None, "last_created_by": None,
            } for a in annotations],
            "drafts": [],
            "predictions": copy.deepcopy(task["predictions"]),
            "data": copy.deepcopy(task["data"]),
            "meta": copy.deepcopy(task["meta"]),
            "created_at": stamp(task["created_at"]),
            "updated_at": stamp(task["updated_at"]),
            "allow_skip": True,
            "inner_id": task["inner_id"],
            "total_annotations": sum(not a["was_cancelled"] for a in annotations),
            "cancelled_annotations": sum(a["was_cancelled"] for a in annotations),
            "total_predictions": len(task["predictions"]),
            "comment_count": 0,
            "unresolved_comment_count": 0,
            "last_comment_updated_at": None,
            "project": task["project"],
            "updated_by": task["updated_by"],
            "comment_authors": [],
        }
