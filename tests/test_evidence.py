"""Verdicts that mean what they say (issue 24): a re-upload is not corroboration, each person counts once, a box
carries one label, and a verdict stays provisional until its frames have the quorum. Fast: the merge is pure."""

from __future__ import annotations

import pytest

from verify.case import load_case
from verify.records import Annotation, Frame, Video
from verify.report.build import claim_basis, single_source
from verify.verdicts.merge import merge, review_progress
from tests.conftest import SEED_CASE

FLAG, MILITANTS = "taliban_flag_raised", "militants_beside_pakistani_guards"
R1, R2, LEAD = "reviewer1@desk.example", "reviewer2@desk.example", "lead@desk.example"


@pytest.fixture(scope="module")
def case():
    return load_case(SEED_CASE)


def video(source: str, claims: tuple[str, ...] = (FLAG,)) -> Video:
    return Video(sha256=source.ljust(64, "0"), source_id=source, original_path=f"{source}.mp4", evidence="e", size=1,
                 ingested_at="2021-07-15T00:00:00Z", metadata={}, provenance={"claims": list(claims)})


def frame(v: Video, n: int, duplicate_of: str | None = None) -> Frame:
    return Frame(key=f"{v.source_id}-{n}", video_sha256=v.sha256, t_ms=1000.0 * n, frame_index=n, shot=n,
                 file=f"frames/{n}.jpg", sha256="s", pixel_sha256="p", phash="0", width=1280, height=720, sharpness=1.0,
                 duplicate_of=duplicate_of)


_ids = iter(range(1, 1_000_000))


def ann(who: str, f: Frame, result: list[dict], lead: bool = False, cancelled: bool = False) -> Annotation:
    n = next(_ids)
    return Annotation(id=n, task_id=n, frame_key=f.key, reviewer_id=None, reviewer=who, was_cancelled=cancelled,
                      ground_truth=lead, result=result, created_at=f"2021-07-15T09:00:{n % 60:02d}Z")


def says(claim: str, answer: str) -> dict:
    return {"type": "choices", "from_name": f"claim_{claim}", "to_name": "frame", "value": {"choices": [answer]}}


def box(label: str, x: float, y: float = 10, w: float = 20, h: float = 20, region: str | None = None,
        origin: str | None = None, control: str = "boxes") -> dict:
    item = {"type": "rectanglelabels", "from_name": control, "to_name": "frame",
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}
    if region:
        item["id"] = region
    if origin:
        item["origin"] = origin
    return item


# --- 1. a copy is not corroboration ------------------------------------------------------------------------------

def _copied(case, copy_reviewed: bool = False):
    afghan, pakistani = video("flag-hoisting-afghan-side"), video("flag-hoisting-pakistani-side")
    originals = [frame(afghan, 1), frame(afghan, 2)]
    copies = [frame(pakistani, 1, duplicate_of=originals[0].key), frame(pakistani, 2, duplicate_of=originals[1].key)]
    anns = [ann(who, f, [says(FLAG, "Supports")]) for f in originals for who in (R1, R2)]
    if copy_reviewed:
        anns += [ann(who, copies[0], [says(FLAG, "Supports")]) for who in (R1, R2)]
    return merge(case, [afghan, pakistani], originals + copies, anns), originals, copies


def test_a_reupload_and_its_original_are_one_piece_of_evidence_from_one_source(case):
    verdicts, originals, copies = _copied(case)
    flag = next(c for c in verdicts.claims if c.id == FLAG)
    assert flag.verdict == "supported"
    assert flag.supporting == [f.key for f in originals]  # the copies are not counted again
    assert flag.sources["supporting"] == ["flag-hoisting-afghan-side"]
    assert flag.copies == {o.key: [c.key] for o, c in zip(originals, copies)}
    result = verdicts.to_json()["claims"][0]
    assert single_source(result)
    basis = claim_basis(FLAG, result, verdicts.to_json()["frames"], [video("flag-hoisting-afghan-side"),
                                                                     video("flag-hoisting-pakistani-side")])
    assert basis["text"].startswith("Supported: 2 independent frames supporting it, from 1 independent source "
                                    "(flag-hoisting-afghan-side). Single source")
    assert "2 frames of flag-hoisting-pakistani-side re-upload these pictures: counted once" in basis["text"]


def test_a_reupload_has_no_verdicts_of_its_own_when_it_adds_no_reviewed_frame(case):
    verdicts, _, _ = _copied(case)
    row = {v.source_id: v for v in verdicts.videos}
    assert row["flag-hoisting-pakistani-side"].claims == {}  # was "supported", from the footage it copies
    assert row["flag-hoisting-pakistani-side"].copy_of == ["flag-hoisting-afghan-side"]
    assert row["flag-hoisting-afghan-side"].claims[FLAG] == "supported"


def test_a_copy_reviewed_on_its_own_still_counts_once(case):
    verdicts, originals, copies = _copied(case, copy_reviewed=True)
    flag = next(c for c in verdicts.claims if c.id == FLAG)
    assert flag.supporting == [f.key for f in originals]
    assert flag.sources["supporting"] == ["flag-hoisting-afghan-side"]


def test_copies_of_one_picture_that_reviewers_read_differently_make_it_disputed(case):
    afghan, pakistani = video("a"), video("b")
    original, copy = frame(afghan, 1), frame(pakistani, 1)
    copy = Frame(**{**{k: getattr(copy, k) for k in Frame.__slots__}, "duplicate_of": original.key})
    anns = [ann(w, original, [says(FLAG, "Supports")]) for w in (R1, R2)]
    anns += [ann(w, copy, [says(FLAG, "Contradicts")]) for w in (R1, R2)]
    flag = next(c for c in merge(case, [afghan, pakistani], [original, copy], anns).claims if c.id == FLAG)
    assert (flag.verdict, flag.disputed, flag.supporting, flag.contradicting) == ("disputed", [original.key], [], [])


def test_two_independent_sources_are_two(case):
    a, b = video("a"), video("b")
    fa, fb = frame(a, 1), frame(b, 1)
    anns = [ann(w, f, [says(FLAG, "Supports")]) for f in (fa, fb) for w in (R1, R2)]
    verdicts = merge(case, [a, b], [fa, fb], anns)
    flag = next(c for c in verdicts.claims if c.id == FLAG)
    assert flag.sources["supporting"] == ["a", "b"] and not single_source(verdicts.to_json()["claims"][0])


# --- 2. the lead is not one more reviewer -----------------------------------------------------------------------

def _lead_case(case, lead_result):
    v = video("militants-at-gate", (MILITANTS,))
    f = frame(v, 1)
    anns = [ann(R1, f, [says(MILITANTS, "Supports"), box("Gate structure", 10, region="r1a"), box("Civilians", 50, region="r1b")]),
            ann(R2, f, [says(MILITANTS, "Contradicts"), box("Civilians", 51, region="r2a")]),
            ann(LEAD, f, [says(MILITANTS, "Supports"), *lead_result], lead=True)]
    [fv] = merge(case, [v], [f], anns).frames
    return fv


@pytest.mark.parametrize("origin", ["prediction", None])  # as 1.23 exports it, and an export without origins
def test_boxes_the_lead_inherited_unchanged_are_not_the_leads_drawing(case, origin):
    fv = _lead_case(case, [box("Gate structure", 10, region="r1a", origin=origin), box("Civilians", 50, region="r1b", origin=origin),
                           box("Civilians", 51, region="r2a", origin=origin)])
    by_label = {b["label"]: b for b in fv.boxes}
    assert len(fv.boxes) == 2 and not any(b.get("lead") for b in fv.boxes)
    assert (by_label["Gate structure"]["reviewers"], by_label["Gate structure"]["drawn_by"]) == ([R1], 1)  # was "2 of 2"
    assert (by_label["Civilians"]["reviewers"], by_label["Civilians"]["drawn_by"]) == ([R1, R2], 2)  # was "3 of 2"
    assert fv.reviewers == [R1, R2]
    assert all(b["drawn_by"] <= len(fv.reviewers) for b in fv.boxes)


def test_a_box_the_lead_drew_or_changed_is_shown_as_the_leads_not_counted_as_a_vote(case):
    fv = _lead_case(case, [box("Gate structure", 30, region="r1a", origin="prediction-changed"),
                           box("Armed militants", 70, region="new", origin="manual")])
    lead = [b for b in fv.boxes if b.get("lead")]
    assert sorted(b["label"] for b in lead) == ["Armed militants", "Gate structure"]
    assert all(b["lead"] == LEAD and b["reviewers"] == [] and b["drawn_by"] == 0 for b in lead)
    gate = next(b for b in fv.boxes if b["label"] == "Gate structure" and not b.get("lead"))
    assert gate["reviewers"] == [R1]


# --- 3. one label a box ----------------------------------------------------------------------------------------------

def test_a_region_with_two_labels_is_ambiguous_and_counted_as_neither(case):
    v = video("a")
    f = frame(v, 1)
    two_controls = [box("Signage / text", 10, region="x", control="location_cues"),
                    box("Civilians", 10, region="x", control="actors")]  # Label Studio issue #5198
    two_labels = box("Gate structure", 60, region="y")
    two_labels["value"]["rectanglelabels"] = ["Gate structure", "Pakistani flag"]
    anns = [ann(R1, f, [says(FLAG, "Supports"), *two_controls, two_labels, box("Gate structure", 30, region="z")]),
            ann(R2, f, [says(FLAG, "Supports")])]
    [fv] = merge(case, [v], [f], anns).frames
    assert [b["label"] for b in fv.boxes] == ["Gate structure"]
    assert sorted(tuple(a["labels"]) for a in fv.ambiguous_boxes) == [("Gate structure", "Pakistani flag"),
                                                                       ("Signage / text", "Civilians")]
    assert all(a["reviewer"] == R1 for a in fv.ambiguous_boxes)
    from verify import terminal

    assert "2 ambiguous boxes (one region, two labels) counted as neither" in terminal.merged(merge(case, [v], [f], anns))


# --- 4. provisional until the quorum ---------------------------------------------------------------------------------

def test_a_verdict_is_provisional_while_frames_it_rests_on_are_short_of_the_quorum(case):
    v = video("militants-at-gate", (MILITANTS,))
    frames = [frame(v, n) for n in range(4)]
    anns = [ann(w, frames[0], [says(MILITANTS, "Supports")]) for w in (R1, R2)]
    anns += [ann(R1, f, [says(MILITANTS, "Supports")]) for f in frames[1:]]
    anns += [ann(R2, f, [], cancelled=True) for f in frames[1:]]
    verdicts = merge(case, [v], frames, anns)
    claim = next(c for c in verdicts.claims if c.id == MILITANTS)
    assert claim.verdict == "supported"
    assert claim.provisional and claim.short_of_quorum == [f.key for f in frames[1:]]
    result = next(c for c in verdicts.to_json()["claims"] if c["id"] == MILITANTS)
    basis = claim_basis(MILITANTS, result, verdicts.to_json()["frames"], [v], quorum=2)
    assert basis["provisional"] and "Provisional: 3 frames of the claim still have fewer than 2 reviews" in basis["text"]
    # status: both reviewers have touched every frame, so the open ones need somebody new
    progress = review_progress(case, [f.key for f in frames], anns)
    assert progress["open_tasks"] == 3 and all(r["remaining"] == 0 for r in progress["reviewers"].values())
    tasked = merge(case, [v], frames, anns, tasks={f.key: n for n, f in enumerate(frames, 1)})
    assert tasked.still_open(2) == {"open": 3, "takers": {}, "need_new_reviewer": [(f.key, 1) for f in frames[1:]]}


def test_a_verdict_with_every_frame_at_the_quorum_is_not_provisional(case):
    v = video("militants-at-gate", (MILITANTS,))
    frames = [frame(v, n) for n in range(2)]
    anns = [ann(w, f, [says(MILITANTS, "Supports")]) for f in frames for w in (R1, R2)]
    claim = next(c for c in merge(case, [v], frames, anns).claims if c.id == MILITANTS)
    assert claim.verdict == "supported" and not claim.provisional and claim.short_of_quorum == []


# --- 8. one count, one word ------------------------------------------------------------------------------------------

def test_sync_status_and_report_count_submissions_reviews_and_skips_in_the_same_words():
    from types import SimpleNamespace

    from verify import terminal
    from verify.report.build import VOCABULARY

    pulled = SimpleNamespace(full=True, export_files=[], annotations=20, skipped=2, cannot_review=2, reviewers=2, tasks=10,
                             lead_decisions=0, ignored=0, unreadable_locations=[])
    [line] = terminal.pulled(pulled, adjudicating=False)
    assert line.startswith("pulled 20 submissions: 16 reviews, 2 skips, 2 cannot review, by 2 reviewers")
    assert {"submission", "review", "skip", "cannot review", "lead decision", "independent source", "quorum"} <= set(VOCABULARY)


# --- 5. disputes the lead can settle: a decision on the whole claim ----------------------------------------------

def _conflict(case, decided_on: tuple[list[str], list[str]] | None = None, extra_contradicting: bool = False):
    from verify.verdicts.claim_decisions import claim_key, conflict_digest

    a, b = video("a"), video("b")
    fa, fb, fc = frame(a, 1), frame(b, 1), frame(b, 2)
    anns = [ann(w, fa, [says(FLAG, "Supports")]) for w in (R1, R2)]
    anns += [ann(w, fb, [says(FLAG, "Contradicts")]) for w in (R1, R2)]
    if extra_contradicting:
        anns += [ann(w, fc, [says(FLAG, "Contradicts")]) for w in (R1, R2)]
    supporting, contradicting = decided_on or ([fa.key], [fb.key])
    key = claim_key(FLAG, conflict_digest(supporting, contradicting))
    decision = Annotation(id=9000, task_id=1, frame_key=key, reviewer_id=None, reviewer=LEAD, was_cancelled=False,
                          ground_truth=True, created_at="2021-07-16T10:00:00Z",
                          result=[{"type": "choices", "from_name": "decision", "to_name": "montage",
                                   "value": {"choices": ["Contradicted"]}},
                                  {"type": "textarea", "from_name": "decision_note", "to_name": "montage",
                                   "value": {"text": ["b's gate frame shows no Taliban flag"]}}])
    verdicts = merge(case, [a, b], [fa, fb, fc], anns + [decision])
    return next(c for c in verdicts.claims if c.id == FLAG), verdicts


def test_the_leads_decision_on_a_claim_whose_frames_conflict_decides_it_and_keeps_the_vote(case):
    claim, verdicts = _conflict(case)
    assert (claim.verdict, claim.vote, claim.decided_by) == ("contradicted", "disputed", LEAD)
    assert claim.decision.note == "b's gate frame shows no Taliban flag"
    assert verdicts.reviewers[LEAD] == {"annotations": 0, "skipped": 0, "cannot_review": 0, "ground_truth": 1}
    result = next(c for c in verdicts.to_json()["claims"] if c["id"] == FLAG)
    basis = claim_basis(FLAG, result, verdicts.to_json()["frames"], [video("a"), video("b")])
    assert "Lead's decision on the claim: Contradicted, by lead@desk.example" in basis["text"]
    assert "the pictures alone are disputed" in basis["text"]


def test_a_decision_made_on_other_frames_no_longer_decides_the_claim(case):
    claim, verdicts = _conflict(case, extra_contradicting=True)  # a second contradicting frame since the decision
    assert (claim.verdict, claim.vote, claim.decided_by, claim.decision_current) == ("disputed", None, None, False)
    result = next(c for c in verdicts.to_json()["claims"] if c["id"] == FLAG)
    basis = claim_basis(FLAG, result, verdicts.to_json()["frames"], [video("a"), video("b")])
    assert "was made on other frames" in basis["text"]


def test_a_pull_names_each_ambiguous_box_with_its_task_and_reviewer(case):
    from verify import terminal
    from verify.labelstudio.pull import Tally

    v = video("a")
    f = frame(v, 1)
    tally = Tally(case)
    tally.add("exports/x.json", "0" * 64, 1, [ann(R1, f, [box("Gate structure", 10, region="x", control="location_cues"),
                                                          box("Civilians", 10, region="x", control="actors")])])
    [a] = tally.ambiguous
    assert (a["reviewer"], a["labels"]) == (R1, ["Gate structure", "Civilians"])
    from types import SimpleNamespace

    result = SimpleNamespace(full=True, export_files=[], annotations=1, skipped=0, cannot_review=0, reviewers=1, tasks=1,
                             unreadable_locations=[], ambiguous_boxes=tally.ambiguous)
    lines = terminal.pulled(result, adjudicating=False)
    assert f"ambiguous box: task {a['task_id']}, {R1} gave one region two labels (Gate structure, Civilians): " \
           "counted as neither" in lines
