"""Distinct videos under one shared overlay never link: fine texture (a random cellular pattern whose
every pair of pixels averages to grey) under the same central black box, each video with its own number.
The texture vanishes in the hash's 64×64 buffer, so the hashes of every video are the box's; such a
hash is mostly undecided bits (verify.media.match.MIN_DECISIVE) and is never trusted."""

from __future__ import annotations

import cv2
import numpy as np

from verify.media.match import MIN_DECISIVE, HashIndex, fingerprint, frames_match, match_videos

W, H = 640, 360


def overlay_frame(video: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(video * 100 + k)
    cells = (rng.random((H, W // 2)) < 0.5).astype(np.uint8)
    for _ in range(2):  # a few steps of a random cellular automaton (majority of the 3×3 neighbourhood)
        cells = (cv2.blur(cells.astype(np.float32), (3, 3)) > 0.5).astype(np.uint8)
    grey = np.empty((H, W), np.uint8)
    grey[:, 0::2], grey[:, 1::2] = cells * 255, (1 - cells) * 255
    img = np.repeat(grey[:, :, None], 3, axis=2)
    cv2.rectangle(img, (W // 4, H // 4), (3 * W // 4, 3 * H // 4), (0, 0, 0), -1)
    cv2.putText(img, f"{video:02d}", (W // 2 - 30, H // 2 + 12), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 3)
    return img


def test_distinct_videos_under_a_shared_overlay_are_never_linked():
    videos = [[(k * 1500.0, fingerprint(overlay_frame(v, k))) for k in range(3)] for v in range(20)]
    assert all(fp.decisive < MIN_DECISIVE for v in videos for _, fp in v)
    frames = [fp for v in videos for _, fp in v]
    assert not any(frames_match(a, b) for i, a in enumerate(frames) for b in frames[i + 1:])
    assert not any(match_videos(videos[i], videos[j]) for j in range(len(videos)) for i in range(j))
    index = HashIndex()
    for v in videos:
        index.add([fp for _, fp in v])
    assert index.pairs() == set()


def test_the_overlay_frames_collided_before_the_gate():
    """The case is a real one: without the gate these frames are within LINK bits of each other."""
    a, b = fingerprint(overlay_frame(1, 0)), fingerprint(overlay_frame(2, 0))
    from dataclasses import replace

    assert frames_match(replace(a, decisive=None), replace(b, decisive=None)) is not None


def test_fingerprints_without_the_measure_still_load_and_match():
    fp = fingerprint(overlay_frame(3, 0))
    d = fp.to_dict()
    del d["decisive"]
    old = type(fp).from_dict(d)
    assert old.decisive is None and old.hashes == fp.hashes
