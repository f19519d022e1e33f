"""Hostile and broken media, end to end through the CLI: each bad file gets its one named line,
no traceback, no hang, and the good video of the same run is ingested and extracted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from fixtures.generate import _encode, phone_rotated, variable_frame_rate
from verify.cli import main

GOOD = "militants_at_gate"


def _mjpeg(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def _scenes(n: int, size=(96, 160)) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [cv2.GaussianBlur(rng.integers(0, 255, (*size, 3), dtype=np.uint8), (5, 5), 0) for _ in range(n)]


def _audio_only(path: Path, fmt: str) -> Path:
    import av

    codec, sample_format = {"mp4": ("aac", "fltp"), "ogg": ("opus", "flt"), "mpegts": ("mp2", "s16")}[fmt]
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=48000)
        stream.layout = "mono"
        samples = np.zeros((1, 960 * 24), np.int16 if sample_format == "s16" else np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format=sample_format, layout="mono")
        frame.sample_rate = 48000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _h264(path: Path, n: int = 60) -> Path:
    scenes = _scenes(3, (240, 320))
    _encode(path, [scenes[i * 3 // n] for i in range(n)], [i * 40 for i in range(n)])
    return path


def _corrupt_middle(src: Path, dst: Path) -> Path:
    data = bytearray(src.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 2000] = np.random.default_rng(3).integers(0, 255, 2000, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


# name: (writer(tmp) -> path, stage, expected phrase)  — stage "ingest" means refused at ingest,
# "frames" means ingested and then given this line by `verify frames`, "ok" means it works.
def _cases(tmp: Path, footage: dict) -> dict[str, tuple[Path, str, str]]:
    good_bytes = footage[GOOD].read_bytes()
    w = tmp / "in"
    w.mkdir()

    def put(name: str, data: bytes) -> Path:
        (w / name).write_bytes(data)
        return w / name

    ok_jpeg = cv2.imencode(".jpg", _scenes(1)[0])[1].tobytes()
    ok_png = cv2.imencode(".png", _scenes(1)[0])[1].tobytes()
    avi = _mjpeg(tmp / "src.avi", [_scenes(4)[i // 25] for i in range(100)])
    h264 = _h264(tmp / "src.mp4")
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "real.mp4").write_bytes(good_bytes[:0] + footage["civilians_refused_vertical"].read_bytes())
    os.symlink(outside / "real.mp4", w / "link-out.mp4")
    os.symlink(tmp / "nowhere.mp4", w / "dangling.mp4")
    (w / "folder.mp4").mkdir()
    return {
        "zero bytes": (put("empty.mp4", b""), "ingest", "empty file (0 bytes)"),
        "jpeg named .mp4": (put("photo.mp4", ok_jpeg), "ingest", "a still image, not a video"),
        "png named .mov": (put("image.mov", ok_png), "ingest", "a still image, not a video"),
        "html page named .mp4": (put("page.mp4", b"<!doctype html><html><video src=x></video></html>"), "ingest", "not a video"),
        "json named .mp4": (put("post.mp4", b'{"video": "https://example.org/v.mp4"}'), "ingest", "not a video"),
        "m3u8 playlist": (put("list.mp4", b"#EXTM3U\n#EXTINF:1,\n/etc/passwd\n"), "ingest", "playlist or concat list"),
        "hls with BOM": (put("hls.ts", b"\xef\xbb\xbf\n#EXT-X-VERSION:3\nseg.ts\n"), "ingest", "playlist or concat list"),
        "ffconcat list": (put("concat.mp4", b"ffconcat version 1.0\nfile '/etc/hosts'\n"), "ingest", "playlist or concat list"),
        "bare concat list": (put("bare.mkv", b"file '../../secret.mp4'\n"), "ingest", "playlist or concat list"),
        "xml/smil": (put("smil.mp4", b"<?xml version='1.0'?><smil><video src='a.mp4'/></smil>"), "ingest", "playlist or concat list"),
        "random bytes": (put("noise.mp4", bytes(np.random.default_rng(1).integers(0, 255, 5000, dtype=np.uint8))), "ingest",
                         "not a recognised video container"),
        "mp4 header only": (put("head.mp4", good_bytes[:20000]), "ingest", "corrupt or incomplete"),
        "ftyp then garbage": (put("garbage.mp4", good_bytes[:32] + b"\x00" * 4000), "ingest", "corrupt or incomplete"),
        "audio only m4a": (_audio_only(w / "voice.m4a", "mp4"), "ingest", "no video stream (the file has: audio)"),
        "audio only ogg": (_audio_only(w / "voice.ogg", "ogg"), "ingest", "no video stream (the file has: audio)"),
        "audio only ts": (_audio_only(w / "radio.ts", "mpegts"), "ingest", "no video stream (the file has: audio)"),
        "a folder named .mp4": (w / "folder.mp4", "ingest", "not a regular file"),
        "missing file": (w / "missing.mp4", "ingest", "file not found"),
        "dangling symlink": (w / "dangling.mp4", "ingest", "a symbolic link to nothing"),
        "truncated mid-stream": (put("half.avi", avi.read_bytes()[: avi.stat().st_size // 2]), "frames", "truncated or corrupt"),
        "corrupt mid-stream": (_corrupt_middle(h264, w / "corrupt.mp4"), "frames-any", ""),
        "over the pixel cap": (_mjpeg(w / "huge.avi", [np.full((4200, 8200, 3), 90, np.uint8)] * 2), "frames", "exceed the pixel cap"),
        "symlink out of the input folder": (w / "link-out.mp4", "ok", ""),
        "non-ASCII name with spaces": (put("vidéo d'essai ✓ (1).mp4", h264.read_bytes()), "ok", ""),
        "rotated phone video": (_made(phone_rotated, w / "phone.mp4"), "ok", ""),
        "variable frame rate": (_made(variable_frame_rate, w / "vfr.mp4"), "ok", ""),
        "animated gif": (_gif(w / "loop.gif"), "ok", ""),
    }


def _made(write, path: Path) -> Path:
    write(path)
    return path


def _gif(path: Path) -> Path:
    from PIL import Image

    frames = [Image.fromarray(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)) for f in _scenes(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:] * 4, duration=200, loop=0)
    return path


def test_bad_media_each_get_their_line_and_the_good_video_completes(tmp_path, footage):
    from tests.conftest import SEED_CASE

    cases = _cases(tmp_path, footage)
    ws = str(tmp_path / "ws")
    runner = CliRunner()
    assert runner.invoke(main, ["-w", ws, "init", str(SEED_CASE)]).exit_code == 0
    good = footage[GOOD]
    paths = [str(p) for p, _, _ in cases.values()] + [str(good)]
    ingest = runner.invoke(main, ["-w", ws, "ingest", *paths])
    assert "Traceback" not in ingest.output and ingest.exception is None or isinstance(ingest.exception, SystemExit)
    assert ingest.exit_code == 10, ingest.output  # partial: some inputs refused, the others ingested
    lines = ingest.output.splitlines()
    tried = refused = 0
    for name, (path, stage, phrase) in cases.items():
        tried += 1
        line = next((ln for ln in lines if str(path) in ln), None)
        assert line is not None, f"{name}: no line for {path} in\n{ingest.output}"
        if stage == "ingest":
            refused += 1
            assert line.startswith("FAIL") and phrase in line, f"{name}: {line}"
        else:
            assert line.startswith("ok"), f"{name}: {line}"
    assert any(str(good) in ln and ln.startswith("ok") for ln in lines)

    frames = runner.invoke(main, ["-w", ws, "frames"])
    assert "Traceback" not in frames.output
    assert frames.exit_code == 10, frames.output  # the over-cap file fails; everything else has frames
    from verify.workspace import Workspace

    workspace = Workspace.open(Path(ws))
    by_path = {Path(v.original_path).name: v for v in workspace.videos()}
    for name, (path, stage, phrase) in cases.items():
        if stage == "ingest":
            continue
        video = by_path[Path(path).resolve().name]
        if stage == "frames":
            assert phrase in (video.frames_note or ""), f"{name}: {video.frames_status} {video.frames_note}"
        else:
            assert video.frames_status in ("ok", "partial"), f"{name}: {video.frames_status} {video.frames_note}"
            assert workspace.frames(video.sha256), name
    assert by_path[good.name].frames_status == "ok" and workspace.frames(by_path[good.name].sha256)
    print(json.dumps({"bad or unusual inputs tried": tried, "refused at ingest": refused,
                      "ingested": tried - refused}))
