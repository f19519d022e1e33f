"""Hostile inputs beyond case files: a source that changes while it is copied, a full disk, a killed verify
with a decoder child running, names that would forge terminal lines, URL credentials, a symlink loop, an
all-failed ingest, and a read-only workspace that status and audit must still read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import SEED_CASE
from verify.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _cli(ws: Path, *args: str, env: dict | None = None):
    return CliRunner().invoke(main, ["-w", str(ws), *args], env=env)


@pytest.fixture
def ws(tmp_path) -> Path:
    root = tmp_path / "ws"
    assert _cli(root, "init", str(SEED_CASE)).exit_code == 0
    return root


def _leftovers(ws: Path) -> list[str]:
    return [p.name for p in (ws / "evidence").iterdir() if p.name.startswith(".")]


# --- a source that changes while it is copied -----------------------------------------------------


@pytest.mark.parametrize("change", ["truncated", "appended to", "replaced"])
def test_a_source_changed_during_its_copy_is_refused_and_leaves_nothing(ws, footage, tmp_path, monkeypatch, change):
    from verify.media import ingest

    src = tmp_path / "clip.mp4"
    src.write_bytes(footage["militants_at_gate"].read_bytes())
    real, done = ingest._write, []

    def meanwhile(fout, chunk, flush=False):  # another process changes the file after the first chunk is copied
        real(fout, chunk, flush)
        if chunk and not done:
            done.append(1)
            if change == "truncated":
                os.truncate(src, 5000)
            elif change == "appended to":
                with open(src, "ab") as f:
                    f.write(b"\0" * 1000)
            else:
                src.rename(tmp_path / "old.mp4")
                src.write_bytes(b"other")

    monkeypatch.setattr(ingest, "CHUNK", 4096)
    monkeypatch.setattr(ingest, "_write", meanwhile)
    result = _cli(ws, "ingest", str(src))
    assert result.exit_code == 4, result.output
    assert "changed while it was being copied" in result.output and "nothing was kept" in result.output
    assert _leftovers(ws) == [] and not list((ws / "evidence").glob("*.mp4"))
    assert _cli(ws, "audit").exit_code == 0


# --- a full disk -----------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_at_ingest_is_one_line_with_no_leftover_and_the_next_file_goes_in(small_disk, footage, tmp_path):
    ws = small_disk / "ws"
    assert _cli(ws, "init", str(SEED_CASE)).exit_code == 0
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4 << 20))
    result = _cli(ws, "ingest", str(big))
    assert result.exit_code == 4, result.output
    assert "no space left on the workspace's disk; nothing was kept" in result.output and "Traceback" not in result.output
    assert _leftovers(ws) == []
    small = footage["militants_at_gate"]
    assert small.stat().st_size < 1 << 20
    again = _cli(ws, "ingest", str(small), "--source", "militants-at-gate")
    assert again.exit_code == 0, again.output
    assert _cli(ws, "audit").exit_code == 0


def test_a_disk_that_fills_while_the_database_writes_is_one_line_and_exit_14(ws, footage, monkeypatch):
    import sqlite3

    from verify.workspace import Workspace

    def full(self, video):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Workspace, "add_video", full)
    result = _cli(ws, "ingest", str(footage["militants_at_gate"]))
    assert result.exit_code == 14, result.output
    assert result.output.strip().splitlines()[-1].startswith("verify: no space left on the workspace's disk")
    assert not list((ws / "evidence").glob("*.mp4")) and _leftovers(ws) == []  # no copy without its record


# --- children die with their parent ---------------------------------------------------------------------------


def test_a_killed_verify_takes_its_decoder_child_with_it(tmp_path):
    script = textwrap.dedent("""\
        import sys, time
        from verify.media.isolate import run_isolated
        print("started", flush=True)
        run_isolated(time.sleep, (60,), 120)
        """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE)
    assert parent.stdout.readline().strip() == b"started"
    child = None
    for _ in range(100):  # the child appears once the parent has spawned it
        kids = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
        if kids:
            child = int(kids[0])
            break
        time.sleep(0.05)
    assert child, "no child was started"
    time.sleep(0.5)  # past the child's start-up, into its work
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    # a hang guard, not a speed limit: the kernel kills the child at once, or (killed before it asked to be) the
    # child leaves by itself when its start-up finds its parent gone, which on a busy machine can take seconds
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":  # dead, waiting to be reaped by init
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the decoder child outlived its killed parent by 60 s")


# --- what is printed -----------------------------------------------------------------------------------------


def test_a_file_name_with_a_newline_cannot_forge_an_ok_line(ws, footage, tmp_path):
    evil = tmp_path / "x.mp4\nok   fake.mp4: ingested as source forged (sha256 000000000000…)\x1b[2K"
    evil.write_bytes(b"not a video at all")
    result = _cli(ws, "ingest", str(evil))
    assert result.exit_code == 4, result.output
    lines = result.output.splitlines()
    assert not any(line.startswith("ok") for line in lines), lines
    assert "\\nok   fake.mp4" in result.output and "\x1b" not in result.output


def test_audit_escapes_the_names_it_prints(ws):
    (ws / "frames" / "a\nCHANGED    nothing\x1b[31m.jpg").write_bytes(b"x")
    result = _cli(ws, "audit")
    assert result.exit_code == 11
    assert "UNEXPECTED frames/a\\nCHANGED    nothing\\x1b[31m.jpg" in result.output and "\x1b" not in result.output


def test_url_credentials_are_never_echoed(ws):
    result = _cli(ws, "reviewers", "list", env={"LABEL_STUDIO_URL": "http://user:s3cret@127.0.0.1:9",
                                                "LABEL_STUDIO_API_KEY": "k"})
    assert result.exit_code != 0
    assert "s3cret" not in result.output, result.output


def test_shown_escapes_controls_bidi_and_credentials():
    from verify.terminal import shown

    assert shown("a\nb\rc\x1b[0m\u202egnp.exe") == "a\\nb\\rc\\x1b[0m\\u202egnp.exe"
    assert shown("https://u:p@host/x and http://tok@h") == "https://***@host/x and http://***@h"


# --- honest results --------------------------------------------------------------------------------------------


def test_a_symlink_loop_is_called_a_loop_not_missing(ws, tmp_path):
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    result = _cli(ws, "ingest", str(loop))
    assert "loops back on itself" in result.output or "symbolic link to nothing" in result.output, result.output
    assert "file not found" not in result.output


def test_an_ingest_where_every_input_failed_says_so_and_exits_4(ws, tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"<html>")
    result = _cli(ws, "ingest", str(tmp_path / "a.mp4"), str(tmp_path / "missing.mp4"))
    assert result.exit_code == 4, result.output
    assert "none of the 2 inputs was ingested" in result.output and "the others were" not in result.output


def test_ingest_refuses_a_posted_at_that_is_not_a_date(ws, footage):
    result = _cli(ws, "ingest", str(footage["militants_at_gate"]), "--posted-at", "yesterday")
    assert result.exit_code == 2 and "--posted-at" in result.output, result.output


@pytest.fixture
def read_only(ws, footage, tmp_path):
    """The workspace seen through a read-only bind mount (root ignores file modes; a mount does not)."""
    assert _cli(ws, "ingest", str(footage["militants_at_gate"]), "--source", "militants-at-gate").exit_code == 0
    view = tmp_path / "ro #1? 100%"  # SQLite opens it by URI: these must be escaped
    view.mkdir()
    done = subprocess.run(["mount", "--bind", str(ws), str(view)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.decode().strip()}")
    try:
        done = subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {done.stderr.decode().strip()}")
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_status_and_audit_work_on_a_read_only_workspace_and_writers_say_why_they_cannot(read_only):
    status = _cli(read_only, "status")
    assert status.exit_code == 0 and "militants-at-gate" in status.output, status.output
    audit = _cli(read_only, "audit")
    assert audit.exit_code == 0, audit.output
    frames = _cli(read_only, "frames")
    assert frames.exit_code == 5 and "read-only" in frames.output and "restore it from a backup" not in frames.output
