"""Two reviewers label through Label Studio's real UI (headless Chromium driven by playwright):
log in through the login page, open the label stream, draw boxes with the mouse, click answers,
open a folded claim, write notes, say "cannot review" with a reason, skip, submit. Then `verify sync`
merges what they did, and the verdicts and boxes must be what was clicked and drawn. The second
reviewer labels the frames the first already answered and must see nothing of the first's work.

One module-scoped workspace (one fixture video, four frames), its own project, one browser.

Screenshots of what each reviewer saw go to the test's folder, and to $VERIFY_UI_SHOTS when set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests import ui
from tests.conftest import SEED_CASE, cli, cli_env, cli_workspace, drop_projects, truth
from verify.case import load_case
from verify.labelstudio.config import CANNOT_REASONS, NOTES

pytestmark = pytest.mark.integration

ANA, BEN = ("ana.ui@desk.example", "ana-ui-pass-4411"), ("ben.ui@desk.example", "ben-ui-pass-7730")
VIDEO, SOURCE = "flag_afghan_side", "flag-hoisting-afghan-side"  # 12 s, three shots: four keyframes
NOTE_ANA = "The Afghan flag is still up; <b>BAB-E-DOSTI</b> on the gate"
NOTE_BEN = "Bodies in the foreground, I stopped here"
REASON = "graphic"


run = cli  # `verify ARGS` in-process, exit code checked (tests/conftest.py)


def _claims() -> dict[str, str]:
    """Claim id → the words the reviewer reads (the test finds questions by these, never by id)."""
    return {c.id: c.text for c in load_case(SEED_CASE).claims}


def _box(video: Path, t_ms: float, label: str, pad: float = 0.0) -> tuple[float, float, float, float]:
    """The true box of ``label`` in the frame at ``t_ms`` as fractions (x0, y0, x1, y1), grown by ``pad``."""
    t = truth(video)
    sample = min(t["objects"], key=lambda s: abs(s["t"] - t_ms / 1000))
    x, y, w, h = next(o["box"] for o in sample["objects"] if o["label"] == label)
    W, H = t["width"], t["height"]
    return (max(0.0, x / W - pad), max(0.0, y / H - pad), min(1.0, (x + w) / W + pad), min(1.0, (y + h) / H + pad))


def _plan(frames: list[dict], video: Path) -> dict[str, dict[str, list]]:
    """What each reviewer does on each frame (by its timestamp heading), in the order they do it.

    Frames, oldest first: 0 Afghan flag up · 1 Afghan flag lowered · 2 Taliban flag close up · 3 across the gate.
    """
    c = _claims()
    f = frames
    afghan = _box(video, f[0]["t_ms"], "Afghan flag", 0.01)
    taliban = _box(video, f[2]["t_ms"], "Taliban flag")
    ana = {
        f[0]["timestamp"]: [("box", "Afghan flag", afghan), ("choose", c["taliban_flag_raised"], "Contradicts"),
                            ("choose", c["afghan_flag_removed"], "Contradicts"), ("note", NOTE_ANA), ("submit",)],
        f[1]["timestamp"]: [("choose", c["taliban_flag_raised"], "Can't tell"), ("submit",)],
        f[2]["timestamp"]: [("box", "Taliban flag", taliban), ("choose", c["taliban_flag_raised"], "Supports"), ("submit",)],
        f[3]["timestamp"]: [("choose", c["taliban_flag_raised"], "Supports"), ("choose", c["attack_repelled"], "Contradicts"),
                            ("choose", c["militants_beside_pakistani_guards"], "Can't tell"),  # a folded claim
                            ("submit",)],
    }
    shifted = (afghan[0] + 0.005, afghan[1], afghan[2] + 0.005, afghan[3])
    ben = {
        f[0]["timestamp"]: [("box", "Afghan flag", shifted), ("choose", c["taliban_flag_raised"], "Contradicts"),
                            ("choose", c["afghan_flag_removed"], "Can't tell"), ("submit",)],
        f[1]["timestamp"]: [("choose", c["taliban_flag_raised"], "Can't tell"), ("submit",)],
        f[2]["timestamp"]: [("cannot", CANNOT_REASONS[REASON]), ("note", NOTE_BEN), ("submit",)],
        f[3]["timestamp"]: [("skip",)],
    }
    return {"ana": ana, "ben": ben, "afghan": afghan, "shifted": shifted, "taliban": taliban}


def _label(page, plan: dict, who: str, shots: list[Path], seen: dict, size: tuple[int, int]) -> None:
    """Work through the label stream until every planned frame was submitted or skipped; note what each
    frame held before this reviewer touched it."""
    todo = dict(plan)
    try:
        while todo:
            shown = ui.shown(page)
            assert shown.timestamp in todo, f"{who}: the stream showed {shown.timestamp!r}, not one of {list(todo)}"
            assert (shown.width, shown.height) == size, "the boxes would be drawn on another picture than the frame"
            seen.setdefault(who, {})[shown.timestamp] = ui.what_others_left(page)
            if len(todo) == len(plan):
                _shot(page, shots, f"{who}-first-view")
            for step in todo.pop(shown.timestamp):
                kind, args = step[0], step[1:]
                if kind == "box":
                    ui.draw_box(page, *args)
                elif kind == "choose":
                    ui.choose(page, *args)
                elif kind == "note":
                    ui.write_note(page, NOTES, *args)
                elif kind == "cannot":
                    ui.cannot_review(page, *args)
                elif kind == "submit":
                    seen[who][shown.timestamp + " (done)"] = ui.what_others_left(page)
                    _shot(page, shots, f"{who}-{len(plan) - len(todo)}-submitted")
                    ui.submit(page, shown.timestamp)
                elif kind == "skip":
                    _shot(page, shots, f"{who}-{len(plan) - len(todo)}-skipped")
                    ui.skip(page, shown.timestamp)
        _shot(page, shots, f"{who}-end")
    except Exception:
        _shot(page, shots, f"{who}-failed")
        raise


def _shot(page, shots: list[Path], name: str) -> None:
    path = shots[0] / f"reviewer-ui-{name}.png"
    ui.scroll_to_top(page)
    page.screenshot(path=str(path))
    if len(shots) > 1:
        shutil.copy(path, shots[1] / path.name)


@pytest.fixture(scope="module")
def reviewed(label_studio, footage, tmp_path_factory):
    """init → ingest one video → frames → push → two reviewers label in the browser → sync."""
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    root = tmp_path_factory.mktemp("reviewer-ui")
    ws = root / "ws"
    url = label_studio["url"]
    env = cli_env(label_studio, ws)
    cli_workspace(env, footage, {VIDEO: SOURCE})
    run(env, "push", "--new-project")  # its own project: another module's reviewers may have filled the case's
    links = {}
    for email, password in (ANA, BEN):  # the link the coordinator hands to each reviewer
        added = run(env, "reviewers", "add", email, "--password", password).output
        link = re.search(r"http\S+labeling=1\b", added)
        assert link, f"`verify reviewers add` gave no label-stream link:\n{added}"
        links[email] = link[0]
    project = json.loads(run(env, "status", "--json").output)["label_studio"]["project_id"]
    admin = {"Authorization": f"Token {label_studio['api_key']}"}
    answer = httpx.get(f"{url}/api/tasks", params={"project": project, "page_size": 100, "fields": "task_only"},
                       headers=admin, timeout=60).json()
    frames = sorted((t["data"] for t in answer["tasks"]), key=lambda d: d["t_ms"])
    assert len(frames) == 4, [f["timestamp"] for f in frames]
    plan = _plan(frames, footage[VIDEO])
    size = (truth(footage[VIDEO])["width"], truth(footage[VIDEO])["height"])
    took = {"workspace and push": time.monotonic() - started}

    shots = [root / "shots"]
    if os.environ.get("VERIFY_UI_SHOTS"):
        shots.append(Path(os.environ["VERIFY_UI_SHOTS"]))
    for folder in shots:
        folder.mkdir(parents=True, exist_ok=True)
    seen: dict = {}
    landed: dict[str, str] = {}
    received: dict[str, list[str]] = {"ana": [], "ben": []}
    with sync_playwright() as p:
        browser = ui.launch(p)
        try:
            for who, (email, password) in (("ana", ANA), ("ben", BEN)):
                mark = time.monotonic()
                page = ui.log_in(browser, links[email], email, password)
                landed[who] = page.url
                page.on("response", lambda r, who=who: received[who].append(ui.body(r)))
                ui.open_stream(page)
                took[f"{who}: log in, open the stream"] = time.monotonic() - mark
                _label(page, plan[who], who, shots, seen, size)
                took[f"{who}: label 4 frames"] = time.monotonic() - mark - took[f"{who}: log in, open the stream"]
                page.context.close()
        finally:
            browser.close()
    mark = time.monotonic()
    synced = run(env, "sync")
    took["sync"] = time.monotonic() - mark
    print("\nreal-UI review took " + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()))
    by_time = {f["timestamp"]: f["frame_key"] for f in frames}
    yield {"ws": ws, "env": env, "frames": frames, "keys": [by_time[f["timestamp"]] for f in frames], "plan": plan,
            "seen": seen, "links": links, "landed": landed, "received": received, "sync": synced.output}
    drop_projects(label_studio, ws)


def _verdicts(reviewed) -> dict:
    return json.loads((reviewed["ws"] / "reports" / "verdicts.json").read_text())


def _near(box: dict, drawn: tuple[float, float, float, float], tolerance: float = 1.0) -> bool:
    """A merged box (percent of the image) lies within ``tolerance`` percentage points of a drag (fractions)."""
    x0, y0, x1, y1 = (100 * v for v in drawn)
    got = (box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"])
    return all(abs(a - b) <= tolerance for a, b in zip(got, (x0, y0, x1, y1)))


def test_the_link_verify_gives_a_reviewer_lands_in_the_label_stream_after_login(reviewed):
    """Issue 14: logging in used to land on the Data Manager (every task, its annotation count and
    reviewers' avatars). The link `verify reviewers add` prints goes through the login page to the stream."""
    for who, email in (("ana", ANA[0]), ("ben", BEN[0])):
        link, landed = urlsplit(reviewed["links"][email]), urlsplit(reviewed["landed"][who])
        assert (landed.netloc, landed.path.rstrip("/"), landed.query) == (link.netloc, link.path.rstrip("/"), link.query), (
            who, reviewed["landed"][who])


def test_the_second_reviewer_sees_nothing_of_the_first(reviewed):
    """Ben's label stream brings him the frames Ana already answered (all four; two boxed, one with a
    note): he sees no region, answer or note of hers, no name, avatar or annotation count but his own."""
    ben = {shown: held for shown, held in reviewed["seen"]["ben"].items() if not shown.endswith("(done)")}
    assert len(ben) == 4
    for shown, held in ben.items():
        assert (held["regions"], held["checked"], held["texts"]) == ([], 0, []), shown
        text = held["page_text"].lower()
        assert ANA[0].split("@")[0] not in text and NOTE_ANA.lower() not in text, shown
        assert not any(word in text for word in ("annotations:", "annotated by", "completed by")), shown
        assert held["userpics"] == ["BE"], (shown, held["userpics"])  # only his own avatar
    # the probe sees what is there: Ana's own first frame when she submitted it
    ana = reviewed["seen"]["ana"][reviewed["frames"][0]["timestamp"] + " (done)"]
    assert (ana["regions"], ana["checked"], ana["texts"]) == (["Afghan flag"], 2, [NOTE_ANA])
    # nor did the stream send his browser any of it (the data manager's API would: see test_integration)
    assert not [b for b in reviewed["received"]["ben"] if "BAB-E-DOSTI</b>" in b]
    assert any("BAB-E-DOSTI</b>" in b for b in reviewed["received"]["ana"])  # where it was sent, it is found


def test_the_answers_clicked_are_the_merged_verdicts(reviewed):
    frames = {f["key"]: f for f in _verdicts(reviewed)["frames"]}
    up, lowered, close, across = (frames[k] for k in reviewed["keys"])
    counts = lambda frame, claim: frame["verdicts"][claim]["counts"]  # noqa: E731
    assert counts(up, "taliban_flag_raised") == {"supports": 0, "contradicts": 2, "cant_tell": 0}
    assert up["verdicts"]["taliban_flag_raised"]["verdict"] == "contradicts"
    assert counts(up, "afghan_flag_removed") == {"supports": 0, "contradicts": 1, "cant_tell": 1}
    assert up["verdicts"]["afghan_flag_removed"]["verdict"] == "disputed"
    assert counts(lowered, "taliban_flag_raised") == {"supports": 0, "contradicts": 0, "cant_tell": 2}
    assert counts(close, "taliban_flag_raised") == {"supports": 1, "contradicts": 0, "cant_tell": 0}
    assert counts(across, "taliban_flag_raised") == {"supports": 1, "contradicts": 0, "cant_tell": 0}
    assert counts(across, "attack_repelled") == {"supports": 0, "contradicts": 1, "cant_tell": 0}
    # a claim the frame's source does not bear on: folded away, opened and answered
    assert counts(across, "militants_beside_pakistani_guards") == {"supports": 0, "contradicts": 0, "cant_tell": 1}
    assert up["reviewers"] == sorted([ANA[0], BEN[0]]) and close["reviewers"] == [ANA[0]]
    assert across["skipped_by"] == [BEN[0]]


def test_the_boxes_drawn_are_merged_with_their_labels_where_they_were_drawn(reviewed):
    frames = {f["key"]: f for f in _verdicts(reviewed)["frames"]}
    up, lowered, close, _ = (frames[k] for k in reviewed["keys"])
    [afghan] = up["boxes"]  # Ana's and Ben's drags, a few pixels apart, merge into one box
    assert afghan["label"] == "Afghan flag" and afghan["drawn_by"] == 2
    assert _near(afghan, reviewed["plan"]["afghan"]) and _near(afghan, reviewed["plan"]["shifted"])
    [taliban] = close["boxes"]
    assert taliban["label"] == "Taliban flag" and taliban["drawn_by"] == 1 and _near(taliban, reviewed["plan"]["taliban"])
    assert lowered["boxes"] == []


def test_the_note_and_the_cannot_review_reason_arrive(reviewed):
    verdicts = _verdicts(reviewed)
    frames = {f["key"]: f for f in verdicts["frames"]}
    up, _, close, _ = (frames[k] for k in reviewed["keys"])
    assert [(n["reviewer"], n["text"]) for n in up["notes"]] == [(ANA[0], NOTE_ANA)]  # verbatim, markup and all
    [cannot] = close["cannot_review"]
    assert (cannot["reviewer"], cannot["reason"], cannot["notes"]) == (BEN[0], REASON, [NOTE_BEN])
    assert "6 reviews, 1 skip, 1 cannot review, by 2 reviewers" in reviewed["sync"]
    [video] = verdicts["videos"]
    assert video["cannot_review"] == 1 and video["cannot_review_reasons"] == {REASON: 1} and video["skips"] == 1
    claim = next(c for c in verdicts["claims"] if c["id"] == "taliban_flag_raised")
    assert claim["cannot_review"] == 1 and claim["cannot_review_reasons"] == {REASON: 1} and claim["skips"] == 1


def test_the_report_after_the_real_ui_session_says_how_many_independent_sources_each_verdict_rests_on(reviewed):
    """Issue 24: after two reviewers labelled in the real UI, each decided claim in the report (and in sync's output)
    says how many independent frames and sources it rests on; one video is a single source."""
    report = json.loads((reviewed["ws"] / "reports" / "report.json").read_text())
    decided = [c for c in report["claims"] if c["verdict"] in ("supported", "contradicted", "disputed")]
    assert decided, [c["verdict"] for c in report["claims"]]
    for claim in decided:
        found = {s for kind in ("supporting", "contradicting", "disputed") for s in claim["independent_sources"][kind]}
        assert len(found) == 1 and claim["single_source"], claim["id"]
        assert "from 1 independent source" in claim["basis"]["text"] and "Single source" in claim["basis"]["text"]
        line = next(ln for ln in reviewed["sync"].splitlines() if ln.startswith(claim["id"]))
        assert "on 1 independent source (single source)" in line, line
