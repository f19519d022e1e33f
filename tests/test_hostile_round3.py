"""Hostile input, round three (issue 27): bytes that are not UTF-8 in a file name or an option, credentials planted
in every path a URL takes (option, link, case file, info JSON, time-stamp authority, Label Studio, --debug),
control characters from reviewers and options through the whole pipeline into every output format, and location
texts that used to be read wrongly."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import SEED_CASE
from tests.test_hostile_inputs import _cli, ws  # noqa: F401 (ws: a fixture, a workspace made by `verify init`)
from tests.test_timestamps import _Authority

ROOT = Path(__file__).resolve().parent.parent
VERIFY = Path(sys.executable).parent / "verify"
# what no output may carry raw: C0 (but tab, newline, carriage return), DEL, C1, bidi marks and overrides, surrogates
RAW = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                 "\ud800-\udfff]")



def _every_byte(folder: Path) -> bytes:
    """Every file under ``folder`` (verify.db, its journal, the log, reports, evidence info), concatenated."""
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink())


# --- bytes that are not UTF-8 ----------------------------------------------------------------------------------


def test_a_file_name_that_is_not_utf8_is_one_line_stored_losslessly_and_the_batch_goes_on(ws, footage, tmp_path):
    # argv reaches Python as surrogateescape: b"clip\xff.mp4" is "clip\udcff.mp4"
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/clip\xff.mp4"))
    bad.write_bytes(footage["militants_at_gate"].read_bytes())
    junk = Path(os.fsdecode(bytes(tmp_path) + b"/junk\x9b.mp4"))
    junk.write_bytes(b"<html>not a video</html>")
    good = tmp_path / "good.mp4"
    good.write_bytes(footage["flag_afghan_side"].read_bytes())
    result = _cli(ws, "ingest", str(bad), str(junk), str(good))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output and "UnicodeEncodeError" not in result.output
    assert result.exit_code == 10, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("ok   ") and "clip\\xff.mp4: ingested" in line for line in lines), lines
    assert any(line.startswith("FAIL ") and "junk\\x9b.mp4" in line for line in lines), lines
    assert any(line.startswith("ok   ") and "good.mp4: ingested" in line for line in lines), lines
    assert "2 new, 0 already known, 1 failed, of 3" in result.output
    db = sqlite3.connect(ws / "verify.db")
    [(original, metadata)] = db.execute("SELECT original_path, metadata FROM videos WHERE original_path LIKE '%clip%'")
    assert original.endswith("/clip\\xff.mp4")
    assert bytes.fromhex(json.loads(metadata)["original_path_bytes"]) == os.fsencode(bad.resolve())  # lossless
    assert "\\xff" in (ws / "custody.log").read_text() and _cli(ws, "audit").exit_code == 0
    status = _cli(ws, "status")
    assert status.exit_code == 0 and RAW.search(status.output) is None


@pytest.mark.parametrize("option", ["--platform", "--uploader", "--posted-at", "--claim", "--side"])
@pytest.mark.parametrize("value", ["P\udc9b", "u\udcff"])
def test_an_option_that_is_not_utf8_is_refused_in_one_line_exit_2(ws, footage, option, value):
    result = _cli(ws, "ingest", str(footage["militants_at_gate"]), option, value)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output and option in result.output and RAW.search(result.output) is None
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not list((ws / "evidence").glob("*.mp4"))


def test_an_info_json_with_lone_surrogates_and_controls_is_stored_escaped(ws, footage, tmp_path):
    clip = tmp_path / "post.mp4"
    clip.write_bytes(footage["militants_at_gate"].read_bytes())
    (tmp_path / "post.info.json").write_text(json.dumps({
        "id": "1", "extractor": "generic", "webpage_url": "https://example.org/p/1", "uploader": "up\udcff\x1b[2J",
        "title": "t\ud800\x07"}))
    result = _cli(ws, "ingest", str(clip))
    assert result.exit_code == 0, (result.output, result.exception)
    [(provenance,)] = sqlite3.connect(ws / "verify.db").execute("SELECT provenance FROM videos")
    assert json.loads(provenance)["uploader"] == "up\\xff\x1b[2J"  # kept, as text UTF-8 can hold
    assert _cli(ws, "audit").exit_code == 0


# --- credentials ------------------------------------------------------------------------------------------------


def test_url_logins_are_taken_out_before_anything_is_stored_or_printed(tmp_path, footage, caplog):
    """One secret per path a URL takes; then the workspace (every byte, verify.db included), every report and
    all output are searched for each of them."""
    ws = tmp_path / "ws"
    outputs = []

    def run(*args, env=None):
        result = _cli(ws, *args, env=env)
        outputs.append(result.output + (repr(result.exception) if not isinstance(result.exception, SystemExit) else ""))
        return result

    # a case file whose source URL carries a login: refused in one line, nothing stored
    case = tmp_path / "case.yaml"
    case.write_text(SEED_CASE.read_text().replace("url: null", "url: https://caseuser:CASESECRET@example.org/p/2", 1))
    assert "CASESECRET" in case.read_text()
    refused = run("init", str(case))
    assert refused.exit_code == 3 and "holds a login" in refused.output, refused.output
    assert len(refused.output.strip().splitlines()) == 1
    # the time-stamp authority: stored without its login, with a one-line notice
    made = run("init", str(SEED_CASE), "--tsa", "http://tsauser:TSASECRET@127.0.0.1:9/tsr")
    assert made.exit_code == 0 and "notice: the login (user:password@) in --tsa" in made.output, made.output
    assert "trusted timestamps: http://127.0.0.1:9/tsr" in made.output
    # --url of an ingested file
    one = run("ingest", str(footage["militants_at_gate"]), "--source", "militants-at-gate",
              "--url", "https://urluser:URLSECRET@example.org/v/1")
    assert one.exit_code == 0, one.output
    assert "the login (user:password@) in --url was taken out" in caplog.text
    # a yt-dlp info JSON whose URLs carry a login
    clip = tmp_path / "post.mp4"
    clip.write_bytes(footage["flag_afghan_side"].read_bytes())
    (tmp_path / "post.info.json").write_text(json.dumps({
        "id": "7", "extractor": "generic", "webpage_url": "https://infouser:INFOSECRET@example.org/p/7",
        "original_url": "http://infouser:INFOSECRET@example.org/p/7", "description": "see https://u:INFOSECRET@x.org"}))
    two = run("ingest", str(clip))
    assert two.exit_code == 0, two.output
    # a link to capture: its login is dropped before yt-dlp sees it (the capture itself fails: nothing listens)
    three = run("ingest", "http://linkuser:LINKSECRET@127.0.0.1:9/v.mp4")
    assert three.exit_code == 4 and "FAIL http://127.0.0.1:9/v.mp4" in three.output, three.output
    # Label Studio's URL: a token is its login; the URL's is dropped, never stored or printed
    four = run("push", "--url", "http://lsuser:LSSECRET@127.0.0.1:9", env={"LABEL_STUDIO_API_KEY": "k" * 20})
    assert four.exit_code != 0 and "notice: the login (user:password@) in --url" in four.output, four.output
    assert run("merge").exit_code == 0
    report = run("report")
    assert report.exit_code == 0, report.output
    model = json.loads((ws / "reports" / "report.json").read_text())
    urls = {s["source_id"]: s["url"] for s in model["sources"]}
    assert urls["militants-at-gate"] == "https://example.org/v/1", urls
    assert "https://example.org/p/7" in urls.values(), urls
    stored = _every_byte(ws) + "".join(outputs).encode() + caplog.text.encode()
    for secret in ("CASESECRET", "TSASECRET", "URLSECRET", "INFOSECRET", "LINKSECRET", "LSSECRET"):
        assert secret.encode() not in stored, secret
        assert secret.encode("utf-16-le") not in stored, secret


def test_debug_tracebacks_redact_url_logins_and_tokens(tmp_path):
    root = tmp_path / "ws"
    assert _cli(root, "init", str(SEED_CASE)).exit_code == 0
    key = tmp_path / "key"
    key.write_text("FILETOKEN-0123456789")
    env = {**os.environ, "LABEL_STUDIO_API_KEY": "", "AWS_SECRET_ACCESS_KEY": "AWSSECRET-abcdef"}
    done = subprocess.run([str(VERIFY), "--debug", "-w", str(root), "push", "--url", "http://user:PASSWORD@127.0.0.1:9",
                           "--api-key-file", str(key)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0 and "Traceback" in done.stderr, done.stderr
    assert "PASSWORD" not in done.stdout + done.stderr and "FILETOKEN" not in done.stdout + done.stderr


def test_the_traceback_hook_redacts_whatever_the_exception_says(capsys, monkeypatch):
    from verify import cli

    monkeypatch.setenv("VERIFY_TSA_PASSWORD", "TSAPASS-xyz")
    monkeypatch.setattr(cli, "_SECRETS", ["FILETOKEN-42"])
    try:
        raise RuntimeError("http://me:PASSWORD@host/x failed with FILETOKEN-42 and TSAPASS-xyz")
    except RuntimeError as exc:
        cli._redacting_hook(type(exc), exc, exc.__traceback__)
    err = capsys.readouterr().err
    assert "RuntimeError: http://***@host/x failed with *** and ***" in err
    assert "PASSWORD" not in err and "FILETOKEN" not in err and "TSAPASS" not in err


class _LockedAuthority(_Authority):
    """A time-stamp authority behind HTTP Basic authentication (tests/test_timestamps.py's, with a login)."""

    login = "tsa-user:TSA-PASSWORD-9"
    seen: list = []

    def do_POST(self) -> None:  # noqa: N802
        query = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        given = self.headers.get("Authorization")
        type(self).seen.append(given)
        if given != "Basic " + base64.b64encode(self.login.encode()).decode():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="tsa"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.answer(query)


@pytest.fixture(scope="module")
def locked_authority(tmp_path_factory):
    from tests.test_timestamps import make_authority

    folder = make_authority(tmp_path_factory.mktemp("locked-tsa"))
    handler = type("Locked", (_LockedAuthority,), {"folder": folder, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/tsr", handler
    server.shutdown()


@pytest.mark.parametrize("how", ["environment", "netrc"])
def test_an_authority_that_needs_a_login_gets_it_from_the_environment_or_netrc_never_stored(
        locked_authority, tmp_path, how, monkeypatch):
    url, handler = locked_authority
    user, password = handler.login.split(":")
    monkeypatch.delenv("VERIFY_TSA_USER", raising=False)
    monkeypatch.delenv("VERIFY_TSA_PASSWORD", raising=False)
    if how == "environment":
        monkeypatch.setenv("VERIFY_TSA_USER", user)
        monkeypatch.setenv("VERIFY_TSA_PASSWORD", password)
        monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    else:
        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine 127.0.0.1 login {user} password {password}\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
    ws = tmp_path / "ws"
    made = _cli(ws, "init", str(SEED_CASE), "--tsa", url)
    assert made.exit_code == 0, made.output
    stamped = list((ws / "timestamps").glob("*.tsr"))
    assert stamped, (made.output, handler.seen)
    assert password.encode() not in _every_byte(ws) and password not in made.output


def test_without_a_login_the_locked_authority_is_a_warning_not_a_failure(locked_authority, tmp_path, monkeypatch):
    url, _ = locked_authority
    monkeypatch.delenv("VERIFY_TSA_USER", raising=False)
    monkeypatch.delenv("VERIFY_TSA_PASSWORD", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    made = _cli(tmp_path / "ws", "init", str(SEED_CASE), "--tsa", url)
    assert made.exit_code == 0 and not list((tmp_path / "ws").glob("timestamps/*.tsr"))


# --- control characters in every output ---------------------------------------------------------------------------


EVIL_TEXT = "\x1b[2J\x1b]0;PWNED\x07 \u202egnp.exe \x9b31m"
EVIL_REVIEWER = "eve\x1b[31m\x07@desk.example"
EVIL_UPLOADER = "@evil\x1b[2J\x9b\u2066"


@pytest.fixture(scope="module")
def hostile_reports(footage, tmp_path_factory):
    """One video, ingested with a hostile --uploader, reviewed through the (fake) server by a reviewer whose name
    holds ESC and BEL, who types ESC sequences as a location and as a cue; then sync writes every format."""
    from tests.fake_labelstudio import FakeLabelStudio
    from tests.test_places_report import location
    from verify import pipeline
    from verify.geodesy import Point, destination
    from verify.media.frames import extract
    from verify.media.ingest import ingest

    ws = pipeline.init(tmp_path_factory.mktemp("hostile") / "ws", SEED_CASE)
    [done] = ingest(ws, [footage["militants_at_gate"]], source_id="militants-at-gate",
                    overrides={"uploader": EVIL_UPLOADER, "platform": "Tele\x1bgram"})
    assert done.ok, done.message
    extract(ws)
    server = FakeLabelStudio()
    server.whoami()
    project = pipeline.sync(ws, server, None, images="upload").push.project_id
    tasks = sorted(server.tasks_of(project), key=lambda t: t["data"]["t_ms"])
    server.add_reviewer(EVIL_REVIEWER, "eve-pass-2031x")
    server.add_reviewer("ana@desk.example", "ana-pass-2031x")
    near = destination(Point(30.92222, 66.44472), 45, 120)
    server.annotate(project, tasks[0]["id"], EVIL_REVIEWER,
                    location(f"{near.lat:.6f}, {near.lon:.6f}", cues=("Gate structure", "Sign\x1b[5m\x07\u202e")))
    server.annotate(project, tasks[0]["id"], "ana@desk.example", location(f"{near.lat:.6f}, {near.lon:.6f}"))
    server.annotate(project, tasks[-1]["id"], EVIL_REVIEWER, location(EVIL_TEXT))
    second = pipeline.sync(ws, server, None, images="upload")
    return {fmt: path for fmt, (path, _) in second.reports.written.items()}, second


@pytest.mark.parametrize("fmt", ["md", "html", "json", "geojson", "kml"])
def test_no_control_character_reaches_any_output_format(hostile_reports, fmt):
    written, _ = hostile_reports
    text = written[fmt].read_text(encoding="utf-8")
    found = RAW.search(text)
    assert found is None, (fmt, repr(text[max(found.start() - 80, 0):found.end() + 40]))
    # the hostile values are there, written out, not dropped
    assert "PWNED" in text or fmt in ("geojson", "kml")
    assert "eve" in text


def test_json_keeps_the_hostile_values_exactly_as_u_escapes(hostile_reports):
    written, _ = hostile_reports
    model = json.loads(written["json"].read_text())
    [source] = model["sources"]
    assert source["uploader"] == EVIL_UPLOADER  # the value itself, escaped only in the file
    assert any(u["text"] == EVIL_TEXT.strip() for u in model["locations"]["unparsed"])
    assert "\\u001b" in written["json"].read_text() and "\\u009b" in written["json"].read_text()


def test_kml_and_geojson_parse_and_carry_the_hostile_names(hostile_reports):
    written, _ = hostile_reports
    root = ET.fromstring(written["kml"].read_bytes())  # a real XML parser: well-formed
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    names = [n.text for n in root.iterfind(".//k:Placemark/k:name", ns)]
    assert any("eve\\x1b[31m\\x07@desk.example" in (n or "") for n in names), names
    descriptions = " ".join(d.text or "" for d in root.iterfind(".//k:description", ns))
    assert "Sign\\x1b[5m\\x07\\u202e" in descriptions
    data = json.loads(written["geojson"].read_text())
    reviewers = [f["properties"].get("reviewer") for f in data["features"]]
    assert EVIL_REVIEWER in reviewers


def test_the_html_figure_of_a_hostile_place_is_well_formed(hostile_reports):
    written, _ = hostile_reports
    html = written["html"].read_text()
    for uri in re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html):
        ET.fromstring(base64.b64decode(uri))


def test_md_escape_and_the_templates_write_controls_out():
    from verify.report.build import _environment, md_escape

    assert md_escape("a\x1b[2J\x07b\u202e") == "a\\\\x1b\\[2J\\\\x07b\\\\u202e"
    html = _environment().from_string("{{ x }} {{ y|safe }}").render(x="<b>\x1b\x9b", y="<i>\x07</i>")
    assert html == "&lt;b&gt;\\x1b\\x9b <i>\\x07</i>"
    md = _environment(markdown=True).from_string("{{ x }}").render(x="\x1b[2J")
    assert md == "\\x1b[2J"


def test_pull_prints_the_hostile_location_escaped(hostile_reports):
    from verify.terminal import pulled

    _, done = hostile_reports
    lines = pulled(done.pull, False)
    assert all(RAW.search(line) is None for line in lines)


# --- location text read wrongly -----------------------------------------------------------------------------------


REFUSED = {
    # two numbers run together, or signs and marks that make a number out of something else
    "30.9.5": "more than one decimal point",
    "1.2.3": "more than one decimal point",
    "30.92.66": "more than one decimal point",
    "30.92.66.44": "more than one decimal point",
    "30-66": "sign right after a number",
    "30+66": "sign right after a number",
    "30.5-66.4": "sign right after a number",
    "30°°, 66": "written twice",
    "30°55′20″″N 66°26′41″E": "written twice",
    "30.9, 66.4.4": "more than one decimal point",
    "30..9, 66": "not coordinates",
    "--30, 66": "not coordinates",
    "30, 66, 12": "expected two values",
    "30": "expected two values",
    "N30 N66": "both values are latitudes",
    "30N 66": "designator, found 1",
    "91, 181": "out of range",
    "30.9, 66.4\x1b[2J": "not coordinates",
    "30.9\u200b, 66.4": "not coordinates",
    "30.9, 66.4; DROP TABLE": "not coordinates",
    "<script>alert(1)</script>": "not coordinates",
    "' OR 1=1 --": "not coordinates",
    "../../etc/passwd": "not coordinates",
    "%00": "not coordinates",
    "NaN, NaN": "not coordinates",
    "inf, 66": "not coordinates",
    "1e5, 66": "not coordinates",
    "0x1E, 66": "not coordinates",
    "٣٠٫٩, ٦٦٫٤": "not coordinates",
    # links: wrong hosts, trailing text, other schemes, links inside other text
    "https://google.com.ev/maps/@30.92,66.44,15z": "a link to google.com.ev",
    "https://google.zzz/maps/@30.92,66.44,15z": "a link to google.zzz",
    "https://www.google.evil.com/maps/@30.92,66.44,15z": "a link to google.evil.com",
    "https://maps.google.com.evil.net/?q=30.92,66.44": "a link to maps.google.com.evil.net",
    "https://google.com@evil.example/maps/@30.92,66.44,15z": "a link to evil.example",
    "https://www.openstreetmap.org.evil.example/?mlat=30.9&mlon=66.4": "a link to openstreetmap.org.evil.example",
    "https://maps.apple.com.evil/?ll=30.9,66.4": "a link to maps.apple.com.evil",
    "https://www.google.com/maps?q=30.92,66.44,<script>": "text after the coordinates",
    "https://www.google.com/maps?q=30.92,66.44,15": "text after the coordinates",
    "geo:30.92,66.44,<script>": "text after the coordinates",
    "geo:30.92,66.44,100,5": "text after the coordinates",
    "geo:30.92,66.44;crs=moon-2011": "another coordinate system",
    "https://www.google.com/maps/@30.9.5,66.44,15z": "more than one decimal point",
    "https://www.openstreetmap.org/?mlat=30.9.5&mlon=66.4": "more than one decimal point",
    "30.9, 66.4 see http://x": "a link (http://…) inside other text",
    "${jndi:ldap://x}": "a link (ldap://…) inside other text",
    "see https://www.google.com/maps/@30.92,66.44,15z": "a link (https://…) inside other text",
    "https://www.google.com/maps/@30.92,66.44,15z and more": "other text after it",
    "javascript://alert(1)": "a javascript:// link",
    "ftp://maps.google.com/?q=30.9,66.4": "a ftp:// link",
    "https://google.com:99999/maps/@30.92,66.44,15z": "malformed",
    "https://evil.example/go/abc": "a link to evil.example",
}


@pytest.mark.parametrize("text", list(REFUSED))
def test_a_hostile_location_text_is_refused_and_says_why(text):
    from verify.verdicts.places import CoordinateError, parse_coordinates

    with pytest.raises(CoordinateError) as refused:
        parse_coordinates(text)
    assert REFUSED[text] in str(refused.value), str(refused.value)
    assert "a : link" not in str(refused.value)


@pytest.mark.parametrize("text, lat, lon", [
    ("30.9222, 66.4447", 30.9222, 66.4447),
    ("30 -66", 30, -66),
    ("30, -66", 30, -66),
    ("-30.5 -66.4", -30.5, -66.4),
    ("30,9222 66,4447", 30.9222, 66.4447),
    ("30°55′20″N 66°26′41″E", 30.922222, 66.444722),
    ("geo:30.92,66.44", 30.92, 66.44),
    ("geo:30.92,66.44,1200;u=35", 30.92, 66.44),
    ("https://www.google.com/maps/@30.92,66.44,15z", 30.92, 66.44),
    ("https://www.google.co.uk/maps/place/30.92,66.44", 30.92, 66.44),
    ("https://www.google.com.af/maps?q=30.92,66.44", 30.92, 66.44),
    ("https://maps.google.de/?q=30.92,66.44", 30.92, 66.44),
    ("https://www.openstreetmap.org/?mlat=30.92&mlon=66.44#map=17/30.92/66.44", 30.92, 66.44),
    ("https://maps.apple.com/?ll=30.92,66.44", 30.92, 66.44),
])
def test_the_forms_people_write_still_read(text, lat, lon):
    from verify.verdicts.places import parse_coordinates

    point = parse_coordinates(text).point
    assert point.lat == pytest.approx(lat, abs=1e-5) and point.lon == pytest.approx(lon, abs=1e-5)


def test_read_answer_keeps_the_reason_of_a_refused_text():
    from verify.verdicts.places import read_answer

    answer = read_answer("ana", "k", "30.9.5", "exact", None, [], False)
    assert answer.point is None and "more than one decimal point" in answer.error
