"""The HTML report looked at as a person would: headless Chromium renders it, shows the claims
and the images, and runs no script, even with hostile text in every field."""

import pytest

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
    paths = write_reports(ws, ("html", "pdf"))
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
