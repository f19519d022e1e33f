"""Loading case files: the seed case, and every kind of bad case file giving a pointed error."""

import textwrap

import pytest

from verify.case import load_case, parse_case
from verify.errors import CaseError
from tests.conftest import SEED_CASE

GOOD = """
id: test-case
title: A test case
claims:
  - {id: flag_raised, text: A flag was raised.}
  - {id: repelled, text: The attack was repelled.}
labels:
  flags: {title: Flags, labels: [Taliban flag, Afghan flag]}
sources:
  - {id: clip-a, title: Clip A, url: "https://example.org/a", side: afghan, claims: [flag_raised]}
"""


def test_seed_case_has_the_claims_sources_and_labels_of_the_article():
    case = load_case(SEED_CASE)
    assert [c.id for c in case.claims] == [
        "taliban_flag_raised", "afghan_flag_removed", "militants_beside_pakistani_guards",
        "civilians_refused_passage", "attack_repelled",
    ]
    groups = {g.name: [label.value for label in g.labels] for g in case.label_groups}
    assert groups["flags"] == ["Taliban flag", "Afghan flag", "Pakistani flag"]
    assert {"Pakistani border guards", "Armed militants", "Civilians"} == set(groups["actors"])
    assert "Gate structure" in groups["location_cues"] and "Signage / text" in groups["location_cues"]
    assert {s.side for s in case.sources} == {"afghan", "pakistani", "unknown"}
    for source in case.sources:
        assert source.claims, source.id
        assert set(source.provenance()) >= {"url", "platform", "uploader", "posted_at", "side", "claims"}
    assert case.review.reviewers_per_frame >= case.review.min_reviewers >= 1
    assert len(case.sha256) == 64


def test_a_minimal_case_loads_with_defaults():
    case = parse_case(GOOD, "good.yaml")
    assert case.review.reviewers_per_frame == 2 and case.review.min_reviewers == 2
    assert case.frames.max_interval_s == 2.0
    assert case.label_groups[0].labels[0].color.startswith("#")


def _swap(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


BAD_CASES = [
    ("invalid YAML", "id: [unclosed\n", "not valid YAML (line 2, column 1)"),
    ("unknown top-level key", GOOD + "colour: red\n", "colour: unknown key; allowed keys:"),
    ("missing claims", "id: x\ntitle: X\nlabels: {flags: {labels: [A]}}\n", "claims: required key is missing"),
    ("empty claims", _swap("claims:\n  - {id: flag_raised, text: A flag was raised.}\n  - {id: repelled, text: The attack was repelled.}", "claims: []"), "claims: expected a non-empty list"),
    ("duplicate claim id", _swap("{id: repelled,", "{id: flag_raised,"), "claims[1].id: duplicate claim id 'flag_raised'"),
    ("bad claim id", _swap("{id: repelled,", "{id: Re Pelled,"), "claims[1].id: 'Re Pelled' is not a valid id"),
    ("unknown claim key", _swap("{id: repelled, text", "{id: repelled, verdict: yes, text"), "claims[1].verdict: unknown key"),
    ("claim text as a field reference", _swap("text: A flag was raised.", "text: $image"), "must not start with '$'"),
    ("duplicate label", _swap("[Taliban flag, Afghan flag]", "[Taliban flag, Taliban flag]"), "labels.flags.labels[1]: duplicate label 'Taliban flag'"),
    ("reserved group name", _swap("  flags: {title", "  notes: {title"), "labels.notes: group name 'notes' is reserved"),
    ("group name breaking XML", _swap("  flags: {title", '  "fl<a>gs": {title'), "is not a valid id"),
    ("bad colour", _swap("[Taliban flag, Afghan flag]", "[{value: Taliban flag, color: red}]"), "labels.flags.labels[0].color: expected a colour"),
    ("control character in label", _swap("[Taliban flag, Afghan flag]", '["Taliban\\x01flag"]'), "control characters"),
    ("source with unknown claim", _swap("claims: [flag_raised]}", "claims: [nope]}"), "sources[0].claims: unknown claim id 'nope'"),
    ("source with javascript link", _swap('"https://example.org/a"', '"javascript:alert(1)"'), "sources[0].url: only http:// or https://"),
    ("source side not allowed", _swap("side: afghan", "side: north"), "sources[0].side: 'north' is not allowed"),
    ("duplicate source id", GOOD + "  - {id: clip-a, title: Again}\n", "sources[1].id: duplicate source id 'clip-a'"),
    ("min reviewers above per frame", GOOD + "review: {reviewers_per_frame: 1, min_reviewers: 3}\n", "review.min_reviewers: 3 exceeds reviewers_per_frame"),
    ("interval out of range", GOOD + "frames: {max_interval_s: 0}\n", "frames.max_interval_s: expected seconds"),
    ("wrong schema", GOOD + "schema: verify.case/9\n", "schema: unsupported schema"),
    ("graphic not a boolean", _swap("claims: [flag_raised]}", "claims: [flag_raised], graphic: maybe}"), "sources[0].graphic: expected true or false"),
]


@pytest.mark.parametrize("text, expected", [(t, e) for _, t, e in BAD_CASES], ids=[n for n, _, _ in BAD_CASES])
def test_bad_case_files_name_the_file_and_the_key(text, expected):
    with pytest.raises(CaseError) as err:
        parse_case(text, "cases/bad.yaml")
    message = str(err.value)
    assert message.startswith("cases/bad.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_missing_case_file_says_what_to_do(tmp_path):
    with pytest.raises(CaseError, match="case file not found; give the path"):
        load_case(tmp_path / "nope.yaml")


def test_labels_with_xml_metacharacters_are_allowed_and_kept_verbatim():
    text = _swap("[Taliban flag, Afghan flag]", textwrap.dedent("""['Flag "A" & <B>', "Afghan flag"]"""))
    case = parse_case(text, "x.yaml")
    assert case.label_groups[0].labels[0].value == 'Flag "A" & <B>'


def test_a_source_marked_graphic_carries_it_into_its_provenance():
    case = parse_case(_swap("claims: [flag_raised]}", "claims: [flag_raised], graphic: true}"), "x.yaml")
    assert case.sources[0].graphic and case.sources[0].provenance()["graphic"] is True
    assert parse_case(GOOD, "x.yaml").sources[0].provenance()["graphic"] is False  # not distressing unless said


def test_ingest_graphic_marks_the_video_and_its_absence_keeps_the_case_s_mark(workspace):
    """`verify ingest --graphic` records provenance graphic=true; without it the case source's value stands."""
    from verify.media.ingest import resolve_source

    marked = resolve_source(workspace, "militants-at-gate", {"graphic": True}, "0" * 64)
    assert marked["graphic"] is True
    assert resolve_source(workspace, "militants-at-gate", {"graphic": False}, "0" * 64)["graphic"] is False
    assert resolve_source(workspace, None, {"graphic": True}, "1" * 64)["graphic"] is True  # an unattributed video too
