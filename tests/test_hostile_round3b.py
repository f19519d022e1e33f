"""Hostile input, round three, second half (issue 27): case files read wrongly, misleading messages, and rollbacks
that passed the audit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import SEED_CASE
from verify.cli import main

ROOT = Path(__file__).resolve().parent.parent
VERIFY = [sys.executable, "-m", "verify"]


def _cli(ws: Path, *args: str, env: dict | None = None):
    return CliRunner().invoke(main, ["-w", str(ws), *args], env=env)


def _run(ws: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """verify as a user runs it: its own process, logging as configured by nobody (no pytest handler)."""
    return subprocess.run([*VERIFY, "-w", str(ws), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


# --- misleading messages ---------------------------------------------------------------------------------------------


def _reasons_once(out: str) -> int:
    """Each FAIL line's reason appears once in all the output (not also bare, from a log warning); returns how many."""
    fails = [line for line in out.splitlines() if line.startswith("FAIL ")]
    for line in fails:
        reason = line.split(": ", 1)[1]
        assert out.count(reason) == 1, out
    return len(fails)


def test_a_refused_file_s_reason_is_printed_once_at_ingest_and_at_frames(tmp_path, footage):
    from tests.test_bad_media import _audio_only, _h264, _mjpeg

    ws = tmp_path / "ws"
    assert _run(ws, "init", str(SEED_CASE)).returncode == 0
    voice = _audio_only(tmp_path / "voice.m4a", "mp4")
    mp4 = _h264(tmp_path / "src.mp4").read_bytes()
    assert mp4.rfind(b"moov") > len(mp4) // 2  # its index at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(mp4[: len(mp4) * 2 // 3])
    lying = tmp_path / "lying.mp4"  # a moov box claiming 2 GB
    at = mp4.rfind(b"moov") - 4
    lying.write_bytes(mp4[:at] + (0x7FFFFFF0).to_bytes(4, "big") + mp4[at + 4:])
    import numpy as np

    huge = _mjpeg(tmp_path / "huge.avi", [np.full((4200, 8200, 3), 90, np.uint8)] * 2)
    ingest = _run(ws, "ingest", str(voice), str(cut), str(lying), str(huge), str(footage["militants_at_gate"]))
    out = ingest.stdout + ingest.stderr
    assert _reasons_once(out) >= 2, out
    assert "no video stream (the file has: audio)" in out
    frames = _run(ws, "frames")
    out = frames.stdout + frames.stderr
    assert _reasons_once(out) >= 1, out
    assert "exceed the pixel cap" in out


def test_a_refusal_the_caller_shows_is_logged_at_info_and_one_it_does_not_show_at_warning(caplog):
    import logging

    from verify.media.isolate import Outcome, report_failure

    caplog.set_level(logging.INFO, logger="verify.media.isolate")
    report_failure("a.mp4", Outcome(False, error="no video stream"), shown=True)
    report_failure("b.mp4", Outcome(False, error="no video stream"))
    assert [r.levelno for r in caplog.get_records("call")] == [logging.INFO, logging.WARNING]


def test_frames_in_a_workspace_without_videos_says_so_and_points_to_ingest(tmp_path):
    ws = tmp_path / "ws"
    assert _cli(ws, "init", str(SEED_CASE)).exit_code == 0
    result = _cli(ws, "frames")
    assert result.exit_code == 0
    assert "already has frames" not in result.output
    assert "no videos" in result.output and "verify ingest" in result.output


@pytest.mark.parametrize("value", ["abc", "5X", "-1G", ""])
def test_a_bad_max_size_is_a_usage_error_exit_2(tmp_path, value):
    ws = tmp_path / "ws"
    assert _cli(ws, "init", str(SEED_CASE)).exit_code == 0
    result = _cli(ws, "ingest", "--max-size", value, str(tmp_path / "x.mp4"))
    assert result.exit_code == 2, result.output
    assert "--max-size" in result.output and "500M" in result.output


def test_a_good_max_size_still_works(tmp_path, footage):
    ws = tmp_path / "ws"
    assert _cli(ws, "init", str(SEED_CASE)).exit_code == 0
    result = _cli(ws, "ingest", "--max-size", "2G", str(footage["militants_at_gate"]))
    assert result.exit_code == 0, result.output


def test_a_folder_given_as_the_case_file_gets_one_line(tmp_path):
    folder = tmp_path / "case.yaml"
    folder.mkdir()
    result = _run(tmp_path / "ws", "init", str(folder))
    assert result.returncode == 3, result.stderr
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1
    assert "not a regular file" in result.stderr


HEAVY = ("cv2", "av", "numpy", "label_studio_sdk", "boto3", "botocore", "jinja2", "httpx", "PIL")


@pytest.mark.parametrize("text", ["a: &x [1]\nb: *x\n", "id: [\n", "\xff\xfe", "x: " + "[" * 5000 + "]" * 5000 + "\n"])
def test_a_hostile_case_file_fails_before_any_heavy_library_loads(tmp_path, text):
    """The documented bound (2 s, 200 MB) rests on this: a bad case file is refused before FFmpeg, OpenCV, the Label
    Studio SDK, boto3 or Jinja load. The child's memory is bounded only as a bomb guard, far above what it needs."""
    case = tmp_path / "hostile.yaml"
    case.write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff\xfe" else b"\xff\xfeid: x\n")
    probe = (
        "import json, sys\n"
        "from verify.cli import main\n"
        f"try:\n    main(['-w', {str(tmp_path / 'ws')!r}, 'init', {str(case)!r}])\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        f"print(json.dumps([code, sorted(m for m in {HEAVY!r} if m in sys.modules),"
        " [int(l.split()[1]) // 1024 for l in open('/proc/self/status') if l.startswith('VmHWM')][0]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    code, loaded, megabytes = json.loads(done.stdout)
    assert code == 3, done.stdout + done.stderr
    assert loaded == []
    assert megabytes < 200
    assert len(done.stderr.splitlines()) == 1, done.stderr


# --- case files read wrongly -----------------------------------------------------------------------------------------


def _case_with(old: str, new: str) -> str:
    text = SEED_CASE.read_text(encoding="utf-8")
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize("written, why", [
    ("1:02", "base-60"), ("30:55:20", "base-60"), ("-1:30", "base-60"), ("30_9", "separators"), ("0b11", "binary"),
])
def test_a_latitude_yaml_1_1_would_read_as_another_number_is_refused_with_the_reason(written, why):
    from verify.case import parse_case
    from verify.errors import CaseError

    with pytest.raises(CaseError) as caught:
        parse_case(_case_with("latitude: 30.92222", f"latitude: {written}"))
    message = str(caught.value)
    assert "places[0].latitude" in message and why in message and "\n" not in message


@pytest.mark.parametrize("written, read", [
    ("1e5", 100000.0), ("1E3", 1000.0), ("2.5e2", 250.0), ("017", 17.0), ("0x10", 16.0), ("0o10", 8.0), ("+500", 500.0),
])
def test_numbers_are_read_as_yaml_1_2_reads_them(written, read):
    from verify.case import parse_case

    case = parse_case(_case_with("radius_m: 500", f"radius_m: {written}"))
    assert case.places[0].radius_m == read


@pytest.mark.parametrize("written", ["1e9", ".inf", "-.inf", ".nan", "0"])
def test_a_radius_out_of_range_or_not_finite_is_still_refused(written):
    from verify.case import parse_case
    from verify.errors import CaseError

    with pytest.raises(CaseError, match="radius_m: expected metres from 1 to 1000000"):
        parse_case(_case_with("radius_m: 500", f"radius_m: {written}"))


def test_a_title_like_a_time_stays_the_text_written():
    from verify.case import parse_case

    assert parse_case(SEED_CASE.read_text(encoding="utf-8")).places  # the seed case itself still loads
    text = SEED_CASE.read_text(encoding="utf-8")
    title_line = next(line for line in text.splitlines() if line.startswith("title:"))
    assert parse_case(text.replace(title_line, "title: 12:30", 1)).title == "12:30"


def test_frames_max_pixels_in_a_case_file_says_the_cap_is_fixed():
    from verify.case import parse_case
    from verify.errors import CaseError

    with pytest.raises(CaseError) as caught:
        parse_case(_case_with("  max_interval_s: 2.0", "  max_interval_s: 2.0\n  max_pixels: 1000000"))
    assert "frames.max_pixels" in str(caught.value) and "fixed" in str(caught.value)
    assert "unknown key" not in str(caught.value)


def test_the_docs_do_not_present_max_pixels_as_a_setting():
    text = (ROOT / "docs" / "frames.md").read_text(encoding="utf-8") + (ROOT / "README.md").read_text(encoding="utf-8")
    for line in (line for line in text.splitlines() if "max_pixels" in line and "FrameParams" not in line):
        assert "not a case setting" in line or "fixed" in line, line
