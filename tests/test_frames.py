"""Keyframes: every shot covered, exact timestamps, hashes traceable to the video, re-uploads linked."""

import hashlib
import json
from dataclasses import asdict

import cv2
import numpy as np
import pytest

from verify.media.frames import FrameParams, extract, extract_video, frame_key, hamming
from verify.media.isolate import run_isolated
from tests import crashers
from tests.conftest import truth


def _by_video(ws):
    out = {}
    for video in ws.videos():
        out[video.source_id] = (video, ws.frames(video.sha256))
    return out


def test_every_shot_of_every_fixture_gets_a_frame(ingested):
    results = extract(ingested)
    assert all(r.ok for r in results), [r.message for r in results]
    report = []
    for video, frames in _by_video(ingested).values():
        t = truth_for(ingested, video)
        covered = [any(s["start"] * 1000 <= f.t_ms < s["end"] * 1000 for f in frames) for s in t["shots"]]
        report.append((video.source_id, sum(covered), len(covered)))
        assert all(covered), f"{video.source_id}: shots without a frame: {[s for s, c in zip(t['shots'], covered) if not c]}"
        assert video.metadata["measured"]["shots"] == len(t["shots"])
    print("shots covered:", report)


def truth_for(ws, video):
    from pathlib import Path

    return truth(Path(video.original_path))


def test_timestamps_are_presentation_times_and_frames_match_them(ingested):
    import av

    extract(ingested)
    for video, frames in _by_video(ingested).values():
        fps = truth_for(ingested, video)["fps"]
        path = str(ingested.path(video.evidence))
        with av.open(path) as container:  # the decoded pictures, straight from FFmpeg
            decoded = {i: f.to_ndarray() for i, f in enumerate(container.decode(video=0))}
        cap = cv2.VideoCapture(path)  # and an independent decoder, OpenCV's
        independent = {}
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            independent[len(independent)] = frame
        cap.release()
        for f in frames:
            assert f.t_ms == pytest.approx(f.frame_index * 1000 / fps, abs=0.01)
            # the pixel hash is of the decoded picture at that index…
            assert hashlib.sha256(decoded[f.frame_index].data).hexdigest() == f.pixel_sha256
            # …and the JPEG shows what another decoder sees at that index (not a neighbour)
            jpeg = cv2.imread(str(ingested.path(f.file)))
            diffs = {i: float(cv2.absdiff(jpeg, independent[i]).mean()) for i in (f.frame_index - 1, f.frame_index, f.frame_index + 1) if i in independent}
            assert min(diffs, key=diffs.get) == f.frame_index and diffs[f.frame_index] < 4, diffs


def test_frame_records_trace_back_to_the_bytes(ingested):
    extract(ingested)
    for video, frames in _by_video(ingested).values():
        for f in frames:
            data = ingested.path(f.file).read_bytes()
            assert hashlib.sha256(data).hexdigest() == f.sha256
            assert f.key == frame_key(video.sha256, f.t_ms, f.pixel_sha256)
            assert f.extractor["name"].startswith("verify.frames/")
            assert f.extractor["params"]["max_interval_s"] == 2.0


def test_no_two_frames_of_a_video_are_near_duplicates(ingested):
    extract(ingested)
    params = FrameParams()
    for _, frames in _by_video(ingested).values():
        hashes = [int(f.phash, 16) for f in frames]
        for i, a in enumerate(hashes):
            for b in hashes[i + 1:]:
                assert hamming(a, b) > params.dup_distance


def test_the_reupload_is_linked_to_the_original(ingested):
    extract(ingested)
    videos = _by_video(ingested)
    original = {f.key for f in videos["flag-hoisting-afghan-side"][1]}
    reupload = videos["flag-hoisting-pakistani-side"][1]
    assert reupload and all(f.duplicate_of in original for f in reupload)
    for name in ("flag-hoisting-afghan-side", "militants-at-gate", "civilians-refused"):
        assert not any(f.duplicate_of for f in videos[name][1])


def test_vertical_video_frames_are_upright(ingested):
    extract(ingested)
    _, frames = _by_video(ingested)["civilians-refused"]
    assert frames and all((f.width, f.height) == (360, 640) for f in frames)


def test_extracting_again_adds_nothing(ingested):
    extract(ingested)
    before = [f.key for f in ingested.frames()]
    assert extract(ingested) == []  # nothing pending
    extract(ingested, redo=True)
    assert [f.key for f in ingested.frames()] == before


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
    from verify.media.ingest import ingest

    rng = np.random.default_rng(2)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8), (5, 5), 0)] * 100
    video = _write(tmp_path / "x.avi", frames)
    (tmp_path / "short.avi").write_bytes(video.read_bytes()[:30000])
    [r] = ingest(ingested, [tmp_path / "short.avi"])
    assert r.ok, r.message
    results = {x.source_id: x for x in extract(ingested)}
    assert len(results) == 5 and all(x.ok for x in results.values())
    assert "truncated" in results[r.source_id].warning
    assert ingested.video(r.sha256).frames_status == "partial"
    print(json.dumps({k: v.message for k, v in results.items()}))


def test_a_stored_frame_is_proven_to_come_from_the_evidence(ingested):
    from click.testing import CliRunner

    from verify.cli import main
    from verify.media.frames import check_frame

    extract(ingested)
    frame = ingested.frames(next(v.sha256 for v in ingested.videos() if v.source_id == "militants-at-gate"))[1]
    check = check_frame(ingested, f"militants-at-gate@{frame.t_ms / 1000 + 0.01}")
    assert check.ok and check.key == frame.key
    ws = str(ingested.root)
    ok = CliRunner().invoke(main, ["-w", ws, "frames", "--at", f"militants-at-gate@{frame.t_ms / 1000}"])
    assert ok.exit_code == 0 and ok.output.startswith("match militants-at-gate frame")
    # a changed JPEG is caught, with its own exit code
    path = ingested.path(frame.file)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    bad = CliRunner().invoke(main, ["-w", ws, "frames", "--at", f"militants-at-gate@{frame.t_ms / 1000}"])
    assert bad.exit_code == 11 and "MISMATCH" in bad.output and "JPEG changed or missing" in bad.output
    wrong = CliRunner().invoke(main, ["-w", ws, "frames", "--at", "nope@1"])
    assert wrong.exit_code == 2 and "no video matches 'nope'" in wrong.output


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


def test_phone_rotation_is_applied_so_frames_come_out_upright(tmp_path):
    from fixtures.generate import phone_rotated
    from verify.media.decode import probe

    video = tmp_path / "phone.mp4"
    t = phone_rotated(video)
    facts = probe(str(video))
    assert (facts["rotation"], facts["displayed_width"], facts["displayed_height"]) == (90, 360, 640)
    out = tmp_path / "out"
    out.mkdir()
    result = extract_video(str(video), str(out), asdict(FrameParams()))
    assert result["measured"]["shots"] == len(t["shots"])
    for f in result["frames"]:
        image = cv2.imread(str(out / f["file"]))
        assert (f["width"], f["height"]) == image.shape[1::-1] == (t["upright_width"], t["upright_height"])
        corner = image[: t["upright_height"] // 8 - 4, : t["upright_width"] // 4 - 4]
        assert corner.mean() > 240, "the white block is not top-left: the frame is not upright"


def test_variable_frame_rate_timestamps_are_the_streams_own(tmp_path):
    from fixtures.generate import variable_frame_rate

    video = tmp_path / "vfr.mp4"
    t = variable_frame_rate(video)
    out = tmp_path / "out"
    out.mkdir()
    result = extract_video(str(video), str(out), asdict(FrameParams(max_interval_s=0.5)))
    m = result["measured"]
    assert m["variable_frame_rate"] is True and m["decoded_frames"] == len(t["times_ms"])
    assert m["shots"] == len(t["shots"])
    assert len(result["frames"]) >= len(t["shots"])
    for f in result["frames"]:
        # the exact presentation time of that very picture (the gaps are irregular: index ÷ fps is not it)
        assert f["t_ms"] == t["times_ms"][f["frame_index"]]
    assert m["first_pts_ms"] == 0 and m["last_pts_ms"] == t["times_ms"][-1]


def test_preview_decodes_only_keyframes_and_says_so(ingested):
    from verify.media.frames import PREVIEW_NOTE
    from verify.labelstudio.push import build_task

    results = extract(ingested, FrameParams(mode="preview"))
    assert all(r.ok for r in results), [r.message for r in results]
    for video, frames in _by_video(ingested).values():
        assert video.frames_status == "preview" and PREVIEW_NOTE in video.frames_note
        assert frames and all(f.extractor["params"]["mode"] == "preview" for f in frames)
        assert video.metadata["measured"]["decoded_frames"] < truth_for(ingested, video)["duration_s"] * truth_for(ingested, video)["fps"] / 2
        task = build_task(frames[0], video, "/x.jpg", "ws")
        assert "PREVIEW" in task["data"]["timestamp"]
    # a preview frame is still proven against the evidence
    from verify.media.frames import check_frame

    frame = frames[0]
    assert check_frame(ingested, f"{video.source_id}@{frame.t_ms / 1000}").ok
    # a full extraction afterwards is not skipped
    full = extract(ingested)
    assert len(full) == len(results) and all(ingested.video(r.sha256).frames_status in ("ok", "partial") for r in full)


def test_a_mirrored_letterboxed_reupload_is_linked_as_a_whole_and_reported_with_its_span(workspace, footage, tmp_path):
    """A repost made the way reposters do (mirrored, letterboxed into a square, recompressed) is recognised as
    a re-upload of the original: its frames link to the original's, and status and the report say where."""
    import av
    import cv2

    from verify.media.ingest import ingest
    from verify.pipeline import current_verdicts
    from verify.report.build import build_report
    from verify.status import workspace_status

    original = footage["militants_at_gate"]
    repost = tmp_path / "repost.mp4"
    with av.open(str(original)) as src, av.open(str(repost), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = 640
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "30"}
        for frame in src.decode(video=0):
            image = cv2.flip(frame.to_ndarray(format="bgr24"), 1)
            square = cv2.copyMakeBorder(image, 140, 140, 0, 0, cv2.BORDER_CONSTANT, value=0)  # 640×360 → 640×640
            for packet in stream.encode(av.VideoFrame.from_ndarray(square, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    [a] = ingest(workspace, [original], source_id="militants-at-gate")
    [b] = ingest(workspace, [repost])
    extract(workspace)
    [found] = workspace.reuploads()
    assert (found.video_sha256, found.original_sha256, found.mirrored) == (b.sha256, a.sha256, True)
    originals = {f.key for f in workspace.frames(a.sha256)}
    linked = [f for f in workspace.frames(b.sha256) if f.duplicate_of]
    assert linked and all(f.duplicate_of in originals for f in linked) and found.frames == len(linked)
    assert found.share >= 0.9
    [video] = [v for v in workspace_status(workspace, current_verdicts(workspace)).videos if v.sha256 == b.sha256]
    assert video.reupload_of and video.reupload_of[0].startswith("militants-at-gate: ") and "mirrored" in video.reupload_of[0]
    source = next(s for s in build_report(workspace, current_verdicts(workspace))["sources"] if s["sha256"] == b.sha256)
    assert source["reuploads"][0]["of"] == "militants-at-gate" and "of militants-at-gate, mirrored" in source["reuploads"][0]["span"]
