"""The report as an editor reads it (issue 13): Markdown by structure, the PDF and the audit, the same
counts everywhere, drawn labels that stay readable, and what each verdict rests on."""

from __future__ import annotations

import json
import re
from html import unescape
import subprocess

import pytest
from click.testing import CliRunner
from markdown_it import MarkdownIt

from tests import report_scenario as scenario
from tests.report_scenario import ANA, BEN, CIVILIANS, FLAG, HOSTILE_NOTE, LEAD, LEAD_NOTE, MILITANTS
from verify import custody, pipeline
from verify.case import load_case
from verify.cli import main
from verify.labelstudio.adjudicate import lead_conflicts
from verify.labelstudio.project import ADJUDICATION, REVIEW, project_title
from verify.report import draw
from verify.report.build import chromium
from verify.status import workspace_status
from tests.conftest import SEED_CASE


@pytest.fixture(scope="module")
def base(footage, tmp_path_factory):
    return scenario.build_base(tmp_path_factory.mktemp("editor") / "base", footage)


GRAPHIC_NOTE = "a body in the road <img src=x onerror=alert(1)>"
OFF_TOPIC_NOTE = "a studio interview, not the crossing"


def add_cannot_review(ws, done: dict) -> dict:
    """On top of the scenario: both reviewers could not review the second civilians frame (one says why by the
    reason's key, one by its label, as the config may store either), and on another frame ana answered while ben
    could not review it. Returns the keys."""
    from verify.records import Annotation

    videos = {v.sha256: v.source_id for v in ws.videos()}
    used = {*done["flags"], done["militants"], done["civilians"]}
    sent = sorted((f for f in ws.frames() if not f.duplicate_of), key=lambda f: f.t_ms)
    nobody = next(f for f in sent if videos[f.video_sha256] == "civilians-refused" and f.key not in used)
    half = next(f for f in sent if f.key not in used | {nobody.key} and videos[f.video_sha256] == "flag-hoisting-afghan-side")
    tasks = ws.tasks()

    def cannot(value, text=None):
        result = [{"type": "choices", "from_name": "cannot_review", "to_name": "frame", "value": {"choices": [value]}}]
        return result + ([scenario.note(text)] if text else [])

    extra = [(ANA, nobody, cannot("graphic", GRAPHIC_NOTE)), (BEN, nobody, cannot("Unreadable (black, blurred, corrupted)")),
             (ANA, half, [scenario.choice(FLAG, "Supports")]), (BEN, half, cannot("not_relevant", OFF_TOPIC_NOTE))]
    anns = [a for a in ws.annotations() if a.project_id == 1]
    for n, (who, frame, result) in enumerate(extra):
        anns.append(Annotation(id=5000 + n, task_id=tasks[frame.key], frame_key=frame.key, reviewer_id=None, reviewer=who,
                               was_cancelled=False, ground_truth=False, result=result,
                               created_at=f"2021-07-15T10:{n:02d}:00Z", project_id=1))
    ws.replace_annotations(1, anns)
    return {"nobody": nobody.key, "half": half.key}


@pytest.fixture
def reviewed(base, tmp_path):
    ws = scenario.copy(base, tmp_path / "ws")
    done = scenario.review(ws)
    done.update(add_cannot_review(ws, done))
    return ws, done


@pytest.fixture
def reports(reviewed):
    ws, done = reviewed
    written = pipeline.report(ws).written
    return ws, done, {fmt: path for fmt, (path, _) in written.items()}


# --- Markdown, parsed -------------------------------------------------------------------------------

def _frame_sections(tokens):
    """Per '### ' frame heading in the Frames section: the tokens up to the next heading."""
    sections, current, in_frames = [], None, False
    for t in tokens:
        if t.type == "heading_open":
            if t.tag == "h2":
                in_frames = False
            current = None
        if t.type == "inline" and tokens[tokens.index(t) - 1].type == "heading_open":
            level = tokens[tokens.index(t) - 1].tag
            if level == "h2":
                in_frames = t.content == "Frames"
            elif level == "h3" and in_frames:
                current = {"title": t.content, "tokens": []}
                sections.append(current)
                continue
        if current is not None:
            current["tokens"].append(t)
    return sections


def test_markdown_frames_have_one_list_item_per_claim_and_notes_as_block_quotes(reports):
    ws, done, paths = reports
    tokens = MarkdownIt("commonmark").enable("table").parse(paths["md"].read_text())
    assert not [t for t in tokens if t.type in ("html_block", "html_inline")]
    assert not [c for t in tokens if t.children for c in t.children if c.type == "html_inline"]
    model = json.loads(paths["json"].read_text())
    sections = _frame_sections(tokens)
    assert len(sections) == len(model["frames"])
    for frame, section in zip(model["frames"], sections):
        shown = [c for c, v in frame["verdicts"].items() if c in frame["bears_on"] or v["answers"]]
        toks = section["tokens"]
        items = [t for t in toks if t.type == "bullet_list_open"]
        assert len(items) == 1, section["title"]
        claim_items = [toks[i + 2].content for i, t in enumerate(toks)
                       if t.type == "list_item_open" and t.markup == "-"]
        assert [re.match(r"`(\w+)`", text).group(1) for text in claim_items] == shown, section["title"]
        assert all("\n" not in text for text in claim_items)
        quotes = sum(1 for t in toks if t.type == "blockquote_open")
        assert quotes == len(frame["notes"]), section["title"]
        boxes = sum(1 for t in toks if t.type == "list_item_open" and t.markup == ".")
        assert boxes == len(frame["boxes"]), section["title"]


# --- PDF and audit ----------------------------------------------------------------------------------

def _page_size(pdf) -> str:
    out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    return re.search(r"Page size:.*\((\w+)\)", out).group(1)


@pytest.mark.skipif(not chromium(), reason="needs Chromium (scripts/test.sh installs it)")
def test_a_pdf_leaves_the_other_reports_alone_the_audit_clean_and_is_a4_unless_letter_is_asked(reports):
    ws, _, paths = reports
    before = {fmt: path.read_bytes() for fmt, path in paths.items()}
    pdf = pipeline.report(ws, ("pdf",)).written
    assert set(pdf) == {"pdf"}
    assert {fmt: path.read_bytes() for fmt, path in paths.items()} == before  # html and md still agree
    result = custody.audit(ws)
    assert (result.changed, result.missing, result.unexpected) == ([], [], [])
    assert not getattr(result, "unlogged", [])
    assert _page_size(pdf["pdf"][0]) == "A4"  # pdfinfo: poppler-utils, installed by scripts/test.sh
    letter = pipeline.report(ws, ("pdf",), paper="letter").written["pdf"][0]
    assert _page_size(letter) == "letter"


# --- one set of counts everywhere -------------------------------------------------------------------

def _md_claim_rows(md: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)`:.*$", md, re.M)}


def test_status_sync_summary_html_markdown_and_json_agree_on_frames_answers_and_skips(reports):
    ws, done, paths = reports
    verdicts = pipeline.current_verdicts(ws)
    status = workspace_status(ws, verdicts)
    model = json.loads(paths["json"].read_text())
    html, md = unescape(paths["html"].read_text()), paths["md"].read_text()
    merged = CliRunner().invoke(main, ["-w", str(ws.root), "merge"])
    assert merged.exit_code == 0, merged.output
    printed = {line.split()[0]: line for line in merged.output.splitlines()}
    rows = _md_claim_rows(md)
    for claim, row in zip(model["claims"], status.claims):
        cid = claim["id"]
        assert (row["frames"], row["reviewed"], row["answers"], row["skips"], row["cannot_review"]) == (
            claim["frames"], claim["reviewed_frames"], claim["answers"], claim["skips"], claim["cannot_review"]), cid
        assert f"{claim['cannot_review']} could not review" in printed[cid]
        if claim["cannot_review"]:  # the same count and reasons in the claim's section of both documents
            reasons = ", ".join(f"{r.replace('_', ' ')} {n}" for r, n in claim["cannot_review_reasons"].items())
            said = f"{claim['skips']} skip{'s' if claim['skips'] != 1 else ''}, {claim['cannot_review']} could not review ({reasons})"
            assert said in html and said in md, cid
        words = f"{claim['reviewed_frames']} of the claim's {claim['frames']} frame"
        assert words in claim["basis"]["text"] and words in rows[cid]
        assert words in html
        assert f"{claim['reviewed_frames']} of {claim['frames']} frame" in printed[cid]
        assert f"{claim['answers']} answer" in printed[cid] and f"{claim['skips']} skip" in printed[cid]
    # per reviewer: the lead's decision is counted apart, never as a review
    for name, counts in status.reviewers.items():
        assert (counts["done"], counts["skipped"], counts["cannot_review"]) == (
            model["reviewers"][name]["reviews"], model["reviewers"][name]["skipped"],
            model["reviewers"][name]["cannot_review"]), name
    assert model["reviewers"][LEAD]["lead_decisions"] == 1
    assert status.adjudication["lead_decisions"] == {LEAD: 1}
    assert (status.adjudication["sent"], status.adjudication["decided"], status.adjudication["waiting"]) == (1, 1, 0)
    assert model["summary"]["reviews"] == sum(r["reviews"] for r in model["reviewers"].values())
    assert model["summary"]["submissions"] == sum(sum(r.values()) for r in model["reviewers"].values())
    assert model["summary"]["lead_decisions"] == 1
    assert f"| {ANA} | {model['reviewers'][ANA]['reviews']} | 0 | 1 | 1 |" in md
    # "cannot review": one total everywhere, and the frame no reviewer could review listed, not silently unreviewed
    summary = model["summary"]
    assert summary["cannot_review"] == sum(r["cannot_review"] for r in model["reviewers"].values()) == 3
    assert summary["cannot_review"] == status.cannot_review["annotations"]
    said = (f'{summary["submissions"]} submissions: {summary["reviews"]} reviews, {summary["skips"]} skip and '
            f'{summary["cannot_review"]} "cannot review"')
    assert said in unescape(html) and said in md
    nobody = [u["frame_key"] for u in model["nobody_could_review"]]
    assert nobody == [done["nobody"]] == [f["key"] for f in status.cannot_review["frames_nobody_could_review"]]
    assert summary["frames_nobody_could_review"] == 1 and "1 frame no reviewer could review" in html
    assert "1 frame no reviewer could review" in md
    by_source = {s["source_id"]: s for s in model["sources"]}
    assert (by_source["civilians-refused"]["cannot_review"], by_source["civilians-refused"]["nobody_could_review"]) == (2, 1)
    status_lines = CliRunner().invoke(main, ["-w", str(ws.root), "status"]).output
    assert "could not review: 3 answers (graphic 1, not_relevant 1, unreadable 1) · 1 frame no reviewer could review: civilians-refused at" in status_lines


# --- who reviewed, who decided, what the verdict rests on ------------------------------------------

def test_a_frame_card_lists_who_could_not_review_it_with_the_reason_and_note(reports):
    ws, done, paths = reports
    model = json.loads(paths["json"].read_text())
    frames = {f["key"]: f for f in model["frames"]}
    nobody, half = frames[done["nobody"]], frames[done["half"]]
    assert [(c["reviewer"], c["reason"]) for c in nobody["cannot_review"]] == [(ANA, "graphic"), (BEN, "unreadable")]
    assert nobody["nobody_could_review"] and nobody["reviewers"] == [] and nobody["notes"] == []
    assert all(v["verdict"] == "unreviewed" for v in nobody["verdicts"].values())
    assert half["reviewers"] == [ANA] and half["verdicts"][FLAG]["by_reviewer"] == {ANA: "supports"}
    html, md = unescape(paths["html"].read_text()), paths["md"].read_text()
    assert f"could not review: {ANA} — Too graphic for me to review ({GRAPHIC_NOTE})" in html
    assert f"could not review: {BEN} — Unreadable (black, blurred, corrupted)" in html
    assert f"could not review: {BEN} — Not relevant to any claim ({OFF_TOPIC_NOTE})" in html
    assert "<img src=x" not in paths["html"].read_text() and "<img src=x" not in md  # the note is escaped in both
    assert f"Could not review: {scenario_md(BEN)} — Not relevant to any claim ({OFF_TOPIC_NOTE})" in md
    assert "No reviewer could review this frame." in html and "**No reviewer could review this frame.**" in md


def scenario_md(text: str) -> str:
    from verify.report.build import md_escape

    return md_escape(text)


def test_a_graphic_sources_frames_are_said_to_have_reached_reviewers_blurred(reviewed):
    import dataclasses

    ws, done = reviewed
    case = ws.case
    ws._case = dataclasses.replace(case, sources=tuple(dataclasses.replace(s, graphic=s.id == "civilians-refused")
                                                       for s in case.sources))
    written = {fmt: path for fmt, (path, _) in pipeline.report(ws).written.items()}
    model = json.loads(written["json"].read_text())
    graphic = {f["key"] for f in model["frames"] if f["graphic"]}
    assert graphic and graphic == {f["key"] for f in model["frames"] if f["source_id"] == "civilians-refused"}
    assert [s["source_id"] for s in model["sources"] if s["graphic"]] == ["civilians-refused"]
    html, md = written["html"].read_text(), written["md"].read_text()
    for text in (html, md):
        assert text.count("Shown to reviewers blurred (graphic)") == len(graphic)
        assert "shown to reviewers blurred (graphic)" in text  # the source, and the frame nobody could review

def test_a_reviewer_who_only_skipped_is_not_listed_as_a_reviewer(reports):
    ws, done, paths = reports
    model = json.loads(paths["json"].read_text())
    civilians = next(f for f in model["frames"] if f["key"] == done["civilians"])
    assert civilians["reviewers"] == [ANA] and civilians["skipped_by"] == [BEN]
    assert [(r["reviewer"], r["skipped"]) for r in civilians["reviews"]] == [(ANA, False), (BEN, True)]
    assert all(r["at"] for r in civilians["reviews"])


def test_the_leads_note_and_decision_are_marked_and_the_conflict_of_interest_stated(reports):
    ws, done, paths = reports
    model = json.loads(paths["json"].read_text())
    militants = next(f for f in model["frames"] if f["key"] == done["militants"])
    notes = {n["text"]: n["lead"] for n in militants["notes"]}
    assert notes == {HOSTILE_NOTE: False, LEAD_NOTE: True}
    [decision] = model["adjudication"]["decisions"]
    assert (decision["claim"], decision["lead"], decision["decision"], decision["vote"], decision["lead_had_answered"]) == (
        MILITANTS, LEAD, "supports", "disputed", "supports")
    html, md = paths["html"].read_text(), paths["md"].read_text()
    assert "Lead&#39;s adjudication note" in html or "Lead's adjudication note" in html
    assert "the lead had answered this frame as a reviewer" in html and "the lead had answered this frame as a reviewer" in md


def test_adjudicate_names_the_disputed_frames_the_lead_had_answered(reviewed):
    ws, done = reviewed
    ws.replace_annotations(2, [])  # undecided again
    disputed = pipeline.current_verdicts(ws).disputed_frames()
    assert [f.key for f in disputed] == [done["militants"]]
    [conflict] = lead_conflicts(disputed, ANA)
    assert conflict.startswith("militants-at-gate at 0:00:") and done["militants"][:8] in conflict
    assert lead_conflicts(disputed, "someone.else@desk.example") == [] and lead_conflicts(disputed, None) == []


def test_each_claim_says_what_its_verdict_rests_on(reports):
    ws, done, paths = reports
    claims = {c["id"]: c for c in json.loads(paths["json"].read_text())["claims"]}
    flag = claims[FLAG]["basis"]
    supporting = len(claims[FLAG]["supporting"])  # as many as the keyframe selector gave the flag video
    sources = claims[FLAG]["independent_sources"]["supporting"]
    assert supporting >= 3 and flag["text"].startswith(
        f"Supported: {supporting} independent frames supporting it, from {len(sources)} independent source")
    assert flag["answered_by"] == sorted([ANA, BEN])
    civilians = claims[CIVILIANS]["basis"]
    assert "civilians-refused (1 of 2 frames)" in civilians["text"] and civilians["provisional"]
    militants = claims[MILITANTS]["basis"]
    assert militants["leads"] == [LEAD] and f"Lead's decision, apart from the votes: {LEAD} decided" in militants["text"]


def test_a_claim_disputed_only_because_frames_conflict_says_so(reviewed):
    from verify.report.build import claim_basis

    ws, done = reviewed
    model = pipeline.current_verdicts(ws).to_json()
    claim = next(c for c in model["claims"] if c["id"] == FLAG)
    [first, second, *_] = done["flags"]
    fake = {**claim, "verdict": "disputed", "supporting": [first], "contradicting": [second], "disputed": []}
    text = claim_basis(FLAG, fake, model["frames"], ws.videos())["text"]
    assert "Disputed because frames conflict: 1 support it and 1 contradict it" in text


# --- drawing ----------------------------------------------------------------------------------------

def test_the_label_font_draws_the_times_sign():
    face, times = draw.font(20)
    assert times, "DejaVu Sans is missing: scripts/setup.sh installs fonts-dejavu-core"
    missing = face.getmask("\uffff").getbbox()
    assert face.getmask("×").getbbox() != missing


@pytest.mark.parametrize("boxes", [
    [(10, 10, 100, 60)] * 4,  # four labels on one box
    [(600, 0, 640, 20), (0, 340, 30, 360), (620, 340, 640, 360)],  # boxes at the edges and corners
    [(x, y, x + 30, y + 30) for x in range(0, 600, 40) for y in range(0, 330, 40)],  # crowded
])
def test_drawn_tags_never_overlap_or_leave_the_picture(boxes):
    sizes = [[(180, 22), (22, 22)] for _ in boxes]
    places = draw.layout_tags(boxes, sizes, 640, 360)
    rects = [p[0] for p in places if p]
    assert len(rects) >= min(len(boxes), 4)
    for i, (x0, y0, x1, y1) in enumerate(rects):
        assert 0 <= x0 and x1 <= 640 and 0 <= y0 and y1 <= 360
        for other in rects[i + 1:]:
            assert not draw._overlaps((x0, y0, x1, y1), other)


def test_each_label_group_has_its_own_colour_in_the_drawing_and_the_legend(reports):
    ws, done, paths = reports
    model = json.loads(paths["json"].read_text())
    colours = {g["name"]: g["colour"] for g in model["legend"]}
    assert len(set(colours.values())) == len(colours)
    first = next(f for f in model["frames"] if f["key"] == done["flags"][0])
    assert {b["label"]: b["colour"] for b in first["boxes"]}["Taliban flag"] == colours["flags"]
    assert all(b["tag"] == "drawn" for b in first["boxes"])
    assert [b["n"] for b in first["boxes"]] == list(range(1, len(first["boxes"]) + 1))


# --- small breakages ---------------------------------------------------------------------------------

def test_a_long_case_title_is_cut_at_a_word_for_the_adjudication_project():
    case = load_case(SEED_CASE)
    title = project_title(case, ADJUDICATION)
    assert title == "Spin Boldak–Chaman border crossing… (adjudication)" and len(title) <= 50
    assert project_title(case, REVIEW) == case.title


def test_status_prints_whole_names_and_the_adjudication_queue(reports):
    ws, _, _ = reports
    out = CliRunner().invoke(main, ["-w", str(ws.root), "status"])
    assert out.exit_code == 0, out.output
    assert ANA in out.output and "militants_beside_pakistani_guards" in out.output
    assert "adjudication: 1 disputed frame sent" in out.output and "1 decided, 0 waiting" in out.output


def test_no_progress_bar_text_when_stderr_is_not_a_terminal(reviewed):
    from verify.cli import importing

    ws, _ = reviewed
    with importing(ws) as progress:  # pytest's stderr is not a terminal
        progress(3)


def test_frame_verdicts_are_capitalised_like_claim_verdicts():
    from verify.report.build import verdict_text, vote_text
    from verify.verdicts.values import Vote

    assert [verdict_text(v) for v in ("supports", "contradicts", "inconclusive", Vote.SUPPORTS)] == [
        "Supports", "Contradicts", "Inconclusive", "Supports"]
    assert vote_text({"verdict": Vote.SUPPORTS, "adjudicated_by": "lead@desk.example"}) == "Supports (lead's decision)"


def test_a_reupload_is_listed_with_its_original_and_never_counted_as_corroboration(reports):
    """A re-upload's frame shows the same picture as its original: the report lists it beside the original's
    evidence, counts the picture once, and never counts the re-upload's source as one more independent source."""
    ws, done, paths = reports
    report = json.loads(paths["json"].read_text())
    frames = {f["key"]: f for f in report["frames"]}
    copies = [(c, kind, e, cp) for c in report["claims"] for kind in ("supporting", "contradicting")
              for e in c[kind] for cp in e["copies"]]
    assert copies, "the scenario's re-uploaded flag frames are shown with their originals"
    for claim, kind, e, cp in copies:
        assert frames[cp["frame_key"]]["original"] == e["frame_key"]
        assert cp["source_id"] not in claim["independent_sources"][kind], (claim["id"], cp)
        assert cp["frame_key"] not in [x["frame_key"] for x in claim[kind]]  # counted once, with the original
    assert "the same picture, counted once" in paths["html"].read_text()
    assert "counted once" in paths["md"].read_text()


def test_status_and_report_say_how_many_independent_sources_each_verdict_rests_on(reports):
    """Issue 24: "independent sources" and "frames" are separate numbers in status, the JSON and the report, a
    verdict on one source says "single source", and a re-upload's source row says it is a copy."""
    from verify import terminal

    ws, done, paths = reports
    model = json.loads(paths["json"].read_text())
    status = workspace_status(ws, pipeline.current_verdicts(ws))
    flag_row = next(c for c in status.claims if c["id"] == FLAG)
    flag = next(c for c in model["claims"] if c["id"] == FLAG)
    assert flag_row["independent_sources"] == len(flag["independent_sources"]["supporting"]) == 1
    assert flag_row["evidence_frames"] == len(flag["supporting"]) and flag["single_source"]
    printed = next(line for line in terminal.status(status) if line.strip().startswith(FLAG))
    assert f"on {len(flag['supporting'])} independent frames from 1 independent source (single source)" in printed
    html, md = paths["html"].read_text(), paths["md"].read_text()
    assert "single source" in html and "(single source)" in md
    copy = next(s for s in model["sources"] if s["copy_of"])
    assert copy["verdicts"] == {} and f"copy of {copy['copy_of'][0]}" in md
    assert f'copy of <a href="#source-{copy["copy_of"][0]}">' in html


def test_the_report_says_which_frames_still_need_reviews_and_from_whom(reports):
    """Issue 24, item 4: open frames are named with who can still take them, and those every reviewer has already
    touched are said to need another reviewer."""
    ws, done, paths = reports
    model = json.loads(paths["json"].read_text())
    still = model["still_open"]
    assert still["tasks"] >= 1 and set(still["takers"]) <= set(model["reviewers"])
    civilians = next(q for q in still["need_new_reviewer"] if q["frame_key"] == done["civilians"])  # ana answered, ben skipped
    assert civilians["reviews"] == 1
    html, md = unescape(paths["html"].read_text()), paths["md"].read_text()
    assert "they need another reviewer (verify reviewers add)" in html.replace("<code>", "").replace("</code>", "")
    assert "they need another reviewer (`verify reviewers add`)" in md
