"""Claim decisions: what the lead decided on claims whose frames conflict.

When reviewers agree that some frames support a claim and others contradict it, no decision on a single frame
settles the claim (it rolls up as disputed). ``verify adjudicate`` sends each such claim to the lead as one task
of the claim-decisions project (``verify.labelstudio.claims``): the conflicting frames side by side, the claim,
and a decision (Supported / Contradicted / Inconclusive) with a note. ``verify pull`` stores the lead's
annotations of those tasks in the workspace's annotations table, as ground truth, under the frame key
``claim:<claim id>:<digest>`` (no frame has such a key, so the frame merge passes them by), each with one item
added to its result by verify (``TASK_RECORD``): the task's own record of which frames it showed.

Pure functions over plain records; nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable

from verify.case import Case
from verify.labelstudio.config import CLAIM_DECISION, CLAIM_DECISIONS, CLAIM_NOTE
from verify.records import Annotation

KEY_PREFIX = "claim:"
# The result item a pull adds to each claim-decision annotation: the task's meta as the lead saw it (the
# annotations table keeps no task data). Its ``from_name`` is no control of any labeling config.
TASK_RECORD = "verify_task"
DIGEST_LENGTH = 16
SENT_META = "claims_sent"  # workspace meta: JSON list of the claim keys sent to the lead so far (for `verify status`)
_DECISION = {**{label.lower(): key for key, label in CLAIM_DECISIONS.items()}, **{key: key for key in CLAIM_DECISIONS}}


@dataclass(frozen=True)
class ClaimDecision:
    """The lead's decision on one claim whose frames conflict."""

    claim_id: str
    decision: str  # supported, contradicted or inconclusive
    lead: str  # the lead's email (as pulled)
    note: str  # the lead's note, verbatim ("" if none)
    frames: list[str]  # keys of the frames the task showed the lead (supporting first, then contradicting)
    digest: str  # of the conflicting frames the task was made for (``conflict_digest``): compare with the current one
    at: str | None  # when the decision was last saved (server time)
    annotation_id: int = 0
    task_id: int = 0


def conflict_digest(supporting: Iterable[str], contradicting: Iterable[str]) -> str:
    """A short digest of a claim's conflicting frames (pure): the supporting and the contradicting keys, each set
    sorted, so it changes when a frame joins, leaves or changes side, and not when the order does."""
    text = "supports:" + ",".join(sorted(set(supporting))) + "\ncontradicts:" + ",".join(sorted(set(contradicting)))
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]


def claim_key(claim_id: str, digest: str) -> str:
    """The frame key a claim-decision task and its annotations carry: ``claim:<claim id>:<digest>``."""
    return f"{KEY_PREFIX}{claim_id}:{digest}"


def parse_key(key: str | None) -> tuple[str, str] | None:
    """(claim id, digest) from a claim-decision key; None for any other key (a frame's)."""
    if not key or not key.startswith(KEY_PREFIX) or ":" not in key[len(KEY_PREFIX):]:
        return None
    claim_id, digest = key[len(KEY_PREFIX):].rsplit(":", 1)
    return (claim_id, digest) if claim_id and digest else None


def task_record(annotation: Annotation) -> dict[str, Any]:
    """The task's record that a pull added to a claim-decision annotation (empty if none)."""
    for item in annotation.result or []:
        if item.get("from_name") == TASK_RECORD and isinstance(item.get("value"), dict):
            return item["value"]
    return {}


def read_decision(annotation: Annotation, case: Case) -> ClaimDecision | None:
    """One annotation of the claim-decisions project as a decision (pure); None when it is not one: another
    project's annotation, a skip, no decision chosen, or a claim the case no longer has."""
    parsed = parse_key(annotation.frame_key)
    if parsed is None or annotation.was_cancelled or not annotation.ground_truth:
        return None
    claim_id, digest = parsed
    if claim_id not in {c.id for c in case.claims}:
        return None
    decision, notes = None, []
    for item in annotation.result or []:
        name, value = item.get("from_name"), item.get("value") or {}
        if name == CLAIM_DECISION:
            picked = [_DECISION.get(c.strip().lower()) for c in value.get("choices") or [] if isinstance(c, str)]
            decision = next((p for p in picked if p), decision)
        elif name == CLAIM_NOTE:
            notes += [t.strip() for t in value.get("text") or [] if isinstance(t, str) and t.strip()]
    if decision is None:
        return None
    record = task_record(annotation)
    shown = record.get("shown")
    frames = [k for k in shown if isinstance(k, str)] if isinstance(shown, list) else []
    return ClaimDecision(claim_id=claim_id, decision=decision, lead=annotation.reviewer, note="\n".join(notes),
                         frames=frames, digest=digest, at=annotation.updated_at or annotation.created_at,
                         annotation_id=annotation.id, task_id=annotation.task_id)


def claim_decisions(case: Case, annotations: Iterable[Annotation]) -> dict[str, ClaimDecision]:
    """Claim id → the lead's latest decision on it (pure), from every pulled annotation (any other annotation is
    passed by). The latest by the time it was last saved wins, whatever set of frames it was made for: compare its
    ``digest`` with ``conflict_digest`` of the claim's current conflicting frames to tell whether it is current."""
    latest: dict[str, ClaimDecision] = {}
    for annotation in annotations:
        decision = read_decision(annotation, case)
        if decision is None:
            continue
        held = latest.get(decision.claim_id)
        if held is None or (decision.at or "", decision.annotation_id) > (held.at or "", held.annotation_id):
            latest[decision.claim_id] = decision
    return latest
