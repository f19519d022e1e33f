"""Driving Label Studio's reviewer UI with playwright, as a reviewer would: log in through the form,
open the label stream, pick a label and drag a box on the frame, click answers, type a note, submit.

Selectors use what the reviewer reads (label names, claim text, choice text, the frame's timestamp
heading), never claim ids, so they keep working when the labeling config's layout changes; the one
control found by name is the notes text area (``verify.labelstudio.config.NOTES``). The rest are
Label Studio's own hooks (data-testid, lsf-* classes) as seen on 1.23.2.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from playwright.sync_api import Browser, Locator, Page

from verify.report.build import CHROMIUM_FLAGS, chromium

IMAGE = ".lsf-image img"  # every picture Label Studio draws (the frame; a context strip if the task shows one)
PICTURE = ".verify-picture .lsf-image img"  # the frame, where verify's config wraps it (verify.labelstudio.config)
TIMESTAMP = ":is(h1, h2, h3, h4, h5, h6)"  # the heading that says which frame is shown ("Frame at 0:00:05.160 …")
# A checked answer, as drawn. Not input:checked: Label Studio names each radio input after its choice's
# text, so the "Supports" radios of all claims form one browser radio group and only one stays :checked.
CHECKED = "label.lsf-choice__checkbox:is(.ant-radio-wrapper-checked, .ant-checkbox-wrapper-checked)"


def launch(playwright) -> Browser:
    """Debian's Chromium, headless, with the flags the report's PDF printing uses."""
    path = chromium()
    assert path, "Chromium is needed for this test: scripts/test.sh installs Debian's chromium"
    return playwright.chromium.launch(executable_path=path, args=[a for a in CHROMIUM_FLAGS if a != "--headless"])


def log_in(browser: Browser, link: str, email: str, password: str, viewport=(1440, 1000)) -> Page:
    """Open ``link`` in a new browser context (its own cookies) as a reviewer who is not logged in:
    Label Studio's login page comes first; after logging in, the reviewer must land on the link."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = context.new_page()
    page.goto(link)
    page.wait_for_url(re.compile(r"/user/login/"))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/user/login/" not in u)
    page.wait_for_load_state()
    return page


def open_stream(page: Page) -> None:
    """On the label stream's page: dismiss the instructions dialog it opens with, wait for the frame."""
    close = page.locator("button[aria-label='Close modal']")
    close.wait_for()
    close.click()
    wait_for_frame(page)


def wait_for_frame(page: Page) -> None:
    page.wait_for_function(
        "sel => [...document.querySelectorAll(sel)].some(i => i.complete && i.naturalWidth > 0)", arg=IMAGE)


def picture(page: Page) -> Locator:
    """The frame's picture, the one boxes are drawn on."""
    wrapped = page.locator(PICTURE)
    return (wrapped if wrapped.count() else page.locator(IMAGE)).first


@dataclass
class Shown:
    """What the stream shows: the frame's timestamp heading and the picture's natural size."""
    timestamp: str
    width: int
    height: int


def shown(page: Page) -> Shown:
    heading = page.locator(TIMESTAMP, has_text=re.compile(r"^Frame at ")).first.inner_text()
    size = picture(page).evaluate("i => [i.naturalWidth, i.naturalHeight]")
    return Shown(heading, *size)


def label(page: Page, text: str) -> Locator:
    """The box tool's label button with exactly this text."""
    return page.locator(".lsf-label", has=page.locator(".lsf-label__text", has_text=re.compile(f"^{re.escape(text)}$")))


def draw_box(page: Page, text: str, box: tuple[float, float, float, float], inside: bool = False) -> None:
    """Pick the label, then drag on the picture from (x0, y0) to (x1, y1), given as fractions of its size.

    ``inside``: the drag starts inside another box, so Ctrl is held, as the reviewers' instructions say (on
    Label Studio 1.23 a plain drag there moves the box underneath; Ctrl or ⌘ draws a new one, and only while
    no box is selected)."""
    label(page, text).first.click()
    before = len(regions(page))
    if inside:
        page.keyboard.down("Control")
    try:
        drag(page, box)
    finally:
        if inside:
            page.keyboard.up("Control")
    _until(page, lambda: len(regions(page)) > before, f"the box {text!r} to be listed in the Regions panel")


def drag(page: Page, box: tuple[float, float, float, float]) -> None:
    """Press the mouse at (x0, y0) on the picture and release it at (x1, y1), fractions of its size, in five steps."""
    image = picture(page)
    image.scroll_into_view_if_needed()
    r = image.bounding_box()
    x0, y0, x1, y1 = box
    page.mouse.move(r["x"] + x0 * r["width"], r["y"] + y0 * r["height"])
    page.mouse.down()
    for step in range(1, 6):
        f = step / 5
        page.mouse.move(r["x"] + (x0 + f * (x1 - x0)) * r["width"], r["y"] + (y0 + f * (y1 - y0)) * r["height"])
    page.mouse.up()


REGION = ".lsf-tree__node_type_rectangleregion"  # a box's line in the Regions panel
SELECTED = ".lsf-tree-treenode-selected"  # the line of the box now selected


def select_region(page: Page, text: str) -> None:
    """Select the box labelled ``text`` by its line in the Regions panel (the first such line)."""
    line = page.locator(f"{REGION}", has=page.locator(".lsf-outliner-item__title", has_text=re.compile(
        f"^{re.escape(text)}$"))).first
    line.locator(".lsf-outliner-item__title").click()
    _until(page, lambda: line.evaluate(f"e => e.matches('{SELECTED}')"), f"the box {text!r} to be selected")


def relabel(page: Page, old: str, new: str) -> None:
    """Change a box's label as the instructions say: select the box, click the new label, let go of the box (Esc)."""
    select_region(page, old)
    index = regions(page).index(old)
    label(page, new).first.click()
    _until(page, lambda: regions(page)[index:index + 1] == [new], f"the box {old!r} to be relabelled {new!r}")
    deselect(page)


def deselect(page: Page) -> None:
    """Let go of a selected box (Esc), so the next drag draws instead of moving it."""
    page.keyboard.press("Escape")
    _until(page, lambda: not page.locator(f"{REGION}{SELECTED}").count(), "no box to be selected after Esc")


def question(page: Page, text: str) -> Locator:
    """The block of choices asked right after the words ``text`` (a claim's text, a question's heading),
    wherever they stand: a heading, a folded panel's title (the instructions dialog and the frame's header, where a
    lead's dispute line quotes the disputed claims' words, left out)."""
    return page.locator(f"xpath=(//*[not(ancestor-or-self::*[contains(@class, 'lsf-modal')])]"
                        f"[not(ancestor-or-self::*[contains(@class, 'verify-head')])]"
                        f"[text()[contains(normalize-space(.), {_xpath_literal(text)})]])[1]"
                        f"/following::div[contains(concat(' ', @class, ' '), ' lsf-choices ')][1]")


def choose(page: Page, question_text: str, choice: str) -> None:
    """Click the answer ``choice`` (its visible text) to the question ``question_text``, unfolding it if folded."""
    block = question(page, question_text)
    option = block.locator("label.lsf-choice__checkbox", has_text=re.compile(f"^{re.escape(choice)}")).first
    if not option.is_visible():
        unfold(page, question_text)
    option.scroll_into_view_if_needed()
    option.click()
    _until(page, lambda: option.evaluate(f"e => e.matches({CHECKED!r})"), f"{choice!r} to be checked for {question_text!r}")


def write_note(page: Page, name: str, text: str) -> None:
    """Type into the text area of control ``name`` and add it (Shift+Enter, as the UI says)."""
    area = page.locator(f"textarea[name='{name}']")
    area.scroll_into_view_if_needed()
    area.fill(text)
    area.press("Shift+Enter")
    page.locator("[data-testid=htx-textbox-content]", has_text=text[:40]).first.wait_for()


def cannot_review(page: Page, reason: str) -> None:
    """Say the frame cannot be reviewed: click the reason with this visible text (opening its fold if folded)."""
    option = page.locator("label.lsf-choice__checkbox", has_text=re.compile(f"^{re.escape(reason)}"))
    if not option.first.is_visible():
        unfold(page, reason)
    option.first.scroll_into_view_if_needed()
    option.first.click()
    _until(page, lambda: option.first.evaluate(f"e => e.matches({CHECKED!r})"), f"{reason!r} to be checked")


def unfold(page: Page, text: str) -> None:
    """Open the folded panel (Label Studio's Collapse) whose title or content holds ``text``."""
    page.locator(f"xpath=//*[contains(concat(' ', @class, ' '), ' ant-collapse-item ')]"
                 f"[.//text()[contains(normalize-space(.), {_xpath_literal(text)})]]"
                 f"//*[contains(concat(' ', @class, ' '), ' ant-collapse-header ')]").first.click()


def regions(page: Page) -> list[str]:
    """The labels of the boxes the Regions panel lists for the annotation on screen."""
    return page.locator(".lsf-tree__node_type_rectangleregion .lsf-outliner-item__title").all_inner_texts()


def submit(page: Page, before: str) -> None:
    """Submit, then wait until the stream shows another frame or its end."""
    submit_stored(page)
    _next(page, before, "submitting")


def submit_stored(page: Page) -> None:
    """Submit and wait until Label Studio has stored the annotation: the page may move on before the POST is answered."""
    _stored(page, "bottombar-submit-button")


def skip(page: Page, before: str) -> None:
    """Skip the frame, wait until Label Studio has stored the skip, then until the stream shows another frame or its end."""
    _stored(page, "bottombar-skip-button")
    _next(page, before, "skipping")


# Label Studio stores a submit or a skip (an annotation with was_cancelled) as a new annotation of the task (POST),
# or as a change to the one already there (PATCH)
ANNOTATION_WRITE = re.compile(r"/api/(tasks/\d+/annotations|annotations/\d+)/?(\?|$)")


def _stored(page: Page, button: str) -> None:
    """Click the bottom bar's ``button`` and wait for the server's answer to the annotation it writes (a success)."""
    def stored(response) -> bool:
        return response.request.method in ("POST", "PATCH") and bool(ANNOTATION_WRITE.search(response.url))
    with page.expect_response(stored, timeout=60_000) as answer:
        page.locator(f"[data-testid={button}]").click()
    assert answer.value.ok, (answer.value.status, answer.value.url)


def _until(page: Page, predicate, what: str, timeout: float = 30) -> None:
    """Poll ``predicate`` (between polls the page runs on) until it holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}")
        page.wait_for_timeout(50)


def _next(page: Page, before: str, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if page.get_by_text(re.compile(r"No more (tasks|annotations)|have completed all", re.I)).count():
            return
        heading = page.locator(TIMESTAMP, has_text=re.compile(r"^Frame at "))
        if heading.count() and heading.first.inner_text() != before:
            wait_for_frame(page)
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"after {what} {before!r} the stream showed neither another frame nor its end")


def what_others_left(page: Page) -> dict:
    """What the annotation on screen already holds before this reviewer touches it: boxes in the Regions
    panel, checked answers, texts added to text areas; plus the page's whole text and its avatars."""
    return {
        "regions": regions(page),
        "checked": page.locator(CHECKED).count(),
        "texts": page.locator("[data-testid=htx-textbox-content]").all_inner_texts(),
        "page_text": page.locator("body").inner_text(),
        "userpics": page.locator("[data-testid=userpic]").all_inner_texts(),
    }


def scroll_to_top(page: Page) -> None:
    """Scroll every scrolled panel back to the top, so a screenshot shows what a reviewer first sees."""
    page.evaluate("() => document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")


def body(response) -> str:
    """A response's text as the browser received it ('' for other content, or a body no longer there)."""
    kind = response.headers.get("content-type") or ""
    if "json" not in kind and "text" not in kind:
        return ""
    try:
        return response.text()
    except Exception:  # a redirect's or a navigated-away page's body: nothing readable arrived
        return ""


def _xpath_literal(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in text.split("'")) + ")"
