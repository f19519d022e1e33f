"""Montage: frames side by side in one picture, two columns, each frame captioned (for a lead comparing frames).

Made as the context strips are (``verify.media.context``): laid out by a pure function (``layout``), drawn with
OpenCV from the workspace's frame JPEGs (``render``). OpenCV's fonts draw ASCII only: other characters are shown
plainly (``plain``); the texts themselves travel beside the picture in the task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CELL_W, CELL_H = 480, 300  # each frame fits in this box
CAPTION_LINES, LINE_H = 3, 20
PAD, HEAD_H = 12, 34
JPEG_QUALITY = 88
BACKGROUND = (255, 255, 255)
TEXT = (34, 34, 34)
_PLAIN = {"·": "|", "…": "...", "–": "-", "—": "-", "’": "'", "‘": "'", "“": '"', "”": '"', "×": "x"}


@dataclass(frozen=True)
class Panel:
    """One frame to show: its JPEG in the workspace, its size and the lines under it."""

    key: str
    file: str  # relative to the workspace
    width: int | None
    height: int | None
    caption: tuple[str, ...]


@dataclass(frozen=True)
class Tile:
    """One frame in the picture: where its JPEG goes (fitted, centred in its cell) and its caption."""

    frame_key: str
    file: str
    picture: tuple[int, int, int, int]  # x, y, width, height
    caption_at: tuple[int, int]  # top left of the caption
    caption: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """Two columns of frames, each under a heading."""

    width: int
    height: int
    texts: tuple[tuple[int, int, str, tuple[int, int, int]], ...]  # x, top y, text, RGB colour: headings, "n more"
    tiles: tuple[Tile, ...]
    rules: tuple[tuple[int, int, int, int, tuple[int, int, int]], ...] = ()  # x0, y0, x1, y1, RGB: under the headings

    @property
    def shown(self) -> list[str]:
        return [t.frame_key for t in self.tiles]


def fit(width: int | None, height: int | None, box_w: int = CELL_W, box_h: int = CELL_H) -> tuple[int, int]:
    """A picture's size fitted into a box, keeping its shape (pure)."""
    if not width or not height:
        return box_w, box_h
    scale = min(box_w / width, box_h / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def layout(columns: list[tuple[str, tuple[int, int, int], list[Panel]]], per_column: int) -> Layout:
    """Where everything goes (pure): one column per (heading, colour, panels), the panels one under another, at
    most ``per_column`` each, then a line saying how many more that column has."""
    cell_h = CELL_H + CAPTION_LINES * LINE_H + PAD
    rows = max((min(len(panels), per_column) for _, _, panels in columns), default=0)
    more = any(len(panels) > per_column for _, _, panels in columns)
    width = PAD + len(columns) * (CELL_W + PAD)
    height = PAD + HEAD_H + rows * cell_h + (LINE_H + PAD if more else 0) + PAD
    texts, tiles, rules = [], [], []
    for column, (heading, colour, panels) in enumerate(columns):
        x = PAD + column * (CELL_W + PAD)
        texts.append((x, PAD, heading, colour))
        rules.append((x, PAD + HEAD_H - 8, x + CELL_W, PAD + HEAD_H - 5, colour))
        for row, panel in enumerate(panels[:per_column]):
            y = PAD + HEAD_H + row * cell_h
            w, h = fit(panel.width, panel.height)
            tiles.append(Tile(panel.key, panel.file, (x + (CELL_W - w) // 2, y + (CELL_H - h) // 2, w, h),
                              (x, y + CELL_H + 4), panel.caption))
        if len(panels) > per_column:
            rest = len(panels) - per_column
            texts.append((x, PAD + HEAD_H + rows * cell_h, f"+ {rest} more {'frame' if rest == 1 else 'frames'} "
                          "not shown here (listed in the task)", colour))
    return Layout(width, height, tuple(texts), tuple(tiles), tuple(rules))


def plain(text: str) -> str:
    """The text in the ASCII OpenCV can draw (pure): common punctuation replaced, anything else as "?"."""
    return "".join(_PLAIN.get(c, c if 32 <= ord(c) < 127 else "?") for c in text)


def wrap(text: str, fits) -> list[str]:
    """The text in lines that ``fits`` (a line → bool), broken at spaces; a word too long is cut with "..." (pure)."""
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if fits(candidate) or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
    lines.append(line)
    out = []
    for line in lines:
        while not fits(line) and len(line) > 4:
            line = line[:-4] + "..."
        out.append(line)
    return out


def render(root: Path, plan: Layout) -> bytes:
    """Draw the picture ``plan`` lays out from the JPEGs under ``root``; return the JPEG."""
    import cv2
    import numpy as np

    canvas = np.full((plan.height, plan.width, 3), BACKGROUND, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    bgr = lambda rgb: tuple(reversed(rgb))  # noqa: E731

    def fits(size: float, width: int):
        return lambda line: cv2.getTextSize(line, font, size, 1)[0][0] <= width

    for x, y, text, colour in plan.texts:
        line = wrap(plain(text), fits(0.6, plan.width - x))[0]
        cv2.putText(canvas, line, (x, y + 18), font, 0.6, bgr(colour), 2, cv2.LINE_AA)
    for x0, y0, x1, y1, colour in plan.rules:
        cv2.rectangle(canvas, (x0, y0), (x1, y1), bgr(colour), -1)
    for tile in plan.tiles:
        x, y, w, h = tile.picture
        frame = cv2.imread(str(root / tile.file), cv2.IMREAD_COLOR)
        if frame is None:
            raise FileNotFoundError(f"{root / tile.file}: not a picture OpenCV can read")
        canvas[y:y + h, x:x + w] = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        lines = [part for text in tile.caption for part in wrap(plain(text), fits(0.45, CELL_W))][:CAPTION_LINES]
        cx, cy = tile.caption_at
        for i, line in enumerate(lines):
            cv2.putText(canvas, line, (cx, cy + 14 + i * LINE_H), font, 0.45, bgr(TEXT), 1, cv2.LINE_AA)
    ok, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV could not encode the montage as JPEG")
    return jpeg.tobytes()
