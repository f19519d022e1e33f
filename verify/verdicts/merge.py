"""Merge: reviewers' annotations become verdicts per frame, per video and per claim.

Pure functions over plain records (from the workspace); nothing here does I/O.

The rules are ``RULES`` below: every report states them, and the documentation quotes them
from there (they are written once). In short: each person counts once, a lead's decision is shown
apart from the reviewers' votes, a re-upload and its original are one piece of evidence, and a
verdict stays provisional until each of its pictures has the case's quorum of reviews.
"""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from verify.case import VERDICT_CHOICES, Case
from verify.errors import VerifyError
from verify.labelstudio.config import (CANNOT_REASONS, CANNOT_REVIEW, GEO_CUES, GEO_PRECISION, GEO_SCOPE, GEO_SIDE, GEO_TEXT,
                                       NOTES, claim_control)
from verify.records import Annotation, Frame, Video
from verify.verdicts.claim_decisions import ClaimDecision, claim_decisions, conflict_digest, parse_key
from verify.verdicts.values import Verdict, Vote
from verify.verdicts.places import PRECISION, SCOPE_CHOICES, SIDE_CHOICES, LocationAnswer, Locations, merge_locations, read_answer

RULES = [
    "Vocabulary: a submission is anything a person submitted in Label Studio; a review is a reviewer's submission "
    "that gives answers (not a skip, not \"cannot review\", not a lead's decision); skips, \"cannot review\" answers "
    "and lead decisions are counted apart and are never votes.",
    "A reviewer who could not review a frame (and said why) gives no verdict, box or location on it, even if they "
    "also answered; their reason and notes are shown and counted apart from skips.",
    "Per frame and claim: no answers → unreviewed; fewer than the case's quorum (min_reviewers) → pending; "
    "an answer given by more than half of the reviewers decides (Supports → supports, Contradicts → contradicts, "
    "Can't tell → inconclusive); otherwise (ties, splits) → disputed. Each person counts once.",
    "A lead reviewer's decision overrides the vote for that frame (adjudicated); it is shown beside the vote, and the "
    "lead is never counted as one more reviewer.",
    "A claim whose pictures conflict (some support it, some contradict it) is decided by the lead as a whole, from "
    "those pictures side by side, with a note; the decision stands while the conflicting pictures are the ones the "
    "lead was shown, and the report shows it beside them and beside what the pictures rolled up to.",
    "Evidence is counted per independent picture: a re-upload and the original it copies are one piece of evidence, "
    "from the original's source. A verdict says how many independent sources it rests on; one source is a single "
    "source. A re-upload's own verdicts come only from frames it adds to the original.",
    "Per video and per claim: supported if at least one picture supports the claim and none contradicts it; "
    "contradicted if at least one picture contradicts it and none supports it; disputed if pictures conflict or one "
    "is disputed; inconclusive if the reviewed pictures cannot tell; pending if reviews are missing; unreviewed if no "
    "frame has been reviewed.",
    "A verdict is provisional while any of the claim's pictures has fewer reviews than the quorum (and no lead "
    "decision); the report names those frames.",
    "Boxes of the same label drawn by different reviewers are merged when they overlap by IoU ≥ 0.5. A box the lead "
    "inherited from the reviewers and left unchanged is not a new drawing; a box the lead drew or changed is shown "
    "as the lead's. A region given two labels at once is reported as ambiguous and counted as neither.",
]
IOU_MATCH = 0.5
_ANSWER = {label: key for key, label in VERDICT_CHOICES.items()}
_FRAME_TO_ANSWER = {"supports": Vote.SUPPORTS, "contradicts": Vote.CONTRADICTS, "cant_tell": Vote.INCONCLUSIVE}
_PRECISION = {label: key for key, (label, _) in PRECISION.items()}
_SIDE = {label: key for key, label in SIDE_CHOICES.items()}
_SCOPE = {label: key for key, label in SCOPE_CHOICES.items()}
_CANNOT = {**{label: key for key, label in CANNOT_REASONS.items()}, **{key: key for key in CANNOT_REASONS}}


def cannot_review_reason(value: str) -> str:
    """The reason key for a stored "cannot review" choice: the key itself or its label; any other text stays as given."""
    return _CANNOT.get(value.strip(), value.strip())


def reason_text(reason: str) -> str:
    """What a reviewer read for a reason key (an unknown reason as it was stored)."""
    return CANNOT_REASONS.get(reason, reason)


@dataclass(slots=True)
class Review:
    """One reviewer's submitted annotation of one frame, decoded."""

    annotation_id: int
    reviewer: str
    frame_key: str
    skipped: bool
    ground_truth: bool
    answers: dict[str, str] = field(default_factory=dict)  # claim id → supports/contradicts/cant_tell
    boxes: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unknown_labels: list[str] = field(default_factory=list)
    created_at: str | None = None
    location: LocationAnswer | None = None  # where the reviewer says the camera was (None: nothing given)
    cannot_review: str | None = None  # the reason key, when the reviewer said they could not review the frame
    # regions carrying more than one label (Label Studio issue #5198): counted as ambiguous, never as a box of each
    ambiguous: list[dict[str, Any]] = field(default_factory=list)

    @property
    def counts(self) -> bool:
        """A review that gives verdicts: submitted, not a "cannot review", not a lead's decision."""
        return not self.skipped and not self.cannot_review and not self.ground_truth


UNKNOWN_LABEL_POLICIES = ("ignore", "keep", "fail")


def decode(annotation: Annotation, case: Case, keep_unknown: bool = False) -> Review:
    """Decode one annotation record (from ``pull.parse_export``) against the case's config.

    Boxes whose label the case does not define are listed in ``unknown_labels``; with
    ``keep_unknown`` they are also kept as boxes, marked ``unknown``.
    """
    return _decoder(case, keep_unknown)(annotation)


def _decoder(case: Case, keep_unknown: bool) -> Callable[[Annotation], Review]:
    claims = {claim_control(c.id): c.id for c in case.claims}
    known = case.label_values()

    def decode_one(annotation: Annotation) -> Review:
        review = Review(
            annotation_id=annotation.id, reviewer=annotation.reviewer, frame_key=annotation.frame_key,
            skipped=annotation.was_cancelled, ground_truth=annotation.ground_truth, created_at=annotation.created_at,
        )
        seen_boxes = set()
        regions: dict[Any, tuple[dict[str, Any], list[str]]] = {}  # region id → (first result item, its labels)
        geo: dict[str, Any] = {}
        for item in annotation.result or []:
            kind, name, value = item.get("type"), item.get("from_name"), item.get("value") or {}
            if name in (GEO_TEXT, GEO_PRECISION, GEO_SIDE, GEO_CUES, GEO_SCOPE):
                picked = value.get("text" if name == GEO_TEXT else "choices") or []
                geo[name] = [v for v in picked if isinstance(v, str)] if isinstance(picked, list) else []
            elif name == CANNOT_REVIEW:
                picked = [c for c in value.get("choices") or [] if isinstance(c, str) and c.strip()]
                if picked:
                    review.cannot_review = cannot_review_reason(picked[0])
            elif kind == "choices" and name in claims:
                picked = [_ANSWER[c] for c in value.get("choices", []) if c in _ANSWER]
                if picked:
                    review.answers[claims[name]] = picked[0]
            elif kind == "textarea" and name == NOTES:
                review.notes.extend(t for t in value.get("text", []) if isinstance(t, str) and t.strip())
            elif kind == "rectanglelabels":
                region_id = item.get("id")
                labels = [label for label in value.get("rectanglelabels", []) if isinstance(label, str)]
                if region_id is not None and region_id in regions:
                    regions[region_id][1].extend(labels)  # the same region labelled by a second control
                else:
                    regions[region_id if region_id is not None else f"#{len(regions)}"] = (item, labels)
        for region_id, (item, labels) in regions.items():
            value = item.get("value") or {}
            distinct = list(dict.fromkeys(labels))
            if len(distinct) > 1:  # one region, two labels: which one the reviewer meant is unknown
                review.ambiguous.append({**_box(value, " + ".join(distinct)), "labels": distinct, "region": region_id})
                continue
            for label in distinct:
                box = _box(value, label)
                box["origin"] = item.get("origin")
                if label not in known:
                    review.unknown_labels.append(label)
                    if not keep_unknown:
                        continue
                    box["unknown"] = True
                signature = (label, box["x"], box["y"], box["width"], box["height"])
                if signature not in seen_boxes:  # one drag can produce two identical regions
                    seen_boxes.add(signature)
                    review.boxes.append(box)
        if review.cannot_review:  # no verdicts from a reviewer who could not review the frame (rule 2)
            review.skipped = False
            review.answers, review.boxes, review.unknown_labels, review.ambiguous = {}, [], [], []
        if geo and not review.skipped and not review.cannot_review:
            location = read_answer(
                annotation.reviewer, annotation.frame_key, " ".join(t.strip() for t in geo.get(GEO_TEXT, []) if t.strip()),
                next((_PRECISION[c] for c in geo.get(GEO_PRECISION, []) if c in _PRECISION), None),
                next((_SIDE[c] for c in geo.get(GEO_SIDE, []) if c in _SIDE), None),
                [c for c in geo.get(GEO_CUES, [])],
                any(_SCOPE.get(c) == "video" for c in geo.get(GEO_SCOPE, [])),
                lead=annotation.ground_truth, created_at=annotation.created_at)
            review.location = location if location.given else None
        return review

    return decode_one


def _box(value: dict[str, Any], label: str) -> dict[str, Any]:
    """A box in percent of the image, as Label Studio stores it (x, y, width, height, rotation)."""
    return {
        "label": label,
        "x": float(value.get("x", 0)),
        "y": float(value.get("y", 0)),
        "width": float(value.get("width", 0)),
        "height": float(value.get("height", 0)),
        "rotation": float(value.get("rotation", 0) or 0),
    }


def frame_verdict(answers: list[str], min_reviewers: int) -> Vote:
    """The verdict of one frame on one claim from the reviewers' answers (see RULES)."""
    return _verdict_from_counts({k: answers.count(k) for k in VERDICT_CHOICES}, min_reviewers)


def _verdict_from_counts(counts: dict[str, int], min_reviewers: int) -> Vote:
    total = sum(counts.values())
    if not total:
        return Vote.UNREVIEWED
    if total < min_reviewers:
        return Vote.PENDING
    top = max(counts, key=counts.__getitem__)
    return _FRAME_TO_ANSWER[top] if counts[top] * 2 > total else Vote.DISPUTED


def roll_up(votes: Iterable[str]) -> Verdict:
    """The verdict over several pictures' votes on one claim (see RULES)."""
    seen = Counter(Vote(v) for v in votes)
    if seen[Vote.SUPPORTS] and seen[Vote.CONTRADICTS]:
        return Verdict.DISPUTED
    if seen[Vote.DISPUTED]:
        return Verdict.DISPUTED
    if seen[Vote.SUPPORTS]:
        return Verdict.SUPPORTED
    if seen[Vote.CONTRADICTS]:
        return Verdict.CONTRADICTED
    if seen[Vote.INCONCLUSIVE]:
        return Verdict.INCONCLUSIVE if not (seen[Vote.PENDING] or seen[Vote.UNREVIEWED]) else Verdict.PENDING
    if seen[Vote.PENDING]:
        return Verdict.PENDING
    return Verdict.UNREVIEWED


def iou(a: dict[str, Any], b: dict[str, Any]) -> float:
    ax2, ay2 = a["x"] + a["width"], a["y"] + a["height"]
    bx2, by2 = b["x"] + b["width"], b["y"] + b["height"]
    w = max(0.0, min(ax2, bx2) - max(a["x"], b["x"]))
    h = max(0.0, min(ay2, by2) - max(a["y"], b["y"]))
    inter = w * h
    union = a["width"] * a["height"] + b["width"] * b["height"] - inter
    return inter / union if union > 0 else 0.0


def merge_boxes(reviews: list[Review]) -> list[dict[str, Any]]:
    """Group same-label boxes of different reviewers by overlap; each group keeps who drew it.

    A box joins the first group of its label that this reviewer has not drawn in and whose
    first box it overlaps by IoU ≥ 0.5; a group's box is the mean of its members.
    """
    groups: list[dict[str, Any]] = []
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for review in reviews:
        for box in review.boxes:
            for group in by_label[box["label"]]:
                if review.reviewer not in group["reviewers"] and iou(group["members"][0], box) >= IOU_MATCH:
                    group["members"].append(box)
                    group["reviewers"].append(review.reviewer)
                    break
            else:
                group = {"label": box["label"], "members": [box], "reviewers": [review.reviewer]}
                groups.append(group)
                by_label[box["label"]].append(group)
    merged = []
    for g in groups:
        n = len(g["members"])
        mean = {k: round(sum(m[k] for m in g["members"]) / n, 3) for k in _GEOMETRY}
        extra = {"unknown": True} if g["members"][0].get("unknown") else {}
        merged.append({"label": g["label"], **mean, "reviewers": sorted(g["reviewers"]), "drawn_by": n, **extra})
    return merged


_GEOMETRY = ("x", "y", "width", "height", "rotation")
SAME_PLACE = 0.05  # percent of the picture: a region this close to a reviewer's box of the same label is that box


def inherited(box: dict[str, Any], reviews: list[Review]) -> bool:
    """Whether a lead's box is one of the reviewers' boxes that ``adjudicate`` sent as predictions, left unchanged.

    Label Studio 1.23 marks a region that came from a prediction with ``origin`` "prediction" (and
    "prediction-changed" once it is moved, resized or relabelled; "manual" when drawn); where no origin was
    exported, a box of the same label at the same place as a reviewer's is taken as inherited.
    """
    if box.get("origin") == "prediction":
        return True
    if box.get("origin") in ("prediction-changed", "manual"):
        return False
    return any(other["label"] == box["label"] and all(abs(other[k] - box[k]) <= SAME_PLACE for k in _GEOMETRY)
               for review in reviews for other in review.boxes)


def lead_boxes(leads: list[Review], reviews: list[Review]) -> list[dict[str, Any]]:
    """The boxes lead reviewers drew or changed themselves (not those they inherited from the reviewers unchanged),
    each apart from the reviewers' boxes: ``lead`` names who drew it, and no reviewer is counted for it."""
    return [{"label": box["label"], **{k: round(box[k], 3) for k in _GEOMETRY}, "reviewers": [], "drawn_by": 0,
             "lead": lead.reviewer, **({"unknown": True} if box.get("unknown") else {})}
            for lead in leads for box in lead.boxes if not inherited(box, reviews)]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large acyclic results.

    A merge of 10,000 frames allocates about a million small dicts and lists, none in a
    cycle; the collector rescanning them was a third of the merge's time. Reference counting
    still frees everything; the collector runs again afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def to_pixels(boxes: list[dict[str, Any]], width: int | None, height: int | None) -> list[dict[str, Any]]:
    """Add each box's position in pixels of the frame (``px``: x, y, width, height) when its size is known."""
    if not width or not height:
        return boxes
    for box in boxes:
        box["px"] = {"x": round(box["x"] * width / 100), "y": round(box["y"] * height / 100),
                     "width": round(box["width"] * width / 100), "height": round(box["height"] * height / 100)}
    return boxes


@dataclass(slots=True)
class ClaimVote:
    """One frame's verdict on one claim: the reviewers' answers and what they add up to."""

    verdict: Vote  # the lead's decision where ``adjudicated_by`` is set, else the reviewers' vote
    counts: dict[str, int]  # answer → how many reviewers gave it
    answers: int
    by_reviewer: dict[str, str]  # reviewer → answer
    vote: Vote | None = None  # the reviewers' vote, when a lead's decision replaced it
    adjudicated_by: str | None = None

    @property
    def supports(self) -> bool:
        return self.verdict == Vote.SUPPORTS

    @property
    def contradicts(self) -> bool:
        return self.verdict == Vote.CONTRADICTS


@dataclass(slots=True)
class FrameVerdict:
    """Everything the reviewers said about one frame."""

    key: str
    video_sha256: str
    source_id: str
    t_ms: float
    frame_index: int
    shot: int
    file: str
    sha256: str
    duplicate_of: str | None
    task_id: int | None
    bears_on: list[str]  # claim ids the frame's video is said to bear on
    reviewers: list[str]  # reviewers who submitted an annotation of it (not those who only skipped; not the lead)
    skipped_by: list[str]
    verdicts: dict[str, ClaimVote]  # claim id → vote
    width: int | None
    height: int | None
    boxes: list[dict[str, Any]]  # merged boxes: label, x, y, width, height, rotation (percent), reviewers, drawn_by, px
    notes: list[dict[str, Any]]  # {"reviewer", "text", "lead"}: lead is True for the adjudicating lead's note
    reviews: list[dict[str, Any]] = field(default_factory=list)  # {"reviewer", "at", "skipped", "cannot_review", "lead"}, oldest first
    locations: list[dict[str, Any]] = field(default_factory=list)  # where each reviewer says the camera was
    # who could not review it: {"reviewer", "reason" (key), "reason_text", "notes"[], "lead", "at"}; not votes, not skips
    cannot_review: list[dict[str, Any]] = field(default_factory=list)
    # regions given two labels at once: {"reviewer", "labels", "x", "y", "width", "height"}; neither label counted
    ambiguous_boxes: list[dict[str, Any]] = field(default_factory=list)
    original: str | None = None  # the first frame of the footage this one re-uploads (following links to the end)

    @property
    def disputed_claims(self) -> list[str]:
        return [claim for claim, vote in self.verdicts.items() if vote.verdict == Vote.DISPUTED]

    @property
    def nobody_could_review(self) -> bool:
        """Reviewers said they could not review it, and nobody gave a review of it."""
        return any(not c["lead"] for c in self.cannot_review) and not self.reviewers


@dataclass(slots=True)
class VideoVerdict:
    sha256: str
    source_id: str
    frames: int
    claims: dict[str, Verdict]  # claim id → rolled-up verdict over the video's own frames (not those linked to an original)
    skips: int = 0
    cannot_review: int = 0  # reviewers' "cannot review" answers on the video's frames (not skips, not votes)
    cannot_review_reasons: dict[str, int] = field(default_factory=dict)  # reason key → how many
    nobody_could_review: list[str] = field(default_factory=list)  # frame keys no reviewer could review
    own_frames: int = 0  # frames not linked to an earlier video's frame: what this video adds
    copy_of: list[str] = field(default_factory=list)  # sources whose footage its linked frames re-upload


@dataclass(slots=True)
class ClaimVerdict:
    id: str
    verdict: Verdict  # the lead's decision on the claim where ``decided_by`` is set, else what its pictures roll up to
    frames: int  # frames bearing on the claim (re-uploads included)
    reviewed_frames: int
    # the independent pictures (a re-upload and its original are one), by the frame key that carries the verdict
    supporting: list[str]
    contradicting: list[str]
    disputed: list[str]
    agreement: dict[str, Any]  # frames_with_2plus, unanimous, percent, alpha, pairs
    answers: int = 0  # reviewers' answers to the claim over its frames (lead decisions not counted)
    skips: int = 0  # skips of the claim's frames
    complete: int = 0  # frames with the case's reviewers_per_frame answers to the claim
    cannot_review: int = 0  # reviewers' "cannot review" answers on the claim's frames (not skips, not votes)
    cannot_review_reasons: dict[str, int] = field(default_factory=dict)  # reason key → how many
    nobody_could_review: list[str] = field(default_factory=list)  # the claim's frames no reviewer could review
    # independent sources per kind of evidence: the sources of the originals of the supporting, contradicting and
    # disputed pictures (a re-upload is the source it copies, never one more)
    sources: dict[str, list[str]] = field(default_factory=dict)
    copies: dict[str, list[str]] = field(default_factory=dict)  # evidence frame key → its re-uploads among the claim's frames
    # the claim's pictures still short of the quorum (fewer than min_reviewers answers, not decided by a lead):
    # the verdict is provisional until there are none
    short_of_quorum: list[str] = field(default_factory=list)
    # the lead's latest decision on the claim as a whole (when its frames conflicted), and whether it was made on the
    # frames that conflict now; a current one decides the verdict, and ``vote`` keeps what the frames rolled up to
    decision: ClaimDecision | None = None
    decision_current: bool = False
    vote: Verdict | None = None

    @property
    def independent_sources(self) -> list[str]:
        """Every independent source the claim's supporting, contradicting and disputed pictures come from."""
        return sorted({source for found in self.sources.values() for source in found})

    @property
    def decided_by(self) -> str | None:
        return self.decision.lead if self.decision and self.decision_current else None

    @property
    def provisional(self) -> bool:
        return bool(self.short_of_quorum) or self.verdict in (Verdict.PENDING, Verdict.UNREVIEWED)


@dataclass(slots=True)
class Verdicts:
    """The merge's one result: what report, status and adjudicate take as input (and verdicts.json holds)."""

    frames: list[FrameVerdict]
    videos: list[VideoVerdict]
    claims: list[ClaimVerdict]
    reviewers: dict[str, dict[str, int]]  # reviewer → annotations (reviews), skipped, cannot_review, ground_truth (lead decisions)
    unknown_labels: dict[str, int]
    unknown_label_policy: str
    rules: list[str]
    min_reviewers: int
    locations: Locations | None = None  # where the footage was filmed, per source and per location claim

    def still_open(self, needed: int) -> dict[str, Any]:
        """The frames sent for review with fewer than ``needed`` reviews: who among the reviewers so far can still take
        them (reviewer → how many), and those every reviewer has already answered, skipped or could not review, which
        need another person (frame keys, with how many reviews each has). From the merge's own records: nothing is
        decoded again."""
        reviewers = {r["reviewer"] for f in self.frames for r in f.reviews if not r["lead"]}
        takers: Counter[str] = Counter()
        stuck: list[tuple[str, int]] = []
        open_frames = [f for f in self.frames if f.task_id is not None and len(f.reviewers) < needed]
        for f in open_frames:
            free = reviewers - {r["reviewer"] for r in f.reviews if not r["lead"]}
            takers.update(free)
            if not free:
                stuck.append((f.key, len(f.reviewers)))
        return {"open": len(open_frames), "takers": dict(sorted(takers.items())), "need_new_reviewer": stuck}

    def disputed_frames(self) -> list[FrameVerdict]:
        """Frames with at least one claim still disputed (not yet adjudicated)."""
        return [f for f in self.frames if f.disputed_claims]

    def to_json(self) -> dict[str, Any]:
        """The JSON document (verdicts.json, and the report's ``frames``); votes leave out empty adjudication fields."""
        with _gc_paused():
            return {
                "frames": [_frame_json(f) for f in self.frames],
                "videos": [{"sha256": v.sha256, "source_id": v.source_id, "frames": v.frames, "claims": v.claims,
                            "skips": v.skips, "cannot_review": v.cannot_review, "cannot_review_reasons": v.cannot_review_reasons,
                            "nobody_could_review": v.nobody_could_review, "own_frames": v.own_frames,
                            "copy_of": v.copy_of} for v in self.videos],
                "claims": [{"id": c.id, "verdict": c.verdict, "frames": c.frames, "reviewed_frames": c.reviewed_frames,
                            "answers": c.answers, "skips": c.skips, "complete": c.complete,
                            "cannot_review": c.cannot_review, "cannot_review_reasons": c.cannot_review_reasons,
                            "nobody_could_review": c.nobody_could_review,
                            "supporting": c.supporting, "contradicting": c.contradicting, "disputed": c.disputed,
                            "sources": c.sources, "copies": c.copies, "short_of_quorum": c.short_of_quorum,
                            "provisional": c.provisional, "agreement": c.agreement, "vote": c.vote,
                            "decided_by": c.decided_by, "decision": _decision_json(c)} for c in self.claims],
                "reviewers": self.reviewers,
                "unknown_labels": self.unknown_labels,
                "unknown_label_policy": self.unknown_label_policy,
                "rules": self.rules,
                "min_reviewers": self.min_reviewers,
                "locations": self.locations.to_json() if self.locations else None,
            }


def _decision_json(claim: ClaimVerdict) -> dict[str, Any] | None:
    d = claim.decision
    if d is None:
        return None
    return {"decision": d.decision, "lead": d.lead, "note": d.note, "frames": d.frames, "at": d.at,
            "current": claim.decision_current}


def _vote_json(vote: ClaimVote) -> dict[str, Any]:
    out = {"verdict": vote.verdict, "counts": vote.counts, "answers": vote.answers, "by_reviewer": vote.by_reviewer}
    if vote.adjudicated_by:
        out.update(vote=vote.vote, adjudicated_by=vote.adjudicated_by)
    return out


def _frame_json(f: FrameVerdict) -> dict[str, Any]:
    return {"key": f.key, "video_sha256": f.video_sha256, "source_id": f.source_id, "t_ms": f.t_ms,
            "frame_index": f.frame_index, "shot": f.shot, "file": f.file, "sha256": f.sha256, "duplicate_of": f.duplicate_of,
            "task_id": f.task_id, "bears_on": f.bears_on, "reviewers": f.reviewers, "skipped_by": f.skipped_by,
            "verdicts": {claim: _vote_json(v) for claim, v in f.verdicts.items()}, "width": f.width, "height": f.height,
            "boxes": f.boxes, "notes": f.notes, "reviews": f.reviews, "locations": f.locations,
            "cannot_review": f.cannot_review, "nobody_could_review": f.nobody_could_review,
            "ambiguous_boxes": f.ambiguous_boxes, "original": f.original}


def merge(case: Case, videos: list[Video], frames: list[Frame], annotations: list[Annotation],
          tasks: dict[str, int] | None = None, unknown_labels: str = "ignore") -> Verdicts:
    """Merge every annotation into frame, video and claim verdicts (pure); see ``_merge``."""
    with _gc_paused():
        return _merge(case, videos, frames, annotations, tasks, unknown_labels)


def _merge(case: Case, videos: list[Video], frames: list[Frame], annotations: list[Annotation],
           tasks: dict[str, int] | None, unknown_labels: str) -> Verdicts:
    """Merge every annotation into frame, video and claim verdicts (pure).

    ``unknown_labels``: what to do with boxes whose label the case does not define:
    "ignore" (count and report them), "keep" (merge them too, marked) or "fail".

    Raises:
        VerifyError: with "fail", when an annotation uses a label the case does not define.
    """
    if unknown_labels not in UNKNOWN_LABEL_POLICIES:
        raise ValueError(f"unknown_labels must be one of {UNKNOWN_LABEL_POLICIES}")
    tasks = tasks or {}
    decided = claim_decisions(case, [a for a in annotations if parse_key(a.frame_key)])  # the lead's, on whole claims
    annotations = [a for a in annotations if not parse_key(a.frame_key)]
    by_frame: dict[str, list[Review]] = defaultdict(list)
    unknown: Counter[str] = Counter()
    decode_one = _decoder(case, keep_unknown=unknown_labels == "keep")
    for annotation in annotations:
        review = decode_one(annotation)
        by_frame[review.frame_key].append(review)
        unknown.update(review.unknown_labels)
    if unknown and unknown_labels == "fail":
        listed = ", ".join(f"{label!r} ({n})" for label, n in sorted(unknown.items()))
        raise VerifyError(
            f"annotations use labels that are not in the case: {listed}; add them to the case file, "
            "or choose --unknown-labels keep or ignore"
        )
    video_by_sha = {v.sha256: v for v in videos}
    claim_ids = [c.id for c in case.claims]

    def bears_on(video: Video) -> list[str]:
        listed = video.claims
        return [c for c in claim_ids if c in listed] if listed else claim_ids

    claims_of = {sha: bears_on(video) for sha, video in video_by_sha.items()}

    frame_out = []
    for frame in frames:
        reviews = by_frame.get(frame.key, [])
        done = [r for r in reviews if r.counts]
        lead = [r for r in reviews if r.ground_truth and not r.skipped and not r.cannot_review]
        answered: dict[str, dict[str, str]] = {claim_id: {} for claim_id in claim_ids}
        for r in done:
            for claim_id, answer in r.answers.items():
                answered[claim_id][r.reviewer] = answer
        verdicts = {}
        for claim_id in claim_ids:
            by_reviewer = answered[claim_id]
            counts = dict.fromkeys(VERDICT_CHOICES, 0)
            for answer in by_reviewer.values():
                counts[answer] += 1
            vote = ClaimVote(_verdict_from_counts(counts, case.review.min_reviewers), counts, len(by_reviewer), by_reviewer)
            decider = next((r for r in lead if claim_id in r.answers), None)
            if decider:
                vote.vote, vote.adjudicated_by = vote.verdict, decider.reviewer
                vote.verdict = _FRAME_TO_ANSWER[decider.answers[claim_id]]
            verdicts[claim_id] = vote
        frame_out.append(FrameVerdict(
            key=frame.key, video_sha256=frame.video_sha256, source_id=video_by_sha[frame.video_sha256].source_id,
            t_ms=frame.t_ms, frame_index=frame.frame_index, shot=frame.shot, file=frame.file, sha256=frame.sha256,
            duplicate_of=frame.duplicate_of, task_id=tasks.get(frame.key), bears_on=claims_of[frame.video_sha256],
            reviewers=sorted({r.reviewer for r in done}),
            skipped_by=sorted(r.reviewer for r in reviews if r.skipped),
            verdicts=verdicts, width=frame.width, height=frame.height,
            boxes=to_pixels(merge_boxes(done) + lead_boxes(lead, done), frame.width, frame.height),
            notes=[{"reviewer": r.reviewer, "text": t, "lead": r.ground_truth} for r in reviews if not r.cannot_review
                   for t in r.notes],
            reviews=[{"reviewer": r.reviewer, "at": r.created_at, "skipped": r.skipped, "cannot_review": r.cannot_review,
                      "lead": r.ground_truth} for r in sorted(reviews, key=lambda r: (r.created_at or "", r.annotation_id))],
            locations=[_location_json(r.location) for r in reviews if r.location],
            cannot_review=[{"reviewer": r.reviewer, "reason": r.cannot_review, "reason_text": reason_text(r.cannot_review),
                            "notes": r.notes, "lead": r.ground_truth, "at": r.created_at}
                           for r in sorted(reviews, key=lambda r: (r.created_at or "", r.annotation_id)) if r.cannot_review],
            ambiguous_boxes=[{"reviewer": r.reviewer, "lead": r.ground_truth, **{k: b[k] for k in ("labels", *_GEOMETRY)}}
                             for r in reviews if not r.skipped for b in r.ambiguous],
        ))

    frame_by_key = {f.key: f for f in frame_out}
    for f in frame_out:
        f.original = original_of(f, frame_by_key)

    video_out = []
    for video in videos:
        frames_of = [f for f in frame_out if f.video_sha256 == video.sha256]
        own = [f for f in frames_of if not f.original]  # what a re-upload adds; its copied frames speak for the original
        reasons = _reasons(frames_of)
        video_out.append(VideoVerdict(
            sha256=video.sha256, source_id=video.source_id, frames=len(frames_of),
            claims={c: roll_up(f.verdicts[c].verdict for f in own) for c in claim_ids
                    if own and (c in claims_of[video.sha256] or any(f.verdicts[c].answers for f in own))},
            skips=sum(len(f.skipped_by) for f in frames_of), cannot_review=sum(reasons.values()),
            cannot_review_reasons=reasons, nobody_could_review=[f.key for f in frames_of if f.nobody_could_review],
            own_frames=len(own),
            copy_of=sorted({frame_by_key[f.original].source_id for f in frames_of if f.original}),
        ))

    claim_out = []
    for claim in case.claims:
        # frames of videos said to bear on the claim, and any other frame a reviewer answered it for
        relevant = [f for f in frame_out if claim.id in f.bears_on or f.verdicts[claim.id].answers]
        evidence = pictures(relevant, claim.id, frame_by_key)
        kinds = {kind: [p for p in evidence if p.verdict in verdicts] for kind, verdicts in _KINDS.items()}
        reasons = _reasons(relevant)
        verdict = roll_up(p.verdict for p in evidence)
        decision = decided.get(claim.id)
        supporting, contradicting = [p.key for p in kinds["supporting"]], [p.key for p in kinds["contradicting"]]
        # a decision settles the conflict it was shown: the same supporting and contradicting frames as now
        current = bool(decision and verdict == Verdict.DISPUTED and supporting and contradicting
                       and decision.digest == conflict_digest(supporting, contradicting))
        claim_out.append(ClaimVerdict(
            id=claim.id,
            verdict=Verdict(decision.decision) if current and decision else verdict,
            vote=verdict if current else None, decision=decision, decision_current=current,
            frames=len(relevant),
            reviewed_frames=sum(1 for f in relevant if f.verdicts[claim.id].answers),
            supporting=supporting,
            contradicting=contradicting,
            disputed=[p.key for p in kinds["disputed"]],
            agreement=_agreement(relevant, claim.id),
            answers=sum(f.verdicts[claim.id].answers for f in relevant),
            skips=sum(len(f.skipped_by) for f in relevant),
            complete=sum(1 for f in relevant if f.verdicts[claim.id].answers >= case.review.reviewers_per_frame),
            cannot_review=sum(reasons.values()), cannot_review_reasons=reasons,
            nobody_could_review=[f.key for f in relevant if f.nobody_could_review],
            sources={kind: sorted({frame_by_key[p.original].source_id for p in found}) for kind, found in kinds.items()},
            copies={p.key: p.copies for p in evidence if p.copies and p.verdict in _DECIDED},
            short_of_quorum=[p.key for p in evidence if not p.verdict.decided
                             and not frame_by_key[p.key].nobody_could_review],
        ))

    reviewers: dict[str, dict[str, int]] = defaultdict(
        lambda: {"annotations": 0, "skipped": 0, "cannot_review": 0, "ground_truth": 0})
    for reviews in by_frame.values():
        for r in reviews:
            stats = reviewers[r.reviewer]
            stats["annotations"] += r.counts  # a lead's decision is not a review, nor is "cannot review"
            stats["skipped"] += r.skipped
            stats["cannot_review"] += bool(r.cannot_review) and not r.ground_truth
            stats["ground_truth"] += r.ground_truth and not r.skipped and not r.cannot_review
    for d in decided.values():  # a decision on a whole claim is a lead decision too, never a review
        reviewers[d.lead]["ground_truth"] += 1
    source_claims: dict[str, list[str]] = {}
    for video in videos:
        source_claims.setdefault(video.source_id, []).extend(video.claims)
    locations = merge_locations(case, {f.key: f.source_id for f in frame_out},
                                [r.location for reviews in by_frame.values() for r in reviews if r.location], source_claims)
    return Verdicts(frames=frame_out, videos=video_out, claims=claim_out, reviewers=dict(sorted(reviewers.items())),
                    unknown_labels=dict(unknown), unknown_label_policy=unknown_labels, rules=RULES,
                    min_reviewers=case.review.min_reviewers, locations=locations)


_KINDS = {"supporting": (Vote.SUPPORTS,), "contradicting": (Vote.CONTRADICTS,), "disputed": (Vote.DISPUTED,)}
_DECIDED = {v for verdicts in _KINDS.values() for v in verdicts}


def original_of(frame: FrameVerdict, frame_by_key: dict[str, FrameVerdict]) -> str | None:
    """The frame a re-uploaded frame ultimately copies (links followed to their end), or None for original footage."""
    seen = {frame.key}
    key = frame.duplicate_of
    found = None
    while key in frame_by_key and key not in seen:
        seen.add(key)
        found = key
        key = frame_by_key[key].duplicate_of
    return found


@dataclass(slots=True)
class Picture:
    """One independent piece of evidence on a claim: an original frame with the re-uploads of it (pure merge record)."""

    key: str  # the frame whose verdict it carries: the original, or a re-upload reviewed in its stead
    original: str  # the original frame's key
    verdict: Vote
    copies: list[str]  # the other frames of the claim showing the same picture (re-uploads), linked to ``original``


def pictures(relevant: list[FrameVerdict], claim_id: str, frame_by_key: dict[str, FrameVerdict]) -> list[Picture]:
    """The claim's frames grouped by the original picture they show: a re-upload and its original are one piece of
    evidence (pure). Its verdict is that of the group's reviewed frames (the original's first); if reviews of copies
    of one picture disagree, the picture is disputed; if none is reviewed, the original's (unreviewed or pending)."""
    groups: dict[str, list[FrameVerdict]] = {}
    for f in relevant:
        groups.setdefault(f.original or f.key, []).append(f)
    out = []
    for original, members in groups.items():
        root = frame_by_key[original]
        ordered = [root] + [m for m in members if m.key != original]
        reviewed = [m for m in ordered if m.verdicts[claim_id].verdict != Vote.UNREVIEWED]
        decided = [m for m in reviewed if m.verdicts[claim_id].verdict.decided]
        carrier = (decided or reviewed or [root])[0]
        said = {m.verdicts[claim_id].verdict for m in decided}
        verdict = carrier.verdicts[claim_id].verdict if len(said) <= 1 else Vote.DISPUTED
        shown = {m.key for m in members}
        out.append(Picture(key=carrier.key, original=original, verdict=verdict,
                           copies=[m.key for m in ordered if m.key != carrier.key and m.key in shown]))
    return out


def _reasons(frames: list[FrameVerdict]) -> dict[str, int]:
    """Reason key → how many reviewers (not leads) could not review these frames for it."""
    found: Counter[str] = Counter(c["reason"] for f in frames for c in f.cannot_review if not c["lead"])
    return dict(sorted(found.items()))


def _location_json(a: LocationAnswer) -> dict[str, Any]:
    return {"reviewer": a.reviewer, "lead": a.lead, "text": a.text, "lat": a.point.lat if a.point else None,
            "lon": a.point.lon if a.point else None, "form": a.form, "note": a.note, "error": a.error,
            "precision": a.precision, "side": a.side, "cues": a.cues, "whole_video": a.whole_video}


def _agreement(frames: list[FrameVerdict], claim_id: str) -> dict[str, Any]:
    """Agreement on one claim's question over the frames with 2+ answers.

    ``percent``: share of those frames where every answer is the same. ``alpha``:
    Krippendorff's alpha for nominal data (None when undefined: fewer than two answered
    frames' worth of pairable values, or every answer identical). ``pairs``: per reviewer
    pair, the frames both answered and the share where they gave the same answer.
    """
    units = [f.verdicts[claim_id].by_reviewer for f in frames if f.verdicts[claim_id].answers >= 2]
    unanimous = sum(1 for unit in units if len(set(unit.values())) == 1)
    pairs: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for unit in units:
        names = sorted(unit)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                pairs[(a, b)][0] += 1
                pairs[(a, b)][1] += unit[a] == unit[b]
    return {
        "frames_with_2plus": len(units),
        "unanimous": unanimous,
        "percent": round(100 * unanimous / len(units), 1) if units else None,
        "alpha": krippendorff_alpha([list(u.values()) for u in units]),
        "pairs": [{"reviewers": [a, b], "frames": n, "percent": round(100 * same / n, 1)}
                  for (a, b), (n, same) in sorted(pairs.items())],
    }


def krippendorff_alpha(units: list[list[str]]) -> float | None:
    """Krippendorff's alpha for nominal data; each unit is the list of values coders gave one item.

    Units with fewer than two values are not pairable and are left out. Returns None when
    alpha is undefined (no pairable values, or no variation at all).
    """
    coincidence: Counter[tuple[str, str]] = Counter()
    for values in units:
        m = len(values)
        if m < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    coincidence[(c, k)] += 1 / (m - 1)
    totals: Counter[str] = Counter()
    for (c, _), weight in coincidence.items():
        totals[c] += weight
    n = sum(totals.values())
    if n <= 1:
        return None
    observed = sum(w for (c, k), w in coincidence.items() if c != k)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k) / (n - 1)
    if expected == 0:
        return None
    return round(1 - observed / expected, 4)


def review_progress(case: Case, task_keys: Iterable[str], annotations: list[Annotation]) -> dict[str, Any]:
    """Where the review stands, per reviewer and per claim (pure; from pulled annotations).

    A task is *open* until it has the case's ``reviewers_per_frame`` submitted reviews (not
    skipped, not "cannot review"); Label Studio's Community edition has no per-person assignment, so a reviewer's
    *assigned* tasks are those done, skipped, or still open to them (open and not yet touched).
    Per claim, a frame is *done* once it has ``reviewers_per_frame`` answers to that claim.
    Only the review project counts here (lead decisions are not reviews).
    """
    needed = case.review.reviewers_per_frame
    keys = set(task_keys)
    decode_one = _decoder(case, False)
    reviews = [decode_one(a) for a in annotations if a.frame_key in keys and not a.ground_truth]
    submitted = Counter(r.frame_key for r in reviews if r.counts)
    open_tasks = {k for k in keys if submitted[k] < needed}
    reviewers: dict[str, dict[str, int]] = {}
    for name in sorted({r.reviewer for r in reviews}):
        mine = [r for r in reviews if r.reviewer == name]
        touched = {r.frame_key for r in mine}
        reviewed = {r.frame_key for r in mine if r.counts}
        could_not = {r.frame_key for r in mine if r.cannot_review} - reviewed
        done = len(reviewed)
        skipped = len({r.frame_key for r in mine if r.skipped} - reviewed - could_not)
        remaining = len(open_tasks - touched)
        reviewers[name] = {"assigned": done + skipped + len(could_not) + remaining, "done": done, "skipped": skipped,
                           "cannot_review": len(could_not), "remaining": remaining}
    claims = []
    for claim in case.claims:
        answered = Counter(r.frame_key for r in reviews if r.counts and claim.id in r.answers)
        complete = sum(1 for k in keys if answered[k] >= needed)
        claims.append({"id": claim.id, "frames": len(keys), "done": complete,
                       "answered": sum(1 for k in keys if answered[k]), "remaining": len(keys) - complete,
                       "answers": sum(answered.values()),
                       "skipped": sum(1 for r in reviews if r.skipped),
                       "cannot_review": sum(1 for r in reviews if r.cannot_review)})
    return {"tasks": len(keys), "open_tasks": len(open_tasks), "reviewers_per_frame": needed,
            "reviewers": reviewers, "claims": claims}
