"""Ingest from links, offline: a local web server plays the platforms.

Pages embed the fixture video the way real sites do (Open Graph og:video tags; a JSON-LD
VideoObject with author and upload date); yt-dlp's generic extractor reads both.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from verify.cli import main
from verify.media.ingest import ingest
from verify.media.links import parse_size, provenance_from_info, read_link_list, without_cookies
from tests.conftest import SEED_CASE

OG_PAGE = """<!doctype html><html><head><title>post</title>
<meta property="og:title" content="Militants at the gate">
<meta property="og:video" content="/media/clip.mp4"><meta property="og:video:type" content="video/mp4">
</head><body>a post</body></html>"""
LD_PAGE = """<!doctype html><html><head><title>A post</title>
<script type="application/ld+json">{"@context": "https://schema.org", "@type": "VideoObject",
 "name": "Civilians held at the Friendship Gate", "description": "Filmed at Chaman, 14 July 2021",
 "uploadDate": "2021-07-14T08:30:00+00:00", "contentUrl": "%(base)s/media/vertical.mp4",
 "thumbnailUrl": "%(base)s/media/thumb.jpg", "author": {"@type": "Person", "name": "border_watch"},
 "duration": "PT8S"}</script></head><body>a post</body></html>"""


class Site:
    """A tiny web server on 127.0.0.1 that records every request."""

    def __init__(self, footage):
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.requests: list[tuple[str, str, str]] = []  # path, method, cookie header
        site = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, body: bool):
                site.requests.append((self.path, self.command, self.headers.get("Cookie", "")))
                route = site.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404, "Not Found")
                    return
                kind, data = route
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    try:
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):  # yt-dlp may stop reading once it has what it needs
                        pass

            def do_GET(self):
                self._serve(True)

            def do_HEAD(self):
                self._serve(False)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.routes.update({
            "/media/clip.mp4": ("video/mp4", footage["militants_at_gate"].read_bytes()),
            "/media/vertical.mp4": ("video/mp4", footage["civilians_refused_vertical"].read_bytes()),
            "/posts/og": ("text/html", OG_PAGE.encode()),
            "/posts/ld": ("text/html", (LD_PAGE % {"base": self.base}).encode()),
            "/posts/text": ("text/html", b"<!doctype html><html><head><title>No video</title></head><body>Hello</body></html>"),
        })
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fetched(self, path: str) -> int:
        return sum(1 for p, method, _ in self.requests if p.startswith(path) and method == "GET")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def site(footage):
    s = Site(footage)
    yield s
    s.close()


def test_an_og_video_page_is_captured_with_its_provenance(workspace, site):
    [r] = ingest(workspace, [f"{site.base}/posts/og"], overrides={"claims": ("militants_beside_pakistani_guards",)})
    assert r.ok, r.message
    video = workspace.video(r.sha256)
    prov = video.provenance
    assert prov["url"] == f"{site.base}/posts/og" and prov["platform"] == "Generic"
    assert prov["title"] == "Militants at the gate" and prov["claims"] == ["militants_beside_pakistani_guards"]
    [cap] = workspace.captures(r.sha256)
    assert cap.url_given == f"{site.base}/posts/og" and cap.canonical_url == f"{site.base}/posts/og"
    assert cap.record["tools"]["yt-dlp"] and cap.record["platform_fields"]["extractor"] == "generic"
    archived = workspace.path(cap.info_file)
    assert json.loads(archived.read_text())["webpage_url"] == f"{site.base}/posts/og"
    assert not archived.stat().st_mode & 0o222  # read-only like the evidence
    assert workspace.path(video.evidence).read_bytes() == site.routes["/media/clip.mp4"][1]
    from verify.pipeline import current_verdicts
    from verify.report.build import build_report

    [source] = build_report(workspace, current_verdicts(workspace))["sources"]
    assert source["url"] == f"{site.base}/posts/og" and source["captures"][0]["info_file"] == cap.info_file


def test_a_json_ld_page_gives_author_upload_date_and_description(workspace, site):
    [r] = ingest(workspace, [f"{site.base}/posts/ld"])
    assert r.ok, r.message
    prov = workspace.video(r.sha256).provenance
    assert prov["uploader"] == "border_watch"
    assert prov["posted_at"] == "2021-07-14T08:30:00+00:00"
    assert prov["title"] == "Civilians held at the Friendship Gate"
    assert prov["source_id"] == "generic-ld"
    fields = workspace.captures(r.sha256)[0].record["platform_fields"]
    assert fields["description"] == "Filmed at Chaman, 14 July 2021" and fields["duration"] == 8


def test_a_link_already_captured_is_not_fetched_again_and_refresh_makes_a_second_capture(workspace, site):
    url = f"{site.base}/posts/og"
    [first] = ingest(workspace, [url], source_id="militants-at-gate")
    fetched = site.fetched("/media/clip.mp4") + site.fetched("/posts/og")
    [again] = ingest(workspace, [url])
    assert again.ok and again.known and "already captured" in again.message
    assert site.fetched("/media/clip.mp4") + site.fetched("/posts/og") == fetched  # nothing fetched
    [refreshed] = ingest(workspace, [url], refresh=True)
    assert refreshed.ok and "re-captured: the same bytes as before" in refreshed.message
    captures = workspace.captures(first.sha256)
    assert len(captures) == 2 and captures[0].info_file != captures[1].info_file
    assert len(workspace.videos()) == 1
    assert workspace.video(first.sha256).source_id == "militants-at-gate"  # the case source wins


def test_a_list_with_failures_completes_the_rest_and_exits_10(tmp_path, site):
    ws = str(tmp_path / "ws")
    assert CliRunner().invoke(main, ["-w", ws, "init", str(SEED_CASE)]).exit_code == 0
    links = tmp_path / "links.csv"
    links.write_text(
        "url,claims,side,notes\n"
        f"{site.base}/posts/missing,taliban_flag_raised,afghan,gone\n"
        f"{site.base}/posts/og,militants_beside_pakistani_guards,pakistani,gate\n"
        f"{site.base}/posts/text,,,\n"
        f"{site.base}/media/vertical.mp4,civilians_refused_passage,afghan,direct file\n"
    )
    result = CliRunner().invoke(main, ["-w", ws, "ingest", "--from", str(links)])
    assert result.exit_code == 10, result.output
    assert f"FAIL {site.base}/posts/missing: " in result.output and "404" in result.output
    assert f"FAIL {site.base}/posts/text: no video found on that page" in result.output
    assert "2 new, 0 already known, 2 failed, of 4" in result.output
    assert "Traceback" not in result.output
    status = json.loads(CliRunner().invoke(main, ["-w", ws, "status", "--json"]).output)
    assert len(status["videos"]) == 2
    from verify.workspace import Workspace

    sides = {v.provenance["side"] for v in Workspace.open(ws).videos()}
    assert sides == {"pakistani", "afghan"}


def test_a_download_over_max_size_is_refused(workspace, site):
    [r] = ingest(workspace, [f"{site.base}/media/clip.mp4"], max_bytes=1000)
    assert not r.ok and "--max-size" in r.message
    assert workspace.videos() == []


def test_cookies_are_used_but_never_kept(workspace, site, tmp_path):
    secret = "sessionid-s3cr3t-value"
    host = "127.0.0.1"
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(f"# Netscape HTTP Cookie File\n{host}\tFALSE\t/\tFALSE\t4102444800\tsession\t{secret}\n")
    [r] = ingest(workspace, [f"{site.base}/posts/ld"], cookies=cookies, refresh=True)
    assert r.ok, r.message
    assert any(secret in cookie for _, _, cookie in site.requests)  # yt-dlp sent it
    for path in workspace.root.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_file_with_a_yt_dlp_sidecar_gets_its_provenance_without_a_download(workspace, footage, tmp_path):
    video = tmp_path / "post.mp4"
    video.write_bytes(footage["flag_afghan_side"].read_bytes())
    info = {"id": "98765", "extractor": "twitter", "extractor_key": "Twitter", "webpage_url": "https://x.com/a/status/98765",
            "uploader": "Some Account", "uploader_id": "someaccount", "timestamp": 1626251400, "title": "Flag at the gate",
            "formats": [{"url": "https://video.example/1.mp4", "cookies": "auth=abc", "http_headers": {"Cookie": "auth=abc"}}]}
    video.with_suffix(".info.json").write_text(json.dumps(info))
    [r] = ingest(workspace, [video])
    assert r.ok, r.message
    prov = workspace.video(r.sha256).provenance
    assert prov["url"] == "https://x.com/a/status/98765" and prov["platform"] == "Twitter"
    assert prov["uploader"] == "Some Account" and prov["posted_at"] == "2021-07-14T08:30:00+00:00"
    assert prov["source_id"] == "twitter-98765"
    archived = workspace.path(workspace.captures(r.sha256)[0].info_file).read_text()
    assert "auth=abc" not in archived


@pytest.mark.parametrize("text, size", [("500M", 500 * 2**20), ("2G", 2 * 2**30), ("800k", 800 * 1024), ("1024", 1024)])
def test_sizes(text, size):
    assert parse_size(text) == size


def test_link_lists_read_plain_lines_and_csv(tmp_path):
    plain = tmp_path / "links.txt"
    plain.write_text("# posts\nhttps://a.example/1\n\nhttps://b.example/2\n")
    assert [i.url for i in read_link_list(plain)] == ["https://a.example/1", "https://b.example/2"]
    table = tmp_path / "links.csv"
    table.write_text("URL,Claims,Side\nhttps://a.example/1,taliban_flag_raised;afghan_flag_removed,afghan\n")
    [item] = read_link_list(table)
    assert item.claims == ("taliban_flag_raised", "afghan_flag_removed") and item.side == "afghan"


def test_provenance_mapping_and_cookie_stripping_are_pure():
    assert provenance_from_info({"upload_date": "20210714", "webpage_url": "javascript:x"}) == {
        "url": None, "platform": None, "uploader": None, "posted_at": "2021-07-14", "title": None}
    assert without_cookies({"a": [{"cookies": "x", "http_headers": {"Cookie": "y", "Accept": "z"}}]}) == {
        "a": [{"http_headers": {"Accept": "z"}}]}
