"""The Label Studio labeling config, generated from the case.

The reviewer sees the source and the frame's timestamp, the box tools (one row of labels per label
group) above the frame, and beside it the claims in plain words (the source's first and open, the
others folded), "cannot review this frame" with a reason, where the camera was, and notes. A graphic
source's frames are blurred and grey until the reviewer opens "Show the picture". One config serves
every task: the per-task parts are CSS (a <Style> tag) keyed on task fields that are empty or not.
The XML is built with ElementTree, so any label or claim text is escaped, never spliced.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html import escape

from verify.case import VERDICT_CHOICES, Case
from verify.report.draw import GROUP_COLOURS
from verify.verdicts.places import PRECISION, SCOPE_CHOICES, SIDE_CHOICES

IMAGE = "frame"
# The one box control (every label of the case): a hyphen, so no label group (``[a-z][a-z0-9_]*``) can take the name.
BOXES = "box-labels"
# How Label Studio 1.23 starts a box inside another (a plain drag there moves the box under the pointer instead).
NEST_HINT = "Box inside a box: Ctrl+drag (⌘+drag on a Mac). Esc lets go of a selected box."
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
# Task data fields the config displays; push.build_task fills them (and one "bears" field per claim, see bears_field).
TASK_FIELDS = ("image", "provenance", "timestamp", "frame_key", "graphic_warning")
# The strip of pictures around the frame (verify.media.context): motion the still frame cannot show. A second
# <Image> makes Label Studio refuse direct file uploads ("more than one data key"), so a project whose frames
# are sent by upload has no strip; local files and object storage have it.
CONTEXT = "context"
CONTEXT_FIELDS = (CONTEXT, "context_header")
GRAPHIC_WARNING = ("Graphic footage: the picture is blurred and grey until you click \"Show the picture\". If you would "
                   "rather not see it, choose \"Cannot review\": \"Too graphic for me to review\".")
# The picture is at most as tall as the window leaves below the page's head, tools and warning (CSS sets the variable).
PICTURE_HEIGHT = "calc(100vh - var(--verify-above, 322px))"
BEARS = "Asked first: this video's source bears on this claim."
REVEAL = "Show the picture (graphic footage)"
# Label Studio gives every choice without a hotkey the next free key (e, t, a…): odd keys that answer a
# claim by accident. Choices get a key no keyboard sends, and its hint is hidden; the box labels keep theirs.
NO_HOTKEY = "f19"
# The page is laid out by CSS keyed on what the task shows (no script): Header elements whose text is
# empty for a task are ``:empty``, so a task's data switches parts of the layout on and off.
#  - the box tools sit above the picture, the picture is at most as tall as the window allows, the
#    questions sit beside it in a column that scrolls on its own;
#  - a claim whose "bears" field is filled moves to the top and opens; the others stay folded
#    (a click on the claim opens it) - Label Studio renders closed panels (forceRender), CSS opens them;
#  - a task whose "graphic_warning" is filled shows the picture and its context strip blurred and grey until
#    the reviewer opens the "Show the picture" panel.
# Label Studio sanitizes the <Style> text as HTML: no ">" or "&" in this CSS.
CSS = """
.verify-task :is(h1, h2, h3, h4, h5, h6) { font-size: 14px; line-height: 1.35; margin: 2px 0 !important; font-weight: 500; }
.verify-page { --verify-above: 322px; display: flex; gap: 14px; align-items: flex-start; }
.verify-frame { flex: 1 1 0; min-width: 0; }
.verify-questions { flex: 0 0 22em; max-height: calc(100vh - 140px); overflow-y: auto; padding-right: 6px; }
.verify-head :is(h1, h2, h3, h4, h5, h6) { font-size: 15px; }
.verify-tools { margin: 2px 0 4px 0; }
.verify-tools .lsf-labels { display: flex; flex-wrap: wrap; gap: 0 12px; align-items: center; margin: 0; padding: 0; }
.verify-tool { display: flex; flex-wrap: wrap; gap: 0 12px; align-items: center; }
.verify-tool :is(h1, h2, h3, h4, h5, h6) { white-space: nowrap; color: #555; margin-left: 6px !important; }
.verify-tool .lsf-label { margin: 2px 0; }
.verify-nest :is(h1, h2, h3, h4, h5, h6) { color: #555; font-size: 12px; font-weight: normal; }
.verify-legacy { display: none !important; }
.verify-warning :is(h1, h2, h3, h4, h5, h6) { color: #a61b1b; }
.verify-warning :is(h1, h2, h3, h4, h5, h6):empty, .verify-bears :is(h1, h2, h3, h4, h5, h6):empty { display: none; }
.verify-reveal { display: none; }
.verify-page:has(.verify-warning :is(h1, h2, h3, h4, h5, h6):not(:empty)) { --verify-above: 387px; }
.verify-page:has(.verify-warning :is(h1, h2, h3, h4, h5, h6):not(:empty)) .verify-reveal { display: block; }
.verify-reveal .ant-collapse-header { padding: 2px 6px !important; color: #a61b1b; }
.verify-page:has(.verify-warning :is(h1, h2, h3, h4, h5, h6):not(:empty)):not(:has(.verify-reveal .ant-collapse-item-active))
  :is(.verify-picture, .verify-context) :is(canvas, img) { filter: blur(28px) grayscale(1) !important; }
.verify-claims { display: flex; flex-direction: column; gap: 2px; }
.verify-claim:has(.verify-bears :not(:empty)) { order: -1; }
.verify-claim:has(.verify-bears :not(:empty)) .ant-collapse-content { display: block !important; height: auto !important; }
.verify-claim:has(.verify-bears :not(:empty)) .ant-collapse-arrow { visibility: hidden; }
.verify-bears :is(h1, h2, h3, h4, h5, h6) { color: #1d5fa8; font-size: 12px; font-weight: normal; }
.verify-claim .ant-collapse-header { padding: 3px 6px !important; }
.verify-claim .ant-collapse-content-box { padding: 2px 6px 6px 28px !important; }
.verify-claims:not(:has(.verify-bears :empty)) .verify-others { display: none; }
.verify-claims:not(:has(.verify-bears :not(:empty))) .verify-others { display: none; }
.verify-claims:not(:has(.verify-bears :not(:empty))) .ant-collapse-content { display: block !important; height: auto !important; }
.verify-claims:not(:has(.verify-bears :not(:empty))) .ant-collapse-arrow { visibility: hidden; }
.verify-others :is(h1, h2, h3, h4, h5, h6) { margin-top: 8px !important; color: #555; font-size: 13px; }
.verify-questions .lsf-hint { display: none; }
.verify-cannot { margin-top: 10px; }
.verify-context { margin-top: 8px; }
.verify-context :is(h1, h2, h3, h4, h5, h6) { color: #555; font-size: 13px; }
.verify-context :is(h1, h2, h3, h4, h5, h6):empty { display: none; }
"""


def claim_control(claim_id: str) -> str:
    """The name of the Choices control holding the verdict on one claim."""
    return f"claim_{claim_id}"


def bears_field(claim_id: str) -> str:
    """The task data field that is filled (``BEARS``) when the frame's source bears on the claim, else empty."""
    return f"bears_{claim_id}"


def task_fields(case: Case, context: bool = True) -> tuple[str, ...]:
    """Every task data field the case's config reads (with the context strip's when ``context``)."""
    return (*TASK_FIELDS, *(bears_field(c.id) for c in case.claims), *(CONTEXT_FIELDS if context else ()))


def build_config(case: Case, adjudication: bool = False, context: bool = True) -> str:
    """Return the labeling config XML for ``case``.

    The adjudication variant also shows the task's ``dispute`` field: who answered what. With ``context``
    the strip of pictures around the frame is shown under it (not boxed, not answered).
    """
    root = ET.Element("View", className="verify-task")
    ET.SubElement(root, "Style").text = CSS + group_css(case)
    page = ET.SubElement(root, "View", className="verify-page")

    frame = ET.SubElement(page, "View", className="verify-frame")
    head = ET.SubElement(frame, "View", className="verify-head")
    ET.SubElement(head, "Header", value="$provenance", size="5")
    ET.SubElement(head, "Header", value="$timestamp", size="6")
    if adjudication:
        ET.SubElement(head, "Header", value="$dispute", size="6")
    box_tools(frame, case)
    ET.SubElement(ET.SubElement(frame, "View", className="verify-warning"), "Header", value="$graphic_warning", size="4")
    reveal = ET.SubElement(ET.SubElement(frame, "View", className="verify-reveal"), "Collapse", accordion="false")
    ET.SubElement(ET.SubElement(reveal, "Panel", value=REVEAL), "Header", value="Shown as it is: click again to blur it.", size="6")
    picture = ET.SubElement(frame, "View", className="verify-picture")
    ET.SubElement(picture, "Image", name=IMAGE, value="$image", zoom="true", zoomControl="true", rotateControl="false",
                  maxHeight=PICTURE_HEIGHT)
    if context:  # an empty "context" (a task without a strip) draws nothing and shows no error (seen on 1.23.2)
        strip = ET.SubElement(frame, "View", className="verify-context")
        ET.SubElement(strip, "Header", value="$context_header", size="6")
        ET.SubElement(strip, "Image", name=CONTEXT, value="$" + CONTEXT, zoom="false", zoomControl="false",
                      rotateControl="false")

    right = ET.SubElement(page, "View", className="verify-questions")
    if case.instructions:  # in full behind the Instructions button; the first paragraph here
        ET.SubElement(right, "Header", value=paragraphs(case.instructions)[0], size="6")
    ET.SubElement(right, "Header", value="Claims: what does this frame show?", size="5")
    claims = ET.SubElement(right, "View", className="verify-claims")
    ET.SubElement(ET.SubElement(claims, "View", className="verify-others"), "Header",
                  value="Other claims of the case (click one to answer it):", size="6")
    for claim in case.claims:
        block = ET.SubElement(claims, "View", className=f"verify-claim verify-claim-{claim.id}")
        ET.SubElement(ET.SubElement(block, "View", className="verify-bears"), "Header", value="$" + bears_field(claim.id), size="6")
        panel = ET.SubElement(ET.SubElement(block, "Collapse", accordion="false"), "Panel", value=claim.text)
        choices = ET.SubElement(panel, "Choices", name=claim_control(claim.id), toName=IMAGE, choice="single-radio",
                                showInline="true")
        for value in VERDICT_CHOICES.values():
            ET.SubElement(choices, "Choice", value=value, hotkey=NO_HOTKEY)
    cannot = ET.SubElement(right, "View", className="verify-cannot")
    ET.SubElement(cannot, "Header", value="Cannot review this frame? Say why (instead of Skip):", size="5")
    control = ET.SubElement(cannot, "Choices", name=CANNOT_REVIEW, toName=IMAGE, choice="single", showInline="false")
    for key, text in CANNOT_REASONS.items():  # the reviewer reads the text; the annotation stores the key (alias)
        ET.SubElement(control, "Choice", value=text, alias=key, hotkey=NO_HOTKEY)
    location_fields(right, case)
    ET.SubElement(right, "Header", value="Notes for the editor", size="5")
    ET.SubElement(
        right, "TextArea", name=NOTES, toName=IMAGE, rows="4", editable="true", maxSubmissions="1",
        placeholder="Readable text, landmarks, signs of editing, doubts, why you cannot review…",
    )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def box_tools(frame: ET.Element, case: Case) -> None:
    """The box tools above the picture (in reach for portrait and landscape frames): ONE RectangleLabels control
    holding every label of the case, single choice, so a box has exactly one label. Each label group is a row
    section headed by its title, its labels in the group's colour (the report's legend colours).

    One control per group let Label Studio give a box labels of two groups (a box selected while the reviewer
    picked the next box's label in another group: "Signage / text" on a box around civilians; Label Studio issue
    #5198). The old per-group controls stay in the config, hidden and without hotkeys: Label Studio refuses a config
    that drops a control existing annotations use, and adjudication still sends such annotations' boxes.
    """
    tools = ET.SubElement(frame, "View", className="verify-tools")
    labels = ET.SubElement(tools, "RectangleLabels", name=BOXES, toName=IMAGE, choice="single", strokeWidth="2",
                           opacity="0.25")
    for i, group in enumerate(case.label_groups):
        section = ET.SubElement(labels, "View", className=f"verify-tool verify-group-{i}")
        ET.SubElement(section, "Header", value=group.title + ":", size="6")
        for label in group.labels:
            ET.SubElement(section, "Label", value=label.value, background=group_colour(i), hint=group.title)
    ET.SubElement(ET.SubElement(tools, "View", className="verify-nest"), "Header", value=NEST_HINT, size="6")
    legacy = ET.SubElement(frame, "View", className="verify-legacy", style="display: none")
    for i, group in enumerate(case.label_groups):
        control = ET.SubElement(legacy, "RectangleLabels", name=group.name, toName=IMAGE, choice="single",
                                strokeWidth="2", opacity="0.25")
        for label in group.labels:
            ET.SubElement(control, "Label", value=label.value, background=group_colour(i), hotkey=NO_HOTKEY)


def group_colour(index: int) -> str:
    """The colour of the ``index``-th label group: the report's (verify.report.draw), so a box looks alike in both."""
    return GROUP_COLOURS[index % len(GROUP_COLOURS)]


def group_css(case: Case) -> str:
    """Each group's title marked with its colour, as the report's legend shows it."""
    return "".join(f".verify-group-{i} :is(h1, h2, h3, h4, h5, h6) {{ border-left: 10px solid {group_colour(i)}; "
                   "padding-left: 4px; }\n" for i in range(len(case.label_groups)))


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
            ET.SubElement(control, "Choice", value=value, hotkey=NO_HOTKEY)


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
    "Lead review: reviewers disagreed on these frames. Open each task from the project's task list (not "
    "\"Label All Tasks\"): only there does Label Studio show each reviewer's boxes, as predictions named by "
    "the reviewer's email, which you can accept or correct. Your own annotation starts as a copy of one reviewer's "
    "boxes: a box you leave untouched stays that reviewer's, one you move, resize or relabel (or draw) is yours. "
    "Who answered what, and their notes, are shown above "
    "the image; the disputed claims come first. Your answers decide; the report shows both your decision and the "
    "reviewers' vote."
)


BLIND_NOTE = ("Work through the label stream (the link verify gives, or \"Label All Tasks\") and do not open tasks "
              "from the list: the list shows other reviewers' answers, and each review must be your own.")
CANNOT_NOTE = ("If you cannot assess a frame, tick \"Cannot review this frame\" with the reason (unreadable, not relevant "
               "to any claim, too graphic for you, or other: then say why in the notes) and submit it, instead of Skip: "
               "the editor then knows why.")
BOX_NOTE = ("Boxes: click a label, then drag on the picture; each box has exactly one label, and after each box you "
            "click the next box's label. To box something inside another box (a sign on the gate, people at the gate), "
            "click the label, then hold Ctrl (⌘ on a Mac) while you drag inside it: a plain drag there moves the box "
            "underneath instead (Ctrl+Z undoes a move). To move or resize a box that lies inside another, first click its "
            "line under Regions, then drag it. To change a box's label, click the box or its line under Regions, then the "
            "right label. A selected box shows handles: press Esc before you draw the next box, or your drag moves it "
            "and the label you click replaces its label.")
QUESTIONS_NOTE = ("The claims this video's source bears on are asked first and open; the other claims of the case are "
                  "folded below them: open one if the frame shows something about it.")


def instructions_html(case: Case, adjudication: bool = False, stream_url: str | None = None) -> str:
    """The project's instructions (shown in Label Studio's Instructions dialog), escaped; with ``stream_url``,
    the link that opens the label stream."""
    lead = [ADJUDICATION_NOTE, BOX_NOTE] if adjudication else [BLIND_NOTE, BOX_NOTE, QUESTIONS_NOTE, CANNOT_NOTE]
    link = (f'<p><b>Your link:</b> <a href="{escape(stream_url)}">{escape(stream_url)}</a> (it opens the next frame '
            "for you to review)</p>") if stream_url else ""
    body = "".join(f"<p>{escape(p)}</p>" for p in lead + paragraphs(case.instructions))
    claims = "".join(f"<li>{escape(c.text)}</li>" for c in case.claims)
    return f"<h3>{escape(case.title)}</h3>{link}{body}<p>Claims:</p><ul>{claims}</ul>"


def check_config(xml: str, case: Case) -> None:
    """Check locally that the config parses and has one control per label group and claim.

    Raises:
        ValueError: the config does not match the case (a bug, not a user error).
    """
    root = ET.fromstring(xml)
    names = {el.get("name") for el in root.iter() if el.get("name")} - {CONTEXT}
    expected = ({IMAGE, NOTES, CANNOT_REVIEW, BOXES, *GEO_CONTROLS} | {g.name for g in case.label_groups}
                | {claim_control(c.id) for c in case.claims})
    if names != expected:
        raise ValueError(f"labeling config controls {sorted(names)} differ from the case's {sorted(expected)}")
    labels = {el.get("value") for el in root.iter("Label")}
    if labels != case.label_values():
        raise ValueError("labeling config labels differ from the case's labels")
    [boxes] = [el for el in root.iter("RectangleLabels") if el.get("name") == BOXES]
    shown = [el.get("value") for el in boxes.iter("Label")]
    if sorted(shown) != sorted(l.value for g in case.label_groups for l in g.labels) or boxes.get("choice") != "single":
        raise ValueError(f"the {BOXES} control must hold every label of the case once, one label per box")
    [cannot] = [el for el in root.iter("Choices") if el.get("name") == CANNOT_REVIEW]
    if {c.get("alias"): c.get("value") for c in cannot} != CANNOT_REASONS:
        raise ValueError("labeling config's cannot-review reasons differ from CANNOT_REASONS")


# --- claim decisions: the lead decides a claim whose frames conflict (verify.labelstudio.claims) -------------------
# One picture per task (verify composes the conflicting frames side by side), so direct upload works too.
MONTAGE = "montage"
CLAIM_DECISION = "decision"  # never a claim's control (those are claim_<id>), so the frame merge ignores it
CLAIM_NOTE = "decision_note"  # not NOTES: the lead's note on a claim is not a note on a frame
CLAIM_DECISIONS = {"supported": "Supported", "contradicted": "Contradicted", "inconclusive": "Inconclusive"}
CLAIM_TASK_FIELDS = ("image", "claim", "conflict")
CLAIM_CSS = """
.verify-claim-task :is(h1, h2, h3, h4, h5, h6) { font-size: 14px; line-height: 1.35; margin: 2px 0 !important; }
.verify-claim-head :is(h1, h2, h3, h4, h5, h6) { font-size: 16px; font-weight: 600; }
.verify-claim-decision { margin-top: 8px; }
.verify-claim-decision .lsf-hint { display: none; }
"""
CLAIM_NOTE_ASK = "Why? (required: which frames decide it, and why the others do not)"
CLAIM_DECISION_NOTE = (
    "Claim decisions: the frames of these claims conflict: reviewers agreed that some frames support the claim and "
    "that others contradict it, so no frame-by-frame decision can settle it. Each task shows the conflicting frames "
    "side by side (supporting on the left, contradicting on the right, each with its source, time and the "
    "reviewers' answers). Decide the claim as a whole (Supported, Contradicted or Inconclusive) and say why in the "
    "note; the report shows your decision, your note and the frames beside the reviewers' votes."
)


def build_claim_config() -> str:
    """The labeling config of the claim-decisions project (pure): the claim, what conflicts, the side-by-side
    picture, the decision (one of ``CLAIM_DECISIONS``) and a required note."""
    root = ET.Element("View", className="verify-claim-task")
    ET.SubElement(root, "Style").text = CLAIM_CSS
    head = ET.SubElement(root, "View", className="verify-claim-head")
    ET.SubElement(head, "Header", value="$claim", size="4")
    ET.SubElement(head, "Header", value="$conflict", size="6")
    ET.SubElement(root, "Image", name=MONTAGE, value="$image", zoom="true", zoomControl="true", rotateControl="false",
                  maxHeight="calc(100vh - 330px)")
    decision = ET.SubElement(root, "View", className="verify-claim-decision")
    ET.SubElement(decision, "Header", value="Your decision on the claim, from all of these frames:", size="5")
    choices = ET.SubElement(decision, "Choices", name=CLAIM_DECISION, toName=MONTAGE, choice="single-radio",
                            showInline="true", required="true", requiredMessage="Choose a decision on the claim")
    for value in CLAIM_DECISIONS.values():
        ET.SubElement(choices, "Choice", value=value, hotkey=NO_HOTKEY)
    ET.SubElement(decision, "Header", value=CLAIM_NOTE_ASK, size="6")
    ET.SubElement(decision, "TextArea", name=CLAIM_NOTE, toName=MONTAGE, rows="4", editable="true", maxSubmissions="1",
                  required="true", requiredMessage="Say why in the note",
                  placeholder="Which frames decide it and why; what the others show; doubts")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def claim_instructions_html(case: Case, stream_url: str | None = None) -> str:
    """The claim-decisions project's instructions, escaped; with ``stream_url``, the link to its label stream."""
    link = (f'<p><b>Your link:</b> <a href="{escape(stream_url)}">{escape(stream_url)}</a> (it opens the next claim '
            "to decide)</p>") if stream_url else ""
    claims = "".join(f"<li>{escape(c.text)}</li>" for c in case.claims)
    return f"<h3>{escape(case.title)}</h3>{link}<p>{escape(CLAIM_DECISION_NOTE)}</p><p>Claims:</p><ul>{claims}</ul>"
