"""The reviewer's task page in the real Label Studio, measured in Debian's Chromium as a reviewer opens it:
logged in through the login page from the label-stream link verify hands out, with the box tools, the picture
and the first question in view for portrait and landscape frames at laptop window sizes, the source's claims
asked first in plain words, and graphic footage blurred until the reviewer chooses to see it.

One server, one project (a portrait frame of a graphic source, then a landscape one) and one browser for the
module. Screenshots go to $VERIFY_SHOTS (default /tmp/notes/shots/)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from verify.case import load_case
from verify.labelstudio.client import LabelStudioClient
from verify.labelstudio.config import BOXES, build_config, instructions_html
from verify.labelstudio.connect import add_reviewer
from verify.labelstudio.project import build_task
from verify.labelstudio.project import label_stream_url
from verify.records import Context, Frame, Video
from tests import ui
from tests.conftest import SEED_CASE

pytestmark = pytest.mark.integration

WINDOWS = ((1366, 768), (1440, 900))
SHOTS = Path(os.environ.get("VERIFY_SHOTS", "/tmp/notes/shots"))
EMAIL, PASSWORD = "layout.reviewer@newsroom.example", "Layout-review-2021"
# (name, size, source): the portrait frame's source is marked graphic for this test
FRAMES = (("portrait", (1080, 1920), "civilians-refused"), ("landscape", (1920, 1080), "flag-hoisting-afghan-side"))

MEASURE = r"""() => {
  const W = innerWidth, H = innerHeight;
  const box = el => { const r = el.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
  const inView = r => r.top >= 0 && r.left >= 0 && r.bottom <= H && r.right <= W;
  const bar = document.querySelector('[data-testid=bottombar-submit-button]');
  const floor = bar ? bar.getBoundingClientRect().top : H;  // the bottom bar covers what lies under it
  const seen = r => inView(r) && r.bottom <= floor;
  const labels = [...document.querySelectorAll('.verify-tools .lsf-label')].map(l => [l.innerText, box(l)]);
  const claims = [...document.querySelectorAll('.verify-claim')]
    .map(c => ({text: c.querySelector('.ant-collapse-header-text').innerText, top: c.getBoundingClientRect().top,
                open: !!c.querySelector('.ant-collapse-content') && getComputedStyle(c.querySelector('.ant-collapse-content')).display !== 'none',
                choices: [...c.querySelectorAll('label.lsf-choice__checkbox')].map(box)}))
    .sort((a, b) => a.top - b.top);
  const picture = document.querySelector('.verify-picture .lsf-image');
  return {
    labels: labels.map(([t, r]) => [t.replace(/\s+\S$/, ''), seen(r)]),
    claims: claims.map(c => ({text: c.text, open: c.open, choicesSeen: c.choices.length > 0 && c.choices.every(seen)})),
    picture: box(picture), pictureSeen: seen(box(picture)),
    filter: getComputedStyle(document.querySelector('.verify-picture canvas')).filter,
    strip: [...document.querySelectorAll('.verify-context img')].filter(i => i.complete && i.naturalWidth)
      .map(i => ({width: i.naturalWidth, top: i.getBoundingClientRect().top, filter: getComputedStyle(i).filter}))[0] || null,
    text: document.querySelector('.lsf-main-view').innerText,
  };
}"""


@pytest.fixture(scope="module")
def stream(label_studio, tmp_path_factory):
    """The project (seed case config), its two tasks, a reviewer, and the label-stream link."""
    case = load_case(SEED_CASE)
    client = LabelStudioClient(label_studio["url"], label_studio["api_key"])
    client.whoami()
    folder = tmp_path_factory.mktemp("layout-frames")
    # Files are uploaded while the config shows one picture (Label Studio's direct upload refuses a second one),
    # then the config with the context strip is set before any task exists.
    project = client.create_project(title="Reviewer layout", description="layout test",
                                    label_config=build_config(case, context=False),
                                    instructions=instructions_html(case), maximum_annotations=2)
    link = label_stream_url(client.url, project)
    client.update_project(project, expert_instruction=instructions_html(case, stream_url=link))
    files = []
    for name, size, _ in FRAMES:  # a red block top left and a blue disc bottom right: where the picture lies is visible
        picture = Image.new("RGB", size, (90, 140, 60))
        draw = ImageDraw.Draw(picture)
        draw.rectangle([60, 60, 60 + size[0] // 3, 60 + size[1] // 4], fill=(200, 30, 30))
        draw.ellipse([size[0] * 2 // 3, size[1] * 3 // 4, size[0] - 60, size[1] - 60], fill=(30, 30, 200))
        picture.save(folder / f"{name}.jpg", quality=85)
        files.append((f"{name}.jpg", folder / f"{name}.jpg"))
        strip = Image.new("RGB", (7 * 180, 180 * size[1] // size[0] + 44), (32, 32, 32))  # seven pictures in a row
        for k in range(7):
            strip.paste(picture.resize((170, 170 * size[1] // size[0])), (k * 180, 0))
        strip.save(folder / f"{name}-strip.jpg", quality=85)
        files.append((f"{name}-strip.jpg", folder / f"{name}-strip.jpg"))
    urls = client.upload_files(project, files)
    client.update_project(project, label_config=build_config(case))
    tasks = []
    for i, (name, (width, height), source_id) in enumerate(FRAMES):
        provenance = {**case.source(source_id).provenance(), "graphic": name == "portrait"}
        video = Video(sha256=f"{i}" * 64, source_id=source_id, original_path=f"{name}.mp4", evidence=f"evidence/{name}.mp4",
                      size=1, ingested_at="2026-11-26T00:00:00Z", metadata={}, provenance=provenance)
        frame = Frame(key=f"{i}" * 32, video_sha256=video.sha256, t_ms=1000.0 * (i + 1), frame_index=i, shot=0,
                      file=f"frames/{name}.jpg", sha256="0" * 64, pixel_sha256="0" * 64, phash="0" * 16,
                      width=width, height=height, sharpness=1.0)
        strip = Context(frame_key=frame.key, key=f"context-{i}", file=f"frames/{name}-strip.jpg", sha256="0" * 64, width=1260,
                        height=180, maker={}, made_at="", pictures=[{"t_ms": frame.t_ms + d, "offset_ms": d, "pixel_sha256": "0"}
                                                                    for d in (-1000, -500, -250, 0, 500, 1000, 2000)])
        tasks.append(build_task(frame, video, urls[f"{name}.jpg"], "layout-test", strip, urls[f"{name}-strip.jpg"],
                                claims=[c.id for c in case.claims]))
    ids = client.import_tasks(project, tasks)
    add_reviewer(client, EMAIL, PASSWORD)
    return {"case": case, "client": client, "project": project, "link": link, "tasks": ids}


@pytest.fixture(scope="module")
def page(stream):
    """One browser for the module; the reviewer opens the link, logs in on the login page, lands in the stream."""
    from playwright.sync_api import sync_playwright

    from verify.report.build import CHROMIUM_FLAGS, chromium

    path = chromium()
    assert path, "Chromium is needed for this test: scripts/test.sh installs Debian's chromium"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=[a for a in CHROMIUM_FLAGS if a != "--headless"])
        tab = browser.new_page(viewport={"width": WINDOWS[0][0], "height": WINDOWS[0][1]})
        tab.goto(stream["link"])
        assert "/user/login/" in tab.url and "next=" in tab.url  # not logged in: sent to log in, and back after
        tab.fill("input[name=email]", EMAIL)
        tab.fill("input[name=password]", PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url(re.compile(r"/projects/\d+/data/?\?labeling=1"))
        close = tab.locator(".lsf-modal-ls_visible [aria-label='Close modal']")  # the instructions, shown on arrival
        close.wait_for()
        assert stream["link"] in tab.locator(".lsf-modal-ls_visible").inner_text()
        close.click()
        yield tab
        browser.close()


# Label Studio sizes the frame's canvas to its picture after the picture loads, and again after the window changes
# size. Settled: the picture and its canvas have a size, the canvas covers the picture as drawn, and nothing that
# MEASURE reads moved between two consecutive animation frames (three polls in a row, one per frame).
SETTLED = r"""() => {
  const rect = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height].map(Math.round); };
  const picture = document.querySelector('.verify-picture .lsf-image');
  const canvas = document.querySelector('.verify-picture canvas');
  const img = document.querySelector('.verify-picture img');
  if (!picture || !canvas || !img || !img.complete || !img.naturalWidth) return false;
  const [p, c, i] = [picture, canvas, img].map(rect);
  const sized = p[2] > 0 && p[3] > 0 && c[2] > 0 && c[3] > 0 && i[2] > 0 && i[3] > 0
    && Math.abs(c[2] - i[2]) <= 1 && Math.abs(c[3] - i[3]) <= 1;
  const moving = '.verify-tools .lsf-label, .verify-claim, .verify-context img, [data-testid=bottombar-submit-button]';
  const now = JSON.stringify([innerWidth, innerHeight, p, c, i, [...document.querySelectorAll(moving)].map(rect)]);
  const last = window.__verifyLayout || {};
  const same = sized && last.now === now;
  window.__verifyLayout = {now, polls: same ? last.polls + 1 : 0};
  return same && window.__verifyLayout.polls >= 2;
}"""


def _settled(page) -> None:
    """Wait (at most 30 s) until Label Studio's layout is SETTLED."""
    page.evaluate("() => { window.__verifyLayout = null; }")
    page.wait_for_function(SETTLED, polling="raf", timeout=30_000)


def _wait_for_picture(page) -> None:
    page.wait_for_function("() => [...document.querySelectorAll('.verify-picture img')].some(i => i.complete && i.naturalWidth > 0)")
    page.wait_for_function("() => [...document.querySelectorAll('.verify-context img')].some(i => i.complete && i.naturalWidth > 0)")
    _settled(page)


def _look(page, name: str) -> dict:
    """Measure the page at each window size (screenshots saved); return the measures by window."""
    seen = {}
    for width, height in WINDOWS:
        page.set_viewport_size({"width": width, "height": height})
        _settled(page)
        page.evaluate("() => document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
        seen[(width, height)] = page.evaluate(MEASURE)
        page.screenshot(path=str(SHOTS / f"layout-{name}-{width}x{height}.png"))
    return seen


def _check_layout(seen: dict, case, source_id: str) -> None:
    source_claims = [c.text for c in case.claims if c.id in case.source(source_id).claims]
    for window, m in seen.items():
        hidden = [text for text, visible in m["labels"] if not visible]
        assert len(m["labels"]) == len(case.label_values()) and not hidden, (window, hidden)  # every box tool in reach
        assert m["pictureSeen"], (window, m["picture"])  # the whole picture, above the bottom bar
        first = m["claims"][0]
        assert first["open"] and first["choicesSeen"], (window, first)  # the first question answerable as it is
        order = [c["text"] for c in m["claims"]]
        assert order[: len(source_claims)] == source_claims, (window, order)  # the source's claims first…
        assert all(c["open"] for c in m["claims"][: len(source_claims)])
        assert not any(c["open"] for c in m["claims"][len(source_claims):])  # …the others folded
        assert not [c.id for c in case.claims if c.id in m["text"]]  # plain words: no claim ids anywhere
        assert m["strip"] and m["strip"]["width"] == 1260, (window, m["strip"])  # the pictures around the frame…
        assert m["strip"]["top"] >= m["picture"]["bottom"] - 1, (window, m["strip"])  # …under it, not over the tools
        assert "Around this frame: 7 pictures" in m["text"]


def test_portrait_graphic_frame_has_tools_and_questions_in_view_and_is_blurred_until_revealed(stream, page):
    case = stream["case"]
    _wait_for_picture(page)
    assert page.locator(".verify-head").inner_text().startswith("Source: Civilians refused passage")
    seen = _look(page, "portrait-graphic")
    _check_layout(seen, case, "civilians-refused")
    assert all("blur" in m["filter"] and "grayscale" in m["filter"] for m in seen.values())  # blurred and grey…
    assert all("blur" in m["strip"]["filter"] and "grayscale" in m["strip"]["filter"] for m in seen.values())  # …its strip too
    assert "Graphic footage" in page.locator(".verify-warning").inner_text()

    page.locator(".verify-reveal .ant-collapse-header", has_text="Show the picture").click()  # the reviewer chooses to look
    page.wait_for_function("() => [...document.querySelectorAll('.verify-picture canvas, .verify-context img')]"
                           ".every(c => !getComputedStyle(c).filter.includes('blur'))")
    page.locator(".verify-tools .lsf-label", has_text="Civilians").first.click()  # boxes can still be drawn
    r = page.locator(".verify-picture .lsf-image").bounding_box()
    page.mouse.move(r["x"] + 0.2 * r["width"], r["y"] + 0.2 * r["height"])
    page.mouse.down()
    page.mouse.move(r["x"] + 0.5 * r["width"], r["y"] + 0.4 * r["height"], steps=5)
    page.mouse.up()
    first_claim = seen[WINDOWS[0]]["claims"][0]["text"]
    page.locator(".verify-claim", has_text=first_claim).locator("label.lsf-choice__checkbox", has_text="Supports").click()
    page.screenshot(path=str(SHOTS / "layout-portrait-revealed-with-box.png"))
    ui.submit_stored(page)
    page.wait_for_function("() => (document.querySelector('.verify-head') || {innerText: ''}).innerText.includes('Taliban flag hoisted')")

    [task] = [t for t in json.loads(stream["client"].export_json(stream["project"], [stream["tasks"][0]]))]
    [annotation] = task["annotations"]
    kinds = {r["from_name"]: r["value"] for r in annotation["result"]}
    assert kinds[BOXES]["rectanglelabels"] == ["Civilians"] and kinds[BOXES]["width"] > 10  # the one box control
    assert kinds["claim_civilians_refused_passage"]["choices"] == ["Supports"]


def test_landscape_frame_has_tools_and_questions_in_view_and_is_not_blurred(stream, page):
    case = stream["case"]
    _wait_for_picture(page)
    seen = _look(page, "landscape")
    _check_layout(seen, case, "flag-hoisting-afghan-side")
    assert not any("blur" in m["filter"] or "blur" in m["strip"]["filter"] for m in seen.values())
    assert not page.locator(".verify-reveal").is_visible() and not page.locator(".verify-warning").inner_text().strip()

    page.locator(".verify-head").click()  # focus outside any text box, then the letters Label Studio used to give answers
    for key in "etasdf":
        page.keyboard.press(key)
    assert page.locator(".verify-questions input:checked").count() == 0  # no answer given by a stray key

    # "cannot review" with a reason: the reviewer reads the reason, the annotation stores its key
    page.locator(".verify-cannot label.lsf-choice__checkbox", has_text="Not relevant to any claim").click()
    ui.submit_stored(page)
    [task] = json.loads(stream["client"].export_json(stream["project"], [stream["tasks"][1]]))
    [annotation] = task["annotations"]
    assert {r["from_name"]: r["value"] for r in annotation["result"]}["cannot_review"] == {"choices": ["not_relevant"]}
