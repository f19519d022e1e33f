"""The command line, in process: help for every command, one-line errors with distinct exit codes."""

import os
import threading

import click
import pytest
from click.testing import CliRunner

from verify.cli import main
from verify.errors import WorkspaceBusy
from tests.conftest import SEED_CASE, SOURCES


def _commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, prefix + (name,))
        else:
            yield prefix + (name,)


@pytest.mark.parametrize("path", list(_commands(main)), ids=" ".join)
def test_every_command_has_help_with_an_example(path):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    assert "Example: verify" in result.output, f"`verify {' '.join(path)} --help` shows no example"


def invoke(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env or {})


def test_bad_case_file_is_one_line_exit_3(tmp_path):
    bad = tmp_path / "case.yaml"
    bad.write_text("id: x\ntitle: X\nclaims: []\nlabels: {}\n")
    result = invoke("-w", str(tmp_path / "ws"), "init", str(bad))
    assert result.exit_code == 3
    assert result.output == f"verify: {bad}: claims: expected a non-empty list of claims, each with id and text\n"


def test_a_folder_that_is_no_workspace_is_exit_5(tmp_path):
    result = invoke("-w", str(tmp_path), "status")
    assert result.exit_code == 5 and "not a verify workspace" in result.output and "verify init" in result.output


def test_debug_shows_the_traceback(tmp_path):
    result = invoke("--debug", "-w", str(tmp_path), "status")
    assert result.exit_code != 0 and result.exception is not None


def test_ingest_reports_each_file_and_exits_10_when_some_failed(tmp_path, footage):
    ws = str(tmp_path / "ws")
    assert invoke("-w", ws, "init", str(SEED_CASE)).exit_code == 0
    junk = tmp_path / "notes.mp4"
    junk.write_text("<html>not a video</html>")
    result = invoke("-w", ws, "ingest", str(footage["militants_at_gate"]), str(junk), "--source", "militants-at-gate")
    assert result.exit_code == 10
    assert f"FAIL {junk}: a text/HTML/JSON document, not a video" in result.output
    assert "1 new, 0 already known, 1 failed, of 2" in result.output
    assert "Traceback" not in result.output
    again = invoke("-w", ws, "ingest", str(footage["militants_at_gate"]))
    assert again.exit_code == 0 and "already ingested as source militants-at-gate" in again.output


def test_push_without_frames_or_server_says_what_to_do(tmp_path, no_local_server):
    ws = str(tmp_path / "ws")
    invoke("-w", ws, "init", str(SEED_CASE))
    result = invoke("-w", ws, "push")
    assert result.exit_code == 7 and "no Label Studio URL" in result.output
    result = invoke("-w", ws, "push", env={"LABEL_STUDIO_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 8 and "no API key" in result.output


def test_frames_then_status_and_report_without_a_server(tmp_path, footage, no_local_server):
    ws = str(tmp_path / "ws")
    invoke("-w", ws, "init", str(SEED_CASE))
    for name, source in SOURCES.items():
        assert invoke("-w", ws, "ingest", str(footage[name]), "--source", source).exit_code == 0
    result = invoke("-w", ws, "frames")
    assert result.exit_code == 0, result.output
    assert "linked to an identical frame of another source" in result.output
    status = invoke("-w", ws, "status")
    assert "not pushed yet" in status.output and "last pull never" in status.output
    report = invoke("-w", ws, "report", "--format", "md")
    assert report.exit_code == 0 and "md   report:" in report.output


def test_a_second_verify_on_the_same_workspace_is_refused(workspace):
    held = threading.Event()
    release = threading.Event()

    def hold():
        with workspace.lock():
            held.set()
            release.wait(600)  # held until the test is done with it (the finally below), however slow the machine

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(60), "the thread did not take the workspace lock"
        result = invoke("-w", str(workspace.root), "ingest", "any.mp4")
        assert result.exit_code == WorkspaceBusy.exit_code
        assert result.output.startswith("verify: ") and "workspace is in use by verify (pid" in result.output
        from verify.workspace import Workspace

        other = Workspace.open(workspace.root)
        with pytest.raises(WorkspaceBusy, match="workspace is in use by verify"):
            with other.lock():
                pass
    finally:
        release.set()
        thread.join()


@pytest.mark.parametrize("version, expected", [
    ("1.23.2", None),
    ("1.24.0", None),
    ("1.7.1", "older than 1.7.2, which fixed GHSA-cpmr-mw4j-99r7"),
    ("1.20.0", "older than 1.23.2, the release verify is tested with"),
    ("unknown", "cannot tell which Label Studio release"),
])
def test_an_old_label_studio_gets_a_security_warning(version, expected):
    from verify.labelstudio.client import version_warning

    warning = version_warning(version)
    assert (warning is None) if expected is None else (expected in warning)


def test_s3_bucket_and_prefix_options_stand_for_the_environment_during_their_command_only(monkeypatch):
    """--s3-bucket / --s3-prefix (push, sync, adjudicate) are read where the S3 settings are: the environment, set
    for the command and put back after it, so a caller's process keeps its own settings."""
    from verify.cli import images_option

    seen = []

    @click.command()
    @images_option
    def probe(images):
        seen.append((images, os.environ.get("VERIFY_S3_BUCKET"), os.environ.get("VERIFY_S3_PREFIX")))

    monkeypatch.setenv("VERIFY_S3_BUCKET", "from-the-environment")
    monkeypatch.delenv("VERIFY_S3_PREFIX", raising=False)
    runner = CliRunner()
    assert runner.invoke(probe, ["--images", "s3", "--s3-bucket", "desk-frames", "--s3-prefix", "case-7/"]).exit_code == 0
    assert runner.invoke(probe, []).exit_code == 0
    assert seen == [("s3", "desk-frames", "case-7/"), ("auto", "from-the-environment", None)]
    assert os.environ["VERIFY_S3_BUCKET"] == "from-the-environment" and "VERIFY_S3_PREFIX" not in os.environ
    assert {"--s3-bucket", "--s3-prefix"} <= {o for p in main.commands["push"].params for o in p.opts}
    assert {"--s3-bucket", "--s3-prefix"} <= {o for p in main.commands["sync"].params for o in p.opts}
