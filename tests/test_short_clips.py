"""Short, low-frame-rate clips keep their footage (issue 24, item 6).

A clip of steady motion at a low frame rate (FFmpeg's ``testsrc`` at 10 frames/s, a slow dissolve, a fade-in)
looks like a transition from one picture to the next; when such a run lasted to the end of the clip (or up to a
cut) nothing of it was kept, and the video was recorded `ok` with 0 frames and a message about a preview. Now
every shot that decodes gets a frame, a video that still gives none is `partial` with the reason, and only a
preview extraction speaks of a preview.
"""

from __future__ import annotations

from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from verify.media.frames import FrameParams, extract, extract_video
from verify.media.isolate import Outcome
from verify.media.select import SelectParams, Selector


def _encode(path: Path, pictures, rate: float) -> Path:
    """H.264 (yuv420p) of BGR pictures at ``rate`` frames/s."""
    h, w = pictures[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(rate).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for picture in pictures:
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _testsrc(path: Path, size: str, rate: float, seconds: float) -> Path:
    """As `ffmpeg -f lavfi -i testsrc=size=SIZE:rate=RATE -t SECONDS -c:v libx264 -pix_fmt yuv420p`."""
    with av.open(f"testsrc=size={size}:rate={Fraction(rate).limit_denominator(1000)}", format="lavfi") as source:
        pictures = []
        for frame in source.decode(video=0):
            if len(pictures) >= round(seconds * rate):
                break
            pictures.append(frame.to_ndarray(format="bgr24"))
    return _encode(path, pictures, rate)


def _scene(seed: int, h: int = 240, w: int = 320) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (9, 9), 0)


def _extract(video: Path, tmp_path: Path, **params) -> dict:
    out = tmp_path / "out"
    out.mkdir()
    result = extract_video(str(video), str(out), asdict(FrameParams(**params)))
    assert sorted(p.name for p in out.iterdir()) == sorted(f["file"] for f in result["frames"])  # written, and only those
    return result


@pytest.mark.parametrize("size", ["320x240", "1280x720"])
@pytest.mark.parametrize("seconds", [0.5, 1.0, 1.6, 2.5, 3.0])
def test_a_short_10_fps_testsrc_clip_gets_a_frame(tmp_path, size, seconds):
    video = _testsrc(tmp_path / "clip.mp4", size, 10, seconds)
    result = _extract(video, tmp_path)
    m = result["measured"]
    assert m["decoded_frames"] == round(seconds * 10)
    assert result["frames"], f"no frame from {m}"
    assert m["shots"] >= 1 and result["warning"] == ""
    w, h = map(int, size.split("x"))
    assert all((f["width"], f["height"]) == (w, h) and 0 <= f["t_ms"] < seconds * 1000 for f in result["frames"])


@pytest.mark.parametrize("rate,seconds", [(1, 1.0), (1, 3.0), (2, 1.0), (2, 3.0), (5, 0.2), (5, 3.0), (7.5, 0.4), (7.5, 3.0),
                                          (10, 0.2)])
def test_low_frame_rates_and_durations_all_give_a_frame(tmp_path, rate, seconds):
    result = _extract(_testsrc(tmp_path / "clip.mp4", "320x240", rate, seconds), tmp_path)
    assert result["frames"] and result["warning"] == ""


@pytest.mark.parametrize("rate,seconds", [(5, 1.0), (2, 3.0), (10, 1.0)])
def test_a_clip_that_is_one_slow_dissolve_gets_a_frame(tmp_path, rate, seconds):
    a, b = _scene(1), _scene(2)
    n = round(rate * seconds)
    pictures = [cv2.addWeighted(a, 1 - i / (n - 1), b, i / (n - 1), 0) for i in range(n)]
    result = _extract(_encode(tmp_path / "dissolve.mp4", pictures, rate), tmp_path)
    assert len(result["frames"]) >= 1 and result["warning"] == ""


@pytest.mark.parametrize("rate,seconds", [(10, 1.0), (5, 1.6), (10, 3.0)])
def test_a_clip_that_fades_in_from_black_to_its_end_gets_a_frame_that_is_not_black(tmp_path, rate, seconds):
    scene = _scene(3)
    n = round(rate * seconds)
    pictures = [(scene * (i / (n - 1))).astype(np.uint8) for i in range(n)]
    result = _extract(_encode(tmp_path / "fadein.mp4", pictures, rate), tmp_path)
    assert result["frames"] and result["warning"] == ""
    image = cv2.imread(str(tmp_path / "out" / result["frames"][-1]["file"]), cv2.IMREAD_GRAYSCALE)
    assert float(image.std()) > FrameParams().blank_std


@pytest.mark.parametrize("count,rate", [(1, 1), (1, 25), (3, 1), (30, 10)])
def test_a_still_picture_video_gives_exactly_one_frame(tmp_path, count, rate):
    result = _extract(_encode(tmp_path / "still.mp4", [_scene(4)] * count, rate), tmp_path)
    assert len(result["frames"]) == 1 and result["warning"] == ""
    assert result["measured"]["decoded_frames"] == count


def _moving_shot(n: int, seed: int) -> list[np.ndarray]:
    """Grey pictures that blend steadily from one scene to another: every picture looks like part of a dissolve."""
    a, b = (cv2.cvtColor(_scene(seed + i, 96, 128), cv2.COLOR_BGR2GRAY) for i in (0, 1))
    return [cv2.addWeighted(a, 1 - i / (n - 1), b, i / (n - 1), 0) for i in range(n)]


def test_a_shot_that_is_all_steady_change_up_to_a_cut_keeps_a_frame():
    """Selector alone: 1.5 s of steady blending, a hard cut, then a still shot. Both shots get a pick."""
    still = cv2.cvtColor(_scene(9, 96, 128), cv2.COLOR_BGR2GRAY)
    pictures = _moving_shot(15, 7) + [still] * 15
    selector = Selector(SelectParams())
    picks = []
    for i, small in enumerate(pictures):
        picks += selector.feed(small, i * 100.0, i)
    picks += selector.finish()
    assert selector.counts.cuts == 1
    assert sorted({p.shot for p in picks}) == [0, 1]
    assert any(p.payload < 15 for p in picks) and any(p.payload >= 15 for p in picks)


def test_a_shot_that_is_all_steady_change_before_a_new_picture_size_keeps_a_frame():
    big = _moving_shot(12, 11)
    small = [cv2.resize(p, (64, 48)) for p in _moving_shot(12, 13)]
    selector = Selector(SelectParams())
    picks = []
    for i, picture in enumerate(big + small):
        picks += selector.feed(picture, i * 100.0, i)
    picks += selector.finish()
    assert any(p.payload < 12 for p in picks) and any(p.payload >= 12 for p in picks)


def test_why_nothing_was_kept_is_said():
    from verify.media.frames import nothing_kept

    assert nothing_kept(8, 8, 0) == "every decoded picture was blank (8 of 8): no frame to review"
    assert nothing_kept(10, 3, 1) == "no frame was kept from 10 decoded pictures (3 blank, 1 flash(es)): nothing to review"


def _in_process(monkeypatch) -> None:
    """Run extraction in this process, so a patched selector is the one used."""

    def run_here(fn, jobs, timeout, workers):
        for job in jobs:
            yield job, Outcome(ok=True, value=fn(*job))

    monkeypatch.setattr("verify.media.frames.map_isolated", run_here)


def _ingest(ws, path: Path):
    from verify.media.ingest import ingest

    [result] = ingest(ws, [path])
    assert result.ok, result.message
    return result


def test_the_issue_clip_is_recorded_ok_with_frames_and_no_word_of_a_preview(workspace, tmp_path):
    _ingest(workspace, _testsrc(tmp_path / "x.mp4", "320x240", 10, 1.6))
    [result] = extract(workspace)
    [video] = workspace.videos()
    assert result.ok and result.frames >= 1 and len(workspace.frames(video.sha256)) == result.frames
    assert video.frames_status == "ok" and not video.frames_note
    assert result.message == f"{result.frames} frames from {result.measured['shots']} shots"
    assert "preview" not in result.message.lower()


def test_a_video_with_nothing_to_review_is_partial_with_the_reason(workspace, tmp_path):
    grey = np.full((240, 320, 3), 128, np.uint8)
    _ingest(workspace, _encode(tmp_path / "grey.mp4", [grey] * 20, 10))
    [result] = extract(workspace)
    [video] = workspace.videos()
    assert result.frames == 0 and workspace.frames(video.sha256) == []
    assert video.frames_status == "partial"
    assert "every decoded picture was blank (20 of 20)" in video.frames_note
    assert result.message == "0 frames from 0 shots" and "preview" not in (result.message + video.frames_note).lower()


def test_a_video_the_selector_keeps_nothing_of_is_partial_not_ok(workspace, tmp_path, monkeypatch):
    """Whatever the cause, a decoded video without frames is never `ok`: the note says how many pictures went."""
    _in_process(monkeypatch)
    monkeypatch.setattr(Selector, "feed", lambda self, *a, **k: [])
    monkeypatch.setattr(Selector, "finish", lambda self: [])
    _ingest(workspace, _testsrc(tmp_path / "x.mp4", "320x240", 10, 1.0))
    [result] = extract(workspace)
    [video] = workspace.videos()
    assert result.frames == 0 and video.frames_status == "partial"
    assert video.frames_note == "no frame was kept from 10 decoded pictures (0 blank, 0 flash(es)): nothing to review"
    assert "preview" not in result.message.lower()


def test_only_a_preview_extraction_speaks_of_a_preview(workspace, tmp_path):
    from verify.media.frames import PREVIEW_NOTE

    _ingest(workspace, _testsrc(tmp_path / "x.mp4", "320x240", 10, 1.6))
    [preview] = extract(workspace, FrameParams(mode="preview"))
    assert preview.message.endswith(f"({PREVIEW_NOTE})") and workspace.videos()[0].frames_status == "preview"
    [full] = extract(workspace)
    assert "preview" not in full.message.lower() and workspace.videos()[0].frames_status == "ok"


def test_a_video_with_a_warning_is_printed_as_partial_never_as_plain_ok():
    from types import SimpleNamespace

    from verify import terminal

    result = SimpleNamespace(source_id="s", sha256="0" * 64, ok=True, message="0 frames from 0 shots",
                             warning="no frame was kept from 3 decoded pictures: nothing to review")
    assert terminal.extracted(result).startswith("PART s (000000000000): 0 frames")
    assert terminal.extracted(SimpleNamespace(**{**vars(result), "warning": None})).startswith("ok   s")
