"""Status: where a workspace stands, for the coordinator (as of the last pull)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from verify.verdicts.claim_decisions import SENT_META, claim_key, conflict_digest
from verify.verdicts.merge import ClaimVerdict, Verdicts, review_progress
from verify.workspace import Workspace


@dataclass
class VideoStatus:
    source_id: str
    sha256: str
    frames_status: str
    frames: int
    linked_frames: int  # frames linked to a frame of another source (re-uploads)
    reupload_of: list[str]  # "SOURCE: where in it", for each earlier video this one re-uploads


@dataclass
class Status:
    workspace: str
    case: str
    videos: list[VideoStatus]
    frames: int
    tasks: int
    open_tasks: int
    reviewers_per_frame: int
    label_studio: dict[str, Any]  # url, project_id
    last_pull: str | None
    reviewers: dict[str, dict[str, int]]  # reviewer → assigned, done, skipped, cannot_review, remaining (the review project only)
    claims: list[dict[str, Any]]  # id, frames, reviewed, done, answers, skips, cannot_review, remaining, verdict (as the report counts)
    adjudication: dict[str, Any]  # project_id, lead, sent, decided, waiting, disputed_not_sent, lead_decisions{lead: n}
    # frames_located, sources, sources_located, agreed, disputed, pending, unreadable, claims{claim: verdict}
    locations: dict[str, Any] | None = None
    # reviewers' "cannot review" answers: annotations, reasons{reason: n}, frames_nobody_could_review[{key, source_id, t_ms}]
    cannot_review: dict[str, Any] | None = None
    # open tasks: which reviewers seen so far can still take them, and how many need a new reviewer
    # {"open": n, "takers": {reviewer: n}, "need_new_reviewer": [{key, source_id, t_ms, reviews}]}
    needs: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def workspace_status(ws: Workspace, verdicts: Verdicts) -> Status:
    """The workspace's videos, frames, tasks and review progress, with each claim's verdict from ``verdicts``."""
    videos, frames = ws.videos(), ws.frames()
    project = ws.get_meta("project_id")
    tasks = ws.tasks()
    progress = review_progress(ws.case, tasks, ws.annotations())
    needed = ws.case.review.reviewers_per_frame
    exports = ws.exports()
    source_of = {v.sha256: v.source_id for v in videos}
    reuploads = ws.reuploads()
    per_video: dict[str, list[int]] = {v.sha256: [0, 0] for v in videos}
    for f in frames:
        per_video[f.video_sha256][0] += 1
        per_video[f.video_sha256][1] += bool(f.duplicate_of)
    return Status(
        workspace=str(ws.root),
        case=ws.case.id,
        videos=[VideoStatus(v.source_id, v.sha256, v.frames_status or "pending", *per_video[v.sha256],
                            [f"{source_of[r.original_sha256]}: {r.span.replace(' of A', '')} ({r.frames} frames)"
                             for r in reuploads if r.video_sha256 == v.sha256]) for v in videos],
        frames=len(frames),
        tasks=len(tasks),
        open_tasks=progress["open_tasks"],
        reviewers_per_frame=progress["reviewers_per_frame"],
        label_studio={"url": ws.get_meta("server_url"), "project_id": int(project) if project else None},
        last_pull=ws.get_meta("last_pull_at") or (exports[-1].pulled_at if exports else None),
        reviewers=progress["reviewers"],
        claims=[_claim_row(c, verdicts, needed) for c in verdicts.claims],
        adjudication=_queue(ws, verdicts),
        locations=_locations(verdicts),
        cannot_review=_cannot_review(verdicts),
        needs=_needs(verdicts, needed),
    )


def _needs(verdicts: Verdicts, needed: int) -> dict[str, Any]:
    """Who can still review the open tasks, and the frames that every reviewer so far has already touched."""
    found = verdicts.still_open(needed)
    by_key = {f.key: f for f in verdicts.frames}
    return {**found, "need_new_reviewer": [{"key": key, "source_id": by_key[key].source_id, "t_ms": by_key[key].t_ms,
                                            "reviews": reviews} for key, reviews in found["need_new_reviewer"]]}


def _cannot_review(verdicts: Verdicts) -> dict[str, Any]:
    """How many times reviewers said they could not review a frame, why, and the frames nobody could review."""
    reasons: dict[str, int] = {}
    for video in verdicts.videos:
        for reason, n in video.cannot_review_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + n
    return {"annotations": sum(reasons.values()), "reasons": dict(sorted(reasons.items())),
            "frames_nobody_could_review": [{"key": f.key, "source_id": f.source_id, "t_ms": f.t_ms}
                                           for f in verdicts.frames if f.nobody_could_review]}


def _locations(verdicts: Verdicts) -> dict[str, Any]:
    """How many frames and sources reviewers located, how many sources they agree on, each location claim's verdict."""
    found = verdicts.locations
    sources = found.sources if found else []
    status = [s.status for s in sources]
    return {"frames_located": sum(1 for f in verdicts.frames if any(x["lat"] is not None for x in f.locations)),
            "sources": len(sources), "sources_located": sum(1 for s in status if s != "unlocated"),
            "agreed": status.count("agreed"), "disputed": status.count("disputed"), "pending": status.count("pending"),
            "unreadable": len(found.unparsed) if found else 0,
            "claims": {c.claim_id: c.verdict for c in found.claims} if found else {}}


def _claim_row(claim: ClaimVerdict, verdicts: Verdicts, needed: int) -> dict[str, Any]:
    """One claim's progress over the same frames the report counts for it (``ClaimVerdict.frames``)."""
    frames = [f for f in verdicts.frames if claim.id in f.bears_on or f.verdicts[claim.id].answers]
    waiting = sum(1 for f in frames if f.task_id is not None and f.verdicts[claim.id].answers < needed)
    return {"id": claim.id, "frames": claim.frames, "reviewed": claim.reviewed_frames, "answered": claim.reviewed_frames,
            "done": claim.complete,
            "answers": claim.answers, "skips": claim.skips, "cannot_review": claim.cannot_review, "remaining": waiting,
            "verdict": claim.verdict, "provisional": claim.provisional,
            # the verdict rests on these: independent frames (a re-upload counted with its original) and their sources
            "evidence_frames": len(claim.supporting) + len(claim.contradicting) + len(claim.disputed),
            "independent_sources": len(claim.independent_sources),
            "short_of_quorum": len(claim.short_of_quorum)}


def _queue(ws: Workspace, verdicts: Verdicts) -> dict[str, Any]:
    """The adjudication queue: disputed frames sent to the lead, decided by them, still waiting, not yet sent."""
    project = ws.get_meta("adjudication_project_id")
    sent = len(ws.task_ids(int(project))) if project else 0
    decided = [f for f in verdicts.frames if any(v.adjudicated_by for v in f.verdicts.values())]
    waiting = max(0, sent - len(decided))
    leads: dict[str, int] = {}
    for f in decided:
        for v in f.verdicts.values():
            if v.adjudicated_by:
                leads[v.adjudicated_by] = leads.get(v.adjudicated_by, 0) + 1
    for c in verdicts.claims:
        if c.decided_by:
            leads[c.decided_by] = leads.get(c.decided_by, 0) + 1
    return {"project_id": int(project) if project else None, "lead": ws.get_meta("adjudication_lead"), "sent": sent,
            "decided": len(decided), "waiting": waiting,
            "disputed_not_sent": max(0, len(verdicts.disputed_frames()) - waiting), "lead_decisions": leads,
            "claims": _claim_queue(ws, verdicts)}


def _claim_queue(ws: Workspace, verdicts: Verdicts) -> dict[str, Any]:
    """Claims whose frames conflict: decided by the lead, sent and waiting for the lead, or not yet sent."""
    sent_keys = set(json.loads(ws.get_meta(SENT_META) or "[]"))
    open_ = [c for c in verdicts.claims if c.verdict == "disputed" and c.supporting and c.contradicting]
    waiting = [c.id for c in open_ if claim_key(c.id, conflict_digest(c.supporting, c.contradicting)) in sent_keys]
    return {"project_id": int(p) if (p := ws.get_meta("claims_project_id")) else None,
            "decided": [c.id for c in verdicts.claims if c.decided_by], "waiting": waiting,
            "not_sent": [c.id for c in open_ if c.id not in waiting]}
