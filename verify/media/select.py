"""Select: which pictures of a video show something reviewers have not seen yet.

A ``Selector`` is fed one small grey picture at a time (a numpy array, its time and an opaque
payload, such as the decoded picture) and hands back ``Pick``s: the pictures to keep. It never
decodes, converts or writes anything, so it is tested on synthetic arrays
(``tests/test_select.py``). Like PySceneDetect's detectors it looks a few pictures ahead; its
picks come out that many pictures late, and ``finish()`` hands over the rest.

What makes a new shot:

- **Hard cut**: the difference to the previous picture is large (``cut_threshold``) and
  ``cut_ratio`` times the average difference of the two pictures on each side (PySceneDetect's
  AdaptiveDetector): fast motion raises the neighbours too, a cut stands alone. A spike after
  which the picture returns to what it was before within ``flash_frames`` is a camera flash
  (or a glitch), not a cut; its pictures are never kept.
- **Fade, dissolve, wipe**: each picture of a fade or dissolve is a blend of the pictures
  just before and after it (``blend_k`` pictures away); in a wipe each pixel is the one before
  or the one after. Camera and subject motion is neither: a moved picture is not the mean of
  its neighbours. A run of such pictures is a transition only if the picture after it is unlike
  the one before it, and every picture of the run fits ``a·before + b·after + c`` (or, for a
  wipe, takes each pixel from one of them). A fade's black hold belongs to the run. Pictures in
  and around a run are never kept; a run that ends where it began (an exposure change, a flash
  of light) is not a transition. A shot that has no frame when its run is cut short (by a cut, a
  new picture size or the end of the video) keeps the run's sharpest picture: steady motion at a
  low frame rate, or a clip that is one slow dissolve, looks like such a run, and every shot gets
  a frame.

What makes a new frame within a shot: the *view*. Each picture's coarse structure (a 16-pixel
wide, area-averaged copy) is compared with every frame already kept from the shot, by
correlation, which ignores brightness and contrast changes and small shifts (hand shake) but
not a pan that now shows something else, a zoom, or a subject that has entered and fills the
picture. A view unlike all kept ones (``view_change``) opens a short window (``pick_s``)
whose sharpest picture (Laplacian variance) is kept. ``max_interval_s`` is a bound only while
the picture keeps changing: once it has passed, a smaller change (``drift``) is enough. A
static shot gives one frame however long it lasts. Blank pictures are never kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class SelectParams:
    """Tuning of the selector. Differences are on the 0-255 grey scale; times in seconds."""

    max_interval_s: float = 2.0  # while the view keeps changing, a frame at least this often
    cut_threshold: float = 8.0  # mean absolute grey difference to the previous picture that can be a cut…
    cut_ratio: float = 3.0  # …if it is also this many times the average of its neighbours' differences
    flash_frames: int = 4  # a spike followed this soon by the picture before it is a flash, not a cut
    blend_k: int = 2  # a picture is compared with the blend of the pictures this many before and after
    blend_floor: float = 1.0  # mean grey change over those 2·k pictures below which nothing is transitioning
    blend_ratio: float = 0.4  # residual ÷ change under which a picture is a blend (fade, dissolve)
    wipe_ratio: float = 0.2  # residual ÷ change under which a picture takes each pixel from one side (wipe)
    transition_fit: float = 0.85  # share of the run's variance that the before/after blend must explain
    min_transition_frames: int = 3  # shorter runs of blends are not transitions
    max_transition_s: float = 4.0  # a longer run is slow motion, not a transition
    view_change: float = 0.45  # 1 − correlation of the coarse structure with every kept view: a new view
    drift: float = 0.15  # a smaller change that still gives a frame once max_interval_s has passed
    view_floor: float = 3.0  # mean grey difference of the coarse structure below which two views are one
    subject_share: float = 0.02  # share of the tiny picture changed by more than subject_level against every kept
    subject_level: float = 25.0  # view: people or vehicles moved in an otherwise still view (once max_interval_s passed)
    blank_std: float = 5.0  # grey standard deviation below which a picture is blank
    pick_s: float = 0.4  # the sharpest picture of this long a window after each decision is kept
    look_every_s: float = 0.1  # the view is compared with the kept ones this often (a view lasts longer)
    compare_views: int = 4  # with this many of the latest kept views of the shot
    tiny_width: int = 48  # width of the copy transitions are measured on
    coarse_width: int = 16  # width of the copy views are compared on


@dataclass
class Pick:
    """A picture to keep: its time, shot, sharpness, the small grey copy and the caller's payload."""

    t_ms: float
    shot: int
    sharpness: float
    small: np.ndarray
    payload: Any
    reason: str  # "shot": first of a shot; "view": the view changed; "interval": changed and max_interval_s passed


@dataclass
class Counts:
    shots: int = 0  # shots with at least one non-blank picture
    cuts: int = 0
    gradual_transitions: int = 0
    flashes: int = 0
    blank_frames: int = 0
    pictures: int = 0


def sharpness(small: np.ndarray) -> float:
    """Variance of the Laplacian: high for crisp detail, low for blur and motion smear."""
    return cv2.norm(cv2.Laplacian(small, cv2.CV_16S), cv2.NORM_L2SQR) / small.size  # its mean is ~0


_ZOOMS = (1.25, 1.6, 2.0)  # zoom factors tried when comparing views


@dataclass(eq=False)
class _Pic:
    t: float
    small: np.ndarray
    tiny: np.ndarray  # float32, on the 0-255 full-range scale
    blank: bool
    d: float | None  # mean absolute difference to the previous picture (None: first, or new size)
    payload: Any
    cut: bool = False
    flash: bool = False
    blend: bool = False  # looks like a frame inside a fade, dissolve or wipe
    sharp: float | None = None
    _view: tuple | None = field(default=None, repr=False)
    _spectrum: np.ndarray | None = field(default=None, repr=False)
    _middles: list | None = field(default=None, repr=False)

    def middles(self) -> list[np.ndarray]:
        """The middle of the coarse picture enlarged by each of _ZOOMS, zero-mean unit-norm (kept once made)."""
        if self._middles is None:
            coarse = self._view[0]
            h, w = coarse.shape
            self._middles = []
            for scale in _ZOOMS:
                ch, cw = max(2, round(h / scale)), max(2, round(w / scale))
                y0, x0 = (h - ch) // 2, (w - cw) // 2
                middle = cv2.resize(coarse[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
                middle -= float(cv2.mean(middle)[0])
                norm = float(np.linalg.norm(middle))
                self._middles.append(middle / norm if norm > 1e-6 else middle)
        return self._middles

    def spectrum(self) -> np.ndarray:
        """Fourier transform of the windowed tiny picture, for phase correlation (kept once made)."""
        if self._spectrum is None:
            h, w = self.tiny.shape
            window = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
            self._spectrum = np.fft.rfft2((self.tiny - float(self.tiny.mean())) * window)
        return self._spectrum

    def view(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(coarse picture, its zero-mean unit-norm version)."""
        if self._view is None:
            h, w = self.tiny.shape
            coarse = cv2.resize(self.tiny, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
            centred = coarse - float(cv2.mean(coarse)[0])
            norm = float(np.linalg.norm(centred))
            self._view = (coarse, centred / norm if norm > 1e-6 else centred)
        return self._view

    def sharpness(self) -> float:
        if self.sharp is None:
            self.sharp = sharpness(self.small)
        return self.sharp


class Selector:
    """Feed pictures in presentation order with ``feed``; each call returns the picks now decided.

    ``feed(small, t_ms, payload, gain)``: ``small`` is a 2-D uint8 grey picture (any size; a
    change of size starts a new shot), ``gain`` scales its differences to the full 0-255 range
    (255/219 for limited-range video). ``finish()`` returns the last picks. ``counts`` holds
    what was measured (shots, cuts, transitions, flashes, blank pictures).
    """

    def __init__(self, params: SelectParams | None = None):
        self.p = params or SelectParams()
        self.counts = Counts()
        self._pics: list[_Pic] = []  # recent pictures: history, the one being decided, lookahead
        self._next = 0  # position in _pics of the next picture to decide
        self._k = max(1, self.p.blend_k)
        self._ahead = 2 * self._k + max(2, self.p.flash_frames)
        self._cut_next = 0  # position of the next picture whose cut status is to be decided
        self._blend_next = 0  # position of the next picture whose blend status is to be decided
        # the decision state
        self._shot = -1
        self._new_shot = True  # the next non-blank picture opens a shot
        self._kept: list[_Pic] = []  # the views kept from the current shot
        self._last_kept_t: float | None = None
        self._last_look = float("-inf")  # when the view was last compared with the kept ones
        self._window: list[Any] | None = None  # [start time, best picture, reason]
        self._run: list[_Pic] | None = None  # the pictures of a possible transition
        self._run_before: _Pic | None = None  # the last clean picture before it
        self._run_start = 0.0
        self._run_aborted = False  # a run too long for a transition: motion, leave it alone
        self._run_best: _Pic | None = None  # the sharpest picture of the run
        self._last_clean: _Pic | None = None
        self._out: list[Pick] = []

    # --- feeding ---------------------------------------------------------------------------

    def feed(self, small: np.ndarray, t_ms: float, payload: Any = None, gain: float = 1.0) -> list[Pick]:
        p = self.p
        self.counts.pictures += 1
        prev = self._pics[-1] if self._pics else None
        if prev is not None and prev.small.shape != small.shape:  # new size: everything so far is decided
            self._drain()
            self._close_shot()
            self._pics, self._next, self._cut_next, self._blend_next = [], 0, 0, 0
            self._start_new_shot()
            prev = None
        mean, std = cv2.meanStdDev(small)
        h, w = small.shape
        tw = min(p.tiny_width, w)
        tiny = cv2.resize(small, (tw, max(1, round(h * tw / w))), interpolation=cv2.INTER_AREA).astype(np.float32)
        if gain != 1.0:
            tiny *= gain
        d = None if prev is None else cv2.norm(small, prev.small, cv2.NORM_L1) / small.size * gain
        self._pics.append(_Pic(t_ms, small, tiny, float(std[0, 0]) * gain < p.blank_std, d, payload))
        self._advance(final=False)
        return self._take()

    def finish(self) -> list[Pick]:
        """Decide the pictures still held for look-ahead; returns the last picks."""
        self._drain()
        self._close_shot()
        return self._take()

    def _take(self) -> list[Pick]:
        out, self._out = self._out, []
        return out

    def _drain(self) -> None:
        self._advance(final=True)

    # --- the three stages: cuts, blends, decisions -------------------------------------------

    def _advance(self, final: bool) -> None:
        n = len(self._pics)
        F, k = max(2, self.p.flash_frames), self._k
        while self._cut_next < n and (final or self._cut_next + F < n):
            self._mark_cut(self._cut_next)
            self._cut_next += 1
        while self._blend_next < n and (final or self._blend_next + k < self._cut_next):
            self._mark_blend(self._blend_next)
            self._blend_next += 1
        while self._next < n and (final or self._next + k < self._blend_next):
            self._decide(self._next)
            self._next += 1
        keep = 2 * k + 2  # history the stages still look back at
        if self._next > keep + 64:
            drop = self._next - keep
            del self._pics[:drop]
            self._next -= drop
            self._cut_next -= drop
            self._blend_next -= drop

    def _mark_cut(self, i: int) -> None:
        p, pics = self.p, self._pics
        pic = pics[i]
        if pic.d is None or pic.d < p.cut_threshold:
            return
        around = [pics[j].d for j in (i - 2, i - 1, i + 1, i + 2) if 0 <= j < len(pics) and pics[j].d is not None]
        if around and pic.d < p.cut_ratio * (sum(around) / len(around)):
            return
        before = pics[i - 1]
        if before.flash:  # the end of a flash is no cut either
            return
        jump = cv2.norm(before.small, pic.small, cv2.NORM_L1)
        for j in range(i + 1, min(len(pics), i + 1 + p.flash_frames)):
            if cv2.norm(before.small, pics[j].small, cv2.NORM_L1) < 0.4 * jump:  # back to what it was
                for f in pics[i:j]:
                    f.flash = True
                self.counts.flashes += 1
                return
        pic.cut = True

    def _mark_blend(self, i: int) -> None:
        """Is picture i inside a fade, dissolve or wipe (a mix of its neighbours k away)?"""
        p, pics, k = self.p, self._pics, self._k
        if i - k < 0 or i + k >= len(pics):
            return
        a, m, b = pics[i - k], pics[i], pics[i + k]
        if any(x.cut or x.flash for x in pics[i - k + 1 : i + k + 1]):
            return
        n = m.tiny.size
        change = cv2.norm(a.tiny, b.tiny, cv2.NORM_L1) / n / 2
        if change < p.blend_floor:
            return
        if min(cv2.norm(m.tiny, a.tiny, cv2.NORM_L1), cv2.norm(m.tiny, b.tiny, cv2.NORM_L1)) / n < 0.5 * change:
            return  # not between its neighbours: the picture changed all at once just before or after it
        residual = cv2.norm(m.tiny, cv2.addWeighted(a.tiny, 0.5, b.tiny, 0.5, 0), cv2.NORM_L1) / n
        if residual < p.blend_ratio * change:
            m.blend = True
            return
        side = float(np.minimum(cv2.absdiff(m.tiny, a.tiny), cv2.absdiff(m.tiny, b.tiny)).mean())
        if side < p.wipe_ratio * change:
            m.blend = True

    def _decide(self, i: int) -> None:
        p, pics, k = self.p, self._pics, self._k
        pic = pics[i]
        if pic.cut:
            self.counts.cuts += 1
            self._close_shot()
            self._start_new_shot()
        if pic.flash:
            return
        in_run = any(x.blend for x in pics[max(0, i - k) : i + k + 1])
        if pic.blank:
            self.counts.blank_frames += 1
            return
        if self._run_aborted:
            if in_run:
                in_run = False  # still the long slow change: ordinary pictures
            else:
                self._run_aborted = False
        if in_run:
            if self._run is None:
                self._close_window()
                self._run, self._run_before, self._run_start, self._run_best = [], self._last_clean, pic.t, None
            self._run.append(pic)
            if self._run_best is None or pic.sharpness() > self._run_best.sharpness():
                self._run_best = pic
            if pic.t - self._run_start > p.max_transition_s * 1000 or not self._still_a_blend(pic):
                self._run = self._run_before = None  # slow motion, not a transition: ordinary pictures again
                self._run_aborted = True
                self._offer_run_best()
            else:
                return
        if self._run is not None:
            if not self._end_run(interrupted=False, after=pic):
                self._offer_run_best()
        self._clean(pic)

    def _offer_run_best(self) -> None:
        """A run that was no transition (focus, exposure, slow motion): its sharpest picture is a candidate."""
        best, self._run_best = self._run_best, None
        if best is not None and (self._new_shot or self._window is not None):
            self._clean(best)

    # --- decisions ---------------------------------------------------------------------------

    def _close_shot(self) -> None:
        """The shot ends (a cut, a new picture size, the end of the video): decide what it still holds.

        A run of blend-like pictures still open is no transition (nothing came after it), but it may be all
        the shot showed: steady motion such as a scrolling pattern or a slow pan at a low frame rate looks
        like a dissolve from one picture to the next for up to ``max_transition_s``. A shot with no frame yet
        gets the run's sharpest picture, so that no shot, and no short clip, is left without one.
        """
        self._close_window()
        self._end_run(interrupted=True)
        self._offer_run_best()
        self._close_window()

    def _start_new_shot(self) -> None:
        self._new_shot = True
        self._kept = []
        self._last_clean = None

    def _clean(self, pic: _Pic) -> None:
        """A non-blank picture outside any transition: a candidate, or a view to compare."""
        p = self.p
        self._last_clean = pic
        if self._new_shot:
            self._new_shot = False
            self._shot += 1
            self.counts.shots += 1
            self._window = [pic.t, pic, "shot"]
        elif self._window is None and pic.t - self._last_look >= p.look_every_s * 1000:
            self._last_look = pic.t
            change = 2.0
            for kept in self._kept[: -p.compare_views - 1 : -1]:  # the latest first: usually the closest
                change = min(change, self._distance(pic, kept))
                if change < p.drift:
                    break
            due = self._last_kept_t is not None and pic.t - self._last_kept_t >= p.max_interval_s * 1000
            if change >= p.view_change:
                self._window = [pic.t, pic, "view"]
            elif change >= p.drift and due:
                self._window = [pic.t, pic, "interval"]
            elif due and self._kept and self._subject_moved(pic):
                self._window = [pic.t, pic, "subject"]
        if self._window is not None:
            start, best, _ = self._window
            if pic is not best and pic.sharpness() > best.sharpness():
                self._window[1] = pic
            if pic.t - start >= p.pick_s * 1000:
                self._close_window()

    def _subject_moved(self, pic: _Pic) -> bool:
        """Something moved in a view that is otherwise the same (a static camera: people, vehicles): enough of the
        tiny picture changed strongly against every recent kept view. Only once ``max_interval_s`` has passed."""
        p = self.p
        for kept in self._kept[: -p.compare_views - 1 : -1]:
            if kept.tiny.shape != pic.tiny.shape:
                continue
            dy, dx = _shift(pic, kept)  # a shaking hand or a slight pan is not a subject: align the two first
            h, w = pic.tiny.shape
            if abs(dy) > h // 4 or abs(dx) > w // 4:
                continue
            here = pic.tiny[max(0, dy): h + min(0, dy), max(0, dx): w + min(0, dx)]
            there = kept.tiny[max(0, -dy): h + min(0, -dy), max(0, -dx): w + min(0, -dx)]
            # a change counts only where it also stands against the aligned neighbours (sub-pixel shake moves edges)
            diff = cv2.erode(np.abs(cv2.blur(here, (3, 3)) - cv2.blur(there, (3, 3))), np.ones((2, 2), np.uint8))
            if float(np.count_nonzero(diff > p.subject_level)) / pic.tiny.size < p.subject_share:
                return False
        return True

    def _distance(self, a: _Pic, b: _Pic) -> float:
        """How different two views are: 0 (the same) to 1 (unrelated) or more (anti-correlated).

        1 − correlation of the coarse structure; when that is not small, the camera may have
        moved: the shift between the two (phase correlation) is taken out and the correlation
        of the parts both show counts only for the share of the picture they overlap. A pan by
        a quarter of the picture is about 0.3, by half 0.5; a zoom, or a new picture, is not
        explained by a shift. 0 when the coarse pictures barely differ.
        """
        (ca, na), (cb, nb) = a.view(self.p.coarse_width), b.view(self.p.coarse_width)
        if ca.shape != cb.shape:
            return 2.0
        if cv2.norm(ca, cb, cv2.NORM_L1) / ca.size < self.p.view_floor:
            return 0.0
        plain = 1.0 - float((na * nb).sum())
        if plain < self.p.drift:
            return plain
        dy, dx = _shift(a, b)
        h, w = a.tiny.shape
        overlap = (h - abs(dy)) * (w - abs(dx)) / (h * w)
        if overlap < 0.3:
            return plain
        pa = a.tiny[max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)]
        pb = b.tiny[max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)]
        pa, pb = pa - float(pa.mean()), pb - float(pb.mean())
        norm = float(np.linalg.norm(pa) * np.linalg.norm(pb))
        if norm < 1e-6:
            return plain
        shifted = min(plain, 1.0 - float((pa * pb).sum()) / norm * overlap)
        if shifted < self.p.view_change:
            return shifted
        # a zoom: the middle of the wider picture, enlarged, against the other; it counts for 1/scale
        best = shifted
        for scale, middle_a, middle_b in zip(_ZOOMS, a.middles(), b.middles()):
            best = min(best, 1.0 - float((middle_a * nb).sum()) / scale, 1.0 - float((middle_b * na).sum()) / scale)
        return best

    def _close_window(self) -> None:
        if self._window is None:
            return
        _, best, reason = self._window
        self._window = None
        self._kept.append(best)
        self._last_kept_t = best.t
        self._out.append(Pick(best.t, self._shot, round(best.sharpness(), 2), best.small, best.payload, reason))

    def _still_a_blend(self, now: _Pic) -> bool:
        """Is the run so far still a blend (or wipe) of the picture before it and ``now``?

        Checked every few pictures: slow camera motion and zooms look like blends from one
        picture to the next, but not across the run, where a fade or dissolve stays one.
        """
        run = self._run
        if len(run) < 6 or len(run) % 3:
            return True
        before = self._run_before or run[0]
        return _explained([run[len(run) // 2]], before, now) >= self.p.transition_fit

    def _end_run(self, interrupted: bool, after: _Pic | None = None) -> bool:
        """A run of blended pictures ended: was it a transition into another shot?"""
        run, before = self._run, self._run_before
        self._run = self._run_before = None
        if run is None or interrupted or after is None:
            return False
        if before is None:  # faded in from black (or the video starts mid-transition)
            return False
        p = self.p
        if sum(x.blend for x in run) < p.min_transition_frames or self._distance(before, after) < p.view_change:
            return False
        if _explained(run, before, after) < p.transition_fit:
            return False
        self.counts.gradual_transitions += 1
        self._run_best = None
        self._close_window()
        self._start_new_shot()
        return True


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - float(x.mean()), y - float(y.mean())
    norm = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float((x * y).sum()) / norm if norm > 1e-6 else 0.0


def _shift(a: _Pic, b: _Pic) -> tuple[int, int]:
    """(dy, dx): where b's content lies relative to a's, in tiny pixels (phase correlation)."""
    cross = a.spectrum() * np.conj(b.spectrum())
    cross /= np.abs(cross) + 1e-9
    surface = np.fft.irfft2(cross, s=a.tiny.shape)
    y, x = np.unravel_index(int(np.argmax(surface)), surface.shape)
    h, w = surface.shape
    return (y - h if y > h // 2 else y), (x - w if x > w // 2 else x)


def _explained(run: list[_Pic], before: _Pic, after: _Pic) -> float:
    """Share of the run's picture variance explained by blends of ``before`` and ``after`` (or a wipe)."""
    a, b = before.tiny.ravel(), after.tiny.ravel()
    basis = np.stack([a, b, np.ones_like(a)], axis=1)
    step = max(1, len(run) // 12)
    residual = total = wipe = 0.0
    span = float(np.abs(a - b).sum()) or 1.0
    for pic in run[::step]:
        m = pic.tiny.ravel()
        coef, *_ = np.linalg.lstsq(basis, m, rcond=None)
        residual += float(((basis @ coef - m) ** 2).sum())
        total += float(((m - m.mean()) ** 2).sum())
        wipe = max(wipe, float(np.minimum(np.abs(m - a), np.abs(m - b)).sum()) / span)
    blend = 1.0 - residual / total if total > 0 else 1.0
    return max(blend, 1.0 - wipe * 2)
