"""Adjudicate: send the frames reviewers disagree on to a lead reviewer.

The disputed frames go, as tasks, into a second Label Studio project of the workspace (the
adjudication project: same labeling config plus the reviewers' answers above the image, one
annotation per task). ``verify pull`` reads that project too; the lead's answers are
ground truth and decide the frame's verdict (merge rule 3), the report shows both the
decision and the vote. Run it again after new disputes arise: frames already sent are not sent
twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from verify import custody
from verify.case import VERDICT_CHOICES, Case
from verify.errors import VerifyError
from verify.labelstudio.client import LabelStudioClient
from verify.verdicts.merge import merge_workspace
from verify.labelstudio.push import (
    ADJUDICATION,
    build_task,
    ensure_project,
    frames_served,
    image_mode,
    import_missing,
    timestamp,
)
from verify.workspace import Workspace

ANSWER_TEXT = VERDICT_CHOICES


@dataclass
class AdjudicateResult:
    project_id: int
    project_url: str
    disputed: int
    imported: int
    lead: str | None


def dispute_text(frame: dict[str, Any], case: Case) -> str:
    """One line for the lead: each disputed claim with who answered what (pure)."""
    parts = []
    for claim in case.claims:
        verdict = frame["verdicts"][claim.id]
        if verdict["verdict"] == "disputed":
            votes = ", ".join(f"{who}: {ANSWER_TEXT[answer]}" for who, answer in sorted(verdict["by_reviewer"].items()))
            parts.append(f"{claim.id} ({votes})")
    return "Disputed: " + "; ".join(parts)


def disputed(merged: dict[str, Any]) -> list[dict[str, Any]]:
    """Merged frames with at least one claim still disputed (not yet adjudicated)."""
    return [f for f in merged["frames"] if any(v["verdict"] == "disputed" for v in f["verdicts"].values())]


def adjudicate(
    ws: Workspace, client: LabelStudioClient, files_root: Path | None, lead: str | None = None,
    progress: Callable[[int], None] | None = None, images: str = "auto",
) -> AdjudicateResult:
    """Send every disputed frame to the adjudication project; return what was done.

    Raises:
        VerifyError: nothing pulled yet, or no way to serve frames.
        ServerError, AuthError: from Label Studio.
    """
    if not ws.exports():
        raise VerifyError("no annotations pulled yet, so nothing is disputed; run `verify pull` first")
    mode = image_mode(client, files_root, images)
    if lead and lead not in {u["email"] for u in client.users()}:
        raise VerifyError(f"--lead {lead!r} is not a user of {client.url}; add them with `verify reviewers add {lead}`")
    case = ws.case
    merged = merge_workspace(ws)
    frames = disputed(merged)
    project_id, _, _ = ensure_project(ws, client, role=ADJUDICATION)
    with ws.transaction():
        ws.set_meta("adjudication_lead", lead)
    if frames:
        records = {f["key"]: f for f in ws.frames()}
        videos = {v["sha256"]: v for v in ws.videos()}
        workspace_id = ws.id

        def make_task(frame: dict[str, Any]) -> dict[str, Any]:
            task = build_task(records[frame["key"]], videos[frame["video_sha256"]], urls[frame["key"]], workspace_id)
            task["data"]["dispute"] = dispute_text(frame, case)
            task["data"]["timestamp"] = f"Frame at {timestamp(frame['t_ms'])} (shot {frame['shot'] + 1}) · lead review"
            return task

        with frames_served(ws, client, project_id, [records[f["key"]] for f in frames], mode, files_root) as (urls, _):
            existing, imported = import_missing(client, project_id, frames, make_task, progress)
        with ws.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO tasks (frame_key, project_id, task_id) VALUES (?, ?, ?)",
                           [(key, project_id, task_id) for key, task_id in existing.items()])
    else:
        imported = 0
    custody.record(ws, "adjudicate", server=client.url, label_studio_user=client.user.get("email"), project_id=project_id,
                   disputed_frames=len(frames), imported=imported, lead=lead)
    return AdjudicateResult(project_id, f"{client.url}/projects/{project_id}/data", len(frames), imported, lead)
