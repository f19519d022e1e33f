"""Adjudicate: send the frames reviewers disagree on to a lead reviewer.

The disputed frames go, as tasks, into a second Label Studio project of the workspace (the
adjudication project: same labeling config plus the reviewers' answers above the image, one
annotation per task). ``verify pull`` reads that project too; the lead's answers are
ground truth and decide the frame's verdict (merge rule 3), the report shows both the
decision and the vote. Run it again after new disputes arise: frames already sent are not sent
twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from verify import custody
from verify.case import VERDICT_CHOICES, Case
from verify.clock import timestamp
from verify.errors import OptionError, VerifyError
from verify.labelstudio.client import LabelStudioClient
from verify.labelstudio.project import ADJUDICATION, build_task, ensure_project, frames_served, image_mode, import_missing
from verify.records import Frame
from verify.verdicts.merge import FrameVerdict, Verdicts
from verify.workspace import Workspace

ANSWER_TEXT = VERDICT_CHOICES


@dataclass
class AdjudicateResult:
    project_id: int
    project_url: str
    disputed: int
    imported: int
    lead: str | None
    # conflict of interest: the disputed frames the lead answered as a reviewer ("source at H:MM:SS.mmm (key)")
    conflicts: list[str] = field(default_factory=list)


def lead_conflicts(disputed: list[FrameVerdict], lead: str | None) -> list[str]:
    """The disputed frames on which ``lead`` was one of the disputing reviewers (pure)."""
    if not lead:
        return []
    return [f"{f.source_id} at {timestamp(f.t_ms)} ({f.key[:8]})" for f in disputed
            if any(lead in f.verdicts[claim].by_reviewer for claim in f.disputed_claims)]


def dispute_text(frame: FrameVerdict, case: Case) -> str:
    """One line for the lead: each disputed claim with who answered what (pure)."""
    parts = []
    for claim in case.claims:
        vote = frame.verdicts[claim.id]
        if vote.verdict == "disputed":
            votes = ", ".join(f"{who}: {ANSWER_TEXT[answer]}" for who, answer in sorted(vote.by_reviewer.items()))
            parts.append(f"{claim.id} ({votes})")
    return "Disputed: " + "; ".join(parts)


def adjudicate(
    ws: Workspace, client: LabelStudioClient, files_root: Path | None, verdicts: Verdicts, lead: str | None = None,
    progress: Callable[[int], None] | None = None, images: str = "auto",
) -> AdjudicateResult:
    """Send every frame the merged ``verdicts`` show disputed to the adjudication project; return what was done.

    Raises:
        VerifyError: nothing pulled yet.
        OptionError: the lead is not a user of the server, or no way to serve frames.
        ServerError, AuthError: from Label Studio.
    """
    if not ws.exports():
        raise VerifyError("no annotations pulled yet, so nothing is disputed; run `verify pull` first")
    mode = image_mode(client, files_root, images)
    if lead and lead not in {u["email"] for u in client.users()}:
        raise OptionError("lead", f"{lead!r} is not a user of {client.url}; add them with `verify reviewers add {lead}`")
    case = ws.case
    disputed = verdicts.disputed_frames()
    conflicts = lead_conflicts(disputed, lead)
    project_id, _, _ = ensure_project(ws, client, role=ADJUDICATION)
    ws.update_meta(adjudication_lead=lead)
    imported = 0
    if disputed:
        records = {f.key: f for f in ws.frames()}
        videos = {v.sha256: v for v in ws.videos()}
        frames = [records[f.key] for f in disputed]
        why = {f.key: dispute_text(f, case) for f in disputed}
        workspace_id = ws.id

        def make_task(frame: Frame) -> dict[str, Any]:
            task = build_task(frame, videos[frame.video_sha256], urls[frame.key], workspace_id)
            task["data"]["dispute"] = why[frame.key]
            task["data"]["timestamp"] = f"Frame at {timestamp(frame.t_ms)} (shot {frame.shot + 1}) · lead review"
            return task

        with frames_served(ws, client, project_id, frames, mode, files_root) as (urls, _):
            existing, imported = import_missing(client, project_id, frames, make_task, progress)
        ws.record_tasks(project_id, existing)
    custody.record(ws, "adjudicate", server=client.url, label_studio_user=client.user.get("email"), project_id=project_id,
                   disputed_frames=len(disputed), imported=imported, lead=lead, lead_answered_frames=conflicts)
    return AdjudicateResult(project_id, f"{client.url}/projects/{project_id}/data", len(disputed), imported, lead, conflicts)
