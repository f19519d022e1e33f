"""The re-upload index (verify.media.match.HashIndex) finds exactly the video pairs brute force finds:
every pair with two frames within LINK bits in a view ``frames_match`` compares, on random hashes with
planted near pairs at every view and distance, and on fingerprints of generated pictures."""

from __future__ import annotations

import numpy as np
import pytest

from verify.media.match import (
    LINK, MIN_QUALITY, SCALES, Fingerprint, HashIndex, _best, _matchable, _pairs, fingerprint, match_videos,
)
from tests.test_match import crop, letterbox, pan, scene, vertical_repost


def raw_min(a: Fingerprint, b: Fingerprint) -> int:
    """Brute force: the closest of the views ``_best`` compares (a as the original, b as the re-upload)."""
    pa, _ = a._ints
    pb, mb = b._ints
    return min((pa[i] ^ hb[j]).bit_count() for i, j in _pairs(a) for hb in (pb, mb))


def brute_pairs(videos: list[list[Fingerprint]], radius: int = LINK) -> set[tuple[int, int]]:
    return {(i, j) for j, vb in enumerate(videos) for i, va in enumerate(videos[:j])
            if any(_matchable(fa) and _matchable(fb) and raw_min(fa, fb) <= radius
                   for fa in va for fb in vb)}


def indexed(videos):
    index = HashIndex()
    for v in videos:
        index.add(v)
    return index


def fp_of(hashes: list[int], mirrored: list[int], quality: int = 60) -> Fingerprint:
    return Fingerprint(rect=(0, 0, 64, 64), size=(64, 64), quality=quality, scales=SCALES,
                       hashes=tuple(f"{h:064x}" for h in hashes), mirrored=tuple(f"{h:064x}" for h in mirrored))


def flip(rng, h: int, bits: int) -> int:
    for b in rng.choice(256, size=bits, replace=False):
        h ^= 1 << int(b)
    return h


def random_videos(seed: int, n_videos: int = 60, planted: int = 80) -> list[list[Fingerprint]]:
    rng = np.random.default_rng(seed)
    rand = lambda: int.from_bytes(rng.bytes(32), "big")  # noqa: E731
    videos = [[[ [rand() for _ in SCALES], [rand() for _ in SCALES] ] for _ in range(int(rng.integers(1, 5)))]
              for _ in range(n_videos)]
    # plant near pairs around the radius, in every view _best compares (and some it does not)
    for _ in range(planted):
        va, vb = rng.choice(n_videos, 2, replace=False)
        fa, fb = videos[va][rng.integers(len(videos[va]))], videos[vb][rng.integers(len(videos[vb]))]
        i, j = int(rng.integers(len(SCALES))), int(rng.integers(len(SCALES)))
        side = int(rng.integers(2))
        fb[side][j] = flip(rng, fa[0][i], int(rng.choice([0, 3, 30, 60, 63, 64, 65, 66, 70, 90])))
    out = [[fp_of(h, m, quality=int(rng.choice([60, 60, 60, MIN_QUALITY - 1]))) for h, m in v] for v in videos]
    return out


@pytest.mark.parametrize("seed", range(6))
def test_index_pairs_equal_brute_force_on_random_hashes(seed):
    videos = random_videos(seed)
    expected = brute_pairs(videos)
    assert expected, "the planted pairs give near pairs"
    assert indexed(videos).pairs() == expected


@pytest.mark.parametrize("radius", [0, 40, 76])
def test_index_pairs_equal_brute_force_at_other_radii(radius):
    videos = random_videos(11)
    assert indexed(videos).pairs(radius) == brute_pairs(videos, radius)


def test_index_in_small_blocks_gives_the_same_pairs(monkeypatch):
    import verify.media.match as match

    videos = random_videos(3)
    expected = indexed(videos).pairs()
    monkeypatch.setattr(match, "_TILE", 7)
    assert indexed(videos).pairs() == expected


def test_near_finds_the_earlier_videos_a_new_video_may_match():
    videos = random_videos(5)
    index = indexed(videos[:-1])
    expected = {i for i, j in brute_pairs(videos) if j == len(videos) - 1}
    assert index.near(videos[-1]) == expected


@pytest.fixture(scope="module")
def real_videos():
    """Fingerprints of generated footage: an original, its re-uploads (pad, crop, mirror, speed), unrelated videos."""
    a = pan(1, 8)
    videos = [[fingerprint(img) for _, img in a]]
    videos.append([fingerprint(letterbox(img)) for _, img in a[2:7]])
    videos.append([fingerprint(crop(img[:, ::-1].copy(), 0.1)) for _, img in a[::2]])
    videos.append([fingerprint(vertical_repost(img)[0]) for _, img in a[1:5]])
    for seed in (2, 3, 4):
        videos.append([fingerprint(img) for _, img in pan(seed, 4)])
    videos.append([fingerprint(scene(7))])
    videos.append([fingerprint(np.zeros((360, 640, 3), np.uint8))])  # flat: never indexed
    return videos


def test_index_pairs_equal_brute_force_on_real_fingerprints(real_videos):
    expected = brute_pairs(real_videos)
    assert {(0, 1), (0, 2), (0, 3)} <= expected
    assert indexed(real_videos).pairs() == expected


def test_linking_through_the_index_equals_all_pairs(real_videos):
    timed = [[(k * 1000.0, fp) for k, fp in enumerate(v)] for v in real_videos]
    all_pairs = {(i, j): match_videos(timed[i], timed[j]) for j in range(len(timed)) for i in range(j)}
    linked = {k for k, vm in all_pairs.items() if vm is not None}
    assert linked >= {(0, 1), (0, 3)}
    candidates = indexed(real_videos).pairs()
    assert linked <= candidates
    assert {k: match_videos(timed[i], timed[j]) for k in candidates for i, j in [k]} == \
        {k: vm for k, vm in all_pairs.items() if k in candidates}


def test_a_flat_frame_is_not_indexed():
    flat = fingerprint(np.zeros((90, 160, 3), np.uint8))
    assert flat.quality < MIN_QUALITY
    index = indexed([[flat], [flat]])
    assert index.pairs(256) == set() and _best(flat, flat) is None
