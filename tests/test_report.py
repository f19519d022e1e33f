"""Reports: self-contained, escaped, and true to the merge; hostile text never becomes markup."""

import json
import re
from html.parser import HTMLParser

import pytest

from verify.case import parse_case
from verify.media.frames import extract
from verify.errors import OptionError
from verify.pipeline import current_verdicts
from verify.report.build import CSP, build_report, md_escape, write_reports
from verify.urls import safe_url
from verify.workspace import Workspace
from tests.conftest import SEED_CASE

PAYLOADS = [
    "<script>alert(1)</script>",
    "</script><script>alert(2)</script>",
    "<img src=x onerror=alert(3)>",
    "<svg onload=alert(4)>",
    "<svg><script>alert(5)</script></svg>",
    "\"><script>alert(6)</script>",
    "'><img src=x onerror=alert(7)>",
    "javascript:alert(8)",
    "<a href=\"javascript:alert(9)\">x</a>",
    "<iframe src=\"javascript:alert(10)\"></iframe>",
    "<body onload=alert(11)>",
    "<details open ontoggle=alert(12)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(13)>",
    "<style>body{background:url(javascript:alert(14))}</style>",
    "<link rel=stylesheet href=http://evil.example/x.css>",
    "<meta http-equiv=refresh content=\"0;url=javascript:alert(16)\">",
    "<object data=\"javascript:alert(17)\"></object>",
    "<embed src=javascript:alert(18)>",
    "<form action=javascript:alert(19)><button>x</button></form>",
    "<input autofocus onfocus=alert(20)>",
    "<video><source onerror=alert(21)></video>",
    "<base href=\"http://evil.example/\">",
    "{{ 7*7 }}{% raw %}",
    "&lt;script&gt;alert(24)&lt;/script&gt;",
    "<scr<script>ipt>alert(25)</script>",
    "[click](javascript:alert(26))",
    "![x](http://evil.example/track.png)",
    "<!-- --><script>alert(28)</script>",
    "\u003cscript\u003ealert(29)\u003c/script\u003e",
    "| table | break |\n# heading\n<script>alert(30)</script>",
    "<x onclick=alert(31)>click</x>",
    "%3Cscript%3Ealert(32)%3C/script%3E<script>",
]


class _Checker(HTMLParser):
    """Collects every tag and attribute of a document."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v or "") for k, v in attrs)


ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "span", "code", "table", "thead",
                "tbody", "tr", "th", "td", "a", "img", "br", "b", "ul", "ol", "li", "div", "section", "figure", "figcaption"}


def _hostile_workspace(tmp_path, footage) -> Workspace:
    """A workspace whose case, provenance, reviewer names and notes are all attack strings."""
    payload = PAYLOADS[0]
    case_text = SEED_CASE.read_text().replace(
        "title: Spin Boldak–Chaman border crossing, July 2021", f"title: {json.dumps('Spin ' + PAYLOADS[2])}"
    ).replace("labels: [Pakistani border guards, Armed militants, Civilians]",
              f"labels: [Pakistani border guards, Armed militants, Civilians, {json.dumps(PAYLOADS[3])}]")
    case_path = tmp_path / "hostile.yaml"
    case_path.write_text(case_text)
    parse_case(case_text, "hostile.yaml")
    ws = Workspace.create(tmp_path / "ws", case_path)
    from verify.media.ingest import ingest

    with pytest.raises(OptionError):  # a URL with markup characters is refused by the ingest check, so try a clean one
        ingest(ws, [footage["flag_afghan_side"]], source_id="flag-hoisting-afghan-side",
               overrides={"uploader": payload, "platform": PAYLOADS[5], "url": "https://x.example/\"><script>"})
    [r] = ingest(ws, [footage["flag_afghan_side"]], source_id="flag-hoisting-afghan-side",
                 overrides={"uploader": payload, "platform": PAYLOADS[5]})
    assert r.ok, r.message
    extract(ws)
    video = ws.video(r.sha256)  # container tags come from the file: as hostile as any other text
    metadata = {**video.metadata, "creation_time": PAYLOADS[11], "encoder": PAYLOADS[10],
                "tags": {PAYLOADS[8]: PAYLOADS[9], "com.apple.quicktime.location.ISO6709": PAYLOADS[12]}}
    provenance = {**video.provenance, "posted_at": PAYLOADS[6]}  # ingest refuses it from the command line; a platform may not
    with ws.transaction() as db:
        db.execute("UPDATE videos SET metadata = ?, provenance = ? WHERE sha256 = ?",
                   (json.dumps(metadata), json.dumps(provenance), r.sha256))
    frames = ws.frames()
    rows = []
    for i, (frame, text) in enumerate(zip(frames * 20, PAYLOADS)):
        result = [
            {"type": "choices", "from_name": "claim_taliban_flag_raised", "to_name": "frame", "value": {"choices": ["Supports"]}},
            {"type": "textarea", "from_name": "notes", "to_name": "frame", "value": {"text": [text]}},
            {"type": "rectanglelabels", "from_name": "actors", "to_name": "frame",
             "value": {"x": 10, "y": 10, "width": 20, "height": 30, "rotation": 0, "rectanglelabels": [PAYLOADS[3]]}},
            {"type": "rectanglelabels", "from_name": "actors", "to_name": "frame",
             "value": {"x": 10, "y": 10, "width": 5, "height": 5, "rotation": 0, "rectanglelabels": [PAYLOADS[i]]}},
        ]
        if i % 5 == 4:  # "cannot review", with a reason that is no reason of the config's: kept, shown as text
            result.insert(0, {"type": "choices", "from_name": "cannot_review", "to_name": "frame",
                              "value": {"choices": [PAYLOADS[(i + 3) % len(PAYLOADS)]]}})
        rows.append((i + 1, 1, i + 1, frame.key, i, PAYLOADS[(i + 7) % len(PAYLOADS)], 0, 0, json.dumps(result), None, None, "exports/x.json"))
    with ws.transaction() as db:
        ws.set_meta("project_id", "1")
        db.executemany("INSERT INTO annotations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return ws


def test_no_hostile_string_survives_as_markup(tmp_path, footage):
    ws = _hostile_workspace(tmp_path, footage)
    paths = write_reports(ws, current_verdicts(ws))
    html = paths["html"].read_text()
    checker = _Checker()
    checker.feed(html)
    assert set(checker.tags) <= ALLOWED_TAGS, set(checker.tags) - ALLOWED_TAGS
    for tag, name, value in checker.attrs:
        assert not name.startswith("on"), (tag, name)
        if name == "href":
            assert value.startswith(("#", "http://", "https://")), value
        if name == "src":
            assert value.startswith("data:image/jpeg;base64,"), value[:40]
        if name == "style":  # only the legend's and box list's colour swatches, from verify's own palette
            assert re.fullmatch(r"background: #[0-9a-f]{6}", value), value
    assert checker.tags.count("meta") == 4  # charset, CSP, referrer, viewport: none from a payload
    assert ("meta", "content", CSP) in checker.attrs
    for payload in PAYLOADS:
        if any(c in payload for c in "<>\""):
            assert payload not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text, so the editor sees it

    md = paths["md"].read_text()
    assert "<" not in md.replace("<https://", "").replace("<http://", "")
    assert not re.search(r"(?<!\\)\]\((javascript:|http://evil)", md)  # no live Markdown link or image

    data = json.loads(paths["json"].read_text())
    assert data["schema"] == "verify.report/3"
    notes = [n["text"] for f in data["frames"] for n in f["notes"]]
    assert PAYLOADS[0] in notes  # JSON keeps the reviewer's text verbatim, as data
    reasons = {c["reason"] for f in data["frames"] for c in f["cannot_review"]}
    assert reasons and reasons <= set(PAYLOADS)


def test_only_http_links_are_links():
    assert safe_url("https://example.org/a?b=1") == "https://example.org/a?b=1"
    for bad in ("javascript:alert(1)", "data:text/html,<script>", "file:///etc/passwd", "//evil.example", "https://x/\"><b>", None, 3):
        assert safe_url(bad) is None


@pytest.mark.parametrize("text, expected", [
    ("<b>x</b>", "&lt;b&gt;x&lt;/b&gt;"),
    ("[a](javascript:x)", "\\[a\\](javascript:x)"),
    ("a | b", "a \\| b"),
    ("line\n# heading", "line \\# heading"),
    ("*bold* _it_ `code`", "\\*bold\\* \\_it\\_ \\`code\\`"),
])
def test_markdown_escaping(text, expected):
    assert md_escape(text) == expected


def test_report_of_an_unreviewed_workspace_says_so(ingested):
    extract(ingested)
    model = build_report(ingested, current_verdicts(ingested))
    assert {c["verdict"] for c in model["claims"]} == {"unreviewed"}
    assert model["summary"]["frames_reviewed"] == 0
    assert model["method"]["built_from_export"] is None
    html = write_reports(ingested, current_verdicts(ingested), ("html",))["html"].read_text()
    assert "No annotations have been pulled yet" in html
    sources = {s["source_id"]: s for s in model["sources"]}
    assert sources["flag-hoisting-pakistani-side"]["reupload_of"] == ["flag-hoisting-afghan-side"]
    assert all(len(s["sha256"]) == 64 for s in model["sources"])
