"""Keyframe extraction speed against ffmpeg's decode and PySceneDetect, in one run.

    .venv/bin/pip install av                         # PyAV writes the H.264 benchmark clip
    .venv/bin/python benchmarks/bench_frames.py [CLIP.mp4] [--preview]

Without a clip, benchmarks/make_clip.py writes a 60 s 1080×1920 H.264 one with 16 known cuts.
References, measured here on the same file: `ffmpeg -benchmark -threads 2 -i CLIP -f null -`
(where ffmpeg is installed) and PySceneDetect's `detect(CLIP, AdaptiveDetector())`, run in its
own environment benchmarks/.venv-scenedetect (it bundles opencv-python, which clashes with the
headless build): `python3 -m venv benchmarks/.venv-scenedetect && benchmarks/.venv-scenedetect/bin/pip install scenedetect`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from verify.media.frames import FrameParams, extract_video  # noqa: E402

RUNS = 3  # each measure is the best of this many runs
SCENEDETECT = ROOT / "benchmarks" / ".venv-scenedetect" / "bin" / "python"


def frames_in(clip: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(clip))
    n = 0
    while cap.grab():
        n += 1
    return n


def cuts_found(found: list[float], truth: list[float], tolerance: float = 0.1) -> int:
    return sum(1 for c in truth if any(abs(c - f) <= tolerance for f in found))


def main(clip: Path | None, mode: str = "full") -> None:
    tmp = Path(tempfile.mkdtemp())
    if clip is None:
        clip = tmp / "clip60.mp4"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_clip.py"), str(clip)], check=True)
    truth = json.loads(clip.with_suffix(".truth.json").read_text())["cuts"] if clip.with_suffix(".truth.json").exists() else []
    n = frames_in(clip)
    print(f"clip {clip.name}: {n} frames, {len(truth)} known cuts")

    reference = None
    if shutil.which("ffmpeg"):
        # ffmpeg's own clock for its decode loop (-benchmark's rtime): process start-up excluded,
        # as it is for verify below; the best of three runs, like every measure here
        command = ["ffmpeg", "-hide_banner", "-benchmark", "-threads", "2", "-i", str(clip), "-f", "null", "-"]
        rtimes = []
        for _ in range(RUNS):
            err = subprocess.run(command, check=True, capture_output=True, text=True).stderr
            rtimes.append(float(re.search(r"rtime=([0-9.]+)s", err).group(1)))
        reference = n / min(rtimes)
        print(f"ffmpeg decode, 2 threads:        {reference:7.1f} frames/s")
    else:
        print("ffmpeg decode: ffmpeg not installed (apt-get install ffmpeg)")

    scenedetect = None
    if SCENEDETECT.exists():
        code = ("import sys, time, json; from scenedetect import detect, AdaptiveDetector; t = time.perf_counter(); "
                "s = detect(sys.argv[1], AdaptiveDetector()); e = time.perf_counter() - t; "
                "print(json.dumps([e, [x[0].get_seconds() for x in s[1:]]]))")
        runs = []
        for _ in range(RUNS):
            out = subprocess.run([str(SCENEDETECT), "-c", code, str(clip)], check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        took, cuts = min(runs)
        scenedetect = n / took
        print(f"PySceneDetect AdaptiveDetector:  {scenedetect:7.1f} frames/s, {cuts_found(cuts, truth)} of {len(truth)} cuts")
    else:
        print(f"PySceneDetect: no environment at {SCENEDETECT.parent.parent} (see this file's docstring)")

    took = float("inf")
    for run in range(RUNS):
        out = tmp / f"frames{run}"
        out.mkdir()
        start = time.perf_counter()
        result = extract_video(str(clip), str(out), asdict(FrameParams(mode=mode)))
        took = min(took, time.perf_counter() - start)
    ours = n / took
    if mode == "preview":
        print(f"verify frames --preview (keyframes only): {ours:7.1f} frames/s of video, {len(result['frames'])} frames")
    else:
        shots = result["measured"]["shots"]
        print(f"verify frames (decode, detection, JPEGs, records): {ours:7.1f} frames/s, {len(result['frames'])} frames, "
              f"{shots - 1} shot boundaries found for {len(truth)} cuts")
    if mode == "preview":
        print("(preview decodes keyframes only: its speed is not comparable with a full decode; no ratios)")
    elif reference:
        print(f"ratio to ffmpeg decode: {ours / reference:.2f} (target ≥ 0.80)")
    if scenedetect and mode != "preview":
        print(f"ratio to PySceneDetect: {ours / scenedetect:.2f} (target ≥ 1.25)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--preview"]
    main(Path(args[0]) if args else None, "preview" if "--preview" in sys.argv else "full")
