"""Custody log and audit: every action logged in a hash chain; a one-byte change, a deleted file
and an added file are found in every kind of stored artefact; a broken log is never "clean"."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import DATA, SEED_CASE
from verify.cli import main


def _cli(ws: Path, *args: str):
    return CliRunner().invoke(main, ["-w", str(ws), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def built(footage, tmp_path_factory):
    """A workspace taken through init, ingest (one with a platform info file), frames, a recorded
    export as a pull archives it, merge and report; copied afresh for each test."""
    from verify import custody
    from verify.workspace import Workspace, atomic_write

    root = tmp_path_factory.mktemp("custody") / "ws"
    assert _cli(root, "init", str(SEED_CASE)).exit_code == 0
    sidecar = footage["militants_at_gate"].with_name("militants_at_gate.info.json")
    sidecar.write_text(json.dumps({"id": "123", "extractor": "generic", "webpage_url": "https://example.org/v/123",
                                   "title": "gate\n{\"seq\": 99} \x1b[31m", "uploader": "desk"}))
    try:
        assert _cli(root, "ingest", str(footage["militants_at_gate"]), "--source", "militants-at-gate").exit_code == 0
    finally:
        sidecar.unlink()
    assert _cli(root, "ingest", str(footage["civilians_refused_vertical"]), "--source", "civilians-refused").exit_code == 0
    assert _cli(root, "frames").exit_code == 0
    ws = Workspace.open(root)
    raw = (DATA / "ls-1.23.2-export.json").read_bytes()  # archived exactly as pull archives a real one
    import hashlib

    name = "exports/20261124T000000.000000Z-project1-recorded.json"
    atomic_write(ws.path(name), raw, mode=0o444)
    with ws.transaction() as db:
        db.execute("INSERT INTO exports (file, sha256, pulled_at, project_id, tasks, annotations) VALUES (?, ?, ?, ?, ?, ?)",
                   (name, hashlib.sha256(raw).hexdigest(), "2026-11-24T00:00:00+00:00", 1, 0, 0))
    custody.record(ws, "pull", outputs=[(name, hashlib.sha256(raw).hexdigest())], note="recorded export")
    assert _cli(root, "merge").exit_code == 0
    assert _cli(root, "report").exit_code == 0
    return root


@pytest.fixture
def ws(built, tmp_path) -> Path:
    copy = tmp_path / "ws"
    shutil.copytree(built, copy)
    return copy


def _one(ws: Path, pattern: str) -> Path:
    found = sorted(p for p in ws.glob(pattern) if p.is_file())
    assert found, pattern
    return found[0]


KINDS = {
    "evidence copy": "evidence/*.mp4",
    "platform info file": "evidence/*.info.json",
    "frame": "frames/*/*.jpg",
    "archived export": "exports/*.json",
    "html report": "reports/report.html",
    "json report": "reports/report.json",
    "markdown report": "reports/report.md",
    "report picture": "reports/report-assets/*.jpg",
    "verdicts": "reports/verdicts.json",
    "case file": "case.yaml",
}


def test_an_untouched_workspace_audits_clean_and_every_action_is_logged(ws):
    result = _cli(ws, "audit")
    assert result.exit_code == 0, result.output
    assert "0 changed, 0 missing, 0 unexpected" in result.output and "chain intact" in result.output
    entries = [json.loads(line) for line in (ws / "custody.log").read_text().splitlines()]
    actions = [e["action"] for e in entries]
    assert actions[:1] == ["init"] and {"ingest", "capture", "extract", "pull", "merge", "report"} <= set(actions)
    for e in entries:
        assert e["os_user"] and e["verify"] and e["host"] and len(e["hash"]) == 64
    ingest = next(e for e in entries if e["action"] == "ingest")
    assert ingest["outputs"]["files"][0]["path"].startswith("evidence/") and ingest["inputs"]["files"][0]["sha256"]
    report = [e for e in entries if e["action"] == "report"][-1]
    on_disk = {f["path"]: f["sha256"] for f in report["outputs"]["files"]}
    import hashlib

    assert on_disk["reports/report.html"] == hashlib.sha256((ws / "reports/report.html").read_bytes()).hexdigest()
    # hostile text from a platform (a newline and a fake entry, an escape sequence) stays inside one line
    assert all(line.startswith("{") and "\x1b" not in line for line in (ws / "custody.log").read_text().splitlines())
    # the report carries what it was built from
    model = json.loads((ws / "reports/report.json").read_text())
    assert set(model["integrity"]["evidence_sha256"]) == {"militants-at-gate", "civilians-refused"}
    assert model["integrity"]["custody_head"].split(":")[0].isdigit()


@pytest.mark.parametrize("kind", KINDS)
def test_audit_finds_a_one_byte_change(ws, kind):
    path = _one(ws, KINDS[kind])
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = _cli(ws, "audit")
    assert result.exit_code == 11, result.output
    assert f"CHANGED    {path.relative_to(ws)}" in result.output


@pytest.mark.parametrize("kind", KINDS)
def test_audit_finds_a_deleted_file(ws, kind):
    path = _one(ws, KINDS[kind])
    path.unlink()
    result = _cli(ws, "audit")
    assert result.exit_code == 11 and f"MISSING    {path.relative_to(ws)}" in result.output, result.output


@pytest.mark.parametrize("area", ["evidence", "frames", "exports", "reports", "reports/report-assets", "frames/x"])
def test_audit_finds_an_added_file(ws, area):
    (ws / area).mkdir(parents=True, exist_ok=True)
    (ws / area / "added.jpg").write_bytes(b"\xff\xd8\xff not ours")
    result = _cli(ws, "audit")
    assert result.exit_code == 11 and f"UNEXPECTED {area}/added.jpg" in result.output, result.output


def test_an_edited_log_entry_breaks_the_chain(ws):
    log = ws / "custody.log"
    lines = log.read_text().splitlines(keepends=True)
    entry = json.loads(lines[1])
    entry["os_user"] = "someone-else"
    lines[1] = json.dumps(entry, sort_keys=True) + "\n"
    log.write_text("".join(lines))
    result = _cli(ws, "audit")
    assert result.exit_code == 12 and "line 2" in result.output and "does not match its hash" in result.output


def test_a_removed_entry_and_a_cut_off_end_are_caught(ws):
    log = ws / "custody.log"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:2] + lines[3:]))
    removed = _cli(ws, "audit")
    assert removed.exit_code == 12 and "removed or reordered" in removed.output
    log.write_text("".join(lines[:-2]))
    cut = _cli(ws, "audit")
    assert cut.exit_code == 12 and "entries were cut off the end" in cut.output
    log.write_text("".join(lines)[:-10])
    torn = _cli(ws, "audit")
    assert torn.exit_code == 12 and "cut off" in torn.output


def test_a_missing_log_or_manifest_is_an_error_never_clean(ws):
    (ws / "custody.log").unlink()
    no_log = _cli(ws, "audit")
    assert no_log.exit_code == 12 and "custody.log is missing" in no_log.output
    (ws / "verify.db").unlink()
    no_manifest = _cli(ws, "audit")
    assert no_manifest.exit_code == 13 and "no manifest (verify.db)" in no_manifest.output
