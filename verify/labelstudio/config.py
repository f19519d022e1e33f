"""The Label Studio labeling config, generated from the case.

The reviewer sees the frame with box tools for every label group, and beside it the source,
the frame's timestamp, the case instructions and one verdict question per claim, plus notes.
The XML is built with ElementTree, so any label or claim text is escaped, never spliced.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html import escape

from verify.case import VERDICT_CHOICES, Case
from verify.verdicts.places import PRECISION, SCOPE_CHOICES, SIDE_CHOICES

IMAGE = "frame"
NOTES = "notes"
# Where was the camera: the reviewer's location fields (the case forbids label groups named geo_*).
GEO_TEXT, GEO_PRECISION, GEO_SIDE, GEO_CUES, GEO_SCOPE = "geo_text", "geo_precision", "geo_side", "geo_cues", "geo_scope"
GEO_CONTROLS = (GEO_TEXT, GEO_PRECISION, GEO_SIDE, GEO_CUES, GEO_SCOPE)
# "Cannot review this frame": a reason instead of a bare skip (stored value → what the reviewer reads).
CANNOT_REVIEW = "cannot_review"
CANNOT_REASONS = {
    "unreadable": "Unreadable (black, blurred, corrupted)",
    "not_relevant": "Not relevant to any claim",
    "graphic": "Too graphic for me to review",
    "other": "Other (say why in the notes)",
}
# Task data fields the config displays; push.build_task fills them.
TASK_FIELDS = ("image", "provenance", "timestamp", "frame_key")


def claim_control(claim_id: str) -> str:
    """The name of the Choices control holding the verdict on one claim."""
    return f"claim_{claim_id}"


def build_config(case: Case, adjudication: bool = False) -> str:
    """Return the labeling config XML for ``case``.

    The adjudication variant also shows the task's ``dispute`` field: who answered what.
    """
    root = ET.Element("View")
    layout = ET.SubElement(root, "View", style="display: flex; gap: 1em; align-items: flex-start")

    left = ET.SubElement(layout, "View", style="flex: 3; min-width: 0")
    ET.SubElement(left, "Header", value="$provenance", size="5")
    ET.SubElement(left, "Header", value="$timestamp", size="6")
    if adjudication:
        ET.SubElement(left, "Header", value="$dispute", size="6")
    ET.SubElement(left, "Image", name=IMAGE, value="$image", zoom="true", zoomControl="true", rotateControl="false")
    for group in case.label_groups:
        ET.SubElement(left, "Header", value=group.title, size="6")
        tool = ET.SubElement(left, "RectangleLabels", name=group.name, toName=IMAGE, strokeWidth="2", opacity="0.25")
        for label in group.labels:
            ET.SubElement(tool, "Label", value=label.value, background=label.color)

    right = ET.SubElement(layout, "View", style="flex: 2; min-width: 18em")
    if case.instructions:  # in full behind the Instructions button; the first paragraph here
        ET.SubElement(right, "Header", value=paragraphs(case.instructions)[0], size="6")
    ET.SubElement(right, "Header", value="Claims: what does this frame show?", size="5")
    for claim in case.claims:
        ET.SubElement(right, "Header", value=f"{claim.id}: {claim.text}", size="6")
        choices = ET.SubElement(
            right, "Choices", name=claim_control(claim.id), toName=IMAGE, choice="single-radio", showInline="true"
        )
        for value in VERDICT_CHOICES.values():
            ET.SubElement(choices, "Choice", value=value)
    location_fields(right, case)
    ET.SubElement(right, "Header", value="Notes for the editor", size="5")
    ET.SubElement(
        right, "TextArea", name=NOTES, toName=IMAGE, rows="4", editable="true", maxSubmissions="1",
        placeholder="Readable text, landmarks, signs of editing, doubts…",
    )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def location_fields(parent: ET.Element, case: Case) -> None:
    """Where the camera was: coordinates as text, precision, side of the border, the boxed cues it rests on, scope."""
    ET.SubElement(parent, "Header", value="Where was the camera? (leave empty if you cannot tell)", size="5")
    ET.SubElement(
        parent, "TextArea", name=GEO_TEXT, toName=IMAGE, rows="1", editable="true", maxSubmissions="1",
        placeholder="30.9222, 66.4447 · 30°55′20″N 66°26′41″E · or a link from OpenStreetMap, Google Maps, Apple Maps",
    )
    for name, title, choices, how in (
        (GEO_PRECISION, "How precise is that position?", [label for label, _ in PRECISION.values()], "single-radio"),
        (GEO_SIDE, "Which side of the border was the camera on?", list(SIDE_CHOICES.values()), "single-radio"),
        (GEO_CUES, "The position rests on (your boxes):", [l.value for g in case.label_groups for l in g.labels], "multiple"),
        (GEO_SCOPE, "The position holds for:", list(SCOPE_CHOICES.values()), "single-radio"),
    ):
        ET.SubElement(parent, "Header", value=title, size="6")
        control = ET.SubElement(parent, "Choices", name=name, toName=IMAGE, choice=how, showInline="true")
        for value in choices:
            ET.SubElement(control, "Choice", value=value)


def paragraphs(text: str) -> list[str]:
    """Reflow hard-wrapped text: a blank line, or a line starting a numbered or bulleted item, starts a paragraph."""
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            out.append("")
        elif not out or not out[-1] or re.match(r"^(\d+[.)]|[-*•])\s", line):
            out.append(line)
        else:
            out[-1] += " " + line
    return [p for p in out if p]


ADJUDICATION_NOTE = (
    "Lead review: reviewers disagreed on this frame (their answers are shown above the image). "
    "Your answers decide; the report shows both your decision and the reviewers' vote."
)


BLIND_NOTE = ("Work through \"Label All Tasks\" and do not open tasks from the list: the list shows other "
              "reviewers' answers, and each review must be your own.")


def instructions_html(case: Case, adjudication: bool = False) -> str:
    """The project's instructions (shown in Label Studio's Instructions dialog), escaped."""
    lead = [ADJUDICATION_NOTE] if adjudication else [BLIND_NOTE]
    body = "".join(f"<p>{escape(p)}</p>" for p in lead + paragraphs(case.instructions))
    claims = "".join(f"<li><b>{escape(c.id)}</b>: {escape(c.text)}</li>" for c in case.claims)
    return f"<h3>{escape(case.title)}</h3>{body}<p>Claims:</p><ul>{claims}</ul>"


def check_config(xml: str, case: Case) -> None:
    """Check locally that the config parses and has one control per label group and claim.

    Raises:
        ValueError: the config does not match the case (a bug, not a user error).
    """
    root = ET.fromstring(xml)
    names = {el.get("name") for el in root.iter() if el.get("name")}
    expected = ({IMAGE, NOTES, *GEO_CONTROLS} | {g.name for g in case.label_groups}
                | {claim_control(c.id) for c in case.claims})
    if names != expected:
        raise ValueError(f"labeling config controls {sorted(names)} differ from the case's {sorted(expected)}")
    labels = {el.get("value") for el in root.iter("Label")}
    if labels != case.label_values():
        raise ValueError("labeling config labels differ from the case's labels")
