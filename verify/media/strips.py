"""Strips: make the context strips (``verify.media.context``) that the frames to be reviewed lack.

One child process per video (``verify.media.isolate``) decodes it once and writes its strips into a
temporary folder; each strip is then moved beside the video's frames (``frames/VIDEO/context/``),
recorded in the workspace and logged, one "context" entry per video (its evidence in, its strips out).
A video whose strips cannot be made is reported and logged as failed; its frames go to review without one.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from verify import custody
from verify.clock import now_utc
from verify.media.context import MAKER, ContextParams, params_record, video_strips
from verify.media.isolate import map_isolated, report_failure
from verify.records import Context
from verify.workspace import CONTEXT_PREFIX, Workspace


@dataclass
class ContextsMade:
    """The context stage's result: strips made, frames that already had one, and videos that failed."""

    made: int = 0
    already: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source id, why)
    mismatched: int = 0  # strips whose picture at the keyframe's time is not the keyframe's pixels (see the log)


def make_strips(ws: Workspace, include_duplicates: bool = False, params: ContextParams | None = None,
                workers: int = 2) -> ContextsMade:
    """Make the context strips that frames to be pushed lack, one child process per video; record them and log
    one "context" entry per video (its evidence in, its strips out).

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
                report_failure(video.source_id, outcome, shown=True)
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
