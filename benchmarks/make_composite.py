"""Write the phone-vertical composite: 12 segments of real clips in 1080×1920, cut times known exactly.

    .venv/bin/python benchmarks/make_composite.py OUT.mp4

The segments come from the registry-shipped clips of bench_keyframes.py (each taken inside one
shot of its clip, so the composite has no cut but the 11 it is made with). Some fill the frame
(scaled to cover it, centre-cropped: footage shot upright), the others are landscape footage
placed across the frame over a blurred, darkened copy of itself, as phone apps re-post it.
H.264 at 30 fps through PyAV; OUT.truth.json lists the cuts (the first frame of each segment,
frame index ÷ 30, which is also its presentation time) and the segments.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

W, H, FPS = 1080, 1920, 30

# (clip, start s, length in frames, layout): a segment stays inside one shot of its clip
SEGMENTS = [
    ("vtest", 10.0, 75, "blur"),
    ("carphone", 0.5, 60, "fill"),
    ("bigbuckbunny", 0.5, 90, "blur"),
    ("cup", 1.0, 15, "fill"),  # 0.5 s
    ("megamind", 4.3, 45, "blur"),
    ("tree", 5.0, 75, "fill"),
    ("box", 2.0, 60, "blur"),
    ("megamind", 8.5, 12, "fill"),  # 0.4 s
    ("vtest", 50.0, 90, "fill"),
    ("cup", 4.0, 60, "blur"),
    ("bikes", 3.2, 54, "blur"),
    ("carphone", 1.8, 60, "blur"),
]


def read_frames(path: Path, start: float = 0.0, end: float = float("inf")) -> list[tuple[float, np.ndarray]]:
    """(presentation time s, BGR picture) of every decoded frame with start ≤ t < end, plus the one before start."""
    frames: list[tuple[float, np.ndarray]] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            t = float(frame.time) if frame.time is not None else 0.0
            if t >= end:
                break
            picture = frame.to_ndarray(format="bgr24")
            if t < start:
                frames[:] = [(t, picture)]  # the picture on screen at start if no frame falls exactly on it
                continue
            frames.append((t, picture))
    return frames


def at(frames: list[tuple[float, np.ndarray]], t: float) -> np.ndarray:
    """The picture on screen at time t (the last frame starting at or before it)."""
    chosen = frames[0][1]
    for ft, picture in frames:
        if ft > t + 1e-6:
            break
        chosen = picture
    return chosen


def cover(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """Scale to cover w×h and centre-crop."""
    ih, iw = image.shape[:2]
    scale = max(w / iw, h / ih)
    sw, sh = max(w, round(iw * scale)), max(h, round(ih * scale))
    big = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x, y = (sw - w) // 2, (sh - h) // 2
    return big[y:y + h, x:x + w]


def over_blur(image: np.ndarray, w: int = W, h: int = H) -> np.ndarray:
    """Landscape footage across a w×h frame over a blurred, darkened copy of itself."""
    back = cover(cv2.resize(image, (max(8, image.shape[1] // 8), max(8, image.shape[0] // 8)), interpolation=cv2.INTER_AREA),
                 w // 10, h // 10)
    back = cv2.GaussianBlur(back, (0, 0), 4)
    out = (cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR) * 0.6).astype(np.uint8)
    ih, iw = image.shape[:2]
    fw = w
    fh = min(h, round(ih * w / iw)) & ~1
    front = cv2.resize(image, (fw, fh), interpolation=cv2.INTER_AREA if fw < iw else cv2.INTER_LINEAR)
    y = (h - fh) // 2
    out[y:y + fh] = front
    return out


class Writer:
    """H.264 (libx264, yuv420p) at a constant frame rate: frame i is shown at i / fps."""

    def __init__(self, out: Path, w: int, h: int, fps: int | Fraction, crf: int = 23):
        self.container = av.open(str(out), mode="w")
        self.stream = self.container.add_stream("libx264", rate=fps)
        self.stream.width, self.stream.height, self.stream.pix_fmt = w & ~1, h & ~1, "yuv420p"
        self.stream.options = {"preset": "veryfast", "crf": str(crf)}

    def write(self, image: np.ndarray) -> None:
        h, w = self.stream.height, self.stream.width
        if image.shape[0] != h or image.shape[1] != w:
            image = image[:h, :w]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def make(sources: dict[str, Path], out: Path) -> dict:
    """Write the composite and its truth file; returns the truth."""
    writer = Writer(out, W, H, FPS)
    index = 0
    segments = []
    for name, start, length, layout in SEGMENTS:
        frames = read_frames(sources[name], start, start + length / FPS + 0.5)
        for i in range(length):
            picture = at(frames, start + i / FPS)
            writer.write(over_blur(picture) if layout == "blur" else cover(picture, W, H))
        segments.append({"clip": name, "from_s": start, "t_s": round(index / FPS, 6), "frames": length, "layout": layout})
        index += length
    writer.close()
    truth = {"width": W, "height": H, "fps": FPS, "duration_s": index / FPS,
             "cuts": [s["t_s"] for s in segments[1:]], "segments": segments}
    out.with_suffix(".truth.json").write_text(json.dumps(truth, indent=1))
    return truth


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_keyframes import fetch_clips  # noqa: E402

    make({name: clip.path for name, clip in fetch_clips().items()}, Path(sys.argv[1]))
