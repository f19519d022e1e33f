"""Drawing the merged boxes on a frame: one colour per label group, numbered tags that never overlap
each other or leave the picture.

``layout_tags`` (pure, on rectangles) decides where each box's tag goes; ``annotate`` draws the
boxes and tags with Pillow and returns the JPEG. The report lists every box in text under the
same number, so the drawing is never the only record (a tag that finds no free place is left out
of the picture and said so in that list).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw, ImageFont

# Okabe–Ito colours (distinguishable with the common colour-vision deficiencies), one per label group
# One colour a label group, in the report and in Label Studio's labels and region list: Okabe-Ito's colour-blind-safe
# hues, darkened where needed so each has a contrast of at least 4:1 against white (a pale one vanished on a white flag
# and in the white region list), and takes white text on the drawn tags.
GROUP_COLOURS = ("#b06f00", "#2a7ab9", "#b4548a", "#007a5a", "#7d7000", "#0072b2", "#c0530b")
UNKNOWN_COLOUR = "#767676"  # labels the case no longer defines
# DejaVu Sans (Debian's fonts-dejavu-core, installed by scripts/setup.sh) has "×" and most scripts' letters;
# Pillow's own default font has neither, so it is only the last resort (with "x" for "×").
FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "DejaVuSans-Bold.ttf",
              "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "DejaVuSans.ttf")
Rect = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass(frozen=True)
class Drawn:
    """One annotated picture: the JPEG, a smaller copy for galleries, and where each box's tag went."""

    jpeg: bytes
    thumb: bytes
    width: int
    height: int
    tags: list[Rect | None]  # per box, in the boxes' order; None: no free place in the picture
    short: list[bool]  # per box: the tag shows only the box's number (the full label did not fit)


@lru_cache(maxsize=8)
def font(size: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, bool]:
    """The label font at ``size`` px and whether it can draw "×" (DejaVu Sans), else Pillow's default."""
    for name in FONT_FILES:
        try:
            return ImageFont.truetype(name, size), True
        except OSError:
            continue
    return ImageFont.load_default(size), False


def font_name() -> str:
    f, real = font(12)
    return " ".join(f.getname()) if real and hasattr(f, "getname") else "Pillow's default font (no × glyph)"


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def text_colour(background: str) -> tuple[int, int, int]:
    r, g, b = hex_rgb(background)
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def corners(box: dict[str, Any], w: int, h: int) -> list[tuple[float, float]]:
    """Box corners in pixels; Label Studio rotates about the box's top-left corner."""
    x, y = box["x"] * w / 100, box["y"] * h / 100
    bw, bh = box["width"] * w / 100, box["height"] * h / 100
    a = math.radians(box.get("rotation") or 0)
    cos, sin = math.cos(a), math.sin(a)
    return [(x + dx * cos - dy * sin, y + dx * sin + dy * cos) for dx, dy in ((0, 0), (bw, 0), (bw, bh), (0, bh))]


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def layout_tags(boxes: Sequence[Rect], sizes: Sequence[Sequence[tuple[float, float]]], width: int,
                height: int) -> list[tuple[Rect, int] | None]:
    """Place one tag per box (pure): inside the picture, overlapping no other tag.

    ``boxes``: each box's bounding rectangle in pixels. ``sizes``: per box, the tag sizes to try
    in order (the full label, then the number alone). Tries above, inside, below the box (left
    then right aligned), then stacked next to those spots, then anywhere nearest the box.
    Returns per box (rectangle, index of the size used), or None when no place is free.
    """
    placed: list[Rect] = []
    out: list[tuple[Rect, int] | None] = []
    for (x0, y0, x1, y1), options in zip(boxes, sizes):
        found = None
        for choice, (tw, th) in enumerate(options):
            if tw > width or th > height:
                continue

            def fit(x: float, y: float) -> Rect | None:
                x = min(max(0.0, x), width - tw)
                if y < 0 or y + th > height:
                    return None
                rect = (x, y, x + tw, y + th)
                return None if any(_overlaps(rect, p) for p in placed) else rect

            spots = [(x0, y0 - th), (x0, y0), (x0, y1), (x0, y1 - th), (x1 - tw, y0 - th), (x1 - tw, y1)]
            ys = [min(max(0.0, y), height - th) for _, y in spots]
            tries = [(x, y) for (x, _), y in zip(spots, ys)]
            for step in range(1, 8):  # stacked next to the usual spots
                tries += [(x, y + step * th) for x, y in tries[:6]] + [(x, y - step * th) for x, y in tries[:6]]
            for x, y in tries:
                found = fit(x, y)
                if found:
                    break
            if not found:  # anywhere, nearest to the box first
                grid = [(gx, gy) for gy in range(0, int(height - th) + 1, max(1, int(th // 2)))
                        for gx in range(0, int(width - tw) + 1, max(1, int(tw // 4)))]
                grid.sort(key=lambda p: (p[0] - x0) ** 2 + (p[1] - y0) ** 2)
                found = next((r for p in grid if (r := fit(*p))), None)
            if found:
                placed.append(found)
                out.append((found, choice))
                break
        else:
            out.append(None)
    return out


def tag_texts(boxes: list[dict[str, Any]], times: bool) -> list[tuple[str, str]]:
    """Per box: the full tag ("1 Taliban flag ×2", "2 Gate lead" for a lead's own box) and the short one ("1")."""
    sign = "×" if times else "x"
    return [(f"{n} {b['label']} " + ("lead" if b.get("lead") else f"{sign}{b['drawn_by']}"), str(n))
            for n, b in enumerate(boxes, 1)]


def annotate(path: Path, boxes: list[dict[str, Any]], colours: list[str], width: int = 640,
             thumb_width: int = 360, quality: int = 80) -> Drawn:
    """The frame at ``width`` px (never enlarged) with ``boxes`` outlined in their ``colours`` and tagged.

    Each tag says the box's number (the report's box list uses the same), its label and how many
    reviewers drew it; the thumbnail is the same drawing scaled to ``thumb_width``.
    """
    with Image.open(path) as im:
        im.draft("RGB", (width, max(1, width * im.height // max(1, im.width))))  # JPEG: decode at reduced scale
        im = im.convert("RGB")
        if im.width > width:
            im = im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.BILINEAR)
    w, h = im.size
    size = max(14, round(w / 36))  # about 11 px or more where the report shows the picture at ~26em
    face, times = font(size)
    pad = max(2, size // 5)
    draw = ImageDraw.Draw(im)
    line = max(3, round(w / 200))
    rects, sizes, texts = [], [], tag_texts(boxes, times)
    for box, colour in zip(boxes, colours):
        pts = corners(box, w, h)
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        rects.append((min(xs), min(ys), max(xs), max(ys)))
        draw.polygon(pts, outline=hex_rgb(colour), width=line)  # Pillow widens the outline inwards
        draw.polygon(pts, outline=(0, 0, 0), width=1)  # a dark outer rim keeps the colour visible on any picture
    for full, short in texts:
        sizes.append([(draw.textlength(t, font=face) + 2 * pad, size + 2 * pad) for t in (full, short)])
    places = layout_tags(rects, sizes, w, h)
    for place, (full, short), colour in zip(places, texts, colours):
        if place is None:
            continue
        (x0, y0, x1, y1), choice = place
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=hex_rgb(colour), outline=(0, 0, 0))
        draw.text((x0 + pad, y0 + pad), short if choice else full, font=face, fill=text_colour(colour))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    small = im.resize((thumb_width, max(1, round(h * thumb_width / w))), Image.Resampling.BILINEAR) if w > thumb_width else im
    thumb = io.BytesIO()
    small.save(thumb, "JPEG", quality=quality)
    return Drawn(out.getvalue(), thumb.getvalue(), w, h, [p[0] if p else None for p in places],
                 [bool(p and p[1]) for p in places])
