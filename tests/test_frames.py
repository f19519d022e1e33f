"""Keyframes: every shot covered, exact timestamps, hashes traceable to the video, re-uploads linked."""

import hashlib
import json
from dataclasses import asdict

import cv2
import numpy as np
import pytest

from verify.frames import FrameParams, extract, extract_video, frame_key, hamming
from verify.isolate import run_isolated
from tests import crashers
from tests.conftest import truth


def _by_video(ws):
    out = {}
    for video in ws.videos():
        out[video["source_id"]] = (video, ws.frames(video["sha256"]))
    return out


def test_every_shot_of_every_fixture_gets_a_frame(ingested):
    results = extract(ingested)
    assert all(r.ok for r in results), [r.message for r in results]
    report = []
    for video, frames in _by_video(ingested).values():
        t = truth_for(ingested, video)
        covered = [any(s["start"] * 1000 <= f["t_ms"] < s["end"] * 1000 for f in frames) for s in t["shots"]]
        report.append((video["source_id"], sum(covered), len(covered)))
        assert all(covered), f"{video['source_id']}: shots without a frame: {[s for s, c in zip(t['shots'], covered) if not c]}"
        assert video["metadata"]["measured"]["shots"] == len(t["shots"])
    print("shots covered:", report)


def truth_for(ws, video):
    from pathlib import Path

    return truth(Path(video["original_path"]))


def test_timestamps_are_presentation_times_and_frames_match_them(ingested):
    extract(ingested)
    for video, frames in _by_video(ingested).values():
        fps = truth_for(ingested, video)["fps"]
        for f in frames:
            assert f["t_ms"] == pytest.approx(f["frame_index"] * 1000 / fps, abs=0.01)
            # the stored pixels are the decoded frame at that index
            cap = cv2.VideoCapture(str(ingested.path(video["evidence"])))
            for _ in range(f["frame_index"] + 1):
                ok, frame = cap.read()
            cap.release()
            assert hashlib.sha256(frame.tobytes()).hexdigest() == f["pixel_sha256"]


def test_frame_records_trace_back_to_the_bytes(ingested):
    extract(ingested)
    for video, frames in _by_video(ingested).values():
        for f in frames:
            data = ingested.path(f["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == f["sha256"]
            assert f["key"] == frame_key(video["sha256"], f["t_ms"], f["pixel_sha256"])
            assert f["extractor"]["name"].startswith("verify.frames/")
            assert f["extractor"]["params"]["max_interval_s"] == 2.0


def test_no_two_frames_of_a_video_are_near_duplicates(ingested):
    extract(ingested)
    params = FrameParams()
    for _, frames in _by_video(ingested).values():
        hashes = [int(f["phash"], 16) for f in frames]
        for i, a in enumerate(hashes):
            for b in hashes[i + 1:]:
                assert hamming(a, b) > params.dup_distance


def test_the_reupload_is_linked_to_the_original(ingested):
    extract(ingested)
    videos = _by_video(ingested)
    original = {f["key"] for f in videos["flag-hoisting-afghan-side"][1]}
    reupload = videos["flag-hoisting-pakistani-side"][1]
    assert reupload and all(f["duplicate_of"] in original for f in reupload)
    for name in ("flag-hoisting-afghan-side", "militants-at-gate", "civilians-refused"):
        assert not any(f["duplicate_of"] for f in videos[name][1])


def test_vertical_video_frames_are_upright(ingested):
    extract(ingested)
    _, frames = _by_video(ingested)["civilians-refused"]
    assert frames and all((f["width"], f["height"]) == (360, 640) for f in frames)


def test_extracting_again_adds_nothing(ingested):
    extract(ingested)
    before = [f["key"] for f in ingested.frames()]
    assert extract(ingested) == []  # nothing pending
    extract(ingested, redo=True)
    assert [f["key"] for f in ingested.frames()] == before


def _write(path, frames, fps=25.0, fourcc="MJPG"):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def test_truncated_video_keeps_the_frames_decoded_so_far(tmp_path):
    rng = np.random.default_rng(0)
    scenes = [rng.integers(0, 255, (90, 160, 3), dtype=np.uint8) for _ in range(4)]
    frames = [cv2.GaussianBlur(scenes[i // 50], (5, 5), 0) for i in range(200)]
    video = _write(tmp_path / "cut.avi", frames)
    data = video.read_bytes()
    (tmp_path / "half.avi").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    out.mkdir()
    result = extract_video(str(tmp_path / "half.avi"), str(out), asdict(FrameParams()))
    assert "truncated or corrupt" in result["warning"]
    assert 0 < result["measured"]["decoded_frames"] < 200
    assert result["frames"] and len(list(out.iterdir())) == len(result["frames"])


def test_black_frames_are_not_kept(tmp_path):
    black = [np.zeros((90, 160, 3), np.uint8)] * 50
    rng = np.random.default_rng(1)
    scene = cv2.GaussianBlur(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8), (5, 5), 0)
    video = _write(tmp_path / "fade.avi", black + [scene] * 50)
    out = tmp_path / "out"
    out.mkdir()
    result = extract_video(str(video), str(out), asdict(FrameParams()))
    assert result["measured"]["blank_frames"] == 50
    assert [f["frame_index"] >= 50 for f in result["frames"]] == [True] * len(result["frames"])


def test_frames_over_the_pixel_cap_are_refused(tmp_path):
    video = _write(tmp_path / "big.avi", [np.zeros((240, 320, 3), np.uint8)] * 3)
    with pytest.raises(Exception, match="exceed the pixel cap"):
        extract_video(str(video), str(tmp_path), asdict(FrameParams(max_pixels=320 * 200)))


def test_a_crashing_decoder_costs_one_file():
    outcome = run_isolated(crashers.abort, (), timeout=60)
    assert not outcome.ok and outcome.error == "the decoder crashed (signal 6)"


def test_a_hanging_decoder_is_stopped_at_its_time_limit():
    outcome = run_isolated(crashers.hang, (), timeout=2)
    assert not outcome.ok and outcome.error == "gave up after 2 s (decoder hung?)"


def test_an_exception_in_the_child_is_one_line_and_stdout_noise_is_ignored():
    failed = run_isolated(crashers.fail, (), timeout=60)
    assert not failed.ok and failed.error == "bad frame data" and "ValueError" in failed.detail
    assert run_isolated(crashers.chatty, (21,), timeout=60).value == 42


def test_a_bad_video_among_good_ones_fails_alone(ingested, tmp_path):
    # bytes corrupted after ingest cannot happen to the read-only evidence copy, so ingest a
    # video that opens but dies mid-stream instead: a truncated AVI
    from verify.ingest import ingest

    rng = np.random.default_rng(2)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8), (5, 5), 0)] * 100
    video = _write(tmp_path / "x.avi", frames)
    (tmp_path / "short.avi").write_bytes(video.read_bytes()[:30000])
    [r] = ingest(ingested, [tmp_path / "short.avi"])
    assert r.ok, r.message
    results = {x.source_id: x for x in extract(ingested)}
    assert len(results) == 5 and all(x.ok for x in results.values())
    assert "truncated" in results[r.source_id].warning
    assert ingested.video(r.sha256)["frames_status"] == "partial"
    print(json.dumps({k: v.message for k, v in results.items()}))


def test_a_stored_frame_is_proven_to_come_from_the_evidence(ingested):
    from click.testing import CliRunner

    from verify.cli import main
    from verify.frames import check_frame

    extract(ingested)
    frame = ingested.frames(next(v["sha256"] for v in ingested.videos() if v["source_id"] == "militants-at-gate"))[1]
    check = check_frame(ingested, f"militants-at-gate@{frame['t_ms'] / 1000 + 0.01}")
    assert check.ok and check.key == frame["key"]
    ws = str(ingested.root)
    ok = CliRunner().invoke(main, ["-w", ws, "frames", "--at", f"militants-at-gate@{frame['t_ms'] / 1000}"])
    assert ok.exit_code == 0 and ok.output.startswith("match militants-at-gate frame")
    # a changed JPEG is caught, with its own exit code
    path = ingested.path(frame["file"])
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    bad = CliRunner().invoke(main, ["-w", ws, "frames", "--at", f"militants-at-gate@{frame['t_ms'] / 1000}"])
    assert bad.exit_code == 11 and "MISMATCH" in bad.output and "JPEG changed or missing" in bad.output
    wrong = CliRunner().invoke(main, ["-w", ws, "frames", "--at", "nope@1"])
    assert wrong.exit_code == 1 and "no video matches 'nope'" in wrong.output


def test_fades_and_dissolves_are_transitions_and_every_clean_shot_gets_a_sharp_frame(footage, tmp_path):
    video = footage["transitions"]
    t = truth(video)
    out = tmp_path / "out"
    out.mkdir()
    result = extract_video(str(video), str(out), asdict(FrameParams()))
    times = [f["t_ms"] / 1000 for f in result["frames"]]
    for shot in t["shots"]:  # the 0.4 s shot between two hard cuts included
        assert any(shot["start"] <= x < shot["end"] for x in times), f"no frame in {shot}: {times}"
    for transition in t["transitions"]:  # nothing half-faded or half-dissolved is sent for review
        assert not any(transition["from"] <= x < transition["to"] for x in times), (transition, times)
    assert result["measured"]["gradual_transitions"] >= len(t["transitions"])
    assert sorted(p.name for p in out.iterdir()) == sorted(f["file"] for f in result["frames"])
    print(f"transitions: {len(t['shots'])} shots covered by {len(times)} frames at {times}")
