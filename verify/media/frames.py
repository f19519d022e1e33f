"""Frames: pick the keyframes reviewers will see.

One pass over the decoded stream (``verify.media.decode``). Per frame, only cheap work on a small grey
copy of the luma plane, fed to a ``verify.media.select.Selector``: shots are cut by hard cuts
(a difference well above its neighbours', not a flash) and by fades, dissolves and wipes that
end in another picture; motion inside a shot (pans, zooms, passers-by, shake) makes no shot.
Within a shot a frame is taken when the view changes (unlike every frame kept from the shot,
a shift or zoom taken out), the sharpest picture of a short window; ``max_interval_s`` bounds
the gap only while the view keeps changing, so a static shot gives one frame. Blank frames and
frames inside transitions are never kept. A pick whose perceptual hash is within
``dup_distance`` bits of a frame already kept from this video is dropped. Kept frames are written as JPEG and recorded with their presentation time (from the
stream, never index ÷ fps), index, shot, sha256 of the JPEG, sha256 of the decoded pixels and
the perceptual hash. Preview mode (``mode="preview"``) decodes only the stream's keyframes: fast,
but shots between keyframes can be missed, and its frames say so. After all videos, frames that match a frame of another video (a
re-upload) are linked to it with ``duplicate_of``. A video that decodes but gives no frame (every picture blank)
is recorded ``partial``, with the reason in its note, never ``ok``.

Each video is decoded in its own process (``verify.media.isolate``): a hang or crash costs one file.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from verify import __version__, custody
from verify.errors import MediaError, OptionError
from verify.media.isolate import map_isolated, report_failure, run_isolated
from verify.media.decode import decode_at
from verify.media.match import Fingerprint, HashIndex, fingerprint, match_videos
from verify.records import Frame, Reupload, Video
from verify.workspace import Workspace, locked

EXTRACTOR = f"verify.frames/{__version__}"


@dataclass(frozen=True)
class FrameParams:
    """Tuning of keyframe selection; recorded with every frame."""

    max_interval_s: float = 2.0  # while the view keeps changing, a frame at least this often (a static shot: one)
    cut_threshold: float = 8.0  # mean absolute grey difference (0-255) to the previous picture that can be a cut…
    cut_ratio: float = 3.0  # …if it is also this many times the average difference of its neighbours
    view_change: float = 0.45  # 1 − correlation of the coarse picture with every frame kept from the shot: a new view
    drift: float = 0.15  # a smaller change that still gives a frame once max_interval_s has passed
    blank_std: float = 5.0  # grey standard deviation below which a frame is blank
    dup_distance: int = 6  # perceptual-hash bits: closer frames of one video are duplicates…
    replace_ratio: float = 1.5  # …and a later one replaces the kept one only if this much sharper
    link_distance: int = 10  # perceptual-hash bits: closer frames of two videos are re-uploads
    analysis_width: int = 192  # width of the grey copy all per-frame work runs on
    jpeg_quality: int = 92
    max_pixels: int = 7680 * 4320  # refuse to decode frames larger than 8K UHD
    timeout_s: float = 900.0  # per video
    threads: int = 2  # decoder threads per video
    mode: str = "full"  # "full": every picture decoded; "preview": the stream's keyframes only

    def select_params(self):
        """The selector's tuning (``verify.media.select.SelectParams``; its other values are its defaults)."""
        from dataclasses import fields

        from verify.media.select import SelectParams

        names = {f.name for f in fields(SelectParams)}
        return SelectParams(**{k: v for k, v in asdict(self).items() if k in names})


@dataclass
class VideoFrames:
    sha256: str
    source_id: str
    ok: bool
    frames: int = 0
    message: str = ""
    warning: str = ""
    measured: dict[str, Any] = field(default_factory=dict)


def phash(grey) -> int:
    """64-bit DCT perceptual hash of a greyscale image."""
    import cv2
    import numpy as np

    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()
    bits = low > np.median(low[1:])
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def frame_key(video_sha256: str, t_ms: float, pixel_sha256: str) -> str:
    """Stable key of a frame: the video's bytes, the frame's time and its pixels."""
    return hashlib.sha256(f"{video_sha256}:{t_ms:.3f}:{pixel_sha256}".encode()).hexdigest()[:32]


def analysis_size(width: int, height: int, target: int) -> tuple[int, int]:
    """Size of the small grey copy every per-frame measure runs on (``target`` wide at most)."""
    w = min(target, width)
    return w, max(1, round(height * w / width))


def sharpness(small) -> float:
    """Variance of the Laplacian: high for crisp detail, low for blur and motion smear."""
    from verify.media.select import sharpness as laplacian_variance

    return laplacian_variance(small)


def extract_video(path: str, out_dir: str, params: dict[str, Any]) -> dict[str, Any]:
    """Decode one video and write its keyframes into ``out_dir``. Runs in a child process.

    Per decoded picture only cheap work, on a small grey copy of the luma plane, fed to a
    ``verify.media.select.Selector`` (cuts, transitions, views, sharpness). Only its picks are
    converted to colour, hashed and written as JPEG; a pick within ``dup_distance`` bits of a
    frame already kept from this video is dropped unless clearly sharper (then it replaces it).

    Returns {"frames": [...], "measured": {...}, "warning": str}.
    Raises:
        MediaError: the file cannot be decoded at all, or its frames exceed the pixel cap.
    """
    import cv2
    import numpy as np

    from verify.media.decode import Video
    from verify.media.select import Selector, sharpness as sharpness_of

    p = FrameParams(**params)
    preview = p.mode == "preview"
    selector = Selector(p.select_params())
    kept: list[tuple[float, Future]] = []  # (sharpness, the frame being written in the background)
    hashes: list[int] = []
    suppressed = blank = 0
    times: list[float] = []

    def keep(pick) -> None:
        nonlocal suppressed
        picture, small = pick.payload, pick.small
        h = phash(small)
        twin = next((i for i, other in enumerate(hashes) if hamming(h, other) <= p.dup_distance), None)
        if twin is not None:  # the same picture again: keep whichever is clearly sharper
            suppressed += 1
            if pick.sharpness <= p.replace_ratio * kept[twin][0]:
                return
            _, replaced = kept.pop(twin)
            hashes.pop(twin)
            Path(out_dir, replaced.result()["file"]).unlink(missing_ok=True)
        hashes.append(h)
        record = {"t_ms": picture.t_ms, "frame_index": picture.index, "shot": pick.shot, "phash": f"{h:016x}",
                  "sharpness": pick.sharpness}
        kept.append((pick.sharpness, writer.submit(write_frame, picture, record, out_dir, p.jpeg_quality)))

    with Video(path, threads=p.threads, keyframes_only=preview, max_pixels=p.max_pixels) as video, \
            ThreadPoolExecutor(max_workers=1) as writer:
        facts = video.facts()
        shape = size = None
        # pictures queued ahead plus those the selector holds for look-ahead: ≤ ~64 MB
        ahead = max(1, min(4, (64 << 20) // max(1, video.width * video.height * 3 // 2)))
        for picture in video.pictures(prefetch=ahead):
            times.append(picture.t_ms)
            luma = picture.luma
            if luma.shape != shape:  # the first picture, or the resolution changed mid-stream
                shape, size = luma.shape, analysis_size(luma.shape[1], luma.shape[0], p.analysis_width)
            small = cv2.resize(luma, size, interpolation=cv2.INTER_NEAREST)
            if preview:  # every non-blank keyframe is a candidate; no shot detection between keyframes
                if float(cv2.meanStdDev(small)[1][0, 0]) * picture.gain < p.blank_std:
                    blank += 1
                    continue
                keep(_Preview(picture.t_ms, round(sharpness_of(small), 2), small, picture))
                continue
            for pick in selector.feed(small, picture.t_ms, picture, picture.gain):
                keep(pick)
        for pick in selector.finish():
            keep(pick)
        frames = [future.result() for _, future in kept]
        decode_errors, last_error = video.decode_errors, video.last_error
    if not times:
        raise MediaError(f"the video stream has no decodable frame{f' ({last_error})' if last_error else ''}")

    counts = selector.counts
    decoded = len(times)
    steps = np.diff(np.array(times)) if len(times) > 1 else np.array([])
    step = float(np.median(steps)) if steps.size else 0.0
    estimate = facts["frame_count_estimate"]
    measured = {
        "mode": p.mode,
        "decoded_frames": decoded,
        "first_pts_ms": round(times[0], 3),
        "last_pts_ms": round(times[-1], 3),
        "duration_s": round((times[-1] - times[0] + (step if not preview else 0)) / 1000, 3),
        "measured_fps": None if preview or step <= 0 else round(1000 / step, 3),
        "variable_frame_rate": None if preview else bool(steps.size and float(steps.std()) > 0.05 * step),
        "shots": None if preview else counts.shots,
        "cuts": None if preview else counts.cuts,
        "gradual_transitions": counts.gradual_transitions,
        "flashes": counts.flashes,
        "blank_frames": blank if preview else counts.blank_frames,
        "near_duplicates_dropped": suppressed,
        "decode_errors": decode_errors,
        "nominal_fps": facts["nominal_fps"],
        "frame_count_estimate": estimate,
        "decoder": facts["reader"],
    }
    warnings = [] if frames else [nothing_kept(decoded, measured["blank_frames"], counts.flashes)]
    if not preview and times[0] > 1000:  # times count from the stream's start
        warnings.append(f"the first {times[0] / 1000:.2f} s of the stream could not be decoded; frames start there")
    if (not preview and estimate and decoded < 0.9 * estimate) or (last_error and not decode_errors):
        warnings.append(f"decoding stopped after {decoded} of ~{estimate or '?'} frames (at {times[-1] / 1000:.2f} s): "
                        "the file looks truncated or corrupt; the frames decoded so far are kept")
    if decode_errors:
        warnings.append(f"{decode_errors} corrupt packet(s) skipped ({last_error}); the picture may have glitches there")
    return {"frames": sorted(frames, key=lambda r: r["t_ms"]), "measured": measured, "warning": "; ".join(warnings)}


def nothing_kept(decoded: int, blank: int, flashes: int) -> str:
    """Why a video that decoded gave no frame to review (the selector keeps one per shot: only blank or flash
    pictures are left without one)."""
    if blank == decoded:
        return f"every decoded picture was blank ({blank} of {decoded}): no frame to review"
    return f"no frame was kept from {decoded} decoded pictures ({blank} blank, {flashes} flash(es)): nothing to review"


@dataclass
class _Preview:
    """A keyframe offered as it is (preview mode): the fields of a ``select.Pick`` that ``keep`` reads."""

    t_ms: float
    sharpness: float
    small: Any
    payload: Any
    shot: int = 0


def write_frame(picture, record: dict[str, Any], out_dir: str, quality: int) -> dict[str, Any]:
    """Full-resolution work, for kept frames only: colour, upright, JPEG, hashes. Returns the record."""
    import cv2

    image = picture.bgr()
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MediaError(f"could not encode the frame at {picture.t_ms / 1000:.3f} s as JPEG")
    data = jpeg.tobytes()
    pixel_sha = picture.pixel_sha256()
    name = f"{int(round(picture.t_ms)):09d}ms-{pixel_sha[:12]}.jpg"
    try:
        Path(out_dir, name).write_bytes(data)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise MediaError("no space left on the workspace's disk; free some and run `verify frames` again") from None
        raise
    return {**record, "file": name, "sha256": hashlib.sha256(data).hexdigest(), "pixel_sha256": pixel_sha,
            "width": int(image.shape[1]), "height": int(image.shape[0]), "fingerprint": fingerprint(image).to_json()}


@locked("frames")
def extract(
    ws: Workspace,
    params: FrameParams | None = None,
    redo: bool = False,
    workers: int = 2,
    progress: Callable[[VideoFrames], None] | None = None,
) -> list[VideoFrames]:
    """Extract keyframes for every ingested video that has none yet (or all, with ``redo``).

    A video whose frames are already pushed to Label Studio keeps them: re-extraction with the
    same parameters yields the same keys, so nothing is duplicated.
    """
    params = params or FrameParams(max_interval_s=ws.case.frames.max_interval_s)
    videos = pending(ws, params, redo)
    jobs = []
    for video in videos:
        tmp = ws.path("frames") / f".tmp-{video.sha256[:16]}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        jobs.append((str(ws.path(video.evidence)), str(tmp), asdict(params)))
    by_path = {job[0]: video for job, video in zip(jobs, videos)}
    results = []
    for (path, tmp, _), outcome in map_isolated(extract_video, jobs, params.timeout_s, workers):
        video = by_path[path]
        try:
            result = _record(ws, video, Path(tmp), outcome, params)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        results.append(result)
        if progress:
            progress(result)
    link_reuploads(ws, params.link_distance)
    return results


def pending(ws: Workspace, params: FrameParams, redo: bool = False) -> list[Video]:
    """Videos to extract: those without frames; a preview does not count as done for a full extraction."""
    done = ("ok", "partial", "preview") if params.mode == "preview" else ("ok", "partial")
    return [v for v in ws.videos() if redo or v.frames_status not in done]


PREVIEW_NOTE = "preview: the stream's keyframes only, shots between them may be missing; run `verify frames` for a full extraction"


def _record(ws: Workspace, video: Video, tmp: Path, outcome, params: FrameParams) -> VideoFrames:
    sha = video.sha256
    result = VideoFrames(sha256=sha, source_id=video.source_id, ok=outcome.ok)
    if not outcome.ok:
        report_failure(video.source_id, outcome, shown=True)
        result.message = outcome.error
        ws.record_frames_failed(sha, outcome.error)
        custody.record(ws, "extract", inputs=[(video.evidence, sha)], source_id=video.source_id, status="failed",
                       error=outcome.error)
        return result
    value = outcome.value
    final = ws.path("frames") / sha[:16]
    final.mkdir(exist_ok=True)
    extractor = {"name": EXTRACTOR, "decoder": value["measured"]["decoder"], "params": asdict(params)}
    frames = []
    for f in value["frames"]:
        os.replace(tmp / f["file"], final / f["file"])
        frames.append(Frame(
            key=frame_key(sha, f["t_ms"], f["pixel_sha256"]), video_sha256=sha, t_ms=f["t_ms"], frame_index=f["frame_index"],
            shot=f["shot"], file=str((final / f["file"]).relative_to(ws.root)), sha256=f["sha256"],
            pixel_sha256=f["pixel_sha256"], phash=f["phash"], width=f["width"], height=f["height"],
            sharpness=f["sharpness"], extractor=extractor, fingerprint=f.get("fingerprint"),
        ))
    status = "preview" if params.mode == "preview" else "partial" if value["warning"] or not frames else "ok"
    note = "; ".join(filter(None, [PREVIEW_NOTE if params.mode == "preview" else "", value["warning"]])) or None
    try:
        ws.record_frames(sha, frames, status, note, {**video.metadata, "measured": value["measured"]})
    except BaseException:  # not recorded (a full disk, a kill): leave no unrecorded JPEG behind
        known = {f.file for f in ws.frames(sha)}
        for f in frames:
            if f.file not in known:
                ws.path(f.file).unlink(missing_ok=True)
        raise
    custody.record(ws, "extract", inputs=[(video.evidence, sha)], outputs=[(f.file, f.sha256) for f in frames],
                   source_id=video.source_id, extractor=extractor, status=status)
    result.frames, result.warning, result.measured = len(frames), value["warning"], value["measured"]
    result.message = extracted_message(len(frames), value["measured"]["shots"], params.mode)
    return result


def extracted_message(frames: int, shots: int | None, mode: str) -> str:
    """The line `verify frames` prints for a video; only a preview extraction mentions the preview."""
    if mode == "preview":
        return f"{frames} frames ({PREVIEW_NOTE})"
    return f"{frames} frames from {shots or 0} shots"


def link_reuploads(ws: Workspace, distance: int) -> int:
    """Find which videos re-upload earlier-ingested ones and link their frames; return the links made or changed.

    Videos are matched as a whole (``verify.media.match.match_videos``: several keyframes consistent
    with one time mapping, through pads, crops, mirroring and speed changes); a re-upload's frames
    the original explains get ``duplicate_of`` (the original's frame, itself never a duplicate), the
    others stay for review. Frames extracted before fingerprints existed are linked as before: a
    64-bit perceptual hash within ``distance`` bits of an earlier video's frame.
    """
    videos = ws.videos()
    frames = {v.sha256: ws.frames(v.sha256) for v in videos}
    prints = {sha: [(f, Fingerprint.from_json(f.fingerprint)) for f in fs if f.fingerprint] for sha, fs in frames.items()}
    target: dict[str, str] = {}  # frame key → the original frame it re-uploads
    found = []
    index = HashIndex()  # only pairs with a frame pair within LINK bits can match: the rest are never compared
    for v in videos:
        index.add([fp for _, fp in prints[v.sha256]])
    candidates: dict[int, list[int]] = {}
    for i, j in sorted(index.pairs()):
        candidates.setdefault(j, []).append(i)
    for j, b in enumerate(videos):
        for a in (videos[i] for i in candidates.get(j, ())):
            pa, pb = prints[a.sha256], prints[b.sha256]
            vm = match_videos([(f.t_ms, fp) for f, fp in pa], [(f.t_ms, fp) for f, fp in pb]) if pa and pb else None
            if vm is None:
                continue
            mapped = dict(vm.explained)
            for ib in vm.unexplained:  # inside a matched span B shows A's footage, even where the two extractions
                ia = _mapped(vm, pb[ib][0].t_ms, pa)  # kept different instants of a moving shot: nothing new to review
                if ia is not None:
                    mapped[ib] = (ia, None)
            found.append(Reupload(b.sha256, a.sha256, round(len(mapped) / len(pb), 3), len(mapped), vm.describe(),
                                  vm.mirrored, round(vm.speed, 3)))
            for ib, (ia, _) in sorted(mapped.items()):
                original = pa[ia][0].key
                target.setdefault(pb[ib][0].key, target.get(original, original))
    originals: list[tuple[int, str, str]] = []  # the phash fallback, for frames without a fingerprint
    for v in videos:
        for f in frames[v.sha256]:
            if f.fingerprint or f.key in target:
                continue
            h = int(f.phash, 16)
            match = next((key for oh, key, vid in originals if vid != v.sha256 and hamming(h, oh) <= distance), None)
            if match:
                target[f.key] = match
            else:
                originals.append((h, f.key, v.sha256))
    links = {f.key: target[f.key] for fs in frames.values() for f in fs if f.key in target and f.duplicate_of != target[f.key]}
    if links:
        ws.link_reuploads(links)
    ws.record_reuploads(found)
    return len(links)


SPAN_MARGIN_MS = 500.0  # how far outside a matched span a re-upload's frame may lie and still be inside it


def _mapped(vm, t_ms: float, keyframes: list) -> int | None:
    """The original's keyframe at the time a matched span maps ``t_ms`` to (None: outside every span)."""
    for seg in vm.segments:
        if seg.b_start_ms - SPAN_MARGIN_MS <= t_ms <= seg.b_end_ms + SPAN_MARGIN_MS:
            t_a = seg.a_start_ms + seg.speed * (t_ms - seg.b_start_ms)
            return min(range(len(keyframes)), key=lambda i: abs(keyframes[i][0].t_ms - t_a))
    return None


@dataclass
class FrameCheck:
    key: str
    source_id: str
    t_ms: float
    frame_index: int
    pixels_match: bool
    time_match: bool
    jpeg_intact: bool
    decoded_pixel_sha256: str = ""
    as_logged: bool = True  # the record's JPEG sha256 is the one custody.log recorded for it

    @property
    def ok(self) -> bool:
        return self.pixels_match and self.time_match and self.jpeg_intact and self.as_logged


def parse_at(spec: str) -> tuple[str, float]:
    """'SOURCE_OR_SHA@SECONDS' or '…@H:MM:SS.mmm' → (video reference, milliseconds)."""
    video, sep, when = spec.rpartition("@")
    if not sep or not video or not when:
        raise OptionError("at", f"{spec!r}: write VIDEO@TIME, e.g. militants-at-gate@4.8 or 5caa480b@0:00:04.800")
    try:
        parts = [float(p) for p in when.split(":")]
    except ValueError:
        raise OptionError("at", f"{spec!r}: {when!r} is not a time (seconds, or H:MM:SS.mmm)")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    if not math.isfinite(seconds) or seconds < 0 or any(p < 0 for p in parts):
        raise OptionError("at", f"{spec!r}: {when!r} is not a time in the video (seconds from its start, or H:MM:SS.mmm)")
    return video, seconds * 1000


def check_frame(ws: Workspace, spec: str, timeout: float = 900.0) -> FrameCheck:
    """Re-extract one stored frame from the evidentiary copy and compare it with the record.

    Raises:
        VerifyError: the video or a frame near that time is not in the workspace; MediaError
            when the evidence cannot be decoded.
    """
    reference, t_ms = parse_at(spec)
    videos = [v for v in ws.videos() if v.source_id == reference or v.sha256.startswith(reference.lower())]
    if len(videos) != 1:
        known = ", ".join(sorted({v.source_id for v in ws.videos()})) or "none"
        raise OptionError("at", f"{spec!r}: {'no' if not videos else 'more than one'} video matches {reference!r} (sources: {known}); "
                          "use the sha256 prefix")
    video = videos[0]
    frames = ws.frames(video.sha256)
    if not frames:
        raise OptionError("at", f"{spec!r}: {video.source_id} has no frames yet; run `verify frames`")
    frame = min(frames, key=lambda f: abs(f.t_ms - t_ms))
    if abs(frame.t_ms - t_ms) > 500:
        times = ", ".join(f"{f.t_ms / 1000:.3f}" for f in frames[:12])
        raise OptionError("at", f"{spec!r}: no stored frame within 0.5 s; {video.source_id} has frames at {times} s")
    extractor = frame.extractor or {}
    if extractor.get("name") != EXTRACTOR:
        raise OptionError("at", f"{spec!r}: this frame was extracted by {extractor.get('name')}, not {EXTRACTOR}; "
                          "its pixels can only be re-checked by that version (or re-extract with `verify frames --redo`)")
    outcome = run_isolated(decode_at, (str(ws.path(video.evidence)), frame.frame_index, frame.preview), timeout)
    if not outcome.ok:
        raise MediaError(f"{video.source_id}: {outcome.error}")
    jpeg = ws.path(frame.file)
    intact = jpeg.is_file() and hashlib.sha256(jpeg.read_bytes()).hexdigest() == frame.sha256
    logged = custody.logged_files(ws, custody.read_entries(ws))[0].get(frame.file)
    return FrameCheck(
        key=frame.key, source_id=video.source_id, t_ms=frame.t_ms, frame_index=frame.frame_index,
        pixels_match=outcome.value["pixel_sha256"] == frame.pixel_sha256,
        time_match=abs(outcome.value["t_ms"] - frame.t_ms) < 0.01,
        jpeg_intact=intact, decoded_pixel_sha256=outcome.value["pixel_sha256"],
        as_logged=logged is None or logged[0] == frame.sha256,
    )
