"""Claim conflicts: send the claims whose frames conflict to the lead, to decide the claim as a whole.

A claim's frames conflict when reviewers agreed that some frames support it and others contradict it: the claim
rolls up as disputed, and no decision on a single frame can settle it. ``verify adjudicate`` sends each such
claim, as one task, to a third project of the workspace (the claim-decisions project, ``CLAIMS``): one picture
verify composes from the conflicting frames' JPEGs (supporting on the left, contradicting on the right, each
captioned with its source, time and the reviewers' answers; at most ``PER_SIDE`` a side, and how many more), the
claim, and a decision with a required note (``build_claim_config``). The picture is drawn as context strips are
(``verify.media.montage``, OpenCV).

A task is keyed (``meta.verify_key``) by ``claim:<claim id>:<digest of the conflicting frames>``: it is not sent
twice, and is sent again when the set of conflicting frames changes. The picture is written to
``claims/<claim id>-<digest>.jpg`` in the workspace, served as frames are (local files, S3, or upload), and its
sha256 is logged. ``verify pull`` brings the lead's decisions back; ``verify.verdicts.claim_decisions`` reads them.

Choosing the conflicts, laying out the picture and building the task are pure; ``send_claim_conflicts`` and
``make_montage`` do the I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from verify.case import VERDICT_CHOICES, Case
from verify.clock import timestamp
from verify.files import atomic_write, file_sha256
from verify.labelstudio.client import LabelStudioClient
from verify.labelstudio.project import CLAIMS, ensure_project, frames_served, import_missing
from verify.media import montage as media_montage
from verify.media.montage import Layout, Panel
from verify.verdicts.claim_decisions import SENT_META, TASK_RECORD, claim_key, conflict_digest
from verify.verdicts.merge import FrameVerdict, Verdicts
from verify.workspace import Workspace

FOLDER = "claims"  # in the workspace: claims/<claim id>-<digest>.jpg (not under frames/: no frame of a video)
PER_SIDE = 4  # frames shown a side; the rest are counted
SIDE_COLOURS = {"supporting": (26, 127, 55), "contradicting": (180, 35, 24)}  # RGB: green, red


@dataclass(frozen=True)
class ClaimConflict:
    """A claim whose frames conflict: frames reviewers agreed support it and frames they agreed contradict it."""

    claim_id: str
    supporting: tuple[str, ...]  # frame keys, in the verdicts' order
    contradicting: tuple[str, ...]
    digest: str

    @property
    def key(self) -> str:
        return claim_key(self.claim_id, self.digest)


def claim_conflicts(verdicts: Verdicts) -> list[ClaimConflict]:
    """The claims the lead must decide as a whole (pure): disputed, with frames supporting and frames contradicting
    it (whether or not some frame is also disputed)."""
    return [ClaimConflict(c.id, tuple(c.supporting), tuple(c.contradicting), conflict_digest(c.supporting, c.contradicting))
            for c in verdicts.claims if c.verdict == "disputed" and c.supporting and c.contradicting]


def answers_text(frame: FrameVerdict, claim_id: str) -> str:
    """Who answered what on the claim for one frame, or who decided it (pure)."""
    vote = frame.verdicts[claim_id]
    answers = ", ".join(f"{who}: {VERDICT_CHOICES.get(a, a)}" for who, a in sorted(vote.by_reviewer.items()))
    if vote.adjudicated_by:
        decided = vote.verdict.split(":", 1)[-1]
        return f"Lead {vote.adjudicated_by} decided: {decided}" + (f" (reviewers: {answers})" if answers else "")
    return answers or "no answers"


def caption(frame: FrameVerdict, claim_id: str) -> tuple[str, ...]:
    """The lines under a frame in the picture (pure): source and time, then the answers on the claim."""
    return (f"{frame.source_id} at {timestamp(frame.t_ms)} · frame {frame.key[:8]}", answers_text(frame, claim_id))


def panel(frame: FrameVerdict, claim_id: str) -> Panel:
    return Panel(frame.key, frame.file, frame.width, frame.height, caption(frame, claim_id))


def layout(claim_id: str, supporting: list[FrameVerdict], contradicting: list[FrameVerdict],
           per_side: int = PER_SIDE) -> Layout:
    """The picture of a claim conflict (pure): supporting frames on the left, contradicting on the right, at most
    ``per_side`` each, and how many more."""
    def heading(frames: list[FrameVerdict], one: str, many: str) -> str:
        return f"{len(frames)} {one if len(frames) == 1 else many} {claim_id}"

    return media_montage.layout([
        (heading(supporting, "frame supports", "frames support"), SIDE_COLOURS["supporting"],
         [panel(f, claim_id) for f in supporting]),
        (heading(contradicting, "frame contradicts", "frames contradict"), SIDE_COLOURS["contradicting"],
         [panel(f, claim_id) for f in contradicting]),
    ], per_side)


@dataclass(frozen=True)
class Montage:
    """The picture of one claim conflict, in the workspace (served as a frame is: ``key``, ``file``, ``sha256``)."""

    key: str  # the task's key, claim:<claim id>:<digest>
    file: str  # claims/<claim id>-<digest>.jpg
    sha256: str
    shown: list[str]  # the frame keys it shows, supporting first


def montage_file(conflict: ClaimConflict) -> str:
    return f"{FOLDER}/{conflict.claim_id}-{conflict.digest}.jpg"


def make_montage(ws: Workspace, conflict: ClaimConflict, frames: dict[str, FrameVerdict]) -> tuple[Montage, bool]:
    """The conflict's picture, written to the workspace unless a run before wrote it (and stopped before its task was
    sent); (montage, newly written)."""
    plan = layout(conflict.claim_id, [frames[k] for k in conflict.supporting if k in frames],
                  [frames[k] for k in conflict.contradicting if k in frames])
    name = montage_file(conflict)
    path = ws.path(name)
    made = not path.is_file()
    if made:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, media_montage.render(ws.root, plan), mode=0o444)
    return Montage(conflict.key, name, file_sha256(path), plan.shown), made


def conflict_text(conflict: ClaimConflict, shown: list[str]) -> str:
    """What the task says above the picture (pure)."""
    s, c = len(conflict.supporting), len(conflict.contradicting)
    hidden = len(conflict.supporting) + len(conflict.contradicting) - len(shown)
    return (f"Frames conflict: reviewers agreed that {s} {'frame supports' if s == 1 else 'frames support'} this claim (left) "
            f"and that {c} {'frame contradicts' if c == 1 else 'frames contradict'} it (right)"
            + (f"; {hidden} of them not in the picture" if hidden else "") + ". Decide the claim and say why.")


def claim_task(conflict: ClaimConflict, case: Case, montage: Montage, image_url: str, workspace_id: str) -> dict[str, Any]:
    """The lead's task for one claim conflict (pure)."""
    record = {"claim_id": conflict.claim_id, "digest": conflict.digest, "supporting": list(conflict.supporting),
              "contradicting": list(conflict.contradicting), "shown": montage.shown, "montage": montage.file,
              "montage_sha256": montage.sha256}
    return {
        "data": {"image": image_url, "frame_key": conflict.key, "claim_id": conflict.claim_id,
                 "claim": f"Claim: {case.claim(conflict.claim_id).text}", "conflict": conflict_text(conflict, montage.shown)},
        "meta": {"verify_key": conflict.key, "verify_workspace": workspace_id, **record},
    }


def task_record_item(meta: dict[str, Any]) -> dict[str, Any]:
    """The result item a pull adds to a claim-decision annotation: the task's record of what it showed (pure)."""
    keys = ("claim_id", "digest", "supporting", "contradicting", "shown", "montage", "montage_sha256")
    return {"type": TASK_RECORD, "from_name": TASK_RECORD, "to_name": "", "value": {k: meta.get(k) for k in keys}}


@dataclass
class ClaimsSent:
    project_id: int | None  # None: no claim has ever conflicted, so no project was made
    project_url: str
    conflicts: int  # claims whose frames conflict now
    imported: int  # newly sent (a claim already sent with the same conflicting frames is not sent again)
    montages: list[tuple[str, str]] = field(default_factory=list)  # (file, sha256) of the pictures of the tasks sent now


def send_claim_conflicts(ws: Workspace, client: LabelStudioClient, files_root: Path | None, verdicts: Verdicts,
                         mode: str, progress: Callable[[int], None] | None = None) -> ClaimsSent:
    """Send each claim whose frames conflict, and that was not sent with the same frames before, to the
    claim-decisions project (made at the first conflict). The caller logs ``montages``."""
    conflicts = claim_conflicts(verdicts)
    if not conflicts and not ws.get_meta(CLAIMS.meta):
        return ClaimsSent(None, "", 0, 0)
    project_id, created, _ = ensure_project(ws, client, role=CLAIMS, context=False)
    url = f"{client.url}/projects/{project_id}/data"
    existing = {} if created else client.task_keys(project_id)
    pending = [c for c in conflicts if c.key not in existing]
    ws.update_meta(**{SENT_META: json.dumps(sorted({*existing, *(c.key for c in pending)}))})  # for `verify status`
    if not pending:
        return ClaimsSent(project_id, url, len(conflicts), 0)
    frames = {f.key: f for f in verdicts.frames}
    made = [make_montage(ws, c, frames) for c in pending]
    montages = {m.key: m for m, _ in made}
    by_key = {c.key: c for c in pending}
    case, workspace_id = ws.case, ws.id

    def make_task(montage: Montage) -> dict[str, Any]:
        return claim_task(by_key[montage.key], case, montage, urls[montage.key], workspace_id)

    pictures = list(montages.values())
    if mode == "upload":  # not recorded as uploads (that table is for frames): the task keys say what was sent
        got = client.upload_files(project_id, [(Path(m.file).name, ws.path(m.file)) for m in pictures])
        urls = {m.key: got[Path(m.file).name] for m in pictures}
        _, imported = import_missing(client, project_id, pictures, make_task, progress, existing)  # type: ignore[arg-type]
    else:
        with frames_served(ws, client, project_id, pictures, mode, files_root, new=created) as (urls, _):  # type: ignore[arg-type]
            _, imported = import_missing(client, project_id, pictures, make_task, progress, existing)  # type: ignore[arg-type]
    return ClaimsSent(project_id, url, len(conflicts), imported, [(m.file, m.sha256) for m, _ in made])
