"""The labeling config generated from a case."""

import xml.etree.ElementTree as ET

import pytest

from verify.case import VERDICT_CHOICES, load_case, parse_case
from verify.labelstudio.config import (BEARS, BOXES, CANNOT_REASONS, CANNOT_REVIEW, CSS, GRAPHIC_WARNING, NO_HOTKEY, bears_field, build_config, check_config,
                                      claim_control, instructions_html, paragraphs, task_fields)
from verify.labelstudio.client import validate_config
from tests.conftest import SEED_CASE
from tests.test_case import GOOD


def test_seed_config_has_one_box_tool_for_every_label_and_a_question_per_claim():
    case = load_case(SEED_CASE)
    xml = build_config(case)
    check_config(xml, case)
    validate_config(xml)  # the SDK's own parser, as the server uses
    root = ET.fromstring(xml)
    tools = {el.get("name"): [l.get("value") for l in el.iter("Label")] for el in root.iter("RectangleLabels")}
    assert tools.pop(BOXES) == [l.value for g in case.label_groups for l in g.labels]  # one label per box (issue 24)
    assert tools == {g.name: [l.value for l in g.labels] for g in case.label_groups}  # the old ones, kept hidden
    for claim in case.claims:
        [choices] = [el for el in root.iter("Choices") if el.get("name") == claim_control(claim.id)]
        assert [c.get("value") for c in choices] == list(VERDICT_CHOICES.values())
        assert choices.get("choice") == "single-radio"
    headers = [el.get("value") for el in root.iter() if el.tag in ("Header", "Panel")]
    for claim in case.claims:  # the reviewer sees every claim's text…
        assert any(claim.text in h for h in headers)
    assert "$provenance" in headers and "$timestamp" in headers  # …and the source and time beside the image
    assert any(h.startswith("You are reviewing one still frame") for h in headers)  # …and the case's instructions
    assert [el.get("name") for el in root.iter("TextArea")] == ["geo_text", "notes"]  # where the camera was; notes


def test_config_only_reads_fields_that_tasks_carry():
    case = load_case(SEED_CASE)
    xml = build_config(case)
    variables = {v[1:] for el in ET.fromstring(xml).iter() for v in [el.get("value") or ""] if v.startswith("$")}
    assert variables <= set(task_fields(case))
    assert {bears_field(c.id) for c in case.claims} <= variables  # one "asked first" switch per claim


def test_questions_are_in_plain_words_without_claim_ids_or_odd_hotkeys():
    case = load_case(SEED_CASE)
    root = ET.fromstring(build_config(case))
    shown = [v for el in root.iter() if el.tag in ("Header", "Panel", "Choice") for v in [el.get("value") or ""]
             if not v.startswith("$")]  # task fields are read, not shown
    assert not [text for text in shown for c in case.claims if c.id in text]
    panels = [el.get("value") for el in root.iter("Panel")]
    assert [c.text for c in case.claims] == [p for p in panels if p in {c.text for c in case.claims}]
    assert {c.get("hotkey") for c in root.iter("Choice")} == {NO_HOTKEY}  # no auto-assigned e, t, a… on answers
    [boxes] = [el for el in root.iter("RectangleLabels") if el.get("name") == BOXES]
    assert all(label.get("hotkey") is None for label in boxes.iter("Label"))  # box labels keep Label Studio's 1, 2, 3…
    html = instructions_html(case, stream_url="http://ls.example/projects/7/data?labeling=1")
    assert "http://ls.example/projects/7/data?labeling=1" in html and "Cannot review this frame" in html
    assert not [c.id for c in case.claims if c.id in html]


def test_cannot_review_offers_the_reasons_and_stores_their_keys():
    case = load_case(SEED_CASE)
    xml = build_config(case)
    [control] = [el for el in ET.fromstring(xml).iter("Choices") if el.get("name") == CANNOT_REVIEW]
    assert {c.get("alias"): c.get("value") for c in control} == CANNOT_REASONS  # shown: the text; stored: the key
    assert control.get("choice") == "single"  # ticked, and unticked again
    broken = xml.replace('alias="other"', 'alias="else"')
    with pytest.raises(ValueError, match="cannot-review"):
        check_config(broken, case)


def test_layout_css_survives_label_studios_html_sanitizer():
    """Label Studio passes <Style> text through an HTML sanitizer: ">" and "&" would arrive escaped and break rules."""
    assert ">" not in CSS and "&" not in CSS and "<" not in CSS
    assert CSS.count("{") == CSS.count("}")


def test_xml_metacharacters_in_labels_and_claims_are_escaped_not_spliced():
    text = GOOD.replace("[Taliban flag, Afghan flag]", """['Flag "A" & <B>', "</Label><Script>x</Script>"]""")
    text = text.replace("text: A flag was raised.", "text: 'A <b>flag</b> & \"quote\" was raised.'")
    case = parse_case(text, "x.yaml")
    xml = build_config(case)
    check_config(xml, case)
    validate_config(xml)
    root = ET.fromstring(xml)
    [boxes] = [el for el in root.iter("RectangleLabels") if el.get("name") == BOXES]
    assert [l.get("value") for l in boxes.iter("Label")] == ['Flag "A" & <B>', "</Label><Script>x</Script>"]
    assert not list(root.iter("Script"))


def test_instructions_are_reflowed_into_paragraphs_and_escaped():
    case = load_case(SEED_CASE)
    paras = paragraphs(case.instructions)
    assert paras[1].startswith("1. Draw a box") and paras[1].endswith("Box only what you can see in this frame.")
    assert paras[2].startswith("2. For each claim")
    html = instructions_html(parse_case(GOOD.replace("title: A test case", "title: '<b>x</b>'"), "x.yaml"))
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def _task(provenance: dict) -> dict:
    from verify.labelstudio.project import build_task
    from verify.records import Frame, Video

    video = Video(sha256="a" * 64, source_id=provenance["source_id"], original_path="x.mp4", evidence="evidence/x.mp4", size=1,
                  ingested_at="2026-11-26T00:00:00Z", metadata={}, provenance=provenance)
    frame = Frame(key="b" * 32, video_sha256=video.sha256, t_ms=1000.0, frame_index=0, shot=0, file="frames/x.jpg",
                  sha256="c" * 64, pixel_sha256="d" * 64, phash="0" * 16, width=1080, height=1920, sharpness=1.0)
    return build_task(frame, video, "/data/upload/1/x.jpg", "ws")["data"]


def test_a_task_asks_its_source_s_claims_first_and_warns_of_graphic_footage():
    case = load_case(SEED_CASE)
    source = case.source("civilians-refused")
    plain = _task(source.provenance())
    assert plain["graphic_warning"] == ""  # read by the config: present, empty, so the picture is not blurred
    assert {k for k in plain if k.startswith("bears_")} == {bears_field(c) for c in source.claims}
    assert all(plain[bears_field(c)] == BEARS for c in source.claims)
    graphic = _task({**source.provenance(), "graphic": True})
    assert graphic["graphic_warning"] == GRAPHIC_WARNING and "Show the picture" in GRAPHIC_WARNING
    anything = _task({**source.provenance(), "claims": []})  # a source naming no claims: the page opens them all
    assert not [k for k in anything if k.startswith("bears_")]
