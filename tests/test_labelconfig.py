"""The labeling config generated from a case."""

import xml.etree.ElementTree as ET

from verify.case import VERDICT_CHOICES, load_case, parse_case
from verify.labelstudio.config import TASK_FIELDS, build_config, check_config, claim_control, instructions_html, paragraphs
from verify.labelstudio.client import validate_config
from tests.conftest import SEED_CASE
from tests.test_case import GOOD


def test_seed_config_has_a_box_tool_per_group_and_a_question_per_claim():
    case = load_case(SEED_CASE)
    xml = build_config(case)
    check_config(xml, case)
    validate_config(xml)  # the SDK's own parser, as the server uses
    root = ET.fromstring(xml)
    tools = {el.get("name"): [l.get("value") for l in el] for el in root.iter("RectangleLabels")}
    assert tools == {g.name: [l.value for l in g.labels] for g in case.label_groups}
    for claim in case.claims:
        [choices] = [el for el in root.iter("Choices") if el.get("name") == claim_control(claim.id)]
        assert [c.get("value") for c in choices] == list(VERDICT_CHOICES.values())
        assert choices.get("choice") == "single-radio"
    headers = [el.get("value") for el in root.iter("Header")]
    for claim in case.claims:  # the reviewer sees every claim's text…
        assert any(claim.text in h for h in headers)
    assert "$provenance" in headers and "$timestamp" in headers  # …and the source and time beside the image
    assert any(h.startswith("You are reviewing one still frame") for h in headers)  # …and the case's instructions
    assert [el.get("name") for el in root.iter("TextArea")] == ["geo_text", "notes"]  # where the camera was; notes


def test_config_only_reads_fields_that_tasks_carry():
    xml = build_config(load_case(SEED_CASE))
    variables = {v[1:] for el in ET.fromstring(xml).iter() for v in [el.get("value") or ""] if v.startswith("$")}
    assert variables <= set(TASK_FIELDS)


def test_xml_metacharacters_in_labels_and_claims_are_escaped_not_spliced():
    text = GOOD.replace("[Taliban flag, Afghan flag]", """['Flag "A" & <B>', "</Label><Script>x</Script>"]""")
    text = text.replace("text: A flag was raised.", "text: 'A <b>flag</b> & \"quote\" was raised.'")
    case = parse_case(text, "x.yaml")
    xml = build_config(case)
    check_config(xml, case)
    validate_config(xml)
    root = ET.fromstring(xml)
    assert [l.get("value") for l in root.iter("Label")] == ['Flag "A" & <B>', "</Label><Script>x</Script>"]
    assert not list(root.iter("Script"))


def test_instructions_are_reflowed_into_paragraphs_and_escaped():
    case = load_case(SEED_CASE)
    paras = paragraphs(case.instructions)
    assert paras[1].startswith("1. Draw a box") and paras[1].endswith("Box only what you can see in this frame.")
    assert paras[2].startswith("2. For each claim")
    html = instructions_html(parse_case(GOOD.replace("title: A test case", "title: '<b>x</b>'"), "x.yaml"))
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
