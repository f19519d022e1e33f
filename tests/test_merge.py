"""Merging reviewers' answers: the rules, table by table, and a recorded Label Studio export."""

import json

import pytest

from verify.case import load_case
from verify.verdicts.merge import decode, frame_verdict, iou, merge, merge_boxes, roll_up
from verify.labelstudio.pull import parse_export
from verify.records import Annotation, Frame, Video
from tests.conftest import DATA, SEED_CASE

S, C, T = "supports", "contradicts", "cant_tell"


@pytest.mark.parametrize("answers, minimum, expected", [
    ([], 2, "unreviewed"),
    ([S], 2, "pending"),
    ([S], 1, "supports"),
    ([S, S], 2, "supports"),
    ([C, C], 2, "contradicts"),
    ([T, T], 2, "inconclusive"),
    ([S, C], 2, "disputed"),  # a tie
    ([S, T], 2, "disputed"),
    ([S, S, C], 2, "supports"),  # a majority with dissent
    ([S, C, T], 2, "disputed"),  # a three-way split
    ([S, S, C, C], 3, "disputed"),
    ([C, C, C, S], 3, "contradicts"),
])
def test_frame_verdict_rule(answers, minimum, expected):
    assert frame_verdict(answers, minimum) == expected


@pytest.mark.parametrize("frames, expected", [
    ([], "unreviewed"),
    (["unreviewed", "unreviewed"], "unreviewed"),
    (["pending", "unreviewed"], "pending"),
    (["supports", "unreviewed"], "supported"),
    (["supports", "inconclusive"], "supported"),
    (["contradicts", "pending"], "contradicted"),
    (["supports", "contradicts"], "disputed"),  # frames conflict
    (["supports", "disputed"], "disputed"),
    (["inconclusive", "inconclusive"], "inconclusive"),
    (["inconclusive", "unreviewed"], "pending"),
])
def test_roll_up_rule(frames, expected):
    assert roll_up(frames) == expected


def test_nothing_is_supported_without_a_supporting_frame():
    for verdicts in (["inconclusive"], ["pending"], ["disputed"], ["unreviewed"], ["contradicts"]):
        assert roll_up(verdicts) != "supported"


def _ann(i, reviewer, frame="f1", result=(), cancelled=False, gt=False):
    return Annotation(id=i, task_id=i, frame_key=frame, reviewer_id=None, reviewer=reviewer, was_cancelled=cancelled,
                      ground_truth=gt, result=list(result))


def _choice(claim, value):
    return {"type": "choices", "from_name": f"claim_{claim}", "to_name": "frame", "value": {"choices": [value]}}


def _rect(label, x, y, w=10, h=10, group="flags"):
    return {"type": "rectanglelabels", "from_name": group, "to_name": "frame", "original_width": 640,
            "original_height": 360, "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


CASE = load_case(SEED_CASE)
VIDEO = Video(sha256="v" * 64, source_id="flag-hoisting-afghan-side", original_path="", evidence="", size=0,
              ingested_at="", metadata={},
              provenance={"source_id": "flag-hoisting-afghan-side", "claims": ["taliban_flag_raised", "attack_repelled"]})


def _frame(key, t=0.0, duplicate_of=None):
    return Frame(key=key, video_sha256=VIDEO.sha256, t_ms=t, frame_index=0, shot=0, file=f"{key}.jpg", sha256="x",
                 pixel_sha256="", phash="0", width=None, height=None, sharpness=0.0, duplicate_of=duplicate_of)


def test_merge_counts_votes_ignores_skips_and_lets_the_lead_decide():
    frames = [_frame("f1"), _frame("f2", 1000), _frame("f3", 2000)]
    anns = [
        _ann(1, "ana", "f1", [_choice("taliban_flag_raised", "Supports"), _choice("attack_repelled", "Contradicts")]),
        _ann(2, "ben", "f1", [_choice("taliban_flag_raised", "Supports"), _choice("attack_repelled", "Can't tell")]),
        _ann(3, "ana", "f2", [_choice("taliban_flag_raised", "Contradicts")]),
        _ann(4, "ben", "f2", [], cancelled=True),
        _ann(5, "ana", "f3", [_choice("taliban_flag_raised", "Supports")]),
        _ann(6, "ben", "f3", [_choice("taliban_flag_raised", "Contradicts")]),
        _ann(7, "lead", "f3", [_choice("taliban_flag_raised", "Supports")], gt=True),
    ]
    out = merge(CASE, [VIDEO], frames, anns).to_json()
    f1, f2, f3 = out["frames"]
    assert f1["verdicts"]["taliban_flag_raised"] == {"verdict": "supports", "counts": {S: 2, C: 0, T: 0}, "answers": 2,
                                                     "by_reviewer": {"ana": S, "ben": S}}
    assert f1["verdicts"]["attack_repelled"]["verdict"] == "disputed"
    assert f2["verdicts"]["taliban_flag_raised"]["verdict"] == "pending"  # one answer, one skip
    assert f2["skipped_by"] == ["ben"]
    assert f3["verdicts"]["taliban_flag_raised"]["verdict"] == "supports" and f3["verdicts"]["taliban_flag_raised"]["adjudicated_by"]
    assert f3["verdicts"]["taliban_flag_raised"]["vote"] == "disputed"
    claims = {c["id"]: c for c in out["claims"]}
    assert claims["taliban_flag_raised"]["verdict"] == "supported"
    assert claims["taliban_flag_raised"]["supporting"] == ["f1", "f3"]
    assert claims["attack_repelled"]["verdict"] == "disputed"
    assert claims["civilians_refused_passage"]["verdict"] == "unreviewed"  # no frame bears on it, none answered
    assert claims["civilians_refused_passage"]["frames"] == 0
    assert out["reviewers"]["ben"] == {"annotations": 2, "skipped": 1, "cannot_review": 0, "ground_truth": 0}
    agreement = claims["taliban_flag_raised"]["agreement"]
    assert (agreement["frames_with_2plus"], agreement["unanimous"], agreement["percent"]) == (2, 1, 50.0)
    assert agreement["pairs"] == [{"reviewers": ["ana", "ben"], "frames": 2, "percent": 50.0}]


def _cannot(value, note=None):
    result = [{"type": "choices", "from_name": "cannot_review", "to_name": "frame", "value": {"choices": [value]}}]
    if note:
        result.append({"type": "textarea", "from_name": "notes", "to_name": "frame", "value": {"text": [note]}})
    return result


@pytest.mark.parametrize("stored, reason", [
    ("unreadable", "unreadable"),  # the key, as a config with aliases stores it
    ("Unreadable (black, blurred, corrupted)", "unreadable"),  # the label text, as a plain Choice stores it
    ("Too graphic for me to review", "graphic"),
    ("not_relevant", "not_relevant"),
    (" Other (say why in the notes) ", "other"),
    ("something new", "something new"),  # a reason the case does not know is kept as written
])
def test_a_cannot_review_choice_is_read_as_its_reason_key_from_key_or_label(stored, reason):
    review = decode(_ann(1, "ana", "f1", _cannot(stored)), CASE)
    assert review.cannot_review == reason and not review.skipped and not review.counts


def test_a_reviewer_who_cannot_review_gives_no_verdict_box_or_location_and_is_counted_apart_from_skips():
    frames = [_frame("f1"), _frame("f2", 1000), _frame("f3", 2000)]
    anns = [
        # ana could not review f1 but also answered and drew: none of it counts
        _ann(1, "ana", "f1", _cannot("unreadable", "all black") + [_choice("taliban_flag_raised", "Contradicts"),
                                                                   _rect("Taliban flag", 10, 10)]),
        _ann(2, "ben", "f1", [_choice("taliban_flag_raised", "Supports"), _rect("Taliban flag", 11, 10)]),
        _ann(3, "ana", "f2", _cannot("Too graphic for me to review")),
        _ann(4, "ben", "f2", _cannot("not_relevant", "a studio shot")),
        _ann(5, "ana", "f3", [], cancelled=True),  # a bare skip
        # a skip that carries a reason is a "cannot review", not a skip
        _ann(6, "ben", "f3", _cannot("other", "the flag is cut off"), cancelled=True),
    ]
    out = merge(CASE, [VIDEO], frames, anns).to_json()
    f1, f2, f3 = out["frames"]
    flag = f1["verdicts"]["taliban_flag_raised"]
    assert (flag["verdict"], flag["by_reviewer"]) == ("pending", {"ben": S})  # one vote: ana's is no vote
    assert f1["reviewers"] == ["ben"] and f1["skipped_by"] == []
    assert [b["reviewers"] for b in f1["boxes"]] == [["ben"]]
    assert f1["cannot_review"] == [{"reviewer": "ana", "reason": "unreadable", "reason_text": "Unreadable (black, blurred, corrupted)",
                                    "notes": ["all black"], "lead": False, "at": None}]
    assert f1["notes"] == [] and not f1["nobody_could_review"]  # the note is the reason's, shown with it
    assert [(c["reviewer"], c["reason"]) for c in f2["cannot_review"]] == [("ana", "graphic"), ("ben", "not_relevant")]
    assert f2["nobody_could_review"] and f2["verdicts"]["taliban_flag_raised"]["verdict"] == "unreviewed"
    assert f3["skipped_by"] == ["ana"] and [c["reason"] for c in f3["cannot_review"]] == ["other"]
    assert [(r["reviewer"], r["skipped"], r["cannot_review"]) for r in f3["reviews"]] == [("ana", True, None), ("ben", False, "other")]
    assert f3["nobody_could_review"]  # a skip and a "cannot review": nobody reviewed it
    flag_claim = next(c for c in out["claims"] if c["id"] == "taliban_flag_raised")
    assert (flag_claim["skips"], flag_claim["cannot_review"], flag_claim["answers"]) == (1, 4, 1)
    assert flag_claim["cannot_review_reasons"] == {"graphic": 1, "not_relevant": 1, "other": 1, "unreadable": 1}
    assert flag_claim["nobody_could_review"] == ["f2", "f3"]
    [video] = out["videos"]
    assert (video["skips"], video["cannot_review"], video["nobody_could_review"]) == (1, 4, ["f2", "f3"])
    assert out["reviewers"]["ana"] == {"annotations": 0, "skipped": 1, "cannot_review": 2, "ground_truth": 0}
    assert out["reviewers"]["ben"] == {"annotations": 1, "skipped": 0, "cannot_review": 2, "ground_truth": 0}


def test_review_progress_counts_cannot_review_apart_and_keeps_the_task_open():
    from verify.verdicts.merge import review_progress

    anns = [_ann(1, "ana", "f1", _cannot("unreadable")), _ann(2, "ben", "f1", [_choice("taliban_flag_raised", "Supports")]),
            _ann(3, "ana", "f2", [], cancelled=True)]
    progress = review_progress(CASE, ["f1", "f2"], anns)
    assert progress["open_tasks"] == 2  # one review of f1 is not the two the case asks for
    assert progress["reviewers"]["ana"] == {"assigned": 2, "done": 0, "skipped": 1, "cannot_review": 1, "remaining": 0}
    assert progress["reviewers"]["ben"] == {"assigned": 2, "done": 1, "skipped": 0, "cannot_review": 0, "remaining": 1}


def test_an_unreviewed_reupload_frame_takes_its_originals_verdict():
    original, copy = _frame("f1"), _frame("f2", duplicate_of="f1")
    anns = [_ann(i, r, "f1", [_choice("taliban_flag_raised", "Supports")]) for i, r in ((1, "a"), (2, "b"))]
    out = merge(CASE, [VIDEO], [original, copy], anns)
    assert out.videos[0].claims["taliban_flag_raised"] == "supported"
    assert out.frames[1].verdicts["taliban_flag_raised"].verdict == "unreviewed"


def test_boxes_of_different_reviewers_merge_by_overlap_and_identical_duplicates_collapse():
    a = decode(_ann(1, "ana", result=[_rect("Taliban flag", 10, 10), _rect("Taliban flag", 10, 10)]), CASE)
    assert len(a.boxes) == 1  # two identical regions from one drag
    b = decode(_ann(2, "ben", result=[_rect("Taliban flag", 11, 11), _rect("Afghan flag", 11, 11), _rect("Taliban flag", 60, 60)]), CASE)
    merged = sorted(merge_boxes([a, b]), key=lambda m: (m["label"], m["x"]))
    assert [(m["label"], m["drawn_by"]) for m in merged] == [("Afghan flag", 1), ("Taliban flag", 2), ("Taliban flag", 1)]
    assert merged[1]["x"] == pytest.approx(10.5)


def test_boxes_get_pixel_positions_when_the_frame_size_is_known():
    from verify.verdicts.merge import to_pixels

    [box] = to_pixels([{"x": 25.0, "y": 50.0, "width": 10.0, "height": 20.0}], 640, 360)
    assert box["px"] == {"x": 160, "y": 180, "width": 64, "height": 72}
    assert "px" not in to_pixels([{"x": 1.0, "y": 1.0, "width": 1.0, "height": 1.0}], None, None)[0]


def test_iou():
    box = {"x": 0, "y": 0, "width": 10, "height": 10}
    assert iou(box, box) == 1
    assert iou(box, {"x": 5, "y": 0, "width": 10, "height": 10}) == pytest.approx(50 / 150)
    assert iou(box, {"x": 20, "y": 20, "width": 1, "height": 1}) == 0


def test_labels_not_in_the_case_are_reported_not_merged():
    review = decode(_ann(1, "ana", result=[_rect("Old label", 1, 1)]), CASE)
    assert review.boxes == [] and review.unknown_labels == ["Old label"]


def test_recorded_export_from_a_real_server_parses_and_merges():
    """tests/data holds an export made by Label Studio 1.23.2 with real users: two reviewers, a
    skip, a note with <script>, duplicate regions from one drag, a rotated box, a label not in
    the config, an admin ground-truth annotation and a draft."""
    tasks = json.loads((DATA / "ls-1.23.2-export.json").read_text())
    users = {int(k): v for k, v in json.loads((DATA / "ls-1.23.2-users.json").read_text()).items()}
    records = parse_export(tasks, users)
    assert len(records) == 5  # the draft is not an annotation
    assert {r.reviewer for r in records} == {"rev2@example.com", "rev3@example.com", "admin@example.com"}
    assert sum(r.was_cancelled for r in records) == 1
    assert sum(r.ground_truth for r in records) == 1
    reviews = [decode(r, CASE) for r in records]
    notes = [n for r in reviews for n in r.notes]
    assert any("<script>" in n for n in notes)  # arrives verbatim; the report must escape it
    boxed = [r for r in reviews if len(r.boxes) == 2][0]  # two identical + one rotated + one unknown
    assert boxed.unknown_labels == ["Old label"]
    assert sorted(b["rotation"] for b in boxed.boxes) == [0, 30]
    frames = [_frame(t["data"]["frame_key"], t["data"]["t_ms"]) for t in tasks]
    out = merge(CASE, [VIDEO], frames, records)
    assert out.unknown_labels == {"Old label": 1}
    adjudicated = [f for f in out.frames if f.verdicts["militants_beside_pakistani_guards"].adjudicated_by]
    assert len(adjudicated) == 1


KRIPPENDORFF_CASES = [
    ("perfect agreement with variation", [[S, S], [C, C], [T, T], [S, S, S]]),
    ("total disagreement", [[S, C], [C, S], [S, C]]),
    ("mixed, three coders, missing values", [[S, S, C], [C, C], [T, T, T], [S, C, T], [S], [C, C, C]]),
    ("Krippendorff's textbook shape", [[S, S, S], [C, C, C], [T, T, T], [S, C, C], [T, T], [S, S, T], [C, C, S], [T, S, T]]),
]


@pytest.mark.parametrize("units", [u for _, u in KRIPPENDORFF_CASES], ids=[n for n, _ in KRIPPENDORFF_CASES])
def test_krippendorff_alpha_matches_the_reference_implementation(units):
    import krippendorff
    import numpy as np

    from verify.verdicts.merge import krippendorff_alpha

    codes = {S: 0, C: 1, T: 2}
    coders = max(len(u) for u in units)
    data = np.full((coders, len(units)), np.nan)
    for j, unit in enumerate(units):
        for i, value in enumerate(unit):
            data[i, j] = codes[value]
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert krippendorff_alpha(units) == pytest.approx(expected, abs=1e-4)


def test_krippendorff_alpha_is_undefined_without_variation_or_pairs():
    from verify.verdicts.merge import krippendorff_alpha

    assert krippendorff_alpha([[S, S], [S, S, S]]) is None
    assert krippendorff_alpha([[S], [C]]) is None
    assert krippendorff_alpha([]) is None


def test_unknown_labels_policy():
    from verify.errors import VerifyError

    frames = [_frame("f1")]
    anns = [_ann(1, "ana", "f1", [_rect("Old label", 1, 1), _rect("Taliban flag", 50, 50)])]
    ignored = merge(CASE, [VIDEO], frames, anns)
    assert [b["label"] for b in ignored.frames[0].boxes] == ["Taliban flag"]
    assert ignored.unknown_labels == {"Old label": 1} and ignored.unknown_label_policy == "ignore"
    kept = merge(CASE, [VIDEO], frames, anns, unknown_labels="keep")
    assert sorted(b["label"] for b in kept.frames[0].boxes) == ["Old label", "Taliban flag"]
    assert [b["unknown"] for b in kept.frames[0].boxes if b["label"] == "Old label"] == [True]
    with pytest.raises(VerifyError, match="labels that are not in the case: 'Old label' \\(1\\)"):
        merge(CASE, [VIDEO], frames, anns, unknown_labels="fail")


def test_verdicts_are_typed_and_a_leads_decision_is_its_own_field():
    """Issue 25, item 3: a vote is a ``Vote``, a roll-up a ``Verdict``; a lead's decision is the value chosen, with who
    decided it and the reviewers' vote beside it (no "adjudicated:…" strings to take apart)."""
    from verify.verdicts.values import Verdict, Vote

    assert frame_verdict(["supports", "contradicts"], 2) is Vote.DISPUTED
    assert roll_up([Vote.SUPPORTS, Vote.UNREVIEWED]) is Verdict.SUPPORTED
    assert json.dumps({Vote.SUPPORTS: Verdict.SUPPORTED}) == '{"supports": "supported"}' and f"{Vote.PENDING:<9}|" == "pending  |"
    with pytest.raises(ValueError):
        roll_up(["adjudicated:supports"])
