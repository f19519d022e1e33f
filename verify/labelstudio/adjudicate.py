"""Adjudicate: send the frames reviewers disagree on to a lead reviewer.

The disputed frames go, as tasks, into a second Label Studio project of the workspace (the
adjudication project: same labeling config plus the reviewers' answers above the image, one
annotation per task). Each task shows the dispute: who answered what on each disputed claim
and the reviewers' notes (``dispute``), the disputed claims' texts (``disputed_claims``; their
ids in the task's meta); it asks the disputed claims first (their ``bears_<claim>`` fields say
who answered what; the other claims' are empty, so they stay folded); and it carries each
reviewer's boxes as a prediction named by the reviewer's email (``model_version``), which the
lead can accept or correct. Boxes are checked against the labeling config with the SDK before
they are sent: one the config cannot show is left out and counted. ``verify pull`` reads that
project too; the lead's answers are ground truth and decide the frame's verdict (merge rule 3),
the report shows both the decision and the vote. Run it again after new disputes arise: frames already sent are not sent
twice.

Claims whose frames conflict (reviewers agreed that some frames support the claim and others contradict it) cannot be
settled frame by frame: each goes, as one task showing the conflicting frames side by side, to a third project (the
claim-decisions project, see ``verify.labelstudio.claims``), where the lead decides the claim with a note; it is sent
again when the set of conflicting frames changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from verify import custody
from verify.case import VERDICT_CHOICES, Case
from verify.clock import timestamp
from verify.errors import OptionError, VerifyError
from verify.labelstudio.claims import send_claim_conflicts
from verify.labelstudio.client import LabelStudioClient, region_errors
from verify.labelstudio.config import BOXES, bears_field, build_config
from verify.labelstudio.project import (ADJUDICATION, build_task, ensure_project, frames_served, image_mode,
                                       import_missing, shows_strips, strips_of)
from verify.records import Annotation, Frame
from verify.verdicts.merge import FrameVerdict, Verdicts, decode
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
    predictions: int = 0  # reviewers' sets of boxes sent with the newly imported tasks, as predictions
    boxes_left_out: int = 0  # reviewers' boxes the labeling config cannot show (e.g. a label since removed)
    # claims whose frames conflict (some support, others contradict it), sent to the claim-decisions project
    claim_conflicts: int = 0
    claims_imported: int = 0  # newly sent (not sent before with the same conflicting frames)
    claims_project_id: int | None = None  # None: no claim has conflicted yet, so no such project
    claims_project_url: str = ""


def claims_sent(result: AdjudicateResult) -> list[str]:
    """What ``verify adjudicate`` says of the claims whose frames conflict (pure); nothing before any has."""
    if result.claims_project_id is None:
        return []
    n = result.claim_conflicts
    return [f"{n} {'claim' if n == 1 else 'claims'} whose frames conflict (some support it, others contradict it); "
            f"{result.claims_imported} newly sent for a claim decision to project {result.claims_project_id}: "
            f"{result.claims_project_url}"]


def lead_conflicts(disputed: list[FrameVerdict], lead: str | None) -> list[str]:
    """The disputed frames on which ``lead`` was one of the disputing reviewers (pure)."""
    if not lead:
        return []
    return [f"{f.source_id} at {timestamp(f.t_ms)} ({f.key[:8]})" for f in disputed
            if any(lead in f.verdicts[claim].by_reviewer for claim in f.disputed_claims)]


def dispute_text(frame: FrameVerdict, case: Case) -> str:
    """For the lead: each disputed claim with who answered what, then the reviewers' notes (pure)."""
    parts = []
    for claim in case.claims:
        vote = frame.verdicts[claim.id]
        if vote.verdict == "disputed":
            votes = ", ".join(f"{who}: {ANSWER_TEXT[answer]}" for who, answer in sorted(vote.by_reviewer.items()))
            parts.append(f"“{claim.text}” ({votes})")  # the claim's words, as the lead read them, not its id
    text = "Disputed: " + "; ".join(parts)
    notes = [f"{n['reviewer']}: {n['text']}" for n in frame.notes if not n["lead"]]
    notes += [f"{c['reviewer']} could not review it ({c['reason_text']})" + (f": {' '.join(c['notes'])}" if c["notes"] else "")
              for c in frame.cannot_review if not c["lead"]]
    return text + (". Reviewers' notes: " + " · ".join(notes) if notes else ". No reviewer left a note.")


def disputed_claims_text(frame: FrameVerdict, case: Case) -> str:
    """The disputed claims in plain words, one per line, in the case's order: what the lead is asked first (pure)."""
    return "\n".join(f"Disputed: {claim.text}" for claim in case.claims if claim.id in frame.disputed_claims)


def asked_first(frame: FrameVerdict, case: Case) -> dict[str, str]:
    """Each claim's "bears" field for the lead's task (pure): who answered what on a disputed claim, which the
    labeling config then asks first and opens; empty for the others, which stay folded but answerable."""
    fields = {}
    for claim in case.claims:
        vote = frame.verdicts[claim.id]
        fields[bears_field(claim.id)] = ("Disputed: " + ", ".join(
            f"{who}: {ANSWER_TEXT[answer]}" for who, answer in sorted(vote.by_reviewer.items()))
            if vote.verdict == "disputed" else "")
    return fields


def reviewer_predictions(annotations: list[Annotation], case: Case,
                         errors: Callable[[list[dict[str, Any]]], list[list[str]]]) -> tuple[list[dict[str, Any]], int]:
    """Each reviewer's boxes on one frame as a Label Studio prediction (``model_version``: the reviewer), and how
    many boxes were left out because ``errors`` (the labeling config's check) finds fault with them (pure).

    Only reviews count (not skips, not "cannot review", not a lead's decision); the boxes are the region results
    exactly as the reviewer's annotation holds them (one drag stored twice is sent once). Claim answers are never
    pre-filled: the lead answers those afresh.
    """
    by_reviewer: dict[str, list[dict[str, Any]]] = {}
    for annotation in sorted(annotations, key=lambda a: (a.reviewer, a.id)):
        if not decode(annotation, case).counts:
            continue
        seen = set()
        for item in annotation.result or []:
            if item.get("type") != "rectanglelabels":
                continue
            value = item.get("value") or {}
            signature = repr(sorted((k, repr(v)) for k, v in value.items()))
            if signature not in seen:
                seen.add(signature)
                # a box drawn before the labels had one control comes in under its group's control: the lead's copy
                # goes under the one control, so relabelling it replaces its label instead of adding a second one
                by_reviewer.setdefault(annotation.reviewer, []).append({**item, "from_name": BOXES})
    regions = [item for items in by_reviewer.values() for item in items]
    faults = errors(regions) if regions else []
    bad = {id(item) for item, fault in zip(regions, faults) if fault}
    predictions = []
    for reviewer, items in by_reviewer.items():
        kept = [item for item in items if id(item) not in bad]
        if kept:
            predictions.append({"model_version": reviewer, "result": kept})
    return predictions, len(bad)


def adjudicate(
    ws: Workspace, client: LabelStudioClient, files_root: Path | None, verdicts: Verdicts, lead: str | None = None,
    progress: Callable[[int], None] | None = None, images: str = "auto",
) -> AdjudicateResult:
    """Send every frame the merged ``verdicts`` show disputed to the adjudication project, and every claim whose frames
    conflict to the claim-decisions project; return what was done.

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
    context = shows_strips(mode)  # as push: direct upload takes one picture per task, so no strip
    project_id, _, _ = ensure_project(ws, client, role=ADJUDICATION, context=context)
    ws.update_meta(adjudication_lead=lead)
    imported = 0
    sent = {"predictions": 0, "left_out": 0}
    if disputed:
        records = {f.key: f for f in ws.frames()}
        videos = {v.sha256: v for v in ws.videos()}
        frames = [records[f.key] for f in disputed]
        by_key = {f.key: f for f in disputed}
        reviews: dict[str, list[Annotation]] = {}
        for annotation in ws.annotations():
            if annotation.frame_key in by_key and not annotation.ground_truth:
                reviews.setdefault(annotation.frame_key, []).append(annotation)
        config = build_config(case, adjudication=True, context=context)
        strips = strips_of(ws, [f.key for f in disputed]) if context else {}
        workspace_id = ws.id

        def make_task(frame: Frame) -> dict[str, Any]:
            verdict = by_key[frame.key]
            strip = strips.get(frame.key)
            task = build_task(frame, videos[frame.video_sha256], urls[frame.key], workspace_id, strip,
                              urls.get(strip.key) if strip else None)
            task["data"]["dispute"] = dispute_text(verdict, case)
            task["data"]["disputed_claims"] = disputed_claims_text(verdict, case)
            task["data"].update(asked_first(verdict, case))  # the disputed claims first, not the source's
            task["data"]["timestamp"] = f"Frame at {timestamp(frame.t_ms)} (shot {frame.shot + 1}) · lead review"
            task["meta"]["disputed_claims"] = verdict.disputed_claims
            predictions, left_out = reviewer_predictions(reviews.get(frame.key, []), case,
                                                         lambda regions: region_errors(config, regions))
            if predictions:
                task["predictions"] = predictions
            sent["predictions"] += len(predictions)
            sent["left_out"] += left_out
            return task

        with frames_served(ws, client, project_id, [*frames, *strips.values()], mode, files_root) as (urls, _):
            existing, imported = import_missing(client, project_id, frames, make_task, progress)
        ws.record_tasks(project_id, existing)
    claims = send_claim_conflicts(ws, client, files_root, verdicts, mode, progress)
    custody.record(ws, "adjudicate", outputs=claims.montages, server=client.url, label_studio_user=client.user.get("email"),
                   project_id=project_id, disputed_frames=len(disputed), imported=imported, lead=lead,
                   lead_answered_frames=conflicts, reviewer_predictions=sent["predictions"], boxes_left_out=sent["left_out"],
                   claims_project_id=claims.project_id, claim_conflicts=claims.conflicts, claims_imported=claims.imported)
    return AdjudicateResult(project_id, f"{client.url}/projects/{project_id}/data", len(disputed), imported, lead, conflicts,
                            predictions=sent["predictions"], boxes_left_out=sent["left_out"],
                            claim_conflicts=claims.conflicts, claims_imported=claims.imported,
                            claims_project_id=claims.project_id, claims_project_url=claims.project_url)
