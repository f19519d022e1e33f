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


# --- rollbacks that passed the audit ---------------------------------------------------------------------------------

from tests.test_timestamps import authority, stamped  # noqa: E402,F401  (a local time-stamp authority, a stamped workspace)


@pytest.fixture
def stamped_ws(stamped, tmp_path) -> Path:
    import shutil

    copy = tmp_path / "ws"
    shutil.copytree(stamped, copy)
    return copy


def _db(ws: Path):
    import sqlite3

    return sqlite3.connect(ws / "verify.db")


def _entries(ws: Path) -> list[dict]:
    return [json.loads(line) for line in (ws / "custody.log").read_text().splitlines()]


def test_each_entry_logged_while_stamping_says_so_and_how_many_tokens_existed(stamped_ws):
    entries = _entries(stamped_ws)
    assert all(e["timestamps"]["tsa"] for e in entries)
    counts = [e["timestamps"]["tokens_before"] for e in entries]
    assert counts[0] == 0 and counts == sorted(counts) and counts[-1] > 0


def test_a_workspace_whose_stamps_were_all_deleted_fails_the_audit(stamped_ws, authority):
    import shutil

    _, ca, _, _ = authority
    shutil.rmtree(stamped_ws / "timestamps")
    with _db(stamped_ws) as db:
        db.execute("DELETE FROM timestamps")
        db.execute("DELETE FROM meta WHERE key = 'tsa_urls'")
    result = _cli(stamped_ws, "audit", "--tsa-ca", str(ca))
    assert result.exit_code == 12, result.output
    assert "stamps were deleted" in result.output and "behind verify's back" in result.output


def test_some_stamps_deleted_with_stamping_still_on_fails_too(stamped_ws):
    with _db(stamped_ws) as db:
        files = [r[0] for r in db.execute("SELECT file FROM timestamps WHERE log_seq > 1")]
        db.execute("DELETE FROM timestamps WHERE log_seq > 1")
    for name in files:
        (stamped_ws / name).unlink()
    result = _cli(stamped_ws, "audit")
    assert result.exit_code == 12, result.output
    assert "stamps were deleted" in result.output


def test_stamping_turned_off_through_verify_is_not_a_failure(stamped_ws):
    assert _cli(stamped_ws, "init", str(SEED_CASE), "--tsa", "none").exit_code == 0
    result = _cli(stamped_ws, "audit")
    assert result.exit_code == 0, result.output


def test_an_authority_that_never_answered_is_not_taken_for_deleted_stamps(tmp_path):
    ws = tmp_path / "ws"
    assert _cli(ws, "init", str(SEED_CASE), "--tsa", "http://127.0.0.1:9/tsr").exit_code == 0
    assert _cli(ws, "merge").exit_code == 0
    result = _cli(ws, "audit")
    assert result.exit_code == 0, result.output
    assert "not externally anchored" in result.output


def _undo_last(ws: Path, count: int) -> None:
    """Undo the last ``count`` actions exactly: their entries cut, the head rewritten, their files, records and
    stamps deleted."""
    entries = _entries(ws)
    kept, cut = entries[:-count], entries[-count:]
    (ws / "custody.log").write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in kept))
    gone = {f["path"] for e in cut for f in (e["outputs"].get("files") or [])}
    for name in gone:
        (ws / name).unlink(missing_ok=True)
    with _db(ws) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'custody_head'", (f"{kept[-1]['seq']}:{kept[-1]['hash']}",))
        db.execute("UPDATE meta SET value = '{}' WHERE key = 'reports_manifest'")
        stamps = [r[0] for r in db.execute("SELECT file FROM timestamps WHERE log_seq > ?", (kept[-1]["seq"],))]
        db.execute("DELETE FROM timestamps WHERE log_seq > ?", (kept[-1]["seq"],))
    for name in stamps:
        (ws / name).unlink()


def test_a_report_held_outside_catches_the_last_actions_undone_exactly(stamped_ws, tmp_path):
    held = tmp_path / "sent-to-the-editor.json"
    held.write_bytes((stamped_ws / "reports" / "report.json").read_bytes())
    head = json.loads(held.read_text())["integrity"]["custody_head"]
    assert _cli(stamped_ws, "audit", "--against", str(held)).exit_code == 0
    _undo_last(stamped_ws, 2)  # the report, and the merge whose head it was built from
    assert int(head.split(":")[0]) > _entries(stamped_ws)[-1]["seq"]
    done = _run(stamped_ws, "audit", "--against", str(held))
    assert done.returncode == 18, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("verify: rolled back:") and "no longer holds" in line and "entries were cut off" in line


def test_a_report_whose_head_the_workspace_holds_with_another_hash_is_a_rollback(stamped_ws, tmp_path):
    held = tmp_path / "report.json"
    report = json.loads((stamped_ws / "reports" / "report.json").read_text())
    seq = report["integrity"]["custody_head"].split(":")[0]
    report["integrity"]["custody_head"] = f"{seq}:{'ab' * 32}"
    held.write_text(json.dumps(report))
    result = _cli(stamped_ws, "audit", "--against", str(held))
    assert result.exit_code == 18, result.output
    assert "holds with another hash" in result.output


@pytest.mark.parametrize("content", [b"not json", b"{}", b'{"integrity": {"custody_head": null}}', b"[1]"])
def test_against_a_file_that_is_not_a_report_is_an_option_error(stamped_ws, tmp_path, content):
    held = tmp_path / "x.json"
    held.write_bytes(content)
    result = _cli(stamped_ws, "audit", "--against", str(held))
    assert result.exit_code == 2, result.output
    assert "--against" in result.output
