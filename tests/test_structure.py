"""How the code is built, checked: the workspace owns its tables, each library has one home,
the CLI writes no custody entry, and the stages log themselves."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "verify"
SQL = re.compile(r"\b(SELECT\s+.+\s+FROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE|ALTER\s+TABLE)\b",
                 re.IGNORECASE | re.DOTALL)
# each external library is imported by one module (OpenCV and numpy: the media modules, which work on pictures)
OWNERS = {
    "av": {"media/decode.py"}, "label_studio_sdk": {"labelstudio/client.py"}, "yt_dlp": {"media/links.py"},
    "jinja2": {"report/build.py"}, "PIL": {"report/draw.py"}, "click": {"cli.py"}, "yaml": {"case.py"},
    "rfc3161_client": {"timestamps.py"}, "geographiclib": {"geodesy.py"},
    "boto3": {"labelstudio/objects.py"}, "botocore": {"labelstudio/objects.py"},
}


def _modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(PACKAGE)): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def _strings(tree: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_sql_outside_the_workspace_module():
    offenders = {name: [s[:60] for s in _strings(tree) if SQL.search(s)]
                 for name, tree in _modules().items() if name != "workspace.py"}
    assert not {k: v for k, v in offenders.items() if v}, offenders
    assert any(SQL.search(s) for s in _strings(_modules()["workspace.py"]))  # the check does find SQL


def test_only_the_workspace_touches_the_database_connection():
    for name, tree in _modules().items():
        if name == "workspace.py":
            continue
        uses = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in ("db", "execute", "executemany")]
        assert not uses, f"verify/{name} lines {uses}"


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_each_external_library_is_imported_in_one_place(library):
    importers = set()
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == library for a in node.names):
                importers.add(name)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == library and node.level == 0:
                importers.add(name)
    assert importers == OWNERS[library]


def test_the_cli_writes_no_custody_entry():
    tree = _modules()["cli.py"]
    imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert "record" not in calls and "record_files" not in calls
    assert ("verify", "custody") not in imported or calls & {"audit", "require_manifest"}  # audit only reads


def test_a_workspace_of_schema_2_opens_and_migrates(tmp_path):
    """A workspace made by verify 0.2 (schema 2, its DDL kept here) opens, keeps its rows and gains fingerprints."""
    import sqlite3

    from tests.conftest import SEED_CASE
    from verify.workspace import SCHEMA_VERSION, Workspace

    root = tmp_path / "ws"
    Workspace.create(root, SEED_CASE).db.close()
    (root / "verify.db").unlink()
    db = sqlite3.connect(root / "verify.db")
    db.executescript(SCHEMA_2)
    db.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", "2"), ("workspace_id", "abc123"),
                                                       ("project_id", "7"), ("case_sha256", "x")])
    db.execute("INSERT INTO videos VALUES ('v', 'militants-at-gate', '/x.mp4', 'evidence/v.mp4', 10, 't', '{}',"
               " '{\"source_id\": \"militants-at-gate\", \"claims\": []}', 'ok', NULL)")
    db.execute("INSERT INTO frames VALUES ('k', 'v', 40.0, 1, 0, 'frames/v/a.jpg', 's', 'p', 'ff', 640, 360, 3.5, '{}', NULL)")
    db.execute("INSERT INTO tasks VALUES ('k', 7, 70)")
    db.commit()
    db.close()
    ws = Workspace.open(root)
    assert ws.get_meta("schema_version") == str(SCHEMA_VERSION) == "4"
    [frame] = ws.frames()
    assert (frame.key, frame.t_ms, frame.width, frame.fingerprint) == ("k", 40.0, 640, None)
    assert ws.tasks() == {"k": 70} and ws.videos()[0].source_id == "militants-at-gate"
    assert ws.timestamps() == []  # schema 4: a table for time-stamp tokens


SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    sha256 TEXT PRIMARY KEY,
    source_id TEXT NOT NULL,
    original_path TEXT NOT NULL,
    evidence TEXT NOT NULL,
    size INTEGER NOT NULL,
    ingested_at TEXT NOT NULL,
    metadata TEXT NOT NULL,
    provenance TEXT NOT NULL,
    frames_status TEXT,
    frames_note TEXT
);
CREATE TABLE IF NOT EXISTS frames (
    key TEXT PRIMARY KEY,
    video_sha256 TEXT NOT NULL REFERENCES videos(sha256),
    t_ms REAL NOT NULL,
    frame_index INTEGER NOT NULL,
    shot INTEGER NOT NULL,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    pixel_sha256 TEXT NOT NULL,
    phash TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    sharpness REAL NOT NULL,
    extractor TEXT NOT NULL,
    duplicate_of TEXT
);
CREATE INDEX IF NOT EXISTS frames_by_video ON frames(video_sha256, t_ms);
CREATE TABLE IF NOT EXISTS tasks (
    frame_key TEXT NOT NULL REFERENCES frames(key),
    project_id INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    PRIMARY KEY (project_id, frame_key)
);
CREATE TABLE IF NOT EXISTS uploads (
    project_id INTEGER NOT NULL,
    frame_key TEXT NOT NULL REFERENCES frames(key),
    url TEXT NOT NULL,
    PRIMARY KEY (project_id, frame_key)
);
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER NOT NULL,
    project_id INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    frame_key TEXT,
    reviewer_id INTEGER,
    reviewer TEXT NOT NULL,
    was_cancelled INTEGER NOT NULL,
    ground_truth INTEGER NOT NULL,
    result TEXT NOT NULL,
    created_at TEXT,
    updated_at TEXT,
    export_file TEXT NOT NULL,
    PRIMARY KEY (project_id, id)
);
CREATE TABLE IF NOT EXISTS captures (
    id INTEGER PRIMARY KEY,
    video_sha256 TEXT NOT NULL REFERENCES videos(sha256),
    url_given TEXT,
    canonical_url TEXT,
    captured_at TEXT NOT NULL,
    info_file TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS captures_by_url ON captures(url_given);
CREATE INDEX IF NOT EXISTS captures_by_canonical ON captures(canonical_url);
CREATE TABLE IF NOT EXISTS exports (
    file TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    pulled_at TEXT NOT NULL,
    project_id INTEGER NOT NULL,
    tasks INTEGER NOT NULL,
    annotations INTEGER NOT NULL
);
"""


def test_the_pipeline_merges_once_per_sync_and_each_stage_logs_itself(ingested, monkeypatch, tmp_path):
    """``sync`` through the library (a fake Label Studio): push, pull, merge and report each log one entry,
    the merge runs once, and the report names the verdicts file it was built from."""
    import json

    from tests.fake_labelstudio import FakeLabelStudio
    from verify import pipeline
    from verify.media.frames import extract

    extract(ingested)
    merges = []
    real_merge = pipeline.merge_verdicts
    monkeypatch.setattr(pipeline, "merge_verdicts", lambda *a, **k: merges.append(1) or real_merge(*a, **k))
    log = ingested.path("custody.log")
    before = len(log.read_text().splitlines())
    served = tmp_path / "files"  # local files: the tasks show context strips (direct upload shows none: next test)
    done = pipeline.sync(ingested, FakeLabelStudio(document_root=served), served, images="local")
    entries = [json.loads(line) for line in log.read_text().splitlines()[before:]]
    strips = [e for e in entries if e["action"] == "context"]  # context strips made first: one entry per video sent
    assert len(strips) == len({f.video_sha256 for f in ingested.frames() if not f.duplicate_of})
    assert entries[:len(strips)] == strips
    entries = entries[len(strips):]
    assert [e["action"] for e in entries] == ["push", "pull", "merge", "report"]
    assert len(merges) == 1
    merged = done.reports.merged
    assert entries[2]["outputs"]["files"] == [{"path": "reports/verdicts.json", "sha256": merged.sha256}]
    report = json.loads(ingested.path("reports/report.json").read_text())
    assert report["method"]["built_from_verdicts"] == {"file": "reports/verdicts.json", "sha256": merged.sha256}
    assert {"path": "reports/verdicts.json", "sha256": merged.sha256} in entries[3]["inputs"]["files"]



def test_a_sync_whose_frames_go_by_direct_upload_makes_no_context_strip(ingested):
    """Label Studio's direct upload takes one picture per task, so no strip would show: none is made or logged."""
    import json

    from tests.fake_labelstudio import FakeLabelStudio
    from verify import pipeline
    from verify.media.frames import extract

    extract(ingested)
    log = ingested.path("custody.log")
    before = len(log.read_text().splitlines())
    done = pipeline.sync(ingested, FakeLabelStudio(), None, images="upload")
    actions = [json.loads(line)["action"] for line in log.read_text().splitlines()[before:]]
    assert actions == ["push", "pull", "merge", "report"] and done.contexts is None
    assert ingested.contexts() == [] and done.push.with_context == 0

def test_init_logs_itself(tmp_path):
    import json

    from tests.conftest import SEED_CASE
    from verify import pipeline

    ws = pipeline.init(tmp_path / "ws", SEED_CASE)
    [entry] = [json.loads(line) for line in ws.path("custody.log").read_text().splitlines()]
    assert entry["action"] == "init" and entry["outputs"]["files"][0]["sha256"] == ws.case.sha256


def test_a_bug_in_a_media_child_is_logged_as_an_error_and_a_refused_file_as_a_warning(caplog):
    """What conftest's guard watches: verify logs an unexpected failure at ERROR (a test that causes one fails)."""
    import logging

    from verify.media.isolate import Outcome, report_failure

    report_failure("clip.mp4", Outcome(False, error="not readable as video", unexpected=False))
    report_failure("clip.mp4", Outcome(False, error="KeyError: 'x'", detail="Traceback…", unexpected=True))
    levels = [(r.levelno, r.name) for r in caplog.get_records("call")]
    assert levels == [(logging.WARNING, "verify.media.isolate"), (logging.ERROR, "verify.media.isolate")]
    caplog.clear()  # the guard would fail this test for the ERROR it provoked on purpose


def test_an_exception_that_is_not_a_verify_error_in_the_child_is_marked_unexpected():
    from tests import crashers
    from verify.media.isolate import run_isolated

    assert run_isolated(crashers.raise_bug, (), timeout=60).unexpected
    assert not run_isolated(crashers.refuse, (), timeout=60).unexpected
