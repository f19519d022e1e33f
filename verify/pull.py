"""Pull: fetch the project's annotations, archive the raw export, and record what reviewers did.

The export is written to ``exports/`` byte for byte as the server sent it (named by time and
sha256), then parsed. The workspace's annotation table is replaced as a whole in one
transaction, so annotations edited or deleted on the server are reflected, while every
earlier export stays in the archive.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from verify.errors import ServerError, VerifyError
from verify.labelstudio import LabelStudioClient
from verify.workspace import Workspace, atomic_write, now_utc


@dataclass
class PullResult:
    export_file: str
    sha256: str
    tasks: int
    annotations: int
    skipped: int
    reviewers: int
    lead_decisions: int = 0
    ignored: int = 0  # annotations in the adjudication project by someone other than the lead


def parse_export(tasks: list[dict[str, Any]], users: dict[int, str]) -> list[dict[str, Any]]:
    """One record per annotation in a Label Studio JSON export (pure).

    Drafts are not annotations and are left out; skipped tasks stay (``was_cancelled``) so a
    skip is counted as a skip. ``users`` maps user id → display name (email).
    """
    records = []
    for task in tasks:
        key = (task.get("meta") or {}).get("verify_key") or (task.get("data") or {}).get("frame_key")
        for ann in task.get("annotations") or []:
            who = ann.get("completed_by")
            if isinstance(who, dict):  # some exports inline the user
                reviewer_id = who.get("id")
                name = who.get("email") or users.get(reviewer_id) or f"user {reviewer_id}"
            else:
                reviewer_id = who
                name = users.get(who) or f"user {who}"
            records.append({
                "id": ann["id"],
                "task_id": task["id"],
                "frame_key": key,
                "reviewer_id": reviewer_id,
                "reviewer": name,
                "was_cancelled": bool(ann.get("was_cancelled")),
                "ground_truth": bool(ann.get("ground_truth")),
                "result": ann.get("result") or [],
                "created_at": ann.get("created_at"),
                "updated_at": ann.get("updated_at"),
            })
    return records


def pull(ws: Workspace, client: LabelStudioClient) -> PullResult:
    """Export the project's annotations (and the lead's, from the adjudication project) into the workspace.

    Raises:
        VerifyError: nothing has been pushed from this workspace yet.
        ServerError, AuthError, ProjectMissing: from Label Studio.
    """
    project = ws.get_meta("project_id")
    if project is None:
        raise VerifyError("nothing to pull: this workspace has no Label Studio project yet; run `verify push` first")
    if ws.get_meta("server_url") != client.url:
        raise VerifyError(f"this workspace's project is on {ws.get_meta('server_url')}, not {client.url}; pass --url {ws.get_meta('server_url')}")
    users = {u["id"]: u["email"] or u["username"] for u in client.users()}
    result = _pull_project(ws, client, int(project), users)
    adjudication = ws.get_meta("adjudication_project_id")
    if adjudication:
        lead = ws.get_meta("adjudication_lead")
        decisions = _pull_project(ws, client, int(adjudication), users, lead=lead or "")
        result.lead_decisions = decisions.annotations
        result.ignored = decisions.ignored
    return result


def _pull_project(ws: Workspace, client: LabelStudioClient, project_id: int, users: dict[int, str],
                  lead: str | None = None) -> PullResult:
    """Archive one project's export and replace its annotations in the workspace.

    With ``lead`` (the adjudication project): annotations are ground truth; when ``lead`` is
    an email, only that user's count and the others are ignored.
    """
    raw = client.export_json(project_id)
    try:
        tasks = json.loads(raw)
    except ValueError:
        raise ServerError(f"{client.url}: the export of project {project_id} is not JSON; retry, and check the server log")
    if not isinstance(tasks, list):
        raise ServerError(f"{client.url}: the export of project {project_id} is not a list of tasks")
    sha = hashlib.sha256(raw).hexdigest()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"exports/{stamp}-project{project_id}-{sha[:12]}.json"
    atomic_write(ws.path(name), raw, mode=0o444)
    records = parse_export(tasks, users)
    ignored = 0
    if lead is not None:
        kept = [r for r in records if not lead or r["reviewer"] == lead]
        ignored = len(records) - len(kept)
        records = [{**r, "ground_truth": True} for r in kept]
    with ws.transaction() as db:
        db.execute("DELETE FROM annotations WHERE project_id = ?", (project_id,))
        db.executemany(
            "INSERT INTO annotations (id, project_id, task_id, frame_key, reviewer_id, reviewer, was_cancelled,"
            " ground_truth, result, created_at, updated_at, export_file) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r["id"], project_id, r["task_id"], r["frame_key"], r["reviewer_id"], r["reviewer"], r["was_cancelled"],
              r["ground_truth"], json.dumps(r["result"]), r["created_at"], r["updated_at"], name) for r in records],
        )
        db.execute(
            "INSERT OR REPLACE INTO exports (file, sha256, pulled_at, project_id, tasks, annotations) VALUES (?, ?, ?, ?, ?, ?)",
            (name, sha, now_utc(), project_id, len(tasks), len(records)),
        )
    return PullResult(
        export_file=name, sha256=sha, tasks=len(tasks), annotations=len(records),
        skipped=sum(r["was_cancelled"] for r in records), reviewers=len({r["reviewer_id"] for r in records}),
        ignored=ignored,
    )
