"""The selector on synthetic grey pictures (no video decoded): shots are cut by cuts and real
transitions, motion inside a shot is not a shot, and a view gives one frame however long it lasts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from verify.media.select import SelectParams, Selector

W, H, FPS = 192, 108, 25.0


def world(seed: int, width: int = 1600, height: int = 420) -> np.ndarray:
    """A large textured scene (blobs of several sizes), float32 0-255, to cut views from."""
    rng = np.random.default_rng(seed)
    out = np.zeros((height, width), np.float32)
    for scale, weight in ((60, 1.0), (20, 0.6), (6, 0.3)):
        coarse = rng.normal(0, 1, (height // scale + 2, width // scale + 2)).astype(np.float32)
        out += weight * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    out = (out - out.mean()) / out.std() * 45 + 120
    return np.clip(out, 0, 255)


def view(scene: np.ndarray, x: float, y: float = 0, zoom: float = 1.0, width: int = 720, height: int = 405) -> np.ndarray:
    """The part of ``scene`` a camera at (x, y) sees, at zoom, as a W×H picture (float32)."""
    w, h = width / zoom, height / zoom
    cx, cy = x + width / 2, y + height / 2
    m = np.float32([[w / W, 0, cx - w / 2], [0, h / H, cy - h / 2]])
    return cv2.warpAffine(scene, m, (W, H), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)


def run(pictures, fps: float = FPS, **params):
    """Feed float pictures (sensor noise added, 8-bit) and return (picks, counts)."""
    rng = np.random.default_rng(99)
    selector = Selector(SelectParams(**params))
    picks = []
    for i, picture in enumerate(pictures):
        noisy = np.clip(picture + rng.normal(0, 1.5, picture.shape), 0, 255).astype(np.uint8)
        picks += selector.feed(noisy, i * 1000 / fps, i)
    picks += selector.finish()
    return picks, selector.counts


def seconds(pick) -> float:
    return pick.t_ms / 1000


A, B, C = world(1), world(2), world(3)


def test_a_static_shot_of_a_minute_gives_one_frame():
    still = view(A, 300)
    picks, counts = run([still] * int(60 * FPS))
    assert len(picks) == 1 and counts.shots == 1 and counts.cuts == 0


def test_hand_shake_is_not_a_new_view():
    rng = np.random.default_rng(5)
    shaky = [view(A, 300 + rng.normal(0, 6), 8 + rng.normal(0, 4)) for _ in range(int(10 * FPS))]
    picks, counts = run(shaky)
    assert counts.shots == 1 and counts.gradual_transitions == 0
    assert len(picks) <= 2, [seconds(p) for p in picks]


def test_a_long_pan_gives_a_few_frames_and_no_shots():
    pan = [view(A, x) for x in np.linspace(0, 880, int(8 * FPS))]  # more than a picture's width to the right
    picks, counts = run(pan)
    assert counts.shots == 1 and counts.cuts == 0 and counts.gradual_transitions == 0
    assert 2 <= len(picks) <= 5, [seconds(p) for p in picks]
    assert all(b.t_ms - a.t_ms <= 2000 + 400 for a, b in zip(picks, picks[1:]))  # max_interval bounds a changing view


def test_a_fast_whip_pan_is_not_a_cut():
    # a whip pan: 8 pictures smeared by the motion
    whip = [cv2.blur(view(A, x), (15, 1)) for x in np.linspace(0, 860, 8)]
    pan = [view(A, 0)] * 25 + whip + [view(A, 860)] * 25
    picks, counts = run(pan)
    assert counts.shots == 1 and counts.cuts == 0
    assert len(picks) == 2  # before and after: two views


def test_a_zoom_gives_a_few_frames_and_no_shots():
    zoom = [view(A, 400, 0, z) for z in np.geomspace(1.0, 4.0, int(4 * FPS))]
    picks, counts = run(zoom)
    assert counts.shots == 1 and counts.cuts == 0 and counts.gradual_transitions == 0
    assert 2 <= len(picks) <= 4, [seconds(p) for p in picks]


def _with_block(picture: np.ndarray, x: float, w: int, h: int, y: int = 40, value: float = 30.0) -> np.ndarray:
    out = picture.copy()
    x0, x1 = int(max(0, x)), int(min(W, x + w))
    if x1 > x0:
        out[y : y + h, x0:x1] = value
    return out


def test_a_car_crossing_a_static_street_is_not_a_shot():
    street = view(A, 300)
    crossing = [_with_block(street, x, 40, 22) for x in np.linspace(-40, W, int(3 * FPS))]
    picks, counts = run([street] * 25 + crossing + [street] * 25)
    assert counts.shots == 1 and counts.cuts == 0 and counts.gradual_transitions == 0
    assert len(picks) <= 2


def test_a_subject_that_enters_and_stays_is_a_new_view_of_the_same_shot():
    street = view(A, 300)
    entering = [_with_block(street, x, 90, 80, y=20, value=235) for x in np.linspace(W, 60, 20)]
    stays = [_with_block(street, 60, 90, 80, y=20, value=235)] * 50
    picks, counts = run([street] * 50 + entering + stays)
    assert counts.shots == 1 and counts.cuts == 0
    # the street, then the subject (one more frame may show it on its way in)
    assert 2 <= len(picks) <= 3 and seconds(picks[0]) < 2.0 and picks[-1].payload >= 70


@pytest.mark.parametrize("through", ["black", "white"])
def test_a_fade_out_and_in_is_one_transition_and_nothing_half_faded_is_kept(through):
    a, b = view(A, 100), view(B, 500)
    level = 0.0 if through == "black" else 255.0
    out = [a * (1 - x) + level * x for x in np.linspace(0, 1, 25)]
    into = [b * x + level * (1 - x) for x in np.linspace(0, 1, 25)]
    picks, counts = run([a] * 50 + out + [np.full_like(a, level)] * 12 + into + [b] * 50)
    assert counts.shots == 2 and counts.gradual_transitions == 1 and counts.cuts == 0
    assert len(picks) == 2
    assert seconds(picks[0]) < 2.0 and seconds(picks[1]) >= (50 + 25 + 12 + 25) / FPS


def test_a_video_that_fades_in_from_black_has_one_shot():
    b = view(B, 500)
    picks, counts = run([np.zeros_like(b)] * 20 + [b * x for x in np.linspace(0, 1, 25)] + [b] * 50)
    assert counts.shots == 1 and len(picks) == 1 and seconds(picks[0]) >= 45 / FPS
    assert counts.blank_frames >= 20


@pytest.mark.parametrize("frames", [12, 25, 50])
def test_a_dissolve_is_a_transition_and_nothing_half_dissolved_is_kept(frames):
    a, b = view(A, 100), view(B, 500)
    mix = [a * (1 - x) + b * x for x in np.linspace(0, 1, frames)]
    picks, counts = run([a] * 50 + mix + [b] * 50)
    assert counts.shots == 2 and counts.gradual_transitions == 1 and counts.cuts == 0
    assert [p.shot for p in picks] == [0, 1]
    assert seconds(picks[0]) < 50 / FPS and seconds(picks[1]) >= (50 + frames - 1) / FPS


def test_a_wipe_is_a_transition():
    a, b = view(A, 100), view(B, 500)
    wipe = []
    for x in np.linspace(0, W, 15):
        picture = a.copy()
        picture[:, : int(x)] = b[:, : int(x)]
        wipe.append(picture)
    picks, counts = run([a] * 50 + wipe + [b] * 50)
    assert counts.shots == 2 and len(picks) == 2


def test_a_camera_flash_is_neither_a_cut_nor_a_kept_frame():
    a = view(A, 100)
    flash = [np.clip(a * 1.8 + 90, 0, 255), np.clip(a * 1.3 + 40, 0, 255)]
    picks, counts = run([a] * 40 + flash + [a] * 40)
    assert counts.shots == 1 and counts.cuts == 0 and counts.flashes == 1
    assert [p.payload for p in picks if p.payload in (40, 41)] == [] and len(picks) == 1


def test_a_hard_cut_between_similar_scenes_is_a_cut():
    # the same place from a camera moved by a fifth of the picture: much alike, but a cut
    picks, counts = run([view(A, 300)] * 40 + [view(A, 440, 10)] * 40)
    assert counts.cuts == 1 and counts.shots == 2 and len(picks) == 2


def test_cuts_a_third_of_a_second_apart_are_each_a_shot():
    picks, counts = run([view(A, 0)] * 30 + [view(B, 0)] * 8 + [view(C, 0)] * 30)
    assert counts.cuts == 2 and counts.shots == 3 and [p.shot for p in picks] == [0, 1, 2]


def test_a_static_overlay_does_not_hide_cuts_nor_make_views():
    def captioned(picture):
        out = picture.copy()
        out[86:104, 8:184] = 235  # a caption bar
        out[4:20, 160:186] = 20  # and a channel logo
        return out

    scenes = [captioned(view(world(10 + i), 200)) for i in range(4)]
    picks, counts = run([s for s in scenes for _ in range(30)])
    assert counts.cuts == 3 and counts.shots == 4 and len(picks) == 4
    still = captioned(view(A, 200))
    picks, counts = run([still] * 200)
    assert len(picks) == 1


def test_the_sharpest_picture_near_the_decision_is_kept():
    # focus (or shake) comes and goes: the sharpest picture of the window wins, not the first
    scene = view(A, 300)
    blur = [2.5, 2.2, 1.9, 1.6, 1.3, 1.0, 0.7, 0.4, 0.7, 1.0, 1.3, 1.6, 1.9, 2.2] + [2.5] * 60
    picks, _ = run([cv2.GaussianBlur(scene, (0, 0), sigma) for sigma in blur])
    assert [p.payload for p in picks] == [7]


def test_blank_pictures_are_never_kept_and_a_change_of_size_is_a_new_shot():
    a = view(A, 100)
    small = cv2.resize(view(B, 100), (96, 54))
    picks, counts = run([np.full_like(a, 16)] * 10 + [a] * 30)
    assert counts.blank_frames == 10 and all(p.payload >= 10 for p in picks)
    selector = Selector()
    out = []
    for i in range(30):
        out += selector.feed(a.astype(np.uint8), i * 40.0, i)
    for i in range(30, 60):
        out += selector.feed(small.astype(np.uint8), i * 40.0, i)
    out += selector.finish()
    assert selector.counts.shots == 2 and [p.shot for p in out] == [0, 1]


def test_limited_range_gain_scales_differences():
    # the same cut in limited range (16-235) is found when its gain is given
    a, b = view(A, 0) * 219 / 255 + 16, view(B, 0) * 219 / 255 + 16
    selector = Selector()
    for i, picture in enumerate([a] * 30 + [b] * 30):
        selector.feed(picture.astype(np.uint8), i * 40.0, i, gain=255 / 219)
    selector.finish()
    assert selector.counts.cuts == 1


def test_people_walking_through_a_static_wide_shot_give_a_frame_every_max_interval_while_they_move():
    """A surveillance-style shot: small figures (a few % of the picture) cross a still scene. They are not a new
    view, but once max_interval_s has passed with them moving, a frame shows where they are now."""
    square = view(A, 300)
    walking = [_with_block(_with_block(square, x, 70, 10, y=50, value=30), 150 - x * 0.6, 60, 9, y=55, value=230)
               for x in np.linspace(10, 180, int(10 * FPS))]
    picks, counts = run([square] * 25 + walking + [square] * 50)
    assert counts.shots == 1 and counts.cuts == 0
    reasons = [p.reason for p in picks]
    assert reasons[0] == "shot" and "subject" in reasons
    assert 3 <= len(picks) <= 1 + 10 / 2 + 2, [(seconds(p), p.reason) for p in picks]
    gaps = [b.t_ms - a.t_ms for a, b in zip(picks, picks[1:])]
    assert min(gaps) >= 2000 - 1  # never more often than max_interval_s


def test_a_still_shot_with_only_sensor_noise_stays_one_frame():
    picks, _ = run([view(B, 200)] * int(20 * FPS))
    assert len(picks) == 1
