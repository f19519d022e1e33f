"""The HTML report looked at as a person would: headless Chromium renders it, shows the claims
and the images, and runs no script, even with hostile text in every field."""

import pytest

from verify.pipeline import current_verdicts
from verify.report.build import CHROMIUM_FLAGS, chromium, write_reports
from tests.test_report import _hostile_workspace


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = chromium()
    assert path, "Chromium is needed for this test: scripts/test.sh installs Debian's chromium"
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, args=[a for a in CHROMIUM_FLAGS if a != "--headless"])
        yield launched
        launched.close()


def test_report_renders_in_chromium_with_its_images_and_no_script(tmp_path, footage, browser):
    ws = _hostile_workspace(tmp_path, footage)
    paths = write_reports(ws, current_verdicts(ws), ("html", "pdf"))
    page = browser.new_page()
    dialogs, errors = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(paths["html"].as_uri())
    page.wait_for_load_state("load")
    assert page.title().startswith("Verification report: Spin")
    assert page.locator("table.claims tbody tr").count() == 5
    images = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth])")
    assert images and all(complete and width > 0 for complete, width in images), images
    assert page.evaluate("document.scripts.length") == 0
    assert page.evaluate("typeof window.alert") == "function"  # nothing replaced it
    page.mouse.click(5, 5)
    page.wait_for_timeout(300)
    assert dialogs == [] and errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []  # no remote resources
    assert "<script>alert(1)</script>" in page.inner_text("body")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-"


# --- layout, measured as an editor's browser lays it out -----------------------------------------

LAYOUT_JS = r"""() => {
  const words = [], cells = [], spill = [], overlaps = [];
  const inside = (a, b) => a.left >= b.left - 1 && a.right <= b.right + 1 && a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
  for (const cell of document.querySelectorAll('td, th')) {
    const box = cell.getBoundingClientRect();
    const style = getComputedStyle(cell);
    const room = box.width - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    cells.push(box.width);
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node; (node = walker.nextNode());) {
      if (node.parentElement.closest('.hash')) continue;  // hashes are meant to break anywhere
      for (const m of node.data.matchAll(/[^\s\-\u2010-\u2014\/]+/g)) {  // a line may break after a hyphen or slash
        const range = document.createRange();
        range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
        const rects = [...range.getClientRects()].filter(r => r.width > 0);
        const width = rects.reduce((s, r) => s + r.width, 0);
        if (rects.length > 1 || width > room + 1) words.push([m[0], rects.length, Math.round(width), Math.round(room)]);
      }
    }
  }
  for (const card of document.querySelectorAll('.frame, .gallery figure, table')) {
    const box = card.getBoundingClientRect();
    for (const el of card.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (r.width && r.height && !inside(r, box)) spill.push([card.className || card.tagName, el.tagName, el.className]);
    }
    if (card.scrollWidth > card.clientWidth + 1) spill.push([card.className || card.tagName, 'scrolls', card.scrollWidth]);
  }
  for (const card of document.querySelectorAll('.frame')) {
    const parts = [...card.children].map(c => c.getBoundingClientRect());
    for (let i = 0; i < parts.length; i++) for (let j = i + 1; j < parts.length; j++) {
      const a = parts[i], b = parts[j];
      if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) overlaps.push([card.id, i, j]);
    }
  }
  const cards = [...document.querySelectorAll('.frame')].map(c => c.getBoundingClientRect());
  for (let i = 1; i < cards.length; i++) if (cards[i].top < cards[i - 1].bottom) overlaps.push(['cards', i - 1, i]);
  const images = [...document.images].map(i => [i.complete, i.naturalWidth]);
  return {height: document.documentElement.scrollHeight, images: images.length,
          loaded: images.filter(([c, w]) => c && w > 0).length, smallest_cell: Math.round(Math.min(...cells)),
          words, spill, overlaps};
}"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_the_reviewed_report_lays_out_without_squeezed_cells_spills_or_overlaps(tmp_path, reviewed_base, browser, width):
    from tests import report_scenario as scenario

    ws = scenario.copy(reviewed_base, tmp_path / "ws")
    scenario.review(ws)
    html = write_reports(ws, current_verdicts(ws), ("html",))["html"]
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    figures = page.evaluate(LAYOUT_JS)
    print(f"\n{width} px: page height {figures['height']} px, {figures['loaded']} of {figures['images']} images loaded, "
          f"smallest table cell {figures['smallest_cell']} px wide")
    assert figures["images"] and figures["loaded"] == figures["images"]
    assert figures["words"] == [], "words wider than their cell or broken inside"
    assert figures["spill"] == [], "elements outside their card or table"
    assert figures["overlaps"] == []
    page.screenshot(path=str(tmp_path / f"report-{width}.png"), full_page=True)
    page.close()


@pytest.fixture(scope="module")
def reviewed_base(footage, tmp_path_factory):
    from tests import report_scenario as scenario

    return scenario.build_base(tmp_path_factory.mktemp("reviewed") / "base", footage)


def test_the_report_fits_a_phone_screen_and_shows_what_each_verdict_rests_on(tmp_path, reviewed_base, browser):
    """At 390 px (a phone) the page is no wider than the screen, each claim's "what it rests on" is on screen, and
    claim headings lead with the claim's words, not its id."""
    from tests import report_scenario as scenario

    ws = scenario.copy(reviewed_base, tmp_path / "ws")
    scenario.review(ws)
    html = write_reports(ws, current_verdicts(ws), ("html",))["html"]
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    basis = page.evaluate("""[...document.querySelectorAll('table.claims tbody tr')].map(tr => {
        const r = tr.children[2].getBoundingClientRect(); return [Math.round(r.left), Math.round(r.right)]; })""")
    assert basis and all(left >= 0 and right <= 390 for left, right in basis), basis
    heading = page.inner_text("h2[id^='claim-']")
    assert heading.startswith(ws.case.claims[0].text[:20]), heading
    page.screenshot(path=str(tmp_path / "report-390.png"), full_page=False)
    page.close()
