"""Every frame size and pixel format FFmpeg decodes gives frames: odd sizes, 4:2:2, 4:4:4, 10-bit,
full range, grey, paletted, RGB. Each file is written here with PyAV (a few small pictures)."""

from __future__ import annotations

from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from verify.media.decode import Video, decode_at
from verify.media.frames import FrameParams, extract_video

W, H = 721, 405  # odd both ways: 4:2:0 chroma planes are 361×203


def _pictures(w: int, h: int, n: int = 6) -> list[np.ndarray]:
    """RGB pictures: one textured scene, then a cut to another at n // 2."""
    scenes = []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        coarse = rng.integers(0, 255, (max(2, h // 24), max(2, w // 24), 3), dtype=np.uint8)
        scenes.append(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC))
    return [scenes[0] if i < n // 2 else scenes[1] for i in range(n)]


def _write(path: Path, codec: str, pix_fmt: str, w: int = W, h: int = H, source: str = "rgb24",
           options: dict | None = None, full_range: bool = False) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.codec_context.time_base = Fraction(1, 10)
        if options:
            stream.options = options
        if full_range:
            stream.codec_context.color_range = 2
        for i, rgb in enumerate(_pictures(w, h)):
            if source == "gray":
                frame = av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), format="gray")
            elif source == "pal8":  # 8 colours, indices and palette as PyAV takes them
                palette = np.zeros((256, 4), np.uint8)
                palette[:8] = np.random.default_rng(3).integers(0, 255, (8, 4))
                palette[:, 3] = 255
                frame = av.VideoFrame.from_ndarray(((rgb[..., 0] // 32) if i < 3 else (7 - rgb[..., 1] // 32), palette), format="pal8")
            else:
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if full_range:
                frame.color_range = 2
            frame.pts, frame.time_base = i, Fraction(1, 10)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# name: (file name, codec, pixel format given to the encoder, size, other arguments, the format the decoder hands out)
CASES = {
    "mpeg2_720x405": ("a.mpg", "mpeg2video", "yuv420p", (720, 405), {}, "yuv420p"),
    "h264_odd_yuv420p": ("b.mp4", "libx264", "gray", (W, H), {"source": "gray"}, "yuv420p"),  # 4:0:0 decodes as 4:2:0
    "h264_odd_yuvj420p": ("c.mp4", "libx264", "gray", (W, H), {"source": "gray", "full_range": True}, "yuvj420p"),
    "h264_odd_yuv444p": ("d.mp4", "libx264", "yuv444p", (W, H), {}, "yuv444p"),
    "h264_10bit": ("e.mp4", "libx264", "yuv420p10le", (722, 406), {}, "yuv420p10le"),
    "mjpeg_odd_yuvj420p": ("f.avi", "mjpeg", "yuvj420p", (W, H), {}, "yuvj420p"),
    "mjpeg_odd_yuvj422p": ("g.avi", "mjpeg", "yuvj422p", (W, H), {}, "yuvj422p"),
    "ffv1_odd_yuv422p": ("h.mkv", "ffv1", "yuv422p", (W, H), {}, "yuv422p"),
    "ffv1_odd_10bit": ("i.mkv", "ffv1", "yuv420p10le", (W, H), {}, "yuv420p10le"),
    "ffv1_odd_alpha": ("j.mkv", "ffv1", "yuva420p", (W, H), {}, "yuva420p"),
    "ffv1_odd_gray": ("k.mkv", "ffv1", "gray", (W, H), {"source": "gray"}, "gray"),
    "png_in_mov_pal8": ("l.mov", "png", "pal8", (W, H), {"source": "pal8"}, "pal8"),
    "gif_odd": ("m.gif", "gif", "pal8", (W, H), {"source": "pal8"}, None),  # FFmpeg's GIF decoder hands out bgra
    "png_in_mov_rgb24": ("n.mov", "png", "rgb24", (W, H), {}, "rgb24"),
    "qtrle_rgb24": ("o.mov", "qtrle", "rgb24", (W, H), {}, "rgb24"),
}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("pixel-formats")
    return {name: _write(out / file, codec, fmt, *size, **kw) for name, (file, codec, fmt, size, kw, _) in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_every_size_and_pixel_format_gives_frames_that_re_decode_to_the_same_pixels(name, media, tmp_path):
    path, (_, _, _, (w, h), _, decoded_format) = media[name], CASES[name]
    with Video(str(path)) as video:
        first = next(video.pictures())
        if decoded_format:
            assert first.frame.format.name == decoded_format
        # the grey copy is luma on the right scale, whatever the format (10-bit shifted, range known)
        luma = first.luma
        assert luma.dtype == np.uint8 and luma.shape == (h, w)
        grey = float(luma.mean())
        grey = (grey - 16) * first.gain if first.gain != 1 else grey
        expected = float(cv2.cvtColor(first.bgr(), cv2.COLOR_BGR2GRAY).mean())
        assert abs(grey - expected) < 10, (grey, expected)
    out = tmp_path / "out"
    out.mkdir()
    result = extract_video(str(path), str(out), asdict(FrameParams()))
    frames = result["frames"]
    assert result["measured"]["decoded_frames"] == 6 and result["measured"]["shots"] == 2
    assert len(frames) == 2 and not result["warning"]
    for f in frames:
        image = cv2.imread(str(out / f["file"]))
        assert image.shape[:2] == (h, w) and (f["width"], f["height"]) == (w, h)
        again = decode_at(str(path), f["frame_index"])  # what `verify frames --at` does
        assert again["pixel_sha256"] == f["pixel_sha256"] and again["t_ms"] == f["t_ms"]
    assert frames[0]["pixel_sha256"] != frames[1]["pixel_sha256"]


def test_the_pixel_hash_of_an_even_sized_picture_is_unchanged(media):
    """Frames recorded before stay verifiable: for formats PyAV lays out, the hash is of its array."""
    import hashlib

    with Video(str(media["h264_10bit"])) as video:
        picture = next(video.pictures())
        assert picture.pixel_sha256() == hashlib.sha256(picture.frame.to_ndarray().data).hexdigest()
