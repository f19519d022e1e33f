"""The lead sees the dispute, against a real Label Studio: each reviewer's boxes arrive as predictions
the server stores and gives back, the notes and the disputed claims are in the task; and a reviewer's
"cannot review" with a reason comes back through pull counted apart from skips.

One small workspace (one source) and its own reviewer accounts on the session's server.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import SEED_CASE, user_token, drop_projects
from verify import pipeline
from verify.labelstudio.client import LabelStudioClient
from verify.labelstudio.pull import pull
from verify.labelstudio.push import push

pytestmark = pytest.mark.integration

ANA, BEN, LEAD = "dispute-ana@desk.example", "dispute-ben@desk.example", "dispute-lead@desk.example"
PASSWORD = "dispute-pass-4471q"
MILITANTS = "militants_beside_pakistani_guards"


def _rect(group: str, label: str, x: float, region_id: str) -> dict:
    return {"id": region_id, "type": "rectanglelabels", "from_name": group, "to_name": "frame", "original_width": 640,
            "original_height": 360, "image_rotation": 0,
            "value": {"x": x, "y": 20.0, "width": 15.0, "height": 30.0, "rotation": 0, "rectanglelabels": [label]}}


def _choice(claim: str, answer: str) -> dict:
    return {"type": "choices", "from_name": f"claim_{claim}", "to_name": "frame", "value": {"choices": [answer]}}


def _note(text: str) -> dict:
    return {"type": "textarea", "from_name": "notes", "to_name": "frame", "value": {"text": [text]}}


@pytest.fixture(scope="module")
def disputed(label_studio, footage, tmp_path_factory):
    """One source pushed; ana and ben disagree on its first frame and box different things; on the second frame
    ben cannot review (reason stored as its label), ana skips; then pull and adjudicate."""
    from verify.media.frames import extract
    from verify.media.ingest import ingest

    # the seed case under its own id: adjudication finds a case's earlier adjudication project by its frames, and
    # other modules adjudicate the same fixtures on the same server
    here = tmp_path_factory.mktemp("dispute")
    case = here / "case.yaml"
    case.write_text(SEED_CASE.read_text().replace("\nid: spin-boldak-2021\n", "\nid: spin-boldak-2021-dispute\n", 1))
    assert "spin-boldak-2021-dispute" in case.read_text()
    ws = pipeline.init(here / "ws", case)
    [ingested] = ingest(ws, [footage["militants_at_gate"]], source_id="militants-at-gate")
    assert ingested.ok, ingested.message
    extract(ws)
    client = LabelStudioClient(label_studio["url"], label_studio["api_key"])
    client.whoami()
    files_root = Path(label_studio["files_root"])
    push(ws, client, files_root, new_project=True)  # its own project: other modules push the same fixtures
    for email in (ANA, BEN, LEAD):
        client.add_reviewer(email, PASSWORD)
    tokens = {email: user_token(label_studio["url"], email, PASSWORD) for email in (ANA, BEN)}
    tasks = sorted(ws.tasks().items(), key=lambda kv: next(f.t_ms for f in ws.frames() if f.key == kv[0]))
    (first_key, first), (second_key, second) = tasks[0], tasks[1]

    def post(who, task_id, result, cancelled=False):
        answer = httpx.post(f"{label_studio['url']}/api/tasks/{task_id}/annotations/",
                            headers={"Authorization": f"Token {tokens[who]}"},
                            json={"result": result, "was_cancelled": cancelled, "lead_time": 4}, timeout=60)
        assert answer.status_code == 201, answer.text

    ana_boxes = [_rect("actors", "Armed militants", 30.0, "ana-militant"), _rect("actors", "Pakistani border guards", 55.0, "ana-guard")]
    post(ANA, first, [_choice(MILITANTS, "Supports"), *ana_boxes, _rect("actors", "Tanks", 5.0, "ana-tank")])
    post(BEN, first, [_choice(MILITANTS, "Contradicts"), _rect("actors", "Civilians", 31.0, "ben-civilian"),
                      _note("they wear police patches")])
    post(BEN, second, [{"type": "choices", "from_name": "cannot_review", "to_name": "frame",
                        "value": {"choices": ["Unreadable (black, blurred, corrupted)"]}}, _note("smeared lens")])
    post(ANA, second, [], cancelled=True)
    pulled = pull(ws, client)
    sent = pipeline.adjudicate(ws, client, files_root, lead=LEAD)
    listed = httpx.get(f"{label_studio['url']}/api/tasks", params={"project": sent.project_id},
                       headers={"Authorization": f"Token {label_studio['api_key']}"}, timeout=60).json()
    [task] = listed["tasks"] if isinstance(listed, dict) else listed
    predictions = httpx.get(f"{label_studio['url']}/api/predictions/", params={"task": task["id"]},
                            headers={"Authorization": f"Token {label_studio['api_key']}"}, timeout=60).json()
    # the task as the lead's browser loads it when the lead opens it from the project's task list
    lead = user_token(label_studio["url"], LEAD, PASSWORD)
    opened = httpx.get(f"{label_studio['url']}/api/tasks/{task['id']}", params={"project": sent.project_id},
                       headers={"Authorization": f"Token {lead}"}, timeout=60).json()
    yield {"ws": ws, "pulled": pulled, "sent": sent, "task": task, "predictions": predictions, "ana_boxes": ana_boxes,
            "first": first_key, "second": second_key, "opened": opened}
    drop_projects(label_studio, ws.root)


def test_each_reviewers_boxes_reach_the_leads_task_as_a_prediction_named_by_the_reviewer(disputed):
    sent, predictions = disputed["sent"], disputed["predictions"]
    assert (sent.disputed, sent.imported, sent.predictions, sent.boxes_left_out) == (1, 1, 2, 1)  # the tank is no label
    stored = {p["model_version"]: p["result"] for p in predictions}
    assert set(stored) == {ANA, BEN}
    assert [r["id"] for r in stored[ANA]] == ["ana-militant", "ana-guard"]
    assert [r["value"]["rectanglelabels"] for r in stored[BEN]] == [["Civilians"]]
    # the reviewer's regions, as the server gives them back, under the one box control (drawn under a group's)
    assert stored[ANA] == [{**r, "from_name": "box-labels"} for r in disputed["ana_boxes"]]
    assert all(p["task"] == disputed["task"]["id"] for p in predictions)
    # opened from the task list (the address `verify adjudicate` prints), the lead's page gets every reviewer's
    # boxes; Label Studio 1.23's label stream sends only predictions of the project's model version (none set)
    assert {p["model_version"]: p["result"] for p in disputed["opened"]["predictions"]} == stored


def test_the_leads_task_carries_the_disputed_claims_first_and_the_notes(disputed):
    data, ws = disputed["task"]["data"], disputed["ws"]
    assert data["frame_key"] == disputed["first"]
    assert f"“{ws.case.claim(MILITANTS).text}” ({ANA}: Supports, {BEN}: Contradicts)" in data["dispute"]
    assert f"{BEN}: they wear police patches" in data["dispute"]
    assert data["disputed_claims"] == f"Disputed: {ws.case.claim(MILITANTS).text}"
    assert disputed["task"]["meta"]["disputed_claims"] == [MILITANTS]
    bears = {c.id: data[f"bears_{c.id}"] for c in ws.case.claims}  # the labeling config asks a filled one first
    assert bears.pop(MILITANTS) == f"Disputed: {ANA}: Supports, {BEN}: Contradicts" and set(bears.values()) == {""}


def test_cannot_review_comes_back_through_pull_counted_apart_from_the_skip(disputed):
    pulled, ws = disputed["pulled"], disputed["ws"]
    assert (pulled.skipped, pulled.cannot_review) == (1, 1)
    frame = next(f for f in pipeline.current_verdicts(ws).frames if f.key == disputed["second"])
    assert [(c["reviewer"], c["reason"], c["notes"]) for c in frame.cannot_review] == [(BEN, "unreadable", ["smeared lens"])]
    assert frame.skipped_by == [ANA] and frame.nobody_could_review
