"""Context: the motion around a keyframe, as a strip of the pictures on screen just before and after it.

A still frame hides motion ("the flag is being raised"). Beside each keyframe a reviewer is shown one
JPEG, the strip: the pictures on screen at fixed offsets around the keyframe (``OFFSETS_MS``, −2 s to
+2 s, the keyframe itself in the middle, outlined), clipped to the video, each labelled with its offset
and its exact presentation time. The keyframe stays the picture that is boxed and answered.

The pictures are cut from the evidence copy by decoding from the start (``verify.media.decode.on_screen``,
never seeking, so their times are the stream's own, as extraction saw them); every picture's time and
pixel sha256 are recorded with the strip, so a report can cite exactly what a reviewer saw.

Choosing the pictures (``shown``, ``select``) and laying them out (``columns``) are pure; ``video_strips``
decodes one video and writes its strips, and runs in a child process (``verify.media.isolate``). The
stage that makes missing strips and logs them is ``verify.media.strips``.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from verify import __version__
from verify.clock import timestamp
from verify.errors import MediaError

MAKER = f"verify.context/{__version__}"
OFFSETS_MS = (-2000.0, -1000.0, -500.0, 0.0, 500.0, 1000.0, 2000.0)
EPSILON_MS = 0.0005  # times are kept to the microsecond (three decimals of a millisecond)


@dataclass(frozen=True)
class ContextParams:
    """How strips are made; recorded with every strip."""

    offsets_ms: tuple[float, ...] = OFFSETS_MS  # around the keyframe; 0 is the keyframe itself
    thumb: int = 320  # longer side of each picture in the strip, px
    jpeg_quality: int = 85
    max_pixels: int = 7680 * 4320  # as for extraction: refuse to decode frames larger than 8K UHD
    timeout_s: float = 900.0  # per video
    threads: int = 2  # decoder threads per video


def shown(times_ms: list[float], at_ms: float) -> int:
    """Index of the picture on screen at ``at_ms`` among pictures presented at the sorted ``times_ms``:
    the last one at or before it (the first for a time before the video, the last after it)."""
    return max(0, bisect_right(times_ms, at_ms + EPSILON_MS) - 1)


def select(times_ms: list[float], t_ms: float, offsets_ms: tuple[float, ...] = OFFSETS_MS) -> list[int]:
    """Indices (sorted, each once) of the pictures a strip around the keyframe at ``t_ms`` shows: the one on
    screen at each offset, clipped to the video; offsets that land on the same picture show it once."""
    return sorted({shown(times_ms, t_ms + offset) for offset in offsets_ms})


def columns(count: int, width: int, height: int) -> int:
    """Pictures per row: portrait pictures all in one row; landscape and square ones at most four to a row."""
    return count if width * 5 < height * 4 else min(count, 4)


def thumb_size(width: int, height: int, longest: int) -> tuple[int, int]:
    """A picture scaled so its longer side is ``longest`` (never enlarged), at least 1×1."""
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def label(offset_ms: float) -> str:
    """The line under a picture: its offset from the keyframe (ASCII: the strip's font has no minus sign)."""
    return "this frame" if abs(offset_ms) < EPSILON_MS else f"{offset_ms / 1000:+.3f} s"


def header(pictures: list[dict[str, Any]]) -> str:
    """One line for the reviewer above the strip (pure)."""
    if len(pictures) < 2:
        return "Around this frame: no other picture (the video is a single frame here)"
    first, last = pictures[0], pictures[-1]
    return (f"Around this frame: {len(pictures)} pictures from {timestamp(first['t_ms'])} to {timestamp(last['t_ms'])} "
            f"({first['offset_ms'] / 1000:+.1f} s to {last['offset_ms'] / 1000:+.1f} s), in order; the outlined one is the frame to answer")


LABEL_H = 44  # px under each picture: offset and time
GAP = 6
BACKGROUND = (32, 32, 32)
OUTLINE = (0, 200, 255)  # BGR amber: the keyframe


def compose(thumbs: list[Any], lines: list[tuple[str, str]], marked: int | None) -> Any:
    """The strip (BGR array): ``thumbs`` (BGR arrays) in a grid, each with two lines of text under it; the
    picture at index ``marked`` (the keyframe) outlined."""
    import cv2
    import numpy as np

    cell_w = max(t.shape[1] for t in thumbs)
    cell_h = max(t.shape[0] for t in thumbs)
    cols = columns(len(thumbs), cell_w, cell_h)
    rows = -(-len(thumbs) // cols)
    width = cols * cell_w + (cols + 1) * GAP
    height = rows * (cell_h + LABEL_H) + (rows + 1) * GAP
    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i, (thumb, (top, bottom)) in enumerate(zip(thumbs, lines)):
        r, c = divmod(i, cols)
        x0 = GAP + c * (cell_w + GAP)
        y0 = GAP + r * (cell_h + LABEL_H + GAP)
        h, w = thumb.shape[:2]
        ox, oy = x0 + (cell_w - w) // 2, y0 + (cell_h - h) // 2
        canvas[oy:oy + h, ox:ox + w] = thumb
        if i == marked:
            cv2.rectangle(canvas, (ox - 3, oy - 3), (ox + w + 2, oy + h + 2), OUTLINE, 3)
        for n, text in enumerate((top, bottom)):
            colour = OUTLINE if i == marked and n == 0 else (235, 235, 235)
            (tw, _), _ = cv2.getTextSize(text, font, 0.5, 1)
            cv2.putText(canvas, text, (x0 + max(0, (cell_w - tw) // 2), y0 + cell_h + 18 + 20 * n), font, 0.5, colour, 1,
                        cv2.LINE_AA)
    return canvas


def video_strips(path: str, out_dir: str, keyframes: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """Decode one video once and write a strip for each of its ``keyframes`` ({"key", "t_ms", "pixel_sha256"})
    into ``out_dir``. Runs in a child process.

    Returns {"strips": [{"frame_key", "file", "sha256", "width", "height", "pictures": [{"t_ms", "offset_ms",
    "pixel_sha256"}], "keyframe_matches"}], "decoder": str}; ``keyframe_matches`` says the picture decoded at
    the keyframe's time has the keyframe's recorded pixel hash.

    Raises:
        MediaError: the file cannot be decoded, or its frames exceed the pixel cap.
    """
    import cv2

    from verify.media.decode import DECODER, Video, on_screen

    p = ContextParams(**params)
    keyframes = sorted(keyframes, key=lambda k: k["t_ms"])
    wanted = [(k, offset) for k in range(len(keyframes)) for offset in p.offsets_ms]
    times = [keyframes[k]["t_ms"] + offset for k, offset in wanted]
    remaining = [len(p.offsets_ms)] * len(keyframes)
    got: list[dict[int, dict[str, Any]]] = [{} for _ in keyframes]  # per keyframe: picture index → picture
    thumbs: dict[int, Any] = {}  # picture index → (thumbnail, refs)
    strips = []
    out = Path(out_dir)
    with Video(path, threads=p.threads, max_pixels=p.max_pixels) as video:
        for i, picture in on_screen(video, times):
            k, _ = wanted[i]
            if picture.index not in thumbs:
                image = picture.bgr()
                size = thumb_size(image.shape[1], image.shape[0], p.thumb)
                thumbs[picture.index] = {"image": cv2.resize(image, size, interpolation=cv2.INTER_AREA),
                                         "t_ms": picture.t_ms, "pixel_sha256": picture.pixel_sha256(), "refs": 0}
            if picture.index not in got[k]:
                got[k][picture.index] = thumbs[picture.index]
                thumbs[picture.index]["refs"] += 1
            remaining[k] -= 1
            if remaining[k] == 0:  # every offset of this keyframe is known: write its strip, free its pictures
                strips.append(_write(keyframes[k], got[k], out, p))
                for index in got[k]:
                    thumbs[index]["refs"] -= 1
                    if thumbs[index]["refs"] == 0:
                        del thumbs[index]
                got[k] = {}
        decoder = DECODER
    return {"strips": strips, "decoder": decoder}


def _write(keyframe: dict[str, Any], pictures: dict[int, dict[str, Any]], out: Path, p: ContextParams) -> dict[str, Any]:
    import cv2

    t0 = keyframe["t_ms"]
    chosen = [pictures[i] for i in sorted(pictures)]
    record = [{"t_ms": c["t_ms"], "offset_ms": round(c["t_ms"] - t0, 3), "pixel_sha256": c["pixel_sha256"]} for c in chosen]
    marked = next((n for n, r in enumerate(record) if abs(r["offset_ms"]) < EPSILON_MS), None)
    image = compose([c["image"] for c in chosen], [(label(r["offset_ms"]), timestamp(r["t_ms"])) for r in record], marked)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, p.jpeg_quality])
    if not ok:
        raise MediaError(f"could not encode the strip around {t0 / 1000:.3f} s as JPEG")
    data = jpeg.tobytes()
    name = f"{int(round(t0)):09d}ms-{keyframe['key'][:12]}.jpg"
    (out / name).write_bytes(data)
    return {"frame_key": keyframe["key"], "file": name, "sha256": hashlib.sha256(data).hexdigest(),
            "width": int(image.shape[1]), "height": int(image.shape[0]), "pictures": record,
            "keyframe_matches": marked is not None and record[marked]["pixel_sha256"] == keyframe["pixel_sha256"]}


def params_record(params: ContextParams) -> dict[str, Any]:
    """The parameters as recorded with each strip (JSON-ready)."""
    return {**asdict(params), "offsets_ms": list(params.offsets_ms)}
