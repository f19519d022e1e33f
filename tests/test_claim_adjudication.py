"""Claims whose frames conflict go to the lead, who decides the claim as a whole (issue 24, item 5).

Reviewers agree that one frame supports a claim and that another contradicts it: no frame is disputed, so no
frame-by-frame decision can settle the claim. `verify adjudicate` sends such a claim, as one task with the
conflicting frames side by side, to the claim-decisions project; `verify pull` brings the lead's decision back
and ``claim_decisions`` reads it.

Fast tests against the in-memory Label Studio (one real workspace with real frames per module, a copy per test),
pure tests of the parts, and one test against the session's real Label Studio.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from PIL import Image

from tests.conftest import SEED_CASE, drop_projects, user_token
from tests.fake_labelstudio import FakeLabelStudio
from verify import pipeline
from verify.case import load_case
from verify.labelstudio.adjudicate import claims_sent
from verify.labelstudio.claims import ClaimConflict, claim_conflicts, layout
from verify.labelstudio.client import LabelStudioClient
from verify.labelstudio.config import CLAIM_DECISION, CLAIM_NOTE, MONTAGE
from verify.labelstudio.pull import pull
from verify.labelstudio.push import push
from verify.records import Annotation
from verify.verdicts.claim_decisions import TASK_RECORD, ClaimDecision, claim_decisions, claim_key, conflict_digest
from verify.workspace import Workspace

ANA, BEN, LEAD = "ana@desk.example", "ben@desk.example", "lead@desk.example"
FLAG = "taliban_flag_raised"
AFGHAN, GATE = "flag-hoisting-afghan-side", "militants-at-gate"


def _choice(claim: str, answer: str) -> dict:
    return {"type": "choices", "from_name": f"claim_{claim}", "to_name": "frame", "value": {"choices": [answer]}}


def _decision(answer: str, note: str | None = None) -> list[dict]:
    result = [{"type": "choices", "from_name": CLAIM_DECISION, "to_name": MONTAGE, "value": {"choices": [answer]}}]
    if note is not None:
        result.append({"type": "textarea", "from_name": CLAIM_NOTE, "to_name": MONTAGE, "value": {"text": [note]}})
    return result


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(footage, tmp_path_factory) -> Path:
    """One real workspace: two videos ingested (their frames all sent for review), their keyframes extracted."""
    from verify.media.frames import extract
    from verify.media.ingest import ingest

    ws = Workspace.create(tmp_path_factory.mktemp("claims") / "ws", SEED_CASE)
    for name, source in (("flag_afghan_side", AFGHAN), ("militants_at_gate", GATE)):
        [result] = ingest(ws, [footage[name]], source_id=source)
        assert result.ok, result.message
    extract(ws)
    ws.db.close()
    return ws.root


@pytest.fixture
def ws(base, tmp_path) -> Workspace:
    shutil.copytree(base, tmp_path / "ws", symlinks=True)
    return Workspace.open(tmp_path / "ws")


@pytest.fixture
def server() -> FakeLabelStudio:
    fake = FakeLabelStudio()
    fake.whoami()
    for email in (ANA, BEN, LEAD):
        fake.add_reviewer(email, f"{email.split('@')[0]}-pass-1234")
    return fake


def _tasks_of_source(server: FakeLabelStudio, project_id: int, source_id: str) -> list[dict]:
    return sorted((t for t in server.tasks_of(project_id) if t["data"]["source_id"] == source_id), key=lambda t: t["data"]["t_ms"])


def _both(server: FakeLabelStudio, project: int, task: dict, answer: str, claim: str = FLAG) -> None:
    for who in (ANA, BEN):
        server.annotate(project, task["id"], who, [_choice(claim, answer)])


@pytest.fixture
def conflicting(ws, server):
    """Pushed; both reviewers agree that a frame of the Afghan-side video supports the flag claim and that a frame of
    the gate video contradicts it (no frame disputed); pulled."""
    project = push(ws, server, None, images="upload").project_id
    afghan, gate = _tasks_of_source(server, project, AFGHAN), _tasks_of_source(server, project, GATE)
    _both(server, project, afghan[0], "Supports")
    _both(server, project, gate[0], "Contradicts")
    pull(ws, server)
    return {"project": project, "afghan": afghan, "gate": gate}


def _adjudicate(ws, server, files_root=None, images="upload"):
    return pipeline.adjudicate(ws, server, files_root, lead=LEAD, images=images)


def _claim_tasks(server: FakeLabelStudio, project_id: int) -> list[dict]:
    return server.tasks_of(project_id)


# --- which claims are sent ----------------------------------------------------------------------

def _claim(id_, verdict, supporting=(), contradicting=(), disputed=()):
    return SimpleNamespace(id=id_, verdict=verdict, supporting=list(supporting), contradicting=list(contradicting),
                           disputed=list(disputed))


def test_a_claim_conflict_is_a_disputed_claim_with_frames_on_both_sides_whether_or_not_a_frame_is_disputed():
    verdicts = SimpleNamespace(claims=[
        _claim("conflict", "disputed", ["a", "b"], ["c"]),
        _claim("conflict_and_dispute", "disputed", ["a"], ["c"], ["d"]),
        _claim("only_a_disputed_frame", "disputed", ["a"], [], ["d"]),  # the adjudication project's business
        _claim("supported", "supported", ["a"]),
        _claim("contradicted", "contradicted", [], ["c"]),
    ])
    found = claim_conflicts(verdicts)
    assert [c.claim_id for c in found] == ["conflict", "conflict_and_dispute"]
    assert found[0] == ClaimConflict("conflict", ("a", "b"), ("c",), conflict_digest(["a", "b"], ["c"]))
    assert found[0].key == f"claim:conflict:{found[0].digest}"


def test_the_digest_follows_the_set_of_conflicting_frames_and_their_sides_not_their_order():
    digest = conflict_digest(["a", "b"], ["c"])
    assert digest == conflict_digest(["b", "a"], ["c"]) and len(digest) == 16
    assert digest != conflict_digest(["a", "b"], ["c", "d"])  # a frame joined
    assert digest != conflict_digest(["a"], ["c"])  # a frame left
    assert digest != conflict_digest(["a", "c"], ["b"])  # frames changed side


def test_a_frame_conflict_on_a_claim_goes_to_the_claim_decisions_project_once(ws, server, conflicting):
    from verify.status import workspace_status
    from verify import terminal

    before = workspace_status(ws, pipeline.current_verdicts(ws)).adjudication["claims"]
    assert (before["not_sent"], before["waiting"], before["decided"]) == ([FLAG], [], [])  # the lead has something to do
    sent = _adjudicate(ws, server)
    status = workspace_status(ws, pipeline.current_verdicts(ws))
    assert (status.adjudication["claims"]["not_sent"], status.adjudication["claims"]["waiting"]) == ([], [FLAG])
    assert any("claims whose frames conflict: 0 decided by the lead, 1 waiting for the lead, 0 not yet sent" in line
               for line in terminal.status(status))
    assert (sent.disputed, sent.claim_conflicts, sent.claims_imported) == (0, 1, 1)
    assert sent.claims_project_id not in (None, sent.project_id, conflicting["project"])
    project = server.project(sent.claims_project_id)
    assert project["title"].endswith(" (claim decisions)") and project["maximum_annotations"] == 1
    assert f"verify-claims:{ws.id}" in project["description"]
    assert f"/projects/{sent.claims_project_id}/data?labeling=1" in project["expert_instruction"]
    [task] = _claim_tasks(server, sent.claims_project_id)
    supporting, contradicting = conflicting["afghan"][0]["meta"]["verify_key"], conflicting["gate"][0]["meta"]["verify_key"]
    digest = conflict_digest([supporting], [contradicting])
    meta, data = task["meta"], task["data"]
    assert meta["verify_key"] == data["frame_key"] == claim_key(FLAG, digest) == f"claim:{FLAG}:{digest}"
    assert (meta["claim_id"], meta["digest"], meta["supporting"], meta["contradicting"], meta["shown"]) == (
        FLAG, digest, [supporting], [contradicting], [supporting, contradicting])
    assert data["claim"] == f"Claim: {ws.case.claim(FLAG).text}"
    assert "1 frame supports this claim (left)" in data["conflict"] and "1 frame contradicts it (right)" in data["conflict"]
    assert server.project(sent.claims_project_id)["label_config"].count("<Image ") == 1  # direct upload allows one

    imports = server.calls["import_tasks"]
    again = _adjudicate(ws, server)
    assert (again.claims_project_id, again.claim_conflicts, again.claims_imported) == (sent.claims_project_id, 1, 0)
    assert server.calls["import_tasks"] == imports and len(_claim_tasks(server, sent.claims_project_id)) == 1
    assert claims_sent(again) == [
        f"1 claim whose frames conflict (some support it, others contradict it); 0 newly sent for a claim decision to "
        f"project {sent.claims_project_id}: {server.url}/projects/{sent.claims_project_id}/data"]


def test_no_claim_decisions_project_while_no_claims_frames_conflict(ws, server):
    project = push(ws, server, None, images="upload").project_id
    [first, *_] = _tasks_of_source(server, project, AFGHAN)
    server.annotate(project, first["id"], ANA, [_choice(FLAG, "Supports")])
    server.annotate(project, first["id"], BEN, [_choice(FLAG, "Contradicts")])  # a disputed frame, no conflict
    pull(ws, server)
    sent = _adjudicate(ws, server)
    assert (sent.disputed, sent.claim_conflicts, sent.claims_project_id) == (1, 0, None)
    assert len(server.projects()) == 2 and claims_sent(sent) == []
    assert ws.get_meta("claims_project_id") is None


def test_a_claim_is_sent_again_when_its_conflicting_frames_change(ws, server, conflicting):
    first = _adjudicate(ws, server)
    [before] = _claim_tasks(server, first.claims_project_id)
    _both(server, conflicting["project"], conflicting["gate"][1], "Contradicts")  # a second contradicting frame
    pull(ws, server)
    again = _adjudicate(ws, server)
    assert (again.claims_project_id, again.claim_conflicts, again.claims_imported) == (first.claims_project_id, 1, 1)
    old, new = _claim_tasks(server, first.claims_project_id)
    assert old == before and new["meta"]["digest"] != before["meta"]["digest"]
    assert len(new["meta"]["contradicting"]) == 2 and "2 frames contradict it" in new["data"]["conflict"]
    assert _adjudicate(ws, server).claims_imported == 0


def test_the_montage_is_made_in_the_workspace_uploaded_and_logged_with_its_sha256(ws, server, conflicting):
    from verify import custody
    from verify.files import file_sha256

    sent = _adjudicate(ws, server)
    [task] = _claim_tasks(server, sent.claims_project_id)
    name = task["meta"]["montage"]
    assert name == f"claims/{FLAG}-{task['meta']['digest']}.jpg"
    path = ws.path(name)
    sha = file_sha256(path)
    assert task["meta"]["montage_sha256"] == sha
    assert server._uploads[task["data"]["image"]] == path.read_bytes()  # the task shows the workspace's picture
    with Image.open(path) as picture:
        assert picture.format == "JPEG" and picture.width > 900 and picture.height > 300
    [entry] = [e for e in custody.read_entries(ws) if e["action"] == "adjudicate"]
    assert entry["outputs"]["files"] == [{"path": name, "sha256": sha}]
    assert (entry["details"]["claim_conflicts"], entry["details"]["claims_imported"]) == (1, 1)
    assert custody.check_log(ws).ok
    audit = custody.audit(ws)
    assert name not in audit.unexpected + audit.removed + audit.unlogged + audit.changed, audit.to_json()


def test_local_files_serve_the_montage_from_the_files_root(ws, tmp_path):
    root = tmp_path / "files-root"
    root.mkdir()
    server = FakeLabelStudio(document_root=root)
    server.whoami()
    for email in (ANA, BEN, LEAD):
        server.add_reviewer(email, f"{email.split('@')[0]}-pass-1234")
    project = push(ws, server, root, images="local").project_id
    _both(server, project, _tasks_of_source(server, project, AFGHAN)[0], "Supports")
    _both(server, project, _tasks_of_source(server, project, GATE)[0], "Contradicts")
    pull(ws, server, full=True)
    sent = _adjudicate(ws, server, root, images="local")
    [task] = _claim_tasks(server, sent.claims_project_id)
    served = root / "verify" / ws.id / task["meta"]["montage"]
    assert served.read_bytes() == ws.path(task["meta"]["montage"]).read_bytes()
    assert task["data"]["image"] == f"/data/local-files/?d=verify/{ws.id}/{task['meta']['montage']}"


def test_the_layout_shows_at_most_four_frames_a_side_and_says_how_many_more():
    def frame(key, source, t_ms, answer):
        vote = SimpleNamespace(by_reviewer={ANA: answer, BEN: answer}, adjudicated_by=None, verdict=answer)
        return SimpleNamespace(key=key * 8, file=f"frames/v/{key}.jpg", source_id=source, t_ms=t_ms, width=1280,
                               height=720, verdicts={FLAG: vote})

    supporting = [frame(str(i), AFGHAN, 1000.0 * i, "supports") for i in range(6)]
    contradicting = [frame("c", GATE, 61_500.0, "contradicts")]
    plan = layout(FLAG, supporting, contradicting)
    assert plan.shown == [f.key for f in supporting[:4]] + [contradicting[0].key]
    assert [t[2] for t in plan.texts] == [f"6 frames support {FLAG}", "+ 2 more frames not shown here (listed in the task)",
                                          f"1 frame contradicts {FLAG}"]
    left, right = [t for t in plan.tiles if t.picture[0] < plan.width // 2], [t for t in plan.tiles if t.picture[0] > plan.width // 2]
    assert len(left) == 4 and len(right) == 1
    assert right[0].caption == (f"{GATE} at 0:01:01.500 · frame cccccccc", f"{ANA}: Contradicts, {BEN}: Contradicts")
    assert all(0 <= t.picture[0] and t.picture[0] + t.picture[2] <= plan.width and t.picture[1] + t.picture[3] <= plan.height
               for t in plan.tiles)
    assert plan.tiles[0].picture[2:] == (480, 270)  # 16:9 fitted in its cell


# --- the lead's decisions come back ---------------------------------------------------------------

def test_the_leads_claim_decision_comes_back_through_pull_and_others_are_ignored(ws, server, conflicting):
    sent = _adjudicate(ws, server)
    [task] = _claim_tasks(server, sent.claims_project_id)
    server.annotate(sent.claims_project_id, task["id"], LEAD, _decision("Contradicted", "the gate frame shows no Taliban flag"))
    server.annotate(sent.claims_project_id, task["id"], ANA, _decision("Supported", "not the lead"))
    pulled = pull(ws, server)
    assert (pulled.claim_decisions, pulled.ignored) == (1, 1)
    decisions = claim_decisions(ws.case, ws.annotations())
    assert decisions == {FLAG: ClaimDecision(
        claim_id=FLAG, decision="contradicted", lead=LEAD, note="the gate frame shows no Taliban flag",
        frames=task["meta"]["shown"], digest=task["meta"]["digest"], at=decisions[FLAG].at,
        annotation_id=decisions[FLAG].annotation_id, task_id=task["id"])}
    assert decisions[FLAG].at
    verdicts = pipeline.current_verdicts(ws)  # the frame merge passes the claim decisions by; the claim's is the lead's
    claim = next(c for c in verdicts.claims if c.id == FLAG)
    assert (claim.verdict, claim.vote, claim.decided_by, claim.decision_current) == ("contradicted", "disputed", LEAD, True)
    assert len(verdicts.frames) == len(ws.frames())
    assert verdicts.reviewers[LEAD]["ground_truth"] == 1 and verdicts.reviewers[LEAD]["annotations"] == 0
    again = _adjudicate(ws, server)  # decided: nothing to send again
    assert again.claims_imported == 0
    from verify.status import workspace_status

    assert workspace_status(ws, verdicts).adjudication["claims"]["decided"] == [FLAG]
    written = {fmt: path for fmt, (path, _) in pipeline.report(ws, ("html", "md", "json")).written.items()}
    html, md = written["html"].read_text(), written["md"].read_text()
    said = f"Lead's decision on the claim</b>: Contradicted, by {LEAD}"
    assert said in html and "the gate frame shows no Taliban flag" in html
    assert f"Lead's decision on the claim**: Contradicted, by {LEAD}" in md.replace("\\", "")
    assert "**Contradicted** (lead's decision on the claim)" in md


def test_a_claim_decisions_project_deleted_on_the_server_is_named_by_pull_and_made_again(ws, server, conflicting):
    from verify.errors import ProjectMissing

    first = _adjudicate(ws, server)
    server.delete_project(first.claims_project_id)
    with pytest.raises(ProjectMissing, match="claim-decisions project .* run `verify adjudicate`"):
        pull(ws, server)
    again = _adjudicate(ws, server)
    assert again.claims_project_id != first.claims_project_id and again.claims_imported == 1


def _annotation(id_, key, result, at, who=LEAD, cancelled=False, ground_truth=True, shown=("f1", "f2")):
    record = {"type": TASK_RECORD, "from_name": TASK_RECORD, "to_name": "", "value": {"shown": list(shown)}}
    return Annotation(id=id_, task_id=100 + id_, frame_key=key, reviewer_id=1, reviewer=who, was_cancelled=cancelled,
                      ground_truth=ground_truth, result=[*result, record] if result else [], created_at=at, updated_at=at)


def test_claim_decisions_the_latest_wins_the_note_is_kept_and_skips_are_not_decisions():
    case = load_case(SEED_CASE)
    old, new = claim_key(FLAG, "aaaa"), claim_key(FLAG, "bbbb")
    other = claim_key("afghan_flag_removed", "cccc")
    annotations = [
        _annotation(1, old, _decision("Supported", "first look"), "2024-05-01T10:00:00.000000Z"),
        _annotation(2, new, _decision("Inconclusive", "  too far to tell  "), "2024-05-02T10:00:00.000000Z",
                    shown=("f3",)),
        _annotation(3, new, [], "2024-05-03T10:00:00.000000Z", cancelled=True),  # a skip, later: not a decision
        _annotation(4, other, _decision("contradicted"), "2024-05-01T09:00:00.000000Z"),  # stored as its alias
        _annotation(5, other, [{"type": "textarea", "from_name": CLAIM_NOTE, "to_name": MONTAGE,
                                "value": {"text": ["a note, no decision"]}}], "2024-05-04T10:00:00.000000Z"),
        _annotation(6, claim_key("no_such_claim", "dddd"), _decision("Supported"), "2024-05-05T10:00:00.000000Z"),
        _annotation(7, "0123abcd" * 4, [_choice(FLAG, "Supports")], "2024-05-06T10:00:00.000000Z"),  # a frame's
        _annotation(8, new, _decision("Supported"), "2024-05-07T10:00:00.000000Z", who=ANA, ground_truth=False),
    ]
    decisions = claim_decisions(case, annotations)
    assert set(decisions) == {FLAG, "afghan_flag_removed"}
    latest = decisions[FLAG]
    assert (latest.decision, latest.note, latest.frames, latest.digest, latest.lead, latest.at) == (
        "inconclusive", "too far to tell", ["f3"], "bbbb", LEAD, "2024-05-02T10:00:00.000000Z")
    assert (decisions["afghan_flag_removed"].decision, decisions["afghan_flag_removed"].note) == ("contradicted", "")
    assert claim_decisions(case, list(reversed(annotations))) == decisions  # the order pulled does not matter
    with pytest.raises(AttributeError):
        latest.decision = "supported"  # frozen


# --- against the real Label Studio -----------------------------------------------------------------

REAL_ANA, REAL_BEN, REAL_LEAD = "claims-ana@desk.example", "claims-ben@desk.example", "claims-lead@desk.example"
PASSWORD = "claims-pass-5813q"
MILITANTS = "militants_beside_pakistani_guards"


@pytest.mark.integration
def test_a_leads_claim_decision_made_over_http_is_pulled_and_read(label_studio, footage, tmp_path):
    from verify.media.frames import extract
    from verify.media.ingest import ingest

    case = tmp_path / "case.yaml"  # its own case id: other modules push the same footage to this server
    case.write_text(SEED_CASE.read_text().replace("\nid: spin-boldak-2021\n", "\nid: spin-boldak-2021-claims\n", 1))
    ws = pipeline.init(tmp_path / "ws", case)
    [ingested] = ingest(ws, [footage["militants_at_gate"]], source_id="militants-at-gate")
    assert ingested.ok, ingested.message
    extract(ws)
    url, key = label_studio["url"], label_studio["api_key"]
    client = LabelStudioClient(url, key)
    client.whoami()
    files_root = Path(label_studio["files_root"])
    try:
        push(ws, client, files_root, new_project=True)
        for email in (REAL_ANA, REAL_BEN, REAL_LEAD):
            client.add_reviewer(email, PASSWORD)
        tokens = {email: user_token(url, email, PASSWORD) for email in (REAL_ANA, REAL_BEN, REAL_LEAD)}
        times = {f.key: f.t_ms for f in ws.frames()}
        (supporting, first), (contradicting, second) = sorted(ws.tasks().items(), key=lambda kv: times[kv[0]])[:2]

        def post(who, task_id, result):
            answer = httpx.post(f"{url}/api/tasks/{task_id}/annotations/", headers={"Authorization": f"Token {tokens[who]}"},
                                json={"result": result, "was_cancelled": False, "lead_time": 4}, timeout=60)
            assert answer.status_code == 201, answer.text

        for who in (REAL_ANA, REAL_BEN):
            post(who, first, [_choice(MILITANTS, "Supports")])
            post(who, second, [_choice(MILITANTS, "Contradicts")])
        pull(ws, client)
        sent = pipeline.adjudicate(ws, client, files_root, lead=REAL_LEAD)
        assert (sent.disputed, sent.claim_conflicts, sent.claims_imported) == (0, 1, 1)
        admin = {"Authorization": f"Token {key}"}
        listed = httpx.get(f"{url}/api/tasks", params={"project": sent.claims_project_id}, headers=admin, timeout=60).json()
        [task] = listed["tasks"] if isinstance(listed, dict) else listed
        digest = conflict_digest([supporting], [contradicting])
        assert task["data"]["frame_key"] == f"claim:{MILITANTS}:{digest}"
        picture = httpx.get(url + task["data"]["image"], headers=admin, timeout=60)  # the server serves the montage
        assert picture.status_code == 200 and picture.content == ws.path(f"claims/{MILITANTS}-{digest}.jpg").read_bytes()

        note = "Frame 2 shows police, not guards <b>sic</b>"
        post(REAL_LEAD, task["id"], _decision("Contradicted", note))  # the lead, over HTTP, as the UI does
        pulled = pull(ws, client)
        assert (pulled.claim_decisions, pulled.ignored) == (1, 0)
        decision = claim_decisions(ws.case, ws.annotations())[MILITANTS]
        assert (decision.decision, decision.lead, decision.note, decision.digest, decision.frames) == (
            "contradicted", REAL_LEAD, note, digest, [supporting, contradicting])
        assert decision.task_id == task["id"] and decision.at
        exported = json.loads(ws.path(pulled.export_files[-1]).read_bytes())
        assert [t["meta"]["verify_key"] for t in exported] == [task["data"]["frame_key"]]  # archived as the server sent it
    finally:
        drop_projects(label_studio, ws.root)
