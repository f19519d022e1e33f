"""The box tools of the labeling config (issue 24 item 3), without a server: one box control holding every label of
the case, one label per box, groups shown by the report's colours, the old per-group controls kept only hidden."""

import xml.etree.ElementTree as ET

import pytest

from tests.conftest import SEED_CASE
from tests.test_case import GOOD
from verify.case import load_case, parse_case
from verify.labelstudio.client import region_errors, validate_config
from verify.labelstudio.config import (BOXES, IMAGE, NEST_HINT, NO_HOTKEY, build_config, check_config,
                                      instructions_html)
from verify.report.build import label_legend


def _visible_box_controls(root: ET.Element) -> list[ET.Element]:
    hidden = {id(el) for view in root.iter("View") if "verify-legacy" in (view.get("className") or "") for el in view.iter()}
    return [el for el in root.iter("RectangleLabels") if id(el) not in hidden]


@pytest.mark.parametrize("adjudication", [False, True])
def test_one_box_control_holds_every_label_of_the_case_one_label_per_box(adjudication):
    case = load_case(SEED_CASE)
    xml = build_config(case, adjudication=adjudication)
    check_config(xml, case)
    validate_config(xml)  # the SDK's parser, as the server uses
    root = ET.fromstring(xml)
    [boxes] = _visible_box_controls(root)
    assert boxes.get("name") == BOXES and boxes.get("toName") == IMAGE
    assert boxes.get("choice") == "single"  # a region cannot take a second label
    assert [l.get("value") for l in boxes.iter("Label")] == [l.value for g in case.label_groups for l in g.labels]
    assert all(l.get("hotkey") is None for l in boxes.iter("Label"))  # Label Studio's 1, 2, 3… stay
    # the groups: a section each, headed by the title, the labels in the report's legend colour
    legend = {g["title"]: g for g in label_legend(case)}
    for section in boxes.findall("View"):
        [header] = section.findall("Header")
        group = legend[header.get("value").rstrip(":")]
        labels = section.findall("Label")
        assert [l.get("value") for l in labels] == group["labels"]
        assert {l.get("background") for l in labels} == {group["colour"]}
        assert {l.get("hint") for l in labels} == {group["title"]}
    assert len(boxes.findall("View")) == len(case.label_groups)
    assert NEST_HINT in [h.get("value") for h in root.iter("Header")]


def test_the_old_group_controls_are_hidden_and_take_no_key():
    """Kept so that Label Studio accepts the config on a project whose annotations use them (it refuses a config that
    drops a control in use) and adjudication can still show such boxes; never a reviewer's tool."""
    case = load_case(SEED_CASE)
    root = ET.fromstring(build_config(case))
    [legacy] = [v for v in root.iter("View") if v.get("className") == "verify-legacy"]
    assert "display: none" in legacy.get("style")
    old = {el.get("name"): [l.get("value") for l in el] for el in legacy.iter("RectangleLabels")}
    assert old == {g.name: [l.value for l in g.labels] for g in case.label_groups}
    assert {l.get("hotkey") for l in legacy.iter("Label")} == {NO_HOTKEY}


def test_a_box_with_one_label_of_the_box_control_fits_and_an_unknown_label_does_not():
    case = load_case(SEED_CASE)
    xml = build_config(case)
    region = {"id": "r1", "type": "rectanglelabels", "from_name": BOXES, "to_name": IMAGE, "original_width": 640,
              "original_height": 360, "value": {"x": 1, "y": 2, "width": 3, "height": 4, "rotation": 0,
                                                "rectanglelabels": ["Signage / text"]}}
    tank = {**region, "value": {**region["value"], "rectanglelabels": ["Tanks"]}}
    old = {**region, "from_name": "location_cues"}  # a box of the old config: still shown (adjudication sends it)
    assert [bool(e) for e in region_errors(xml, [region, tank, old])] == [False, True, False]


def test_check_config_refuses_a_box_control_missing_a_label_or_taking_several():
    case = load_case(SEED_CASE)
    xml = build_config(case)
    check_config(xml, case)
    with pytest.raises(ValueError, match="one label per box"):
        check_config(xml.replace(f'name="{BOXES}" toName="frame" choice="single"', f'name="{BOXES}" toName="frame" choice="multiple"'), case)
    root = ET.fromstring(xml)
    [boxes] = _visible_box_controls(root)
    section = boxes.find("View")
    section.remove(section.find("Label"))
    with pytest.raises(ValueError, match="one label per box"):
        check_config(ET.tostring(root, encoding="unicode"), case)


def test_the_groups_take_the_report_legend_colours_in_order():
    text = GOOD
    case = parse_case(text, "x.yaml")
    root = ET.fromstring(build_config(case))
    [boxes] = _visible_box_controls(root)
    colours = [s.find("Label").get("background") for s in boxes.findall("View")]
    assert colours == [g["colour"] for g in label_legend(case)]


def test_the_instructions_say_how_to_box_inside_a_box_for_reviewers_and_the_lead():
    case = load_case(SEED_CASE)
    for adjudication in (False, True):
        html = instructions_html(case, adjudication)
        assert "hold Ctrl (⌘ on a Mac) while you drag inside it" in html and "press Esc" in html
        assert "click its line under Regions, then drag it" in html
    assert "a box you leave untouched stays that reviewer&#x27;s" in instructions_html(case, True)


def test_every_label_colour_stands_out_on_white():
    """Issue 28: a label colour of #f2f2f2 vanished on a white flag and in the region list; each colour now has a
    contrast of at least 3:1 against white (WCAG's relative luminance), and its drawn tag text is white."""
    from verify.report.draw import GROUP_COLOURS, UNKNOWN_COLOUR, text_colour

    def luminance(colour: str) -> float:
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    for colour in (*GROUP_COLOURS, UNKNOWN_COLOUR):
        assert 1.05 / (luminance(colour) + 0.05) >= 3, colour
        assert text_colour(colour) == (255, 255, 255), colour
