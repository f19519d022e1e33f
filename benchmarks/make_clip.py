"""Write the benchmark clip: 60 s of 1080×1920 (phone-vertical) H.264 at 30 fps with known cuts.

    .venv/bin/python benchmarks/make_clip.py OUT.mp4

Seventeen shots (sixteen hard cuts, two pairs of them under 0.5 s apart), each a textured
backdrop with a moving block; encoded with libx264 through PyAV. OUT.truth.json lists the cuts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import av
import cv2
import numpy as np

W, H, FPS, SECONDS = 1080, 1920, 30, 60
CUTS = [3.0, 7.5, 11.0, 11.4, 15.0, 19.5, 23.0, 27.0, 30.5, 30.8, 34.0, 38.5, 42.0, 46.0, 50.5, 55.0]


def backdrop(i: int) -> np.ndarray:
    rng = np.random.default_rng(100 + i)
    coarse = rng.integers(0, 255, (H // 60, W // 60, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (W, H), interpolation=cv2.INTER_CUBIC)
    cv2.putText(image, f"SCENE {i}", (80, 300), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 8)
    return image


def main(out: Path) -> None:
    scenes = [backdrop(i) for i in range(len(CUTS) + 1)]
    container = av.open(str(out), mode="w")
    stream = container.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.options = {"preset": "veryfast", "crf": "23"}
    for i in range(FPS * SECONDS):
        t = i / FPS
        scene = sum(1 for c in CUTS if t >= c)
        image = scenes[scene].copy()
        x = int((t * 200) % (W - 200))
        cv2.rectangle(image, (x, 900), (x + 200, 1100), (20, 200, 240), -1)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    out.with_suffix(".truth.json").write_text(json.dumps({"width": W, "height": H, "fps": FPS, "duration_s": SECONDS,
                                                           "cuts": CUTS}, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
