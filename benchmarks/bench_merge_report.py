"""Merge and report speed, with floors measured in the same run.

    .venv/bin/python benchmarks/bench_merge_report.py [--frames 10000] [--report-frames 1000]

1. merge(): 10,000 frames × 3 reviewers (5 claim answers and 2 boxes each), against the
   floor of merely decoding the same annotation records (json.loads of their results).
2. write_reports(html): a workspace with 1,000 evidence frames (1280×720 JPEGs), against
   the floor of opening and re-encoding those JPEGs at thumbnail size with Pillow.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from verify.case import load_case  # noqa: E402
from verify.pipeline import current_verdicts  # noqa: E402
from verify.records import Annotation, Frame, Video  # noqa: E402
from verify.report.build import write_reports  # noqa: E402
from verify.verdicts.merge import merge  # noqa: E402
from verify.workspace import Workspace  # noqa: E402

CASE_FILE = ROOT / "configs" / "spin-boldak-2021.yaml"
CHOICES = ["Supports", "Contradicts", "Can't tell"]


def synthetic(n_frames: int, reviewers: int = 3, seed: int = 0):
    rng = random.Random(seed)
    case = load_case(CASE_FILE)
    video = Video(sha256="0" * 64, source_id="flag-hoisting-afghan-side", original_path="/bench.mp4",
                  evidence="evidence/bench.mp4", size=1, ingested_at="2026-01-01T00:00:00+00:00",
                  metadata={"width": 1280, "height": 720, "codec": "h264", "container": "mp4/mov"},
                  provenance={**case.source("flag-hoisting-afghan-side").provenance(), "claims": [c.id for c in case.claims]},
                  frames_status="ok")
    frames, annotations = [], []
    for i in range(n_frames):
        key = f"{i:032x}"
        frames.append(Frame(key=key, video_sha256=video.sha256, t_ms=i * 40.0, frame_index=i, shot=i // 50,
                            file=f"frames/{key}.jpg", sha256="x" * 64, pixel_sha256="y" * 64, phash="0" * 16, width=1280,
                            height=720, sharpness=1.0))
        for r in range(reviewers):
            result = [{"type": "choices", "from_name": f"claim_{c.id}", "to_name": "frame",
                       "value": {"choices": [CHOICES[0] if rng.random() < 0.7 else rng.choice(CHOICES)]}} for c in case.claims]
            for label in ("Taliban flag", "Armed militants"):
                x, y = 40 + rng.random() * 3, 10 + rng.random() * 3
                result.append({"type": "rectanglelabels", "from_name": "flags" if "flag" in label else "actors",
                               "to_name": "frame", "value": {"x": x, "y": y, "width": 10, "height": 12, "rotation": 0,
                                                             "rectanglelabels": [label]}})
            annotations.append(Annotation(id=len(annotations) + 1, task_id=i + 1, frame_key=key, reviewer_id=r + 2,
                                          reviewer=f"reviewer{r}@desk.example", was_cancelled=False, ground_truth=False,
                                          result=result, project_id=1, export_file="exports/x.json"))
    return case, video, frames, annotations


def best_of(fn, runs=3):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_merge(n_frames: int) -> None:
    case, video, frames, annotations = synthetic(n_frames)
    raw = [json.dumps(a.result) for a in annotations]
    floor = best_of(lambda: [json.loads(r) for r in raw])
    took = best_of(lambda: merge(case, [video], frames, annotations))
    print(f"merge: {n_frames:,} frames × 3 reviewers in {took:.3f} s ({n_frames / took:,.0f} frames/s); "
          f"floor (decode the annotation JSON only) {floor:.3f} s; ratio {took / floor:.1f}× the floor; "
          f"target < 1 s: {'met' if took < 1 else 'NOT met'}")


def bench_report(n_frames: int) -> None:
    case, video, frames, annotations = synthetic(n_frames)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.create(Path(tmp) / "ws", CASE_FILE)
        rng = np.random.default_rng(0)
        base = cv2.GaussianBlur(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8), (31, 31), 0)
        for i, f in enumerate(frames):
            image = np.roll(base, i * 7, axis=1)
            cv2.imwrite(str(ws.path(f.file)), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        ws.add_video(video)
        ws.record_frames(video.sha256, frames, "ok", None, video.metadata)
        ws.update_meta(project_id="1")
        ws.replace_annotations(1, annotations)

        def floor_thumbs():
            for f in frames:
                with Image.open(ws.path(f.file)) as im:
                    im.draft("RGB", (480, 270))
                    im = im.convert("RGB").resize((480, 270))
                    im.save(Path(tmp) / "t.jpg", "JPEG", quality=80)

        floor = best_of(floor_thumbs, runs=1)
        verdicts = current_verdicts(ws)
        took = best_of(lambda: write_reports(ws, verdicts, ("html",)), runs=1)
        size = ws.path("reports/report.html").stat().st_size
        print(f"report: HTML for {n_frames:,} evidence frames in {took:.2f} s ({size / 1e6:.1f} MB); floor (Pillow opens and "
              f"re-encodes the same JPEGs at thumbnail size) {floor:.2f} s; ratio {took / floor:.2f}× the floor; "
              f"target < 5 s: {'met' if took < 5 else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--report-frames", type=int, default=1_000)
    args = parser.parse_args()
    bench_merge(args.frames)
    bench_report(args.report_frames)
