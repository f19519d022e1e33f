"""`verify audit` checks the workspace against the custody log, not only files against the database:
tampering that rewrites the database to match a changed file, removes a whole video, or cuts the log's
end and rewrites the recorded head is caught, with its exit code."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path

from tests.conftest import SEED_CASE
from tests.test_custody import _cli, _one, built, ws  # noqa: F401 (fixtures: a workspace through every stage)


def _db(ws: Path) -> sqlite3.Connection:
    return sqlite3.connect(ws / "verify.db")


def test_a_replaced_frame_with_its_hash_updated_in_the_database_is_caught(ws):
    frame = _one(ws, "frames/*/*.jpg")
    other = sorted(p for p in ws.glob("frames/*/*.jpg") if p != frame)[-1]
    os.chmod(frame, stat.S_IRUSR | stat.S_IWUSR)
    frame.write_bytes(other.read_bytes())  # another picture…
    with _db(ws) as db:  # …and the database made to agree with it
        db.execute("UPDATE frames SET sha256 = ? WHERE file = ?",
                   (hashlib.sha256(other.read_bytes()).hexdigest(), str(frame.relative_to(ws))))
    result = _cli(ws, "audit")
    assert result.exit_code == 11, result.output
    assert f"REWRITTEN  {frame.relative_to(ws)}: custody.log entry" in result.output
    assert "(extract) recorded sha256" in result.output and "0 changed, 0 missing" in result.output


def test_a_whole_video_removed_rows_evidence_and_frames_is_caught(ws):
    with _db(ws) as db:
        sha, evidence = db.execute("SELECT sha256, evidence FROM videos ORDER BY rowid LIMIT 1").fetchone()
        for table, column in (("tasks", "frame_key IN (SELECT key FROM frames WHERE video_sha256 = ?)"),
                              ("frames", "video_sha256 = ?"), ("captures", "video_sha256 = ?"), ("videos", "sha256 = ?")):
            db.execute(f"DELETE FROM {table} WHERE {column}", (sha,))
    for path in ws.glob(f"evidence/{sha}*"):
        path.unlink()
    shutil.rmtree(ws / "frames" / sha[:16])
    result = _cli(ws, "audit")
    assert result.exit_code == 11, result.output
    assert f"REMOVED    {evidence}: custody.log entry" in result.output and "(ingest) recorded it" in result.output
    assert f"REMOVED    frames/{sha[:16]}/" in result.output
    assert "0 changed, 0 missing, 0 unexpected" in result.output  # files against the database alone: "clean"


def test_the_last_entries_cut_and_the_head_rewritten_leave_unlogged_files(ws):
    log = ws / "custody.log"
    lines = log.read_text().splitlines(keepends=True)
    kept = [json.loads(line) for line in lines[:-1]]  # the last report's entry is cut…
    log.write_text("".join(lines[:-1]))
    with _db(ws) as db:  # …and the head recorded in the workspace made to match
        db.execute("UPDATE meta SET value = ? WHERE key = 'custody_head'", (f"{kept[-1]['seq']}:{kept[-1]['hash']}",))
    result = _cli(ws, "audit")
    assert result.exit_code == 11, result.output
    assert "chain intact" in result.output  # the chain alone cannot tell…
    assert "UNLOGGED   reports/report.html: no custody.log entry records it" in result.output  # …the log cross-check does


def test_a_head_kept_outside_the_workspace_catches_a_cut_that_left_no_file_behind(ws):
    report = json.loads((ws / "reports/report.json").read_text())
    head = report["integrity"]["custody_head"]  # what an editor holding the report knows
    assert _cli(ws, "audit", "--head", head).exit_code == 0
    log = ws / "custody.log"
    lines = log.read_text().splitlines(keepends=True)
    seq = int(head.split(":")[0])
    kept = [json.loads(line) for line in lines[: seq - 1]]
    log.write_text("".join(lines[: seq - 1]))
    with _db(ws) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'custody_head'", (f"{kept[-1]['seq']}:{kept[-1]['hash']}",))
    result = _cli(ws, "audit", "--head", head)
    assert result.exit_code == 12, result.output
    assert f"entry {seq} with hash" in result.output and "entries were cut off" in result.output


def test_a_file_and_record_added_behind_verifys_back_are_unlogged(ws):
    name = "exports/20990101T000000.000000Z-project1-forged.json"
    data = b'[{"id": 1, "annotations": []}]'
    (ws / name).write_bytes(data)
    with _db(ws) as db:
        db.execute("INSERT INTO exports VALUES (?, ?, ?, 1, 1, 0)", (name, hashlib.sha256(data).hexdigest(), "2099-01-01"))
    result = _cli(ws, "audit")
    assert result.exit_code == 11 and f"UNLOGGED   {name}" in result.output, result.output


def test_an_untouched_workspace_is_clean_against_the_log_and_says_it_is_not_anchored(ws):
    result = _cli(ws, "audit")
    assert result.exit_code == 0, result.output
    assert "0 not as logged" in result.output and "not externally anchored" in result.output
    assert "NOTE       the custody log is not externally anchored: no time-stamp authority" in result.output


def test_an_entry_with_more_than_100_outputs_keeps_a_listing_that_the_audit_checks(ws):
    from verify import custody
    from verify.workspace import Workspace

    w = Workspace.open(ws)
    frames = w.frames()
    many = [(f.file, f.sha256) for f in frames] * 1 + [(f"frames/x/{i:04d}.jpg", "0" * 64) for i in range(101)]
    entry = custody.record(w, "extract", outputs=many)
    listing = entry["outputs"]["listing"]
    assert hashlib.sha256((ws / listing).read_bytes()).hexdigest() == entry["outputs"]["digest"]
    result = _cli(ws, "audit")
    assert result.exit_code == 11 and "REMOVED    frames/x/0000.jpg" in result.output, result.output
    os.chmod(ws / listing, 0o644)
    (ws / listing).write_text("")
    assert f"CHANGED    {listing}" in _cli(ws, "audit").output


def test_files_committed_by_a_killed_run_but_not_logged_are_logged_as_recovered_by_the_next_writer(
        tmp_path, footage, monkeypatch):
    """The kill window between a stage's commit and its log entry: the next verify that takes the lock
    logs those files in a "recovered" entry (the run's recorded intent explains them), and audit is clean
    again, with a note."""
    import json

    from click.testing import CliRunner

    from verify import custody
    from verify.cli import main

    ws = str(tmp_path / "ws")
    runner = CliRunner()
    assert runner.invoke(main, ["-w", ws, "init", str(SEED_CASE)]).exit_code == 0
    real = custody.record

    def killed_before_the_entry(w, action, *args, **kwargs):
        if action == "ingest":
            raise KeyboardInterrupt  # killed after the commit, before the entry
        return real(w, action, *args, **kwargs)

    monkeypatch.setattr(custody, "record", killed_before_the_entry)
    assert runner.invoke(main, ["-w", ws, "ingest", str(footage["militants_at_gate"])]).exit_code == 130
    monkeypatch.setattr(custody, "record", real)
    log = tmp_path / "ws" / "custody.log"
    before = runner.invoke(main, ["-w", ws, "audit"])
    assert before.exit_code == 11 and "UNLOGGED" in before.output  # the reader sees it as it is
    assert runner.invoke(main, ["-w", ws, "frames"]).exit_code == 0  # any writer
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    recovered = [e for e in entries if e["action"] == "recovered"]
    assert len(recovered) == 1 and recovered[0]["outputs"]["files"][0]["path"].startswith("evidence/")
    after = runner.invoke(main, ["-w", ws, "audit"])
    assert after.exit_code == 0, after.output
    assert "logged 1 file(s) after the fact" in after.output
