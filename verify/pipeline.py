"""The pipeline: the stages a coordinator runs, as library calls, each logging its own custody entry.

    init → ingest → frames → push → (reviewers label) → pull → merge → report
                                                          ↘ adjudicate (disputed frames) ↗

Ingest, frames, push, pull and adjudicate live in their own modules and log themselves; this
module adds the stages that only tie others together (init, merge, report) and ``sync``, which
runs push → pull → merge → report once each. The CLI calls one function here (or in a stage
module) per command and writes no custody entry itself.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from verify import custody
from verify.clock import now_utc
from verify.files import atomic_write
from verify.labelstudio.adjudicate import AdjudicateResult
from verify.labelstudio.adjudicate import adjudicate as send_disputes
from verify.labelstudio.client import LabelStudioClient
from verify.labelstudio.pull import PullResult, pull
from verify.labelstudio.push import PushResult, push
from verify.media.context import MAKER, ContextParams, params_record, video_strips
from verify.media.isolate import map_isolated, report_failure
from verify.records import Context
from verify.report.build import FORMATS, write_reports
from verify.verdicts.merge import Verdicts
from verify.verdicts.merge import merge as merge_verdicts
from verify.workspace import CONTEXT_PREFIX, Workspace

VERDICTS_FILE = "reports/verdicts.json"


@dataclass
class Merged:
    """The merge stage's result: the verdicts and the file they were written to."""

    verdicts: Verdicts
    file: str  # relative to the workspace
    sha256: str


@dataclass
class Reports:
    written: dict[str, tuple[Path, str]]  # format → (path, sha256)
    merged: Merged


@dataclass
class ContextsMade:
    """The context stage's result: strips made, frames that already had one, and videos that failed."""

    made: int = 0
    already: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source id, why)
    mismatched: int = 0  # strips whose picture at the keyframe's time is not the keyframe's pixels (see the log)


@dataclass
class Synced:
    push: PushResult
    pull: PullResult
    reports: Reports
    contexts: ContextsMade | None = None  # None: strips were not asked for (--no-context)


def init(root: str | Path, case_file: str | Path, tsa: list[str] | None = None) -> Workspace:
    """Create a workspace for a case (or install a changed case file in it) and log it.

    ``tsa``: the RFC 3161 time-stamp authorities to anchor the log, evidence and reports with from now on
    (``[]`` or ``["none"]``: stop stamping; None: keep the workspace's setting).

    Raises:
        CaseError: the case file is bad.
        WorkspaceError: the folder holds a workspace for another case.
        OptionError: a time-stamp authority's URL is not http(s).
    """
    from verify import timestamps

    ws = Workspace.create(root, case_file)
    if tsa is not None:
        timestamps.configure(ws, tsa)
    case = ws.case
    custody.record(ws, "init", inputs=[(str(Path(case_file).resolve()), case.sha256)], outputs=[("case.yaml", case.sha256)],
                   case_id=case.id)
    return ws


def current_verdicts(ws: Workspace, unknown_labels: str = "ignore") -> Verdicts:
    """The verdicts the workspace's pulled annotations add up to now, merged in memory (nothing written)."""
    return merge_verdicts(ws.case, ws.videos(), ws.frames(), ws.annotations(), ws.tasks(), unknown_labels)


def merge(ws: Workspace, unknown_labels: str = "ignore") -> Merged:
    """Merge the pulled annotations, write reports/verdicts.json and log it with the exports it rests on.

    Raises:
        VerifyError: ``unknown_labels="fail"`` and an annotation uses a label the case does not define.
    """
    verdicts = current_verdicts(ws, unknown_labels)
    data = json.dumps(verdicts.to_json(), indent=2, ensure_ascii=False).encode()
    ws.path("reports").mkdir(exist_ok=True)
    atomic_write(ws.path(VERDICTS_FILE), data)
    [(name, sha)] = custody.record_files(ws, "merge", [ws.path(VERDICTS_FILE)],
                                         inputs=[(e.file, e.sha256) for e in ws.exports_in_use()],
                                         unknown_labels=unknown_labels)
    return Merged(verdicts, name, sha)


def report(ws: Workspace, formats: tuple[str, ...] = (), out: Path | None = None, unknown_labels: str = "ignore",
           merged: Merged | None = None, paper: str = "a4") -> Reports:
    """Write the reports from a merge (this one's, or a fresh ``merge``) and log every file written.

    Only the formats asked for are written (a PDF, on ``paper`` "a4" or "letter", leaves report.html as it was).

    Raises:
        VerifyError: a PDF was asked for and Chromium is missing or failed.
    """
    merged = merged or merge(ws, unknown_labels)
    written = write_reports(ws, merged.verdicts, tuple(formats) or FORMATS, Path(out) if out else None,
                            (merged.file, merged.sha256), paper)
    assets = sorted(written["md"].parent.joinpath("report-assets").glob("*.jpg")) if "md" in written else []
    hashes = custody.record_files(ws, "report", [*written.values(), *assets],
                                  inputs=[(e.file, e.sha256) for e in ws.exports_in_use()] + [(merged.file, merged.sha256)],
                                  formats=sorted(written), custody_head=ws.get_meta(custody.HEAD))
    return Reports({fmt: (path, sha) for (fmt, path), (_, sha) in zip(written.items(), hashes)}, merged)


def contexts(ws: Workspace, include_duplicates: bool = False, params: ContextParams | None = None,
             workers: int = 2) -> ContextsMade:
    """Make the context strips (``verify.media.context``) that frames to be pushed lack, one child process per
    video; record them and log one "context" entry per video (its evidence in, its strips out).

    A video whose strips cannot be made is reported in ``failed`` and its frames go to review without one.
    """
    params = params or ContextParams()
    have = {c.frame_key for c in ws.contexts()}
    frames = [f for f in ws.frames() if (include_duplicates or not f.duplicate_of)]
    result = ContextsMade(already=sum(1 for f in frames if f.key in have))
    todo: dict[str, list] = {}
    for f in frames:
        if f.key not in have:
            todo.setdefault(f.video_sha256, []).append(f)
    videos = {v.sha256: v for v in ws.videos() if v.sha256 in todo}
    jobs = []
    for sha, fs in todo.items():
        tmp = ws.path("frames") / f".tmp-context-{sha[:16]}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        jobs.append((str(ws.path(videos[sha].evidence)), str(tmp),
                     [{"key": f.key, "t_ms": f.t_ms, "pixel_sha256": f.pixel_sha256} for f in fs], asdict(params)))
    by_path = {job[0]: videos[sha] for job, sha in zip(jobs, todo)}
    for (path, tmp, _, _), outcome in map_isolated(video_strips, jobs, params.timeout_s, workers):
        video = by_path[path]
        try:
            if not outcome.ok:
                report_failure(video.source_id, outcome)
                result.failed.append((video.source_id, outcome.error))
                custody.record(ws, "context", inputs=[(video.evidence, video.sha256)], source_id=video.source_id,
                               status="failed", error=outcome.error)
                continue
            final = ws.path("frames") / video.sha256[:16] / "context"
            final.mkdir(parents=True, exist_ok=True)
            maker = {"name": MAKER, "decoder": outcome.value["decoder"], "params": params_record(params)}
            made = []
            for s in outcome.value["strips"]:
                os.replace(Path(tmp) / s["file"], final / s["file"])
                made.append(Context(frame_key=s["frame_key"], key=CONTEXT_PREFIX + s["sha256"][:24],
                                    file=str((final / s["file"]).relative_to(ws.root)), sha256=s["sha256"],
                                    width=s["width"], height=s["height"], pictures=s["pictures"],
                                    maker={**maker, "keyframe_matches": s["keyframe_matches"]}, made_at=now_utc()))
            try:
                ws.record_contexts(made)
            except BaseException:  # not recorded (a full disk, a kill): leave no unrecorded strip behind
                for c in made:
                    ws.path(c.file).unlink(missing_ok=True)
                raise
            mismatched = [c.frame_key for c in made if not c.maker["keyframe_matches"]]
            custody.record(ws, "context", inputs=[(video.evidence, video.sha256)],
                           outputs=[(c.file, c.sha256) for c in made], source_id=video.source_id, maker=maker,
                           frames=len(made), keyframe_mismatch=mismatched)
            result.made += len(made)
            result.mismatched += len(mismatched)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def sync(ws: Workspace, client: LabelStudioClient, files_root: Path | None, include_duplicates: bool = False,
         unknown_labels: str = "ignore", images: str = "auto", progress: Callable[[int], None] | None = None,
         context: bool = True) -> Synced:
    """Make missing context strips (unless ``context`` is False), push new frames, pull the annotations, merge once
    and write the reports from that merge.

    Raises:
        ServerError, AuthError, ProjectMissing: from Label Studio (stages already done stay done).
        VerifyError: see each stage.
    """
    strips = contexts(ws, include_duplicates) if context else None
    pushed = push(ws, client, files_root, include_duplicates, progress=progress, images=images, context=context)
    pulled = pull(ws, client)
    return Synced(pushed, pulled, report(ws, unknown_labels=unknown_labels, merged=merge(ws, unknown_labels)), strips)


def adjudicate(ws: Workspace, client: LabelStudioClient, files_root: Path | None, lead: str | None = None,
               images: str = "auto", progress: Callable[[int], None] | None = None) -> AdjudicateResult:
    """Send the frames the current verdicts show disputed to the lead (see ``verify.labelstudio.adjudicate``)."""
    return send_disputes(ws, client, files_root, current_verdicts(ws), lead, progress=progress, images=images)
