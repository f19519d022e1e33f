"""Intents (issue 24, item 7): a command records what it is about to write before it writes, so that the next
writer completes the entry of a run that was killed before logging, and never logs ("launders") files that
no run explains; those stay UNLOGGED until a person accepts them with `verify audit --accept`."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import SEED_CASE
from tests.test_custody import _cli, _one, built, ws  # noqa: F401 (fixtures: a workspace through every stage)
from verify import custody
from verify.errors import NotAcceptable
from verify.workspace import Workspace


def _forge_frame(ws: Path, tag: str = "forged") -> str:
    """A frame JPEG and its `frames` row added by hand, behind verify's back; return its path."""
    real = _one(ws, "frames/*/*.jpg")
    name = str(real.relative_to(ws).with_name(f"000999999ms-{tag:0<12}.jpg"))
    data = real.read_bytes() + tag.encode()
    (ws / name).write_bytes(data)
    with closing(sqlite3.connect(ws / "verify.db")) as db, db:
        db.row_factory = sqlite3.Row
        row = dict(db.execute("SELECT * FROM frames WHERE file = ?", (str(real.relative_to(ws)),)).fetchone())
        row.update(key=f"{row['key']}-{tag}", file=name, sha256=hashlib.sha256(data).hexdigest(), t_ms=999999)
        db.execute(f"INSERT INTO frames ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))
    return name


def _entries(ws: Path) -> list[dict]:
    return [json.loads(line) for line in (ws / "custody.log").read_text().splitlines()]


@pytest.mark.parametrize("command", [["report"], ["merge"], ["frames"], ["report", "--format", "md"]])
def test_a_forged_frame_stays_unlogged_after_a_writing_command(ws, command):
    name = _forge_frame(ws)
    before = _cli(ws, "audit")
    assert before.exit_code == 11 and f"UNLOGGED   {name}: no custody.log entry records it" in before.output, before.output
    assert _cli(ws, *command).exit_code == 0
    after = _cli(ws, "audit")
    assert after.exit_code == 11, after.output  # not laundered into a "recovered" entry
    assert f"UNLOGGED   {name}: no custody.log entry records it" in after.output and "--accept" in after.output
    assert not any(e["action"] in ("recovered", "accept") for e in _entries(ws))


def test_audit_accept_logs_the_forged_frame_as_its_own_action_and_the_report_lists_it(ws):
    name = _forge_frame(ws)
    sha = hashlib.sha256((ws / name).read_bytes()).hexdigest()
    accepted = _cli(ws, "audit", "--accept", name, "--note", "sent by the reporter; checked against the original")
    assert accepted.exit_code == 0, accepted.output
    assert f"ACCEPTED   {name}  sha256 {sha}" in accepted.output
    assert "accepted by" in accepted.output and "0 not as logged" in accepted.output  # then audited: clean
    entry = _entries(ws)[-1]
    assert entry["action"] == "accept" and entry["outputs"]["files"] == [{"path": name, "sha256": sha}]
    assert entry["details"]["note"] == "sent by the reporter; checked against the original" and entry["details"]["by"]
    listed = custody.accepted(Workspace.open(ws))
    assert listed == [{"file": name, "sha256": sha, "accepted_at": entry["at"], "by": entry["details"]["by"],
                       "host": entry["host"], "note": "sent by the reporter; checked against the original",
                       "log_seq": entry["seq"]}]
    assert _cli(ws, "audit").exit_code == 0
    assert _cli(ws, "report").exit_code == 0
    report = json.loads((ws / "reports/report.json").read_text())
    assert [a["file"] for a in report["integrity"]["accepted"]] == [name]
    assert "Accepted by hand" in (ws / "reports/report.md").read_text()
    assert name in (ws / "reports/report.html").read_text()
    assert _cli(ws, "audit").exit_code == 0


def test_accept_refuses_what_is_not_an_unlogged_file_of_the_workspace_and_logs_nothing(ws, tmp_path):
    name = _forge_frame(ws)
    logged = str(_one(ws, "frames/*/*.jpg").relative_to(ws))
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(b"\xff\xd8\xff")
    (ws / "frames" / "stray.jpg").write_bytes(b"\xff\xd8\xff")  # on disk, but no record: UNEXPECTED, not UNLOGGED
    lines = (ws / "custody.log").read_text()
    for given, says in ((str(outside), "not a file in the workspace"), ("frames/nothing-here.jpg", "no such file"),
                        (logged, "the custody log already records it"), ("frames/stray.jpg", "does not record it")):
        result = _cli(ws, "audit", "--accept", name, given)
        assert result.exit_code == NotAcceptable.exit_code == 17, (given, result.output)
        assert result.output.startswith("verify: ") and result.output.count("\n") == 1 and says in result.output
    assert (ws / "custody.log").read_text() == lines  # nothing accepted, not even the good one
    assert _cli(ws, "audit", name).exit_code == 2  # a file without --accept: a usage error
    assert _cli(ws, "audit", "--accept").exit_code == 2


def test_a_killed_frames_run_is_completed_by_running_frames_again(tmp_path, footage, monkeypatch):
    """Killed after committing the last video's frames, before their custody entry: the re-run has nothing to
    extract, and completes the entry (before, it said "already has frames" and left the audit failing)."""
    root = tmp_path / "ws"
    assert _cli(root, "init", str(SEED_CASE)).exit_code == 0
    for name in ("militants_at_gate", "civilians_refused_vertical"):
        assert _cli(root, "ingest", str(footage[name])).exit_code == 0
    real, extracts = custody.record, []

    def killed_before_the_second_entry(ws, action, *args, **kwargs):
        if action == "extract":
            extracts.append(action)
            if len(extracts) == 2:
                raise KeyboardInterrupt  # as SIGKILL would: the frames are committed, their entry is not written
        return real(ws, action, *args, **kwargs)

    monkeypatch.setattr(custody, "record", killed_before_the_second_entry)
    assert _cli(root, "frames").exit_code == 130
    monkeypatch.setattr(custody, "record", real)
    workspace = Workspace.open(root)
    intent = custody.current_intent(workspace)
    assert intent and intent["command"] == "frames" and intent["scope"] == ["frames/"]  # recorded before it wrote
    frames = sorted((f.key, f.file, f.sha256) for f in workspace.frames())
    unlogged = [path for path, _ in custody.unlogged_files(workspace)]
    assert unlogged and all(path.startswith("frames/") for path in unlogged)
    interrupted = _cli(root, "audit")
    assert interrupted.exit_code == 11 and "written by `verify frames`" in interrupted.output, interrupted.output

    again = _cli(root, "frames")
    assert again.exit_code == 0 and "already has frames" in again.output, again.output
    recovered = [e for e in _entries(root) if e["action"] == "recovered"]
    assert len(recovered) == 1 and recovered[0]["details"]["intent"]["command"] == "frames"
    assert sorted(f["path"] for f in recovered[0]["outputs"]["files"]) == sorted(unlogged)
    workspace = Workspace.open(root)
    assert sorted((f.key, f.file, f.sha256) for f in workspace.frames()) == frames  # nothing extracted twice
    assert custody.current_intent(workspace) is None  # the re-run finished: no intent left open
    audit = _cli(root, "audit")
    assert audit.exit_code == 0, audit.output
    assert "written by `verify frames`" in audit.output and "after the fact" in audit.output  # noted, for anyone to see


def test_an_interrupted_run_completes_only_what_it_wrote_never_what_was_already_unlogged(ws):
    forged = _forge_frame(ws)
    workspace = Workspace.open(ws)
    with pytest.raises(KeyboardInterrupt):
        with workspace.lock(command="frames"):  # a run that writes one frame, commits it, and is killed
            mine = _forge_frame(ws, "written")
            raise KeyboardInterrupt
    with workspace.lock(command="report"):  # the next writer, whatever it is
        pass
    [recovered] = [e for e in _entries(ws) if e["action"] == "recovered"]
    assert [f["path"] for f in recovered["outputs"]["files"]] == [mine]
    assert [path for path, _ in custody.unlogged_files(workspace)] == [forged]
    result = _cli(ws, "audit")
    assert result.exit_code == 11 and f"UNLOGGED   {forged}" in result.output and f"UNLOGGED   {mine}" not in result.output


def test_a_run_outside_its_scope_does_not_explain_a_file(ws):
    workspace = Workspace.open(ws)
    with pytest.raises(KeyboardInterrupt):
        with workspace.lock(command="report"):  # reports/ only
            name = _forge_frame(ws)
            raise KeyboardInterrupt
    with workspace.lock(command="report"):
        pass
    assert [path for path, _ in custody.unlogged_files(workspace)] == [name]


def test_a_library_stage_takes_the_lock_and_records_its_intent_itself(ws):
    """Issue 25, item 4: the lock is the library's, not the CLI's. A library caller gets the lock (a second holder is
    refused), its run's intent is recorded while it writes, and re-entry in the same thread (sync → report) works."""
    from verify import pipeline
    from verify.errors import WorkspaceBusy

    lib = Workspace.open(ws)
    seen: list[str | None] = []
    real_record = custody.record_files

    def spying(w, action, *args, **kwargs):  # the intent is open while the stage writes
        seen.append((custody.current_intent(w) or {}).get("command"))
        return real_record(w, action, *args, **kwargs)

    custody.record_files = spying
    try:
        pipeline.report(lib, ("json",))
    finally:
        custody.record_files = real_record
    assert seen == ["report", "report"]  # merge's entry and report's, both under the report's intent
    assert custody.current_intent(lib) is None  # closed when the stage finished

    other = Workspace.open(ws)  # another holder of the same workspace (as another verify process would be)
    with other.lock(command="merge"), pytest.raises(WorkspaceBusy):
        pipeline.merge(lib)
