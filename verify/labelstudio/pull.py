"""Pull: fetch the project's annotations, archive the raw exports, and record what reviewers did.

Incremental by default: only the tasks the server has updated since the last pull (creating,
editing or deleting an annotation updates its task) are exported, and their annotations are
replaced in the workspace. A full pull (the first one, or ``full=True``) exports every task
verify made, in pages of ``EXPORT_PAGE`` tasks so that no single request grows with the
project, and replaces the project's annotations as a whole. Every export is written to
``exports/`` byte for byte as the server sent it (named by time, project and sha256) before it
is parsed; earlier exports stay in the archive. The high-water mark is the newest task
``updated_at`` on the server, read before exporting, so a change made while pulling is
fetched next time.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from verify import custody
from verify.errors import ServerError, VerifyError
from verify.labelstudio.client import LabelStudioClient, batched
from verify.workspace import Workspace, atomic_write, now_utc


EXPORT_PAGE = 500  # task ids per export request (Django refuses 1,000 query fields)


@dataclass
class PullResult:
    export_files: list[str]
    full: bool
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


def pull(ws: Workspace, client: LabelStudioClient, full: bool = False) -> PullResult:
    """Bring the project's annotations (and the lead's, from the adjudication project) into the workspace.

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
    result = _pull_project(ws, client, int(project), users, full=full)
    adjudication = ws.get_meta("adjudication_project_id")
    if adjudication:
        lead = ws.get_meta("adjudication_lead")
        decisions = _pull_project(ws, client, int(adjudication), users, lead=lead or "", full=full)
        result.lead_decisions = decisions.annotations
        result.ignored = decisions.ignored
        result.export_files += decisions.export_files
    return result


def _pull_project(ws: Workspace, client: LabelStudioClient, project_id: int, users: dict[int, str],
                  lead: str | None = None, full: bool = False) -> PullResult:
    """Archive one project's exports and bring its annotations in the workspace up to date.

    With ``lead`` (the adjudication project): annotations are ground truth; when ``lead`` is
    an email, only that user's count and the others are ignored.
    """
    mark = f"pulled_until:{project_id}"
    since = None if full else ws.get_meta(mark)
    # read before exporting: a change made after this point has a later updated_at and is fetched next time
    latest = client.latest_update(project_id)
    if since:
        pages = list(batched(client.changed_tasks(project_id, since), EXPORT_PAGE))
    else:
        known = ws.task_ids(project_id)
        pages = list(batched(known, EXPORT_PAGE)) if known else [None]  # None: every task, in one export
    archived, tasks, records = [], [], []  # (file, sha256) of each export page
    for page in pages:
        name, exported, sha = _archive(ws, client, project_id, page)
        archived.append((name, sha))
        tasks += exported
        records += [{**r, "export_file": name} for r in parse_export(exported, users)]
    ignored = 0
    if lead is not None:
        kept = [r for r in records if not lead or r["reviewer"] == lead]
        ignored = len(records) - len(kept)
        records = [{**r, "ground_truth": True} for r in kept]
    with ws.transaction() as db:
        if since:  # replace the annotations of the changed tasks only
            for page in pages:
                db.execute(f"DELETE FROM annotations WHERE project_id = ? AND task_id IN ({','.join('?' * len(page))})",
                           (project_id, *page))
        else:
            db.execute("DELETE FROM annotations WHERE project_id = ?", (project_id,))
        db.executemany(
            "INSERT OR REPLACE INTO annotations (id, project_id, task_id, frame_key, reviewer_id, reviewer, was_cancelled,"
            " ground_truth, result, created_at, updated_at, export_file) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r["id"], project_id, r["task_id"], r["frame_key"], r["reviewer_id"], r["reviewer"], r["was_cancelled"],
              r["ground_truth"], json.dumps(r["result"]), r["created_at"], r["updated_at"], r["export_file"]) for r in records],
        )
        ws.set_meta(mark, latest or since)
        ws.set_meta("last_pull_at", now_utc())
    custody.record(ws, "pull", outputs=archived, server=client.url,
                   label_studio_user=client.user.get("email"), project_id=project_id, full=not since,
                   tasks=len(tasks), annotations=len(records),
                   annotations_by=dict(Counter(r["reviewer"] for r in records)), lead=lead)
    return PullResult(
        export_files=[name for name, _ in archived], full=not since, tasks=len(tasks), annotations=len(records),
        skipped=sum(r["was_cancelled"] for r in records), reviewers=len({r["reviewer_id"] for r in records}),
        ignored=ignored,
    )


def _archive(ws: Workspace, client: LabelStudioClient, project_id: int, ids: list[int] | None) -> tuple[str, list[dict], str]:
    """Export (all tasks, or ``ids``), write the bytes to exports/ read-only, record them; return (file, tasks, sha256)."""
    raw = client.export_json(project_id, ids)
    try:
        tasks = json.loads(raw)
    except ValueError:
        raise ServerError(f"{client.url}: the export of project {project_id} is not JSON; retry, and check the server log")
    if not isinstance(tasks, list):
        raise ServerError(f"{client.url}: the export of project {project_id} is not a list of tasks")
    sha = hashlib.sha256(raw).hexdigest()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    name = f"exports/{stamp}-project{project_id}-{sha[:12]}.json"
    atomic_write(ws.path(name), raw, mode=0o444)
    annotations = sum(len(t.get("annotations") or []) for t in tasks)
    with ws.transaction() as db:
        db.execute(
            "INSERT OR REPLACE INTO exports (file, sha256, pulled_at, project_id, tasks, annotations) VALUES (?, ?, ?, ?, ?, ?)",
            (name, sha, now_utc(), project_id, len(tasks), annotations),
        )
    return name, tasks, sha
