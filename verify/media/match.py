"""Re-upload matching: find a video's picture inside a repost, fingerprint it, match frames and videos.

Reposts rarely show the picture unchanged: it is letterboxed, pillarboxed, put in a vertical
9:16 frame over a blurred, enlarged copy of itself, cropped, mirrored, captioned, logo'd,
recompressed and downscaled. A whole-frame hash fails on pads and crops, so:

1. :func:`content_rect` finds the rectangle that holds the actual picture (strips uniform bars
   and a blurred-copy pad; conservative: ordinary frames keep their whole picture).
2. :func:`fingerprint` hashes that rectangle and centred crops of it (100, 90, 80, 70 %), each
   with its mirror image, with a 256-bit PDQ-style hash (Facebook's PDQ design: luma, 64×64
   box-filtered buffer, 16×16 lowest non-DC DCT coefficients, each bit "above the median").
   Comparing one fingerprint's centre crop with the other's whole picture lines up a cropped
   re-upload with its original.
3. :func:`frames_match` compares two fingerprints; :func:`match_videos` matches two videos'
   keyframes as a whole: several matches consistent with one time mapping (a robust line fit
   of matched times gives the span and the speed), so one lucky frame does not link videos.

Everything here is a pure function on numpy images (BGR ``uint8``, as OpenCV gives) or on
fingerprints. :class:`Fingerprint` stores as JSON (one TEXT column).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

__all__ = [
    "Fingerprint", "Match", "Segment", "VideoMatch",
    "content_rect", "fingerprint", "frames_match", "match_videos",
    "STRONG", "LINK", "CANDIDATE", "MIN_DECISIVE", "HashIndex",
]

FINGERPRINT_VERSION = 1
SCALES = (1.0, 0.9, 0.8, 0.7)  # centred crops hashed, as a share of the content rectangle's sides

# Thresholds in bits of 256 (chosen from measurements, see the module's tests and the report):
STRONG = 40      # the same picture; a one-frame video may link on one such match
LINK = 64        # a frame of a re-upload, when it is one of several consistent matches
CANDIDATE = 76   # looser, for the whole-video fit only (cropped frames); never a link alone
MIN_QUALITY = 15  # PDQ-style quality (0-100) below which a picture is too flat to match (blank, fade)
# Bits of the whole view's hash the picture decides (its DCT coefficient is not within 5 % of the
# coefficients' spread from the median), below which the hash is noise around a few shapes and
# never matches: fine texture averages to grey in the 64×64 buffer, so the hash of distinct videos
# under one shared overlay (a black box, a banner) is the overlay's; measured: generated scenes,
# night, sky, shallow focus and their reposts decide >= 227 bits, grey-averaging texture under a box 75-147.
MIN_DECISIVE = 180

Rect = tuple[int, int, int, int]  # x, y, width, height in pixels of the image given


# --- the content rectangle -------------------------------------------------------------------


_ANALYSIS = 480  # long side of the grey copy the content rectangle is found on


def content_rect(image: np.ndarray) -> Rect:
    """The rectangle ``(x, y, w, h)`` of ``image`` that holds the actual picture.

    Strips pads on two opposite sides: uniform bars (letterbox, pillarbox, of any colour) and a
    blurred, enlarged copy of the picture (the vertical repost). A pad is taken only when it
    is on both opposite sides (roughly centred), has far less detail than the picture beside
    it, and meets it at a straight border across the frame; otherwise the whole image is
    returned, so a dark night scene, a sky or a shallow-depth-of-field shot keep their picture.
    Borders are exact to a pixel or two.

    Args:
        image: BGR (or grey) ``uint8`` array.
    """
    grey, small = _prepare(image)
    return _content_rect(grey, small)


def _prepare(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grey picture and its small float copy (long side ``_ANALYSIS`` at most)."""
    if image.ndim != 2 and image.shape[2] == 1:
        image = image[:, :, 0]
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape
    s = min(1.0, _ANALYSIS / max(h, w))
    small = cv2.resize(grey, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else grey
    return grey, small.astype(np.float32)


def _content_rect(grey: np.ndarray, small: np.ndarray) -> Rect:
    h, w = grey.shape
    sh, sw = small.shape
    # a light blur: the detail measure must not see the rounding of the small copy as texture
    smooth = cv2.GaussianBlur(small, (3, 3), 0.8)
    top, bottom = _band(smooth)
    left, right = _band(np.ascontiguousarray(smooth.T))
    y0 = _refine(grey, top, h / sh, h) if top else 0
    y1 = _refine(grey, bottom, h / sh, h) if bottom < sh else h
    x0 = _refine(grey.T, left, w / sw, w) if left else 0
    x1 = _refine(grey.T, right, w / sw, w) if right < sw else w
    if y1 - y0 < h // 8 or x1 - x0 < w // 8:
        return 0, 0, w, h
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def _refine(g: np.ndarray, border: int, scale: float, n: int) -> int:
    """The border row of full-size ``g`` near ``border·scale``: where the rows change most."""
    guess = border * scale
    lo, hi = max(1, int(guess - 2 * scale - 1)), min(n - 1, int(math.ceil(guess + 2 * scale + 1)))
    if hi <= lo:
        return int(round(guess))
    strip = g[lo - 1: hi + 1].astype(np.float32)
    change = np.abs(np.diff(strip, axis=0)).mean(axis=1)  # change[i]: between rows lo-1+i and lo+i
    return lo + int(np.argmax(change))


def _band(g: np.ndarray) -> tuple[int, int]:
    """Rows ``[top, bottom)`` of the picture band of ``g`` (small float grey), or ``(0, rows)``."""
    n, m = g.shape
    if n < 24 or m < 16:
        return 0, n
    lap = np.abs(cv2.Laplacian(g, cv2.CV_32F, ksize=3))
    detail = np.percentile(lap, 60, axis=1)  # what most of the row has: a caption over a pad is a minority
    lo, hi = np.percentile(g, (2, 98), axis=1)
    spread = hi - lo
    # a straight border: in many columns the change across it (over two rows, so a border split
    # by the downscaling counts whole) is the largest of its neighbourhood and well above it
    k = 4
    step = np.zeros_like(g)
    step[1:-1] = np.abs(g[2:] - g[:-2])
    peak_of_column = cv2.dilate(step, np.ones((2 * k + 1, 1), np.uint8))
    around = cv2.blur(step, (1, 2 * k + 1), borderType=cv2.BORDER_REPLICATE)
    votes = (step >= peak_of_column) & (step > 6) & (step > 1.5 * around)
    edge = votes.mean(axis=1)
    edge = np.maximum(edge, np.maximum(np.r_[0, edge[:-1]], np.r_[edge[1:], 0]) * 0.999)  # a tie of ±1 row
    top, top_strong = _side(detail, spread, edge, n)
    bottom, bottom_strong = _side(detail[::-1], spread[::-1], edge[::-1], n)
    if not top or not bottom or not (top_strong or bottom_strong):
        return 0, n
    if min(top, bottom) < 0.4 * max(top, bottom) or top + bottom > 0.8 * n:
        return 0, n
    return top, n - bottom


def _side(detail: np.ndarray, spread: np.ndarray, edge: np.ndarray, n: int) -> tuple[int, bool]:
    """Rows of pad at the start of the profiles (0: none), and whether its border is a strong one.

    A pad is uniform bars, or a low-detail (blurred) copy, before a straight border with the
    picture after it. Strong: a border straight across most of the frame (edge >= 0.4). Weak:
    a fainter border (the picture's colours meet the pad's) with a starker loss of detail;
    the band needs a strong border on one of its two sides.
    """
    best, best_score, best_strong = 0, 0.0, False
    inner = max(4, n // 16)
    spread_so_far = np.maximum.accumulate(spread)
    for y in range(max(2, n // 50), int(n * 0.42)):  # rows [0, y) would be pad
        score = float(edge[y])
        if score < 0.1 or (score < 0.15 and spread_so_far[y - 2] > 8):  # neither a bar's nor a blurred pad's border
            continue
        # the picture's detail: beside the border, or over the band (a smooth wall may touch the border)
        inside = max(float(np.median(detail[y + 1: y + 1 + inner])), float(np.median(detail[y + 1: max(y + 2, n - y)])))
        if inside < 0.5:
            continue
        outside = float(np.median(detail[: y - 1]))
        outside80 = float(np.percentile(detail[: y - 1], 80))
        bar = spread_so_far[y - 2] <= 8 and float(np.median(spread[y + 1: y + 1 + inner])) > 12
        # measured on repost-style pads of real clips and on their plain frames: pads have a
        # strong edge >= 0.49 at a detail ratio <= 0.38; ordinary frames with a low-detail area
        # (a car's ceiling over a face) reach edge 0.31 at such ratios, 0.49 only at ratio >= 0.57
        strong = ((score >= 0.4 and outside <= 0.35 * inside and outside80 <= 0.6 * inside)
                  or (score >= 0.3 and outside <= 0.12 * inside and outside80 <= 0.2 * inside))  # softened by recompression
        weak = score >= 0.15 and outside <= 0.2 * inside and outside80 <= 0.25 * inside
        if not (bar or strong or weak):
            continue
        if score > best_score + 0.02 or (score >= best_score - 0.02 and best):
            best, best_score, best_strong = y, max(score, best_score), bar or strong
    return best, best_strong


# --- the hash --------------------------------------------------------------------------------


def _dct_matrix() -> np.ndarray:
    i = np.arange(1, 17)[:, None]
    j = np.arange(64)[None, :]
    return (math.sqrt(2 / 64) * np.cos(math.pi / 128 * i * (2 * j + 1))).astype(np.float32)


_D = _dct_matrix()
# horizontal mirror of the picture: the DCT coefficient of horizontal frequency u changes sign when u is odd
_MIRROR = np.where((np.arange(1, 17) % 2) == 1, -1.0, 1.0).astype(np.float32)[None, :]


def _bits(coeffs: np.ndarray) -> int:
    bits = (coeffs > np.median(coeffs)).astype(np.uint8).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _quality(buf: np.ndarray) -> int:
    """PDQ's image-domain quality (0-100): how many significant gradients the 64×64 buffer has."""
    q = np.abs(np.trunc(np.diff(buf, axis=0) * 100 / 255)).sum() + np.abs(np.trunc(np.diff(buf, axis=1) * 100 / 255)).sum()
    return int(min(100, q // 90))


def _hash_pair(buf: np.ndarray) -> tuple[int, int, int]:
    """(plain, mirrored) 256-bit hashes of a 64×64 float luma buffer, and how many bits the picture decides."""
    c = _D @ buf @ _D.T
    off = np.abs(c - np.median(c))
    spread = float(np.sqrt(np.mean(off ** 2)))
    decisive = int((off >= 0.05 * spread).sum()) if spread > 0 else 0
    return _bits(c), _bits(c * _MIRROR), decisive


# --- fingerprints ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """What a frame is matched by: hashes of its content rectangle and of centred crops of it.

    ``hashes[i]`` and ``mirrored[i]`` are the 256-bit hashes (64 hex digits) of the centred
    crop ``scales[i]`` of the content rectangle ``rect`` and of its mirror image; ``quality``
    is PDQ's 0-100 measure of the whole rectangle (flat pictures score low and never match);
    ``decisive`` how many bits of the whole view's hash the picture decides (see MIN_DECISIVE;
    None in fingerprints made before it was measured).
    """

    rect: Rect
    size: tuple[int, int]  # the image's width, height
    quality: int
    scales: tuple[float, ...]
    hashes: tuple[str, ...]
    mirrored: tuple[str, ...]
    version: int = FINGERPRINT_VERSION
    decisive: int | None = None
    _ints: tuple[tuple[int, ...], tuple[int, ...]] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ints", (tuple(int(h, 16) for h in self.hashes), tuple(int(h, 16) for h in self.mirrored)))

    def to_dict(self) -> dict[str, Any]:
        d = {"v": self.version, "rect": list(self.rect), "size": list(self.size), "quality": self.quality,
             "scales": list(self.scales), "hashes": list(self.hashes), "mirrored": list(self.mirrored)}
        if self.decisive is not None:
            d["decisive"] = self.decisive
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Fingerprint":
        if d.get("v") != FINGERPRINT_VERSION:
            raise ValueError(f"fingerprint version {d.get('v')!r}, expected {FINGERPRINT_VERSION}")
        return cls(rect=tuple(d["rect"]), size=tuple(d["size"]), quality=int(d["quality"]),  # type: ignore[arg-type]
                   scales=tuple(float(s) for s in d["scales"]), hashes=tuple(d["hashes"]), mirrored=tuple(d["mirrored"]),
                   decisive=d.get("decisive"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Fingerprint":
        return cls.from_dict(json.loads(text))


def fingerprint(image: np.ndarray, rect: Rect | None = None) -> Fingerprint:
    """Fingerprint of a frame (BGR or grey ``uint8``); ``rect`` defaults to :func:`content_rect`.

    A few milliseconds for a 1080p frame: everything but the grey conversion runs on a copy
    whose long side is 480 pixels (PDQ's own 64×64 buffer needs far less).
    """
    grey, small = _prepare(image)
    h, w = grey.shape
    x, y, rw, rh = rect if rect is not None else _content_rect(grey, small)
    sy, sx = small.shape[0] / h, small.shape[1] / w
    y0, y1 = int(round(y * sy)), max(int(round(y * sy)) + 1, int(round((y + rh) * sy)))
    x0, x1 = int(round(x * sx)), max(int(round(x * sx)) + 1, int(round((x + rw) * sx)))
    base = cv2.resize(small[y0:y1, x0:x1], (_BASE, _BASE), interpolation=cv2.INTER_AREA)
    hashes, mirrored = [], []
    quality = decisive = 0
    for i, s in enumerate(SCALES):
        m = round(_BASE * (1 - s) / 2)
        buf = cv2.resize(base[m: _BASE - m, m: _BASE - m], (64, 64), interpolation=cv2.INTER_AREA)
        if i == 0:
            quality = _quality(buf)
        p, q, bits = _hash_pair(buf)
        if i == 0:
            decisive = bits
        hashes.append(f"{p:064x}")
        mirrored.append(f"{q:064x}")
    return Fingerprint(rect=(int(x), int(y), int(rw), int(rh)), size=(int(w), int(h)), quality=quality,
                       scales=SCALES, hashes=tuple(hashes), mirrored=tuple(mirrored), decisive=decisive)


_BASE = 160  # side of the normalised content rectangle the centred crops are cut from


# --- frame matching --------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """How two frames match: Hamming distance (of 256 bits) and which views matched.

    ``variant`` is ``plain``, ``mirrored`` or ``centre`` (a centred crop of one matched the
    other, whether mirrored is then in ``mirrored``); ``scale_a``/``scale_b`` are the crops.
    """

    distance: int
    variant: str
    mirrored: bool
    scale_a: float
    scale_b: float


def _pairs(a: Fingerprint) -> list[tuple[int, int]]:
    # (index in a, index in b): both whole, a's crop vs b's whole (b cropped), and b's crop vs a's whole
    n = len(a.scales)
    return [(0, 0)] + [(i, 0) for i in range(1, n)] + [(0, i) for i in range(1, n)]


def frames_match(a: Fingerprint, b: Fingerprint, threshold: int = LINK) -> Match | None:
    """The best match of two frames within ``threshold`` bits, or None.

    Compares the whole content rectangles, each one's centred crops with the other's whole
    (a cropped re-upload), plain and mirrored. Flat pictures (quality < MIN_QUALITY) and pictures
    whose hash is mostly undecided (fewer than MIN_DECISIVE bits) never match.
    """
    best = _best(a, b)
    return best if best is not None and best.distance <= threshold else None


def _matchable(fp: Fingerprint) -> bool:
    return fp.quality >= MIN_QUALITY and (fp.decisive is None or fp.decisive >= MIN_DECISIVE)


def _best(a: Fingerprint, b: Fingerprint) -> Match | None:
    if not _matchable(a) or not _matchable(b):
        return None
    pa, _ = a._ints
    pb, mb = b._ints
    best: tuple[int, int, int, bool] | None = None
    for i, j in _pairs(a):
        for mirrored, hb in ((False, pb), (True, mb)):
            d = (pa[i] ^ hb[j]).bit_count()
            # a crop costs a few bits: prefer the whole view, then the plain picture, on ties
            key = d + (1 if (i or j) else 0) + (1 if mirrored else 0)
            if best is None or key < best[0] + (1 if (best[1] or best[2]) else 0) + (1 if best[3] else 0):
                best = (d, i, j, mirrored)
    assert best is not None
    d, i, j, mirrored = best
    variant = "centre" if (i or j) else ("mirrored" if mirrored else "plain")
    return Match(distance=d, variant=variant, mirrored=mirrored, scale_a=a.scales[i], scale_b=b.scales[j])


# --- video matching --------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A stretch of B that re-uploads a stretch of A: ``t_a ≈ a_start + speed·(t_b − b_start)``."""

    b_start_ms: float
    b_end_ms: float
    a_start_ms: float
    a_end_ms: float
    speed: float  # A's seconds per B's second: 1.25 when B is A sped up 1.25×
    mirrored: bool
    frames: int  # B's frames explained by this segment


@dataclass(frozen=True)
class VideoMatch:
    """B re-uploads (parts of) A.

    ``share`` is the share of B's frames explained by A; ``explained`` maps each such frame's
    index in ``frames_b`` to (index in ``frames_a``, Match); ``unexplained`` lists B's frames
    not explained by A (outside the matched spans or no match): those still need review.
    """

    share: float
    segments: tuple[Segment, ...]
    mirrored: bool
    explained: dict[int, tuple[int, Match]]
    unexplained: tuple[int, ...]

    @property
    def speed(self) -> float:
        return self.segments[0].speed

    def describe(self) -> str:
        """One line for the report, e.g. ``0:20–0:40 of A, mirrored, 1.25× speed``."""
        parts = []
        for s in self.segments:
            text = f"{_clock(s.a_start_ms)}–{_clock(s.a_end_ms)} of A"
            if s.mirrored:
                text += ", mirrored"
            if abs(s.speed - 1) > 0.05:
                text += f", {1 / s.speed if s.speed < 1 else s.speed:.2f}× {'slower' if s.speed < 1 else 'speed'}"
            parts.append(text)
        return "; ".join(parts)


def _clock(ms: float) -> str:
    s = int(round(ms / 1000))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


SPEEDS = (0.4, 2.5)  # speed ratios a re-upload is believed to have
MAX_SEGMENTS = 4
PER_FRAME = 3  # candidate A frames kept per B frame for the time fit


def match_videos(
    frames_a: Sequence[tuple[float, Fingerprint]],
    frames_b: Sequence[tuple[float, Fingerprint]],
    tolerance_ms: float = 2500.0,
) -> VideoMatch | None:
    """Does video B re-upload (parts of) video A? Compares their keyframes as a whole.

    Args:
        frames_a, frames_b: each video's keyframes as ``(t_ms, Fingerprint)``, any order.
        tolerance_ms: how far a matched keyframe may sit from the fitted time line (two
            extractions pick their keyframes at different instants of the same shot).

    Returns None unless B's frames match A's consistently: at least three matches on one
    time line (t_a = offset + speed·t_b, fitted robustly), or two strong ones when B has only
    two frames, or one strong match when either video has one frame.
    """
    if not frames_a or not frames_b:
        return None
    # every (b, a) pair within CANDIDATE bits
    cands: list[tuple[int, int, Match]] = []
    for ib, (_, fb) in enumerate(frames_b):
        for ia, (_, fa) in enumerate(frames_a):
            m = _best(fa, fb)
            if m is not None and m.distance <= CANDIDATE:
                cands.append((ib, ia, m))
    if not cands:
        return None
    # the line fit needs only each B frame's few closest A frames
    per_b: dict[int, list[tuple[int, int, Match]]] = {}
    for c in sorted(cands, key=lambda c: c[2].distance):
        if len(per_b.setdefault(c[0], [])) < PER_FRAME:
            per_b[c[0]].append(c)
    cands = [c for cs in per_b.values() for c in cs]
    tb = [float(t) for t, _ in frames_b]
    ta = [float(t) for t, _ in frames_a]

    if min(len(frames_a), len(frames_b)) == 1:
        ib, ia, m = min(cands, key=lambda c: c[2].distance)
        if m.distance > STRONG:
            return None
        seg = Segment(tb[ib], tb[ib], ta[ia], ta[ia], 1.0, m.mirrored, 1)
        return _result(frames_b, {ib: (ia, m)}, [seg])

    explained: dict[int, tuple[int, Match]] = {}
    segments: list[Segment] = []
    pool = list(cands)
    while pool and len(segments) < MAX_SEGMENTS:
        fit = _fit_line(pool, ta, tb, tolerance_ms)
        if fit is None:
            break
        speed, offset, inliers = fit
        # one A frame per B frame: the closest in bits among the inliers
        chosen: dict[int, tuple[int, Match]] = {}
        for ib, ia, m in inliers:
            if ib not in chosen or m.distance < chosen[ib][1].distance:
                chosen[ib] = (ia, m)
        links = sum(1 for _, m in chosen.values() if m.distance <= LINK)
        strong = sum(1 for _, m in chosen.values() if m.distance <= STRONG)
        enough = links >= 3 or (len(frames_b) == 2 and strong == 2) or (len(frames_b) > 2 and strong >= 2 and links >= 2 and len(chosen) >= 3)
        if not enough:
            break
        # B frames inside this segment's span whose best match is elsewhere are still explained
        # only by their own match; frames without one stay unexplained
        bs = sorted(chosen)
        mirrored = sum(m.mirrored for _, m in chosen.values()) * 2 > len(chosen)
        a_times = [offset + speed * tb[i] for i in bs]
        segments.append(Segment(tb[bs[0]], tb[bs[-1]], min(a_times), max(a_times), speed, mirrored, len(chosen)))
        explained.update(chosen)
        pool = [c for c in pool if c[0] not in explained]
    if not segments:
        return None
    return _result(frames_b, explained, segments)


def _result(frames_b, explained, segments) -> VideoMatch:
    n = len(frames_b)
    mirrored = sum(s.frames for s in segments if s.mirrored) * 2 > sum(s.frames for s in segments)
    return VideoMatch(share=len(explained) / n, segments=tuple(sorted(segments, key=lambda s: s.b_start_ms)),
                      mirrored=mirrored, explained=dict(sorted(explained.items())),
                      unexplained=tuple(i for i in range(n) if i not in explained))


def _fit_line(cands, ta, tb, tol):
    """Best line t_a = offset + speed·t_b through the candidates: most distinct B frames within tol.

    Every pair of candidates with distinct B times proposes a line (and each single candidate a
    speed-1 line); the line with the most B frames within ``tol`` (ties: smaller total bits)
    wins, then is refitted by least squares on its inliers.
    """
    best = None
    proposals = []
    for k, (ib, ia, _) in enumerate(cands):
        proposals.append((1.0, ta[ia] - tb[ib]))
        for ib2, ia2, _ in cands[k + 1:]:
            if abs(tb[ib2] - tb[ib]) < 1e-6:
                continue
            speed = (ta[ia2] - ta[ia]) / (tb[ib2] - tb[ib])
            if SPEEDS[0] <= speed <= SPEEDS[1]:
                proposals.append((speed, ta[ia] - speed * tb[ib]))
    for speed, offset in proposals:
        res = [abs(ta[c[1]] - (offset + speed * tb[c[0]])) for c in cands]
        inl = [c for c, r in zip(cands, res) if r <= tol]
        # most B frames on the line; then the line closest to them (each B frame's nearest A frame)
        near: dict[int, float] = {}
        for c, r in zip(cands, res):
            if r <= tol:
                near[c[0]] = min(r, near.get(c[0], tol))
        score = (len(near), -sum(near.values()))
        if best is None or score > best[0]:
            best = (score, speed, offset, inl)
    if best is None:
        return None
    _, speed, offset, inl = best
    # the final line: Theil-Sen (median of pairwise slopes) through each inlier B frame's closest
    # A frame in bits (ties: nearest the line), robust to a shot that looks alike for seconds
    pick: dict[int, tuple[int, float, int]] = {}
    for ib, ia, m in inl:
        key = (m.distance, abs(ta[ia] - (offset + speed * tb[ib])), ia)
        if ib not in pick or key < pick[ib]:
            pick[ib] = key
    pts = sorted((tb[ib], ta[k[2]]) for ib, k in pick.items())
    slopes = [(y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(pts) for x2, y2 in pts[i + 1:] if x2 - x1 > 1e-6]
    if len(pts) >= 3 and slopes:
        s2 = float(np.clip(np.median(slopes), *SPEEDS))
        o2 = float(np.median([y - s2 * x for x, y in pts]))
        refit = [c for c in cands if abs(ta[c[1]] - (o2 + s2 * tb[c[0]])) <= tol]
        if len({c[0] for c in refit}) >= len({c[0] for c in inl}):
            speed, offset, inl = s2, o2, refit
    return speed, offset, inl


# --- the index: which videos can match at all ------------------------------------------------
#
# ``match_videos`` links B to A only on a frame match within LINK bits (a one-frame video needs
# one within STRONG <= LINK; every other case needs at least two within LINK). ``_best`` takes the
# closest of the compared views, so a pair of videos none of whose frames has two views within
# LINK bits can never be linked: the index finds, exactly, the pairs of videos with such a frame
# pair, and only those go through ``match_videos``. Results equal comparing every pair.
#
# Why a flat (exhaustive, vectorised) search and not multi-index hashing: LINK is 64 of 256 bits,
# a quarter. Multi-index hashing is exact only by pigeonhole (16 chunks of 16 bits: some chunk
# within 4 bits, 2,517 probes per chunk) and at that radius about half of all unrelated hashes
# share such a chunk, so it would probe more than it saves; the same holds for faiss's
# IndexBinaryMultiHash, and HNSW-style graphs (faiss, usearch) are approximate (a missed pair is
# a re-upload reviewed twice). A 256-bit distance is four 64-bit popcounts: numpy does them for a
# block of a few million pairs at a time, no Python per pair.


_TILE = 1024  # frames per side of one block of distances (a few tens of MB of float32)


def _packed(hexes: Sequence[str]) -> np.ndarray:
    """256-bit hashes (hex) as rows of 32 bytes."""
    return np.frombuffer(bytes.fromhex("".join(hexes)), dtype=np.uint8).reshape(len(hexes), 32)


def _signs(packed: np.ndarray) -> np.ndarray:
    """Rows of 32 bytes as rows of 256 ±1 (float32): the dot product of two rows is 256 − 2·(Hamming distance)."""
    return np.unpackbits(packed, axis=-1).astype(np.float32) * 2 - 1


class HashIndex:
    """The videos' frame hashes, for finding which videos may re-upload which (exact, see above).

    Videos are added in order (``add``); a frame that never matches (too flat, or a hash the
    picture hardly decides) is left out, as ``frames_match`` ignores it. Per frame the index keeps the views
    ``_best`` compares: every centred crop of the plain picture (A's side) and the whole and
    cropped views, plain and mirrored (B's side). Distances are computed a block of frames
    against a block at a time as one float32 matrix product of ±1 bits (BLAS, exact: the
    products are small integers), so memory stays bounded and no Python runs per pair.
    """

    def __init__(self) -> None:
        self._video: list[int] = []  # per indexed frame: the video's number (its order of adding)
        self._plain: list[np.ndarray] = []  # per video: [frames, scales, 32] bytes
        self._mirror: list[np.ndarray] = []
        self._n = 0
        self._cache: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return self._n

    def add(self, fingerprints: Sequence[Fingerprint]) -> int:
        """Index one video's keyframe fingerprints; its number (0, 1, …) is returned."""
        number = self._n
        self._n += 1
        keep = _indexable(fingerprints)
        if keep:
            self._plain.append(_packed([h for fp in keep for h in fp.hashes]).reshape(len(keep), len(SCALES), 32))
            self._mirror.append(_packed([h for fp in keep for h in fp.mirrored]).reshape(len(keep), len(SCALES), 32))
            self._video.extend([number] * len(keep))
            self._cache = None
        return number

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._cache is None:
            empty = np.zeros((0, len(SCALES), 32), np.uint8)
            self._cache = (np.concatenate(self._plain) if self._plain else empty,
                           np.concatenate(self._mirror) if self._mirror else empty,
                           np.asarray(self._video, np.int64))
        return self._cache

    def pairs(self, radius: int = LINK) -> set[tuple[int, int]]:
        """Every (earlier video, later video) with a frame pair within ``radius`` bits in a compared view."""
        plain, mirror, video = self._arrays()
        found: set[tuple[int, int]] = set()
        n = len(video)
        for q0 in range(0, n, _TILE):  # frames are in video order: a block of later frames against the blocks up to it
            q1 = min(n, q0 + _TILE)
            for s0 in range(0, q1, _TILE):
                s1 = min(q1, s0 + _TILE)
                qi, si = _within(plain[q0:q1], mirror[q0:q1], plain[s0:s1], radius)
                a, b = video[s0 + si], video[q0 + qi]
                earlier = a < b
                found.update(zip(a[earlier].tolist(), b[earlier].tolist()))
        return found

    def near(self, fingerprints: Sequence[Fingerprint], radius: int = LINK) -> set[int]:
        """The indexed videos a new video's frames may match (within ``radius`` bits in a compared view)."""
        keep = _indexable(fingerprints)
        plain, _, video = self._arrays()
        if not keep or not len(video):
            return set()
        qp = _packed([h for fp in keep for h in fp.hashes]).reshape(len(keep), len(SCALES), 32)
        qm = _packed([h for fp in keep for h in fp.mirrored]).reshape(len(keep), len(SCALES), 32)
        found: set[int] = set()
        for q0 in range(0, len(keep), _TILE):
            for s0 in range(0, len(video), _TILE):
                _, si = _within(qp[q0: q0 + _TILE], qm[q0: q0 + _TILE], plain[s0: s0 + _TILE], radius)
                found.update(video[s0 + si].tolist())
        return found


def _indexable(fingerprints: Sequence[Fingerprint]) -> list[Fingerprint]:
    return [fp for fp in fingerprints if _matchable(fp) and len(fp.hashes) == len(SCALES)]


def _within(q_plain: np.ndarray, q_mirror: np.ndarray, stored: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(query frames, stored frames) with a view pair ``_best`` compares within ``radius`` bits.

    The stored frame plays A, the query B: A's crops against B's whole picture (plain or
    mirrored), and A's whole picture against B's crops (plain or mirrored).
    """
    q, n, k = len(q_plain), len(stored), len(SCALES)
    if not q or not n:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    least = 256 - 2 * radius  # dot product of ±1 rows within radius bits
    a_views = _signs(stored.reshape(n * k, 32))  # [n·k, 256], frame-major
    b_whole = _signs(np.stack([q_plain[:, 0], q_mirror[:, 0]], axis=1).reshape(q * 2, 32))
    close = ((b_whole @ a_views.T).reshape(q, 2, n, k) >= least).any(axis=(1, 3))
    b_crops = _signs(np.concatenate([q_plain[:, 1:], q_mirror[:, 1:]], axis=1).reshape(q * 2 * (k - 1), 32))
    close |= ((b_crops @ a_views.reshape(n, k, 256)[:, 0].T).reshape(q, 2 * (k - 1), n) >= least).any(axis=1)
    qi, si = np.nonzero(close)
    return qi, si
