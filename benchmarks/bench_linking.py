"""Re-upload linking at archive size: the hash index against comparing every pair of videos.

    .venv/bin/python benchmarks/bench_linking.py [--sizes 25,50,100,200,1000] [--big 10000]

Builds N distinct short "videos" (3 keyframes each, generated textured scenes at 640×360,
fingerprinted as verify.media.frames does) with one planted re-upload in every 25 (letterboxed,
mirrored, cropped), then times what ``link_reuploads`` does per call, without the database:
all pairs (every earlier video against every later one through ``match_videos``, as before this
index) and the index (``HashIndex``: build, find candidate pairs, ``match_videos`` on those). Both
run in the same process on the same fingerprints and must give the same links; the ratio is from
the same run. ``--big`` times the index alone on generated hashes (random 256-bit codes with
planted near copies), where all pairs would take hours. Timings are wall clock on whatever
else the machine runs: read ratios, not absolute times, on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verify.media.match import SCALES, Fingerprint, HashIndex, fingerprint, match_videos  # noqa: E402

W, H, KEYFRAMES = 640, 360, 3


def picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (H // 30, W // 30, 3), dtype=np.uint8)
    img = cv2.resize(coarse, (W, H), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        x, y = int(rng.uniform(0, W)), int(rng.uniform(0, H))
        cv2.circle(img, (x, y), int(rng.uniform(10, 60)), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    cv2.putText(img, f"CLIP {seed}", (40, 200), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
    return img


def repost(img: np.ndarray, kind: int) -> np.ndarray:
    if kind == 0:  # letterbox
        return cv2.copyMakeBorder(img, 140, 140, 0, 0, cv2.BORDER_CONSTANT, value=0)
    if kind == 1:  # mirror + recompress
        ok, buf = cv2.imencode(".jpg", img[:, ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 40])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)
    h, w = img.shape[:2]  # 10 % crop each side
    return img[h // 10: h - h // 10, w // 10: w - w // 10].copy()


def archive(n: int) -> list[list[tuple[float, Fingerprint]]]:
    videos = []
    for v in range(n):
        if v % 25 == 24:  # a re-upload of an earlier video
            src = v - 12
            videos.append([(k * 1000.0, fingerprint(repost(picture(src * 10 + k), v // 25 % 3))) for k in range(KEYFRAMES)])
        else:
            videos.append([(k * 1000.0, fingerprint(picture(v * 10 + k))) for k in range(KEYFRAMES)])
    return videos


def all_pairs(videos) -> set[tuple[int, int]]:
    """Linking before the index: every earlier video against every later one."""
    return {(i, j) for j in range(len(videos)) for i in range(j) if match_videos(videos[i], videos[j]) is not None}


def with_index(videos) -> set[tuple[int, int]]:
    index = HashIndex()
    for v in videos:
        index.add([fp for _, fp in v])
    return {(i, j) for i, j in sorted(index.pairs()) if match_videos(videos[i], videos[j]) is not None}


def timed(f, *args):
    t = time.perf_counter()
    out = f(*args)
    return time.perf_counter() - t, out


def generated(n_videos: int, keyframes: int, seed: int = 0) -> list[list[Fingerprint]]:
    """Random 256-bit codes (unrelated pictures are ~128 bits apart), with a near copy of an earlier video in every 25."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 1 << 63, size=(n_videos, keyframes, 2, len(SCALES), 4), dtype=np.int64).astype(np.uint64)
    codes[24::25] = codes[12::25][: len(codes[24::25])]  # planted copies…
    noise = rng.random(codes[24::25].shape + (64,)) < 0.05  # …with ~13 of 256 bits flipped
    codes[24::25] ^= (noise * (np.uint64(1) << np.arange(64, dtype=np.uint64))).sum(axis=-1, dtype=np.uint64)
    hexes = [[[[f"{int(w[0]):016x}{int(w[1]):016x}{int(w[2]):016x}{int(w[3]):016x}" for w in side] for side in frame]
              for frame in video] for video in codes]
    return [[Fingerprint(rect=(0, 0, W, H), size=(W, H), quality=60, scales=SCALES, hashes=tuple(f[0]), mirrored=tuple(f[1]))
             for f in video] for video in hexes]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="25,50,100,200,1000")
    ap.add_argument("--big", type=int, default=10000, help="videos for the index alone on generated hashes (0: skip)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    t, videos = timed(archive, max(sizes))
    print(f"{max(sizes)} videos × {KEYFRAMES} keyframes fingerprinted in {t:.1f} s (not part of linking)")
    print(f"{'videos':>7} {'all pairs':>10} {'index':>8} {'ratio':>7} {'candidate pairs':>16} {'links':>6} same")
    for n in sizes:
        part = videos[:n]
        t_old, old = timed(all_pairs, part)
        t_new, new = timed(with_index, part)
        index = HashIndex()
        for v in part:
            index.add([fp for _, fp in v])
        print(f"{n:7} {t_old:9.3f}s {t_new:7.3f}s {t_old / t_new:6.1f}× {len(index.pairs()):16} {len(new):6} {old == new}")
    if args.big:
        for n in (args.big // 10, args.big):
            fps = generated(n, KEYFRAMES)
            index = HashIndex()
            t_build, _ = timed(lambda: [index.add(v) for v in fps])
            t_pairs, pairs = timed(index.pairs)
            planted = {(j - 12, j) for j in range(24, n, 25)}
            t_one, near = timed(index.near, fps[-1])
            print(f"generated hashes, {n} videos × {KEYFRAMES} keyframes: build {t_build:.2f} s, every candidate pair "
                  f"{t_pairs:.2f} s ({len(pairs)} pairs, planted found: {planted <= pairs}); one video's query {t_one * 1000:.0f} ms")


if __name__ == "__main__":
    main()
