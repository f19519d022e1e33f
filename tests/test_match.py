"""Re-upload matching (verify.media.match) on generated pictures: the repost transforms match,
unrelated pictures do not, the content rectangle finds pads and leaves ordinary frames whole."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from verify.media.match import (
    LINK, STRONG, Fingerprint, content_rect, fingerprint, frames_match, match_videos,
)


# --- pictures --------------------------------------------------------------------------------


def scene(seed: int, w: int = 1280, h: int = 720) -> np.ndarray:
    """A textured synthetic scene: sky gradient, ground, shapes, text and grain (BGR)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    hy = int(h * rng.uniform(0.3, 0.6))
    sky, ground = rng.uniform(60, 230, 3), rng.uniform(40, 200, 3)
    img[:hy] = np.linspace(sky, sky * 0.6 + 40, hy)[:, None, :]
    img[hy:] = ground
    coarse = rng.normal(0, 25, (h // 16, w // 16)).astype(np.float32)
    img[hy:] += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)[hy:, :, None]
    for _ in range(14):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        x, y = int(rng.uniform(0, w)), int(rng.uniform(h * 0.2, h))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + int(rng.uniform(40, 260)), y + int(rng.uniform(40, 200))), colour, -1)
        else:
            cv2.circle(img, (x, y), int(rng.uniform(20, 120)), colour, -1)
    cv2.putText(img, f"GATE {seed}", (int(w * 0.1), int(h * 0.45)), cv2.FONT_HERSHEY_SIMPLEX, w / 500, (250, 250, 250), 4)
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def letterbox(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    out = np.zeros((w * 3 // 4, w, 3), np.uint8)
    y = (out.shape[0] - h) // 2
    out[y: y + h] = img
    return out


def pillarbox(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    out = np.full((h, w + w // 3, 3), 16, np.uint8)
    out[:, w // 6: w // 6 + w] = img
    return out


def vertical_repost(img: np.ndarray, W: int = 1080, H: int = 1920) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The picture scaled into a 9:16 frame over a blurred, enlarged copy of itself; and its band."""
    h, w = img.shape[:2]
    nh = round(h * W / w)
    cover = max(W / w, H / h)
    big = cv2.resize(img, (int(w * cover) + 1, int(h * cover) + 1))
    by, bx = (big.shape[0] - H) // 2, (big.shape[1] - W) // 2
    out = cv2.GaussianBlur(big[by: by + H, bx: bx + W], (0, 0), 25)
    y = (H - nh) // 2
    out[y: y + nh] = cv2.resize(img, (W, nh), interpolation=cv2.INTER_AREA)
    return out, (0, y, W, nh)


def crop(img: np.ndarray, share: float) -> np.ndarray:
    h, w = img.shape[:2]
    dy, dx = int(h * share), int(w * share)
    return img[dy: h - dy, dx: w - dx].copy()


def captioned_recompressed(img: np.ndarray) -> np.ndarray:
    """Caption text + a logo, downscaled to 360p, JPEG quality 20."""
    h, w = img.shape[:2]
    out = img.copy()
    cv2.putText(out, "BREAKING: crossing taken", (int(w * 0.04), int(h * 0.12)), cv2.FONT_HERSHEY_SIMPLEX, w / 900, (255, 255, 255), 3)
    cv2.circle(out, (int(w * 0.9), int(h * 0.86)), w // 30, (0, 0, 255), -1)
    cv2.putText(out, "@repost", (int(w * 0.72), int(h * 0.95)), cv2.FONT_HERSHEY_SIMPLEX, w / 1400, (255, 255, 255), 2)
    out = cv2.resize(out, (round(w * 360 / h), 360), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 20])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def night_scene(w: int = 1280, h: int = 720) -> np.ndarray:
    """Black sky with a few stars over dark buildings with lit windows and a dim street."""
    rng = np.random.default_rng(7)
    img = np.full((h, w, 3), 3, np.uint8)
    for _ in range(40):
        img[int(rng.uniform(0, h * 0.4)), int(rng.uniform(0, w))] = 200
    for x in range(0, w, 160):
        top = int(rng.uniform(h * 0.4, h * 0.6))
        cv2.rectangle(img, (x, top), (x + 140, h), (18, 18, 22), -1)
        for wy in range(top + 20, int(h * 0.85), 40):
            for wx in range(x + 15, x + 130, 35):
                if rng.random() < 0.4:
                    cv2.rectangle(img, (wx, wy), (wx + 14, wy + 20), (90, 190, 230), -1)
    img[int(h * 0.9):] = 6
    noise = rng.normal(0, 1.5, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def sky_scene(w: int = 1280, h: int = 720) -> np.ndarray:
    """A smooth blue sky over a straight, flat horizon and textured desert; smooth sand at the bottom."""
    img = scene(3, w, h).astype(np.float32)
    hy, fy = int(h * 0.45), int(h * 0.85)
    img[:hy] = np.linspace((235, 190, 140), (250, 225, 200), hy)[:, None, :]
    img[fy:] = np.linspace((150, 180, 200), (140, 170, 195), h - fy)[:, None, :]
    return np.clip(img, 0, 255).astype(np.uint8)


def shallow_focus(w: int = 1280, h: int = 720) -> np.ndarray:
    """A sharp subject band in the middle, the foreground and background falling out of focus."""
    sharp = scene(11, w, h).astype(np.float32)
    soft = cv2.GaussianBlur(sharp, (0, 0), 18)
    y = np.abs(np.linspace(-1, 1, h))[:, None, None]
    weight = np.clip((y - 0.15) / 0.35, 0, 1)  # sharp in the middle 15%, fully soft beyond 50%
    return (sharp * (1 - weight) + soft * weight).astype(np.uint8)


@pytest.fixture(scope="module")
def original() -> np.ndarray:
    return scene(1)


@pytest.fixture(scope="module")
def original_fp(original) -> Fingerprint:
    return fingerprint(original)


# --- frames that match -----------------------------------------------------------------------


TRANSFORMS = {
    "letterboxed": letterbox,
    "pillarboxed": pillarbox,
    "vertical_blurred_copy_pad": lambda img: vertical_repost(img)[0],
    "cropped_10_percent_each_side": lambda img: crop(img, 0.10),
    "cropped_15_percent_each_side": lambda img: crop(img, 0.15),
    "mirrored": lambda img: img[:, ::-1].copy(),
    "captioned_logo_jpeg20_360p": captioned_recompressed,
    "brighter_more_contrast": lambda img: cv2.convertScaleAbs(img, alpha=1.3, beta=-20),
    "vertical_pad_mirrored_recompressed": lambda img: captioned_recompressed(vertical_repost(img[:, ::-1].copy())[0]),
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_reupload_transform_matches_original(name, original, original_fp):
    repost = TRANSFORMS[name](original)
    m = frames_match(original_fp, fingerprint(repost))
    assert m is not None, name
    assert m.distance <= LINK
    assert m.mirrored == ("mirrored" in name)


def test_mirrored_frame_says_mirrored(original, original_fp):
    m = frames_match(original_fp, fingerprint(original[:, ::-1].copy()))
    assert m is not None and m.variant == "mirrored" and m.distance <= STRONG


def test_cropped_frame_matches_through_a_centre_view(original, original_fp):
    m = frames_match(original_fp, fingerprint(crop(original, 0.10)))
    assert m is not None and m.variant == "centre" and m.scale_a == 0.8 and m.scale_b == 1.0


def test_identical_frame_is_distance_zero(original, original_fp):
    m = frames_match(original_fp, fingerprint(original.copy()))
    assert m is not None and m.distance == 0 and m.variant == "plain"


# --- frames that must not match --------------------------------------------------------------


def test_unrelated_pictures_do_not_match():
    pictures = [scene(seed) for seed in range(20, 32)] + [night_scene(), sky_scene(), shallow_focus()]
    fps = [fingerprint(p) for p in pictures]
    mirrored = [fingerprint(p[:, ::-1].copy()) for p in pictures]
    for i, a in enumerate(fps):
        for j in range(len(fps)):
            if i != j:
                assert frames_match(a, fps[j]) is None, (i, j)
                assert frames_match(a, mirrored[j]) is None, (i, j)


def test_flat_frame_never_matches():
    black = np.zeros((720, 1280, 3), np.uint8)
    grey = np.full((720, 1280, 3), 128, np.uint8)
    assert frames_match(fingerprint(black), fingerprint(black)) is None
    assert frames_match(fingerprint(black), fingerprint(grey)) is None


# --- the content rectangle -------------------------------------------------------------------


def test_content_rect_finds_band_of_vertical_blurred_pad(original):
    repost, (x, y, w, h) = vertical_repost(original)
    rx, ry, rw, rh = content_rect(repost)
    assert (rx, rw) == (0, 1080)
    assert abs(ry - y) <= 3 and abs((ry + rh) - (y + h)) <= 3


def test_content_rect_strips_letterbox_and_pillarbox(original):
    assert content_rect(letterbox(original)) == (0, 120, 1280, 720)
    pb = pillarbox(original)
    x, y, w, h = content_rect(pb)
    assert abs(x - 1280 // 6) <= 2 and abs(w - 1280) <= 3 and (y, h) == (0, 720)


@pytest.mark.parametrize("picture", [night_scene, sky_scene, shallow_focus, lambda: scene(5)],
                         ids=["dark_night_scene", "sky_over_flat_horizon", "shallow_depth_of_field", "ordinary"])
def test_content_rect_keeps_ordinary_frames_whole(picture):
    img = picture()
    assert content_rect(img) == (0, 0, img.shape[1], img.shape[0])


def test_content_rect_of_small_and_grey_images():
    assert content_rect(np.zeros((10, 10), np.uint8)) == (0, 0, 10, 10)
    grey = cv2.cvtColor(scene(4), cv2.COLOR_BGR2GRAY)
    assert content_rect(grey) == (0, 0, 1280, 720)


# --- fingerprints ----------------------------------------------------------------------------


def test_fingerprint_json_round_trip(original_fp):
    text = original_fp.to_json()
    again = Fingerprint.from_json(text)
    assert again == original_fp
    assert frames_match(again, original_fp).distance == 0
    assert len(text) < 1200


def test_fingerprint_records_content_rect(original):
    repost, band = vertical_repost(original)
    fp = fingerprint(repost)
    assert fp.size == (1080, 1920)
    assert abs(fp.rect[1] - band[1]) <= 3


def test_fingerprint_of_unknown_version_is_refused(original_fp):
    d = original_fp.to_dict()
    d["v"] = 99
    with pytest.raises(ValueError):
        Fingerprint.from_dict(d)


# --- whole videos ----------------------------------------------------------------------------


def pan(seed: int, n: int, step_ms: float = 1000.0) -> list[tuple[float, np.ndarray]]:
    """A 'video': n keyframes, each a distinct shot (a new scene every second)."""
    return [(i * step_ms, scene(seed * 100 + i, 640, 360)) for i in range(n)]


@pytest.fixture(scope="module")
def video_a():
    return pan(1, 12)


@pytest.fixture(scope="module")
def video_a_fps(video_a):
    return [(t, fingerprint(img)) for t, img in video_a]


def test_subclip_sped_up_mirrored_is_a_reupload(video_a, video_a_fps):
    # B: A's 3 s to 9 s, 1.25x faster, mirrored, in a vertical blurred pad, plus an intro card B made
    part = [(t, img) for t, img in video_a if 3000 <= t <= 9000]
    b = [((t - 3000) / 1.25, fingerprint(vertical_repost(img[:, ::-1].copy())[0])) for t, img in part]
    b.insert(0, (-500.0, fingerprint(scene(999, 640, 360))))
    vm = match_videos(video_a_fps, b)
    assert vm is not None
    assert vm.mirrored
    assert vm.unexplained == (0,)
    assert vm.share == pytest.approx(len(part) / len(b))
    (seg,) = vm.segments
    assert seg.speed == pytest.approx(1.25, abs=0.05)
    assert seg.a_start_ms == pytest.approx(3000, abs=300) and seg.a_end_ms == pytest.approx(9000, abs=300)
    assert "0:03–0:09 of A, mirrored, 1.25× speed" == vm.describe()


def test_unrelated_videos_do_not_match(video_a_fps):
    other = [(t, fingerprint(img)) for t, img in pan(2, 10)]
    assert match_videos(video_a_fps, other) is None


def test_one_lucky_frame_does_not_link_videos(video_a, video_a_fps):
    b = [(t, fingerprint(img)) for t, img in pan(3, 8)]
    b[4] = (4000.0, fingerprint(video_a[6][1]))  # one frame of A in an otherwise unrelated video
    assert match_videos(video_a_fps, b) is None


def test_one_frame_video_links_on_a_strong_match(video_a, video_a_fps):
    vm = match_videos(video_a_fps, [(0.0, fingerprint(letterbox(video_a[5][1])))])
    assert vm is not None and vm.share == 1.0 and vm.explained[0][0] == 5


def test_reordered_compilation_gives_two_segments(video_a, video_a_fps):
    first = [(t - 7000, img) for t, img in video_a if 7000 <= t <= 10000]
    second = [(t - 1000 + 5000, img) for t, img in video_a if 1000 <= t <= 4000]
    b = [(t, fingerprint(img)) for t, img in first + second]
    vm = match_videos(video_a_fps, b)
    assert vm is not None and vm.share == 1.0 and len(vm.segments) == 2
    assert vm.describe() == "0:07–0:10 of A; 0:01–0:04 of A"
