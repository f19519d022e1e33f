"""Boxes inside boxes, and a lead's boxes, through Label Studio 1.23's real UI (Debian's Chromium, playwright).

Issue 24 item 3: with one RectangleLabels control per label group, Label Studio let one box carry labels of two
groups ("Signage / text" on a box around civilians), and a drag started inside a box moved that box instead of
drawing a new one (9 of 16 boxes kept). The config now has one control for every label (one label per box), and
the instructions say how 1.23 draws a box inside a box (Ctrl or ⌘ held while dragging, no box selected).

Item 2: the lead's task carries the reviewers' boxes as predictions; Label Studio copies one of them into the
lead's annotation, and marks each region's ``origin`` ("prediction" while untouched, "prediction-changed" once
moved or relabelled). verify's merge must not count an untouched inherited box as the lead's own drawing.

Screenshots go to $VERIFY_SHOTS (default /tmp/notes/shots/).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from tests import ui
from tests.conftest import SEED_CASE, drop_projects, user_token
from verify import pipeline
from verify.case import load_case
from verify.labelstudio.client import LabelStudioClient
from verify.labelstudio.config import BOXES, NEST_HINT, build_config, instructions_html
from verify.labelstudio.connect import add_reviewer
from verify.labelstudio.project import build_task, label_stream_url
from verify.records import Annotation, Frame, Video
from verify.verdicts.merge import decode

pytestmark = pytest.mark.integration

SHOTS = Path(os.environ.get("VERIFY_SHOTS", "/tmp/notes/shots"))
EMAIL, PASSWORD = "nested.reviewer@newsroom.example", "Nested-review-2021"
SIZE = (1280, 720)
# What the synthetic frame shows, as fractions (x0, y0, x1, y1): a gate, a sign on it, militants at it.
GATE, SIGN, MILITANTS = (0.16, 0.14, 0.78, 0.90), (0.35, 0.21, 0.59, 0.35), (0.23, 0.56, 0.39, 0.89)


def _export(url: str, key: str, project: int) -> list[dict]:
    answer = httpx.get(f"{url}/api/projects/{project}/export", params={"exportType": "JSON", "download_all_tasks": "true"},
                       headers={"Authorization": f"Token {key}"}, timeout=120)
    answer.raise_for_status()
    return answer.json()


def _inside(inner: dict, outer: dict) -> bool:
    v, w = inner["value"], outer["value"]
    return (v["x"] >= w["x"] and v["y"] >= w["y"] and v["x"] + v["width"] <= w["x"] + w["width"]
            and v["y"] + v["height"] <= w["y"] + w["height"])


def _near(region: dict, drawn: tuple[float, float, float, float], tolerance: float = 1.5) -> bool:
    v = region["value"]
    got = (v["x"], v["y"], v["x"] + v["width"], v["y"] + v["height"])
    return all(abs(a - 100 * b) <= tolerance for a, b in zip(got, drawn))


@pytest.fixture(scope="module")
def reviewed(label_studio):
    """A reviewer draws a gate, then a sign and militants inside it (the second labelled wrong, then relabelled),
    submits; the project's export afterwards."""
    from playwright.sync_api import sync_playwright

    case = load_case(SEED_CASE)
    client = LabelStudioClient(label_studio["url"], label_studio["api_key"])
    client.whoami()
    project = client.create_project(title="Nested boxes", description="nested boxes test",
                                    label_config=build_config(case, context=False), instructions=instructions_html(case),
                                    maximum_annotations=2)
    link = label_stream_url(client.url, project)
    client.update_project(project, expert_instruction=instructions_html(case, stream_url=link))
    folder = SHOTS / "nested"
    folder.mkdir(parents=True, exist_ok=True)
    picture = Image.new("RGB", SIZE, (120, 140, 160))
    draw = ImageDraw.Draw(picture)
    px = lambda b: [b[0] * SIZE[0], b[1] * SIZE[1], b[2] * SIZE[0], b[3] * SIZE[1]]  # noqa: E731
    draw.rectangle(px(GATE), fill=(90, 80, 70))
    draw.rectangle(px(SIGN), fill=(230, 230, 230))
    draw.rectangle(px(MILITANTS), fill=(40, 110, 40))
    picture.save(folder / "gate.jpg", quality=85)
    urls = client.upload_files(project, [("gate.jpg", folder / "gate.jpg")])
    source = case.source("militants-at-gate")
    video = Video(sha256="e" * 64, source_id=source.id, original_path="gate.mp4", evidence="evidence/gate.mp4", size=1,
                  ingested_at="2026-11-26T00:00:00Z", metadata={}, provenance=source.provenance())
    frame = Frame(key="f" * 32, video_sha256=video.sha256, t_ms=1000.0, frame_index=0, shot=0, file="frames/gate.jpg",
                  sha256="0" * 64, pixel_sha256="0" * 64, phash="0" * 16, width=SIZE[0], height=SIZE[1], sharpness=1.0)
    client.import_tasks(project, [build_task(frame, video, urls["gate.jpg"], "nested-test")])
    add_reviewer(client, EMAIL, PASSWORD)
    seen = {}
    with sync_playwright() as p:
        browser = ui.launch(p)
        try:
            page = ui.log_in(browser, link, EMAIL, PASSWORD, viewport=(1366, 768))
            modal = page.locator(".lsf-modal-ls_visible")
            modal.wait_for()
            seen["instructions"] = modal.inner_text()
            ui.open_stream(page)
            seen["hint"] = page.locator(".verify-nest").inner_text()
            ui.draw_box(page, "Gate structure", GATE)
            seen["after gate"] = ui.regions(page)
            ui.drag(page, (0.40, 0.25, 0.55, 0.33))  # a plain drag inside the gate, no label picked: it moves the gate
            seen["after plain drag"] = ui.regions(page)
            page.keyboard.press("Control+z")  # undo the move
            page.wait_for_timeout(300)
            ui.draw_box(page, "Signage / text", SIGN, inside=True)
            ui.draw_box(page, "Civilians", MILITANTS, inside=True)  # the wrong label first…
            seen["drawn"] = ui.regions(page)
            ui.relabel(page, "Civilians", "Armed militants")  # …changed as the instructions say
            seen["relabelled"] = ui.regions(page)
            ui.scroll_to_top(page)
            page.screenshot(path=str(folder / "nested-reviewer-1366x768.png"))
            ui.submit_stored(page)
        except Exception:
            page.screenshot(path=str(folder / "nested-reviewer-failed.png"))
            raise
        finally:
            browser.close()
    [task] = _export(client.url, label_studio["api_key"], project)
    yield {"case": case, "task": task, "seen": seen, "shots": folder}
    httpx.delete(f"{client.url}/api/projects/{project}", headers={"Authorization": f"Token {label_studio['api_key']}"},
                 timeout=120)


def test_the_reviewer_is_told_how_to_draw_a_box_inside_a_box(reviewed):
    seen = reviewed["seen"]
    assert "hold Ctrl (⌘ on a Mac) while you drag inside it" in seen["instructions"]
    assert seen["hint"] == NEST_HINT
    assert seen["after gate"] == ["Gate structure"]
    assert seen["after plain drag"] == ["Gate structure"]  # what 1.23 does with a plain drag inside: no new box


def test_boxes_drawn_inside_a_box_survive_each_with_one_label(reviewed):
    seen, task = reviewed["seen"], reviewed["task"]
    assert seen["drawn"] == ["Gate structure", "Signage / text", "Civilians"]
    assert seen["relabelled"] == ["Gate structure", "Signage / text", "Armed militants"]
    [annotation] = task["annotations"]
    boxes = [r for r in annotation["result"] if r["type"] == "rectanglelabels"]
    assert len(boxes) == 3 and len({r["id"] for r in boxes}) == 3
    assert all(r["from_name"] == BOXES and len(r["value"]["rectanglelabels"]) == 1 for r in boxes)
    by_label = {r["value"]["rectanglelabels"][0]: r for r in boxes}
    assert set(by_label) == {"Gate structure", "Signage / text", "Armed militants"}
    gate, sign, militants = by_label["Gate structure"], by_label["Signage / text"], by_label["Armed militants"]
    assert _near(gate, GATE) and _near(sign, SIGN) and _near(militants, MILITANTS)  # the undo put the gate back
    assert _inside(sign, gate) and _inside(militants, gate)
    # verify reads them as three boxes, none ambiguous
    record = Annotation(id=annotation["id"], task_id=task["id"], frame_key="f" * 32, reviewer_id=None, reviewer=EMAIL,
                        was_cancelled=False, ground_truth=False, result=annotation["result"],
                        created_at=annotation["created_at"])
    review = decode(record, reviewed["case"])
    assert sorted(b["label"] for b in review.boxes) == ["Armed militants", "Gate structure", "Signage / text"]
    assert not getattr(review, "ambiguous", [])


# --- the lead ----------------------------------------------------------------------------------------------------

ANA, BEN, LEAD = "nested-ana@desk.example", "nested-ben@desk.example", "nested-lead@desk.example"
LEAD_PASSWORD = "nested-pass-5530q"
CLAIM = "militants_beside_pakistani_guards"


def _rect(label: str, box: tuple[float, float, float, float], region_id: str) -> dict:
    x0, y0, x1, y1 = (100 * v for v in box)
    return {"id": region_id, "type": "rectanglelabels", "from_name": BOXES, "to_name": "frame", "original_width": 640,
            "original_height": 360, "image_rotation": 0,
            "value": {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "rotation": 0, "rectanglelabels": [label]}}


@pytest.fixture(scope="module")
def lead(label_studio, footage, tmp_path_factory):
    """Two reviewers disagree on a frame and box a gate, a sign on it and people at it; `verify adjudicate` sends the
    frame to the lead with their boxes as predictions. The lead opens the task from the task list, leaves the gate as
    inherited, relabels the sign, moves the people's box, answers the claim, submits; then `verify pull`."""
    from playwright.sync_api import sync_playwright

    from verify.labelstudio.pull import pull
    from verify.labelstudio.push import push
    from verify.media.frames import extract
    from verify.media.ingest import ingest

    here = tmp_path_factory.mktemp("nested-lead")
    case = here / "case.yaml"
    case.write_text(SEED_CASE.read_text().replace("\nid: spin-boldak-2021\n", "\nid: spin-boldak-2021-nested\n", 1))
    ws = pipeline.init(here / "ws", case)
    [ingested] = ingest(ws, [footage["militants_at_gate"]], source_id="militants-at-gate")
    assert ingested.ok, ingested.message
    extract(ws)
    client = LabelStudioClient(label_studio["url"], label_studio["api_key"])
    client.whoami()
    files_root = Path(label_studio["files_root"])
    push(ws, client, files_root, new_project=True)
    for email in (ANA, BEN, LEAD):
        client.add_reviewer(email, LEAD_PASSWORD)
    tokens = {email: user_token(label_studio["url"], email, LEAD_PASSWORD) for email in (ANA, BEN)}
    first_key, first = min(ws.tasks().items(), key=lambda kv: next(f.t_ms for f in ws.frames() if f.key == kv[0]))

    def post(who, result):
        answer = httpx.post(f"{label_studio['url']}/api/tasks/{first}/annotations/",
                            headers={"Authorization": f"Token {tokens[who]}"},
                            json={"result": result, "was_cancelled": False, "lead_time": 4}, timeout=60)
        assert answer.status_code == 201, answer.text

    choice = lambda answer: {"type": "choices", "from_name": f"claim_{CLAIM}", "to_name": "frame",  # noqa: E731
                             "value": {"choices": [answer]}}
    shifted = lambda b, d: (b[0] + d, b[1], b[2] + d, b[3])  # noqa: E731
    post(ANA, [choice("Supports"), _rect("Gate structure", GATE, "ana-gate"), _rect("Signage / text", SIGN, "ana-sign"),
               _rect("Armed militants", MILITANTS, "ana-people")])
    post(BEN, [choice("Contradicts"), _rect("Gate structure", shifted(GATE, 0.004), "ben-gate"),
               _rect("Signage / text", shifted(SIGN, 0.004), "ben-sign"), _rect("Civilians", shifted(MILITANTS, 0.004), "ben-people")])
    pull(ws, client)
    sent = pipeline.adjudicate(ws, client, files_root, lead=LEAD)
    admin = {"Authorization": f"Token {label_studio['api_key']}"}
    listed = httpx.get(f"{label_studio['url']}/api/tasks", params={"project": sent.project_id}, headers=admin, timeout=60).json()
    [task] = listed["tasks"] if isinstance(listed, dict) else listed
    predictions = {p["model_version"]: p for p in httpx.get(f"{label_studio['url']}/api/predictions/",
                                                               params={"task": task["id"]}, headers=admin, timeout=60).json()}
    seen = {}
    folder = SHOTS / "nested"
    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = ui.launch(p)
        try:  # from the project's task list, as ADJUDICATION_NOTE asks (the address `verify adjudicate` prints)
            page = ui.log_in(browser, f"{label_studio['url']}/projects/{sent.project_id}/data?task={task['id']}", LEAD,
                             LEAD_PASSWORD, viewport=(1366, 768))
            ui.wait_for_frame(page)
            page.wait_for_function("() => document.querySelectorAll('.lsf-tree__node_type_rectangleregion').length >= 3")
            seen["inherited"] = ui.regions(page)
            people = next(label for label in seen["inherited"] if label in ("Armed militants", "Civilians"))
            ui.relabel(page, "Signage / text", "Buildings")
            middle = ((MILITANTS[0] + MILITANTS[2]) / 2, (MILITANTS[1] + MILITANTS[3]) / 2)
            ui.select_region(page, people)  # a drag on a box inside another moves the outer one (1.23): select it first
            ui.drag(page, (*middle, middle[0] + 0.08, middle[1] - 0.05))  # move the people's box
            ui.deselect(page)
            ui.choose(page, ws.case.claim(CLAIM).text, "Supports")
            seen["submitted"] = ui.regions(page)
            ui.scroll_to_top(page)
            page.screenshot(path=str(folder / "nested-lead-1366x768.png"))
            ui.submit_stored(page)
        except Exception:
            page.screenshot(path=str(folder / "nested-lead-failed.png"))
            raise
        finally:
            browser.close()
    [exported] = _export(label_studio["url"], label_studio["api_key"], sent.project_id)
    pull(ws, client)
    verdicts = pipeline.current_verdicts(ws)
    yield {"ws": ws, "seen": seen, "people": people, "predictions": predictions, "exported": exported,
           "frame": next(f for f in verdicts.frames if f.key == first_key)}
    drop_projects(label_studio, ws.root)


def test_the_leads_annotation_marks_inherited_regions_by_origin(lead):
    """What Label Studio 1.23 exports for the lead: the prediction's regions copied into the lead's annotation,
    their ids kept, ``origin`` "prediction" while untouched and "prediction-changed" once moved or relabelled."""
    [annotation] = lead["exported"]["annotations"]
    boxes = {r["value"]["rectanglelabels"][0]: r for r in annotation["result"] if r["type"] == "rectanglelabels"}
    assert set(boxes) == {"Gate structure", "Buildings", lead["people"]}
    [source] = [p for p in lead["predictions"].values() if annotation.get("parent_prediction") == p["id"]]
    inherited = {r["value"]["rectanglelabels"][0]: r for r in source["result"]}
    assert lead["people"] in inherited  # the lead's annotation began as this reviewer's boxes
    gate = boxes["Gate structure"]
    assert gate["origin"] == "prediction"
    assert gate["id"] == inherited["Gate structure"]["id"] and gate["value"] == inherited["Gate structure"]["value"]
    assert boxes["Buildings"]["origin"] == "prediction-changed"
    assert boxes["Buildings"]["id"] == inherited["Signage / text"]["id"]  # relabelled: same region
    assert boxes[lead["people"]]["origin"] == "prediction-changed"
    assert boxes[lead["people"]]["value"]["x"] > inherited[lead["people"]]["value"]["x"] + 4  # moved
    assert boxes[lead["people"]]["id"] == inherited[lead["people"]]["id"]


def test_the_merge_does_not_count_an_untouched_inherited_box_as_the_leads(lead):
    boxes = lead["frame"].boxes
    mine = [b for b in boxes if b.get("lead")]
    assert all(b["lead"] == LEAD and b["reviewers"] == [] for b in mine)
    assert sorted(b["label"] for b in mine) == sorted(["Buildings", lead["people"]])  # changed ones only
    gate = [b for b in boxes if b["label"] == "Gate structure"]
    assert [(b["reviewers"], b["drawn_by"], b.get("lead")) for b in gate] == [([ANA, BEN], 2, None)]
    assert all(LEAD not in b["reviewers"] and b["drawn_by"] == len(b["reviewers"]) for b in boxes)
