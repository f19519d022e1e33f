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
from dataclasses import dataclass, field, replace
from typing import Any

from verify import custody
from verify.clock import file_stamp, now_utc
from verify.errors import ProjectMissing, ServerError, VerifyError
from verify.files import atomic_write
from verify.labelstudio.claims import task_record_item
from verify.labelstudio.client import LabelStudioClient, batched
from verify.labelstudio.project import CLAIMS
from verify.records import Annotation, Export
from verify.verdicts.claim_decisions import parse_key
from verify.verdicts.merge import Review, decode
from verify.workspace import Workspace, locked


EXPORT_PAGE = 500  # task ids per export request (Django refuses 1,000 query fields)


@dataclass
class PullResult:
    export_files: list[str]
    full: bool
    tasks: int
    annotations: int
    skipped: int
    reviewers: int
    cannot_review: int = 0  # annotations saying "cannot review this frame" with a reason (not skips, not votes)
    lead_decisions: int = 0
    ignored: int = 0  # annotations in the adjudication (and claim-decisions) project by someone other than the lead
    claim_decisions: int = 0  # the lead's annotations in the claim-decisions project (skips included, as lead_decisions)
    # location texts that are not coordinates verify can read: {task_id, frame_key, reviewer, text, reason}
    unreadable_locations: list[dict[str, Any]] = field(default_factory=list)
    # regions given two labels at once (Label Studio #5198): {task_id, frame_key, reviewer, labels}; counted as neither
    ambiguous_boxes: list[dict[str, Any]] = field(default_factory=list)


def unreadable_location(record: Annotation, review: Review) -> dict[str, Any] | None:
    """The annotation's location text if it cannot be read as coordinates (``review``: ``decode(record, case)``),
    with the task, reviewer and text (pure)."""
    location = review.location
    if location and location.error:
        return {"task_id": record.task_id, "frame_key": record.frame_key, "reviewer": record.reviewer,
                "text": location.text, "reason": location.error}
    return None


def parse_export(tasks: list[dict[str, Any]], users: dict[int, str]) -> list[Annotation]:
    """One record per annotation in a Label Studio JSON export (pure).

    Drafts are not annotations and are left out; skipped tasks stay (``was_cancelled``) so a
    skip is counted as a skip. Results are kept as exported: a "cannot review" answer (its
    reason stored as key or label) is read by the merge. ``users`` maps user id → email.
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
            records.append(Annotation(
                id=ann["id"], task_id=task["id"], frame_key=key, reviewer_id=reviewer_id, reviewer=name,
                was_cancelled=bool(ann.get("was_cancelled")), ground_truth=bool(ann.get("ground_truth")),
                result=ann.get("result") or [], created_at=ann.get("created_at"), updated_at=ann.get("updated_at"),
            ))
    return records


@locked("pull")
def pull(ws: Workspace, client: LabelStudioClient, full: bool = False) -> PullResult:
    """Bring the project's annotations (and the lead's, from the adjudication and claim-decisions projects) into the
    workspace.

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
        try:
            decisions = _pull_project(ws, client, int(adjudication), users, lead=lead or "", full=full)
        except ProjectMissing:
            raise ProjectMissing(f"{client.url}: the adjudication project {adjudication} is gone from the server (the reviewers' "
                                 "annotations were pulled); run `verify adjudicate` to send the disputed frames to a new one")
        result.lead_decisions = decisions.annotations
        result.ignored = decisions.ignored
        result.export_files += decisions.export_files
        result.unreadable_locations += decisions.unreadable_locations
        result.ambiguous_boxes += decisions.ambiguous_boxes
    claims = ws.get_meta(CLAIMS.meta)
    if claims:
        lead = ws.get_meta("adjudication_lead")
        try:
            decided = _pull_project(ws, client, int(claims), users, lead=lead or "", full=full, claim_tasks=True)
        except ProjectMissing:
            raise ProjectMissing(f"{client.url}: the claim-decisions project {claims} is gone from the server (the other "
                                 "annotations were pulled); run `verify adjudicate` to send the claims whose frames conflict "
                                 "to a new one")
        result.claim_decisions = decided.annotations
        result.ignored += decided.ignored
        result.export_files += decided.export_files
    return result


def with_task_records(tasks: list[dict[str, Any]], records: list[Annotation]) -> list[Annotation]:
    """Claim-decision annotations with their task's record of what it showed added to their result (pure): the
    annotations table keeps no task data, and a decision must say which frames it was made on."""
    meta = {t["id"]: t.get("meta") or {} for t in tasks}
    return [replace(r, result=[*(r.result or []), task_record_item(meta.get(r.task_id, {}))])
            if parse_key(r.frame_key) else r for r in records]


def _pull_project(ws: Workspace, client: LabelStudioClient, project_id: int, users: dict[int, str],
                  lead: str | None = None, full: bool = False, claim_tasks: bool = False) -> PullResult:
    """Archive one project's exports and bring its annotations in the workspace up to date.

    Page by page: each export page is archived and its annotations stored before the next is asked for, and
    only counts are kept (``Tally``), so memory does not grow with the project.
    With ``lead`` (the adjudication project): annotations are ground truth; when ``lead`` is
    an email, only that user's count and the others are ignored. ``claim_tasks`` (the claim-decisions project):
    each annotation also carries its task's record (``with_task_records``).
    """
    mark = f"pulled_until:{project_id}"
    since = None if full else ws.get_meta(mark)
    # read before exporting: a change made after this point has a later updated_at and is fetched next time
    if since:
        changed, newest = client.changed_tasks(project_id, since)
        latest = newest or since
        pages: list[list[int] | None] = list(batched(changed, EXPORT_PAGE))
    else:
        changed, latest = None, client.latest_update(project_id)  # None: the whole project
        known = ws.task_ids(project_id)
        pages = list(batched(known, EXPORT_PAGE)) if known else [None]  # None: every task, in one export
    tally = Tally(ws.case)

    def annotations():
        for page in pages:
            name, exported, sha = _archive(ws, client, project_id, page)
            records = [replace(r, project_id=project_id, export_file=name) for r in parse_export(exported, users)]
            if claim_tasks:
                records = with_task_records(exported, records)
            if lead is not None:
                kept = [replace(r, ground_truth=True) for r in records if not lead or r.reviewer == lead]
                tally.ignored += len(records) - len(kept)
                records = kept
            tally.add(name, sha, len(exported), records)
            yield from records

    ws.replace_annotations(project_id, annotations(), changed, **{mark: latest, "last_pull_at": now_utc()})
    custody.record(ws, "pull", outputs=tally.archived, server=client.url,
                   label_studio_user=client.user.get("email"), project_id=project_id, full=not since,
                   tasks=tally.tasks, annotations=tally.annotations, annotations_by=dict(tally.by_reviewer), lead=lead)
    return PullResult(
        export_files=[name for name, _ in tally.archived], full=not since, tasks=tally.tasks,
        annotations=tally.annotations, skipped=tally.skipped, reviewers=len(tally.reviewers),
        cannot_review=tally.cannot_review, ignored=tally.ignored, unreadable_locations=tally.unreadable,
        ambiguous_boxes=tally.ambiguous,
    )


class Tally:
    """What a pull reports of the annotations it stored, counted page by page (none of them kept)."""

    def __init__(self, case: Any):
        self.case = case
        self.archived: list[tuple[str, str]] = []  # (file, sha256) of each export page
        self.tasks = self.annotations = self.skipped = self.cannot_review = self.ignored = 0
        self.reviewers: set[int | None] = set()
        self.by_reviewer: Counter[str] = Counter()
        self.unreadable: list[dict[str, Any]] = []
        self.ambiguous: list[dict[str, Any]] = []

    def add(self, export_file: str, sha256: str, tasks: int, records: list[Annotation]) -> None:
        self.archived.append((export_file, sha256))
        self.tasks += tasks
        self.annotations += len(records)
        self.reviewers.update(r.reviewer_id for r in records)
        self.by_reviewer.update(r.reviewer for r in records)
        reviews = [(r, decode(r, self.case)) for r in records]  # the merge's own reading of each answer, once
        cannot = [r for r, review in reviews if review.cannot_review]
        self.cannot_review += len(cannot)
        self.skipped += sum(r.was_cancelled for r in records) - sum(r.was_cancelled for r in cannot)  # a reason is not a skip
        self.unreadable += [u for u in (unreadable_location(r, review) for r, review in reviews) if u]
        self.ambiguous += [{"task_id": r.task_id, "frame_key": r.frame_key, "reviewer": r.reviewer, "labels": a["labels"]}
                           for r, review in reviews for a in review.ambiguous]


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
    name = f"exports/{file_stamp()}-project{project_id}-{sha[:12]}.json"
    atomic_write(ws.path(name), raw, mode=0o444)
    ws.add_export(Export(file=name, sha256=sha, pulled_at=now_utc(), project_id=project_id, tasks=len(tasks),
                         annotations=sum(len(t.get("annotations") or []) for t in tasks)))
    return name, tasks, sha
