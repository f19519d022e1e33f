"""Hostile case files: every malformed one loads or fails with one line naming the file (and the key),
within bounds that stop hangs and memory bombs (limits, not speed targets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from verify.case import parse_case
from verify.cli import main
from verify.errors import CaseError

ROOT = Path(__file__).resolve().parent.parent
GOOD = textwrap.dedent("""\
    id: test-case
    title: A test case
    claims:
      - {id: flag_raised, text: A flag was raised.}
    labels:
      flags: {title: Flags, labels: [Taliban flag, Afghan flag]}
    sources:
      - {id: clip-a, title: Clip A, side: afghan, claims: [flag_raised], posted_at: POSTED}
    """)
# A hang guard, not a speed target: every file here loads or fails in well under a second (0.3 s for 10000 claims),
# the parser once took 40 s on one; 30 s lets a busy machine be slow and still catches such a blow-up or a hang.
LIMIT_S = 30.0
LIMIT_MB = 200  # … nor 2.5 GB


def _good(posted: str = "2021-07-14") -> str:
    return GOOD.replace("POSTED", posted)


def _laughs(where: str) -> str:
    """A billion-laughs document whose last alias lands in ``where`` (id, side or a colour)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    body = _good().replace("id: test-case", "id: *a9" if where == "id" else "id: test-case")
    body = body.replace("side: afghan", "side: *a9" if where == "side" else "side: afghan")
    body = body.replace("Taliban flag,", "{value: Taliban flag, color: *a9}," if where == "color" else "Taliban flag,")
    return "\n".join(lines) + "\n" + body


# name → bytes of the case file; expected: "ok" (loads) or a fragment of the one-line error
CASES: dict[str, tuple[bytes, str]] = {
    "non-utf8 bytes": (_good().replace("A test case", "Caf\xe9").encode("latin-1"), "not UTF-8 text"),
    "utf-16 with bom": (_good().encode("utf-16"), "encoded as UTF-16"),
    "utf-8 with bom": (b"\xef\xbb\xbf" + _good().encode(), "ok"),
    "20000 nested brackets": (b"id: " + b"[" * 20000, "not valid YAML"),
    "20000 nested braces": (b"id: " + b"{a: " * 20000, "not valid YAML"),
    "20000 nested dashes": (b"claims: " + b"- " * 20000 + b"x", "not valid YAML"),
    "600 nested block mappings": (("a:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 600))).encode(), "unknown key"),
    "aliases expanded in the id": (_laughs("id").encode(), "alias"),
    "aliases expanded in a side": (_laughs("side").encode(), "alias"),
    "aliases expanded in a colour": (_laughs("color").encode(), "alias"),
    "a merge key": (b"base: &b {id: x, text: y}\n" + _good().replace("{id: flag_raised, text: A flag was raised.}",
                                                                      "{<<: *b}").encode(), "alias"),
    "duplicate top-level key": ((_good() + "id: other-case\n").encode(), "duplicate key 'id'"),
    "duplicate key in a claim": (_good().replace("{id: flag_raised, text: A flag was raised.}",
                                                 "{id: flag_raised, text: A, text: B}").encode(), "duplicate key 'text'"),
    "date 2021-13-45T99:99": (_good('"2021-13-45T99:99"').encode(), "posted_at"),
    "date yesterday": (_good("yesterday").encode(), "posted_at"),
    "date 2021-02-30 unquoted": (_good("2021-02-30").encode(), "posted_at"),
    "date with a bad zone": (_good("2021-07-14T09:12+99:99").encode(), "posted_at"),
    "good date-time with Z": (_good("2021-07-14T09:12Z").encode(), "ok"),
    "good date-time with fraction": (_good("2021-07-14T09:12:01.123456789+04:30").encode(), "ok"),
    "integer of 5000 digits": ((_good() + "review: {reviewers_per_frame: " + "9" * 5000 + "}\n").encode(), "not usable YAML"),
    "nan interval": ((_good() + "frames: {max_interval_s: .nan}\n").encode(), "frames.max_interval_s"),
    "inf interval": ((_good() + "frames: {max_interval_s: .inf}\n").encode(), "frames.max_interval_s"),
    "10 MB file": (b"# " + b"x" * (10 << 20) + b"\n", "larger than"),
    "empty file": (b"", "top level"),
    "only a document marker": (b"---\n", "top level"),
    "a NUL byte": (_good().replace("A test case", "A\x00test").encode(), "not valid YAML"),
    "random bytes": (bytes(range(256)) * 8, "not UTF-8"),
    "python tag": (b"id: !!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
    "unhashable key": (b"? [a, b]\n: c\n", "not valid YAML"),
    "list inside a source's claims": (_good().replace("claims: [flag_raised]", "claims: [[flag_raised]]").encode(), "claims"),
    "list as a side": (_good().replace("side: afghan", "side: [afghan]").encode(), "side"),
    "100k-character id": (_good().replace("id: test-case", "id: " + "a" * 100_000).encode(), "not a valid id"),
    "escape codes in a title": (_good().replace("A test case", '"A \\e[31m test"').encode(), "control characters"),
    "newline and escape in a group name": (_good().replace("flags: {", '"fl\\nags\\e[2J": {').encode(), "labels."),
    "two documents": ((_good() + "---\nid: x\n").encode(), "not valid YAML"),
    "integer key": (b"1: x\n", "unknown key"),
    "10000 claims": (("id: big\ntitle: t\nlabels: {f: {labels: [a]}}\nclaims:\n"
                      + "".join(f"  - {{id: c{i}, text: t}}\n" for i in range(10000))).encode(), "ok"),
}
PATHS = ("a folder", "a fifo", "a symlink loop", "/dev/zero", "a missing file")

_PROBE = textwrap.dedent("""\
    import json, resource, sys, time
    from verify.case import load_case
    from verify.errors import CaseError
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {}
    for name, path in json.loads(sys.argv[1]).items():
        start = time.monotonic()
        try:
            load_case(path)
            result = "ok"
        except CaseError as exc:
            result = "CaseError: " + str(exc)
        except BaseException as exc:  # a traceback the user would see
            result = "CRASH: " + type(exc).__name__ + ": " + str(exc)[:200]
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
        out[name] = {"result": result, "seconds": time.monotonic() - start, "grown_mb": grown}
    print(json.dumps(out))
    """)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict:
    """Load every hostile case file in one fresh process, timing each and watching its peak memory."""
    folder = tmp_path_factory.mktemp("hostile-cases")
    files = {}
    for i, (name, (data, _)) in enumerate(CASES.items()):
        files[name] = folder / f"case{i}.yaml"
        files[name].write_bytes(data)
    (folder / "dir.yaml").mkdir()
    os.mkfifo(folder / "fifo.yaml")
    (folder / "loop.yaml").symlink_to(folder / "loop.yaml")
    files.update({"a folder": folder / "dir.yaml", "a fifo": folder / "fifo.yaml", "a symlink loop": folder / "loop.yaml",
                  "/dev/zero": Path("/dev/zero"), "a missing file": folder / "missing.yaml"})
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps({k: str(v) for k, v in files.items()})],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return {"files": files, "results": json.loads(done.stdout)}


@pytest.mark.parametrize("name", list(CASES) + list(PATHS))
def test_a_hostile_case_file_loads_or_fails_in_one_line_within_bounds(outcomes, name):
    got = outcomes["results"][name]
    path = str(outcomes["files"][name])
    expected = CASES[name][1] if name in CASES else "file"
    assert not got["result"].startswith("CRASH"), got
    if expected == "ok":
        assert got["result"] == "ok", got
    else:
        assert got["result"].startswith(f"CaseError: {path}: "), got
        assert expected in got["result"], got
        assert "\n" not in got["result"] and len(got["result"]) < 400, got
    assert got["seconds"] < LIMIT_S, got
    assert got["grown_mb"] < LIMIT_MB, got


def test_every_hostile_case_file_stays_within_the_memory_limit_all_told(outcomes):
    assert max(r["grown_mb"] for r in outcomes["results"].values()) < LIMIT_MB


@pytest.mark.parametrize("name", ["aliases expanded in the id", "duplicate top-level key", "non-utf8 bytes",
                                  "newline and escape in a group name", "20000 nested brackets"])
def test_init_with_a_hostile_case_file_exits_3_with_one_printable_line(outcomes, tmp_path, name):
    done = CliRunner().invoke(main, ["-w", str(tmp_path / "ws"), "init", str(outcomes["files"][name])])
    assert done.exit_code == 3, done.output
    assert done.output.count("\n") == 1 and done.output.startswith("verify: "), done.output
    assert "\x1b" not in done.output and "Traceback" not in done.output


def test_dates_stay_as_written_when_they_are_iso_8601():
    case = parse_case(_good("2021-07-14T09:12Z"))
    assert case.sources[0].posted_at == "2021-07-14T09:12Z"
    assert parse_case(_good("2021-07-14")).sources[0].posted_at == "2021-07-14"


def test_a_duplicate_key_names_its_line():
    with pytest.raises(CaseError, match=r"line 9, column 1\): duplicate key 'id'"):
        parse_case(_good() + "id: other-case\n", name="x.yaml")
