"""A reviewed seed-case workspace for the report tests, built without a server.

Two reviewers label the fixture footage as they did in the real Label Studio UI: they agree on
the flag frames (boxes included: a shared flag box, two labels on one box, a box at the picture's
edge), split on a militants frame, which the lead (also one of the two reviewers) decides; one
skips a civilians frame the other answered; notes carry hostile text. Reviewer annotations are
project 1, the lead's decision project 2, through the workspace's own methods.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import SEED_CASE, SOURCES
from verify.records import Annotation
from verify.workspace import Workspace

ANA, BEN = "ana.reviewer.with.a.long.address@verification-desk.example", "ben@desk.example"
LEAD = ANA  # the lead was one of the disputing reviewers: the report must say so
FLAG, MILITANTS, CIVILIANS = "taliban_flag_raised", "militants_beside_pakistani_guards", "civilians_refused_passage"
HOSTILE_NOTE = "<script>alert(1)</script> looks like the Chaman gate"
LEAD_NOTE = "Decided on the uniform: the guard's shoulder patch is visible."


def choice(claim: str, answer: str) -> dict:
    return {"type": "choices", "from_name": f"claim_{claim}", "to_name": "frame", "value": {"choices": [answer]}}


def box(group: str, label: str, x: float, y: float, w: float, h: float) -> dict:
    return {"type": "rectanglelabels", "from_name": group, "to_name": "frame",
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


def note(text: str) -> dict:
    return {"type": "textarea", "from_name": "notes", "to_name": "frame", "value": {"text": [text]}}


def build_base(root: Path, footage: dict[str, Path]) -> Path:
    """The four fixture videos ingested and their keyframes extracted (a few seconds); returns the folder."""
    from verify.media.frames import extract
    from verify.media.ingest import ingest

    from verify import pipeline

    ws = pipeline.init(root, SEED_CASE)
    for name, source in SOURCES.items():
        [result] = ingest(ws, [footage[name]], source_id=source)
        assert result.ok, result.message
    extract(ws)
    ws.db.close()
    return root


def copy(base: Path, to: Path) -> Workspace:
    shutil.copytree(base, to, symlinks=True)
    return Workspace.open(to)


def review(ws: Workspace) -> dict:
    """Record the scenario's annotations in ``ws``; return what was done, by frame key."""
    frames = ws.frames()
    videos = {v.sha256: v.source_id for v in ws.videos()}
    by_source: dict[str, list] = {}
    for f in sorted(frames, key=lambda f: f.t_ms):
        by_source.setdefault(videos[f.video_sha256], []).append(f)
    sent = [f for f in frames if not f.duplicate_of]
    tasks = {f.key: i for i, f in enumerate(sent, 1)}
    ws.record_tasks(1, tasks)
    ws.update_meta(project_id="1", server_url="http://127.0.0.1:8080")
    anns, ids = [], iter(range(1, 10_000))
    clock = iter(f"2021-07-15T09:{m:02d}:00Z" for m in range(60))

    def add(who, frame, result, cancelled=False, project=1, lead=False):
        anns.append(Annotation(id=next(ids), task_id=tasks[frame.key] + (1000 if lead else 0), frame_key=frame.key,
                               reviewer_id=None, reviewer=who, was_cancelled=cancelled, ground_truth=lead,
                               result=result, created_at=next(clock), project_id=project))

    flags = by_source["flag-hoisting-afghan-side"][:3]
    for i, f in enumerate(flags):
        for who in (ANA, BEN):
            result = [choice(FLAG, "Supports"), box("flags", "Taliban flag", 40 + (who == BEN), 10, 20, 15)]
            if i == 0:  # two labels on one box, and a box at the picture's right edge
                result.append(box("actors", "Armed militants" if who == ANA else "Civilians", 20, 50, 15, 30))
                result.append(box("location_cues", "Signage / text", 88, 0.5, 12, 6))
            add(who, f, result)
    [militants, *_] = by_source["militants-at-gate"]
    add(ANA, militants, [choice(MILITANTS, "Supports"), box("actors", "Armed militants", 30, 30, 20, 40),
                         box("actors", "Pakistani border guards", 55, 30, 18, 40)])
    add(BEN, militants, [choice(MILITANTS, "Contradicts"), note(HOSTILE_NOTE)])
    [civilians, *_] = by_source["civilians-refused"]
    add(ANA, civilians, [choice(CIVILIANS, "Supports")])
    add(BEN, civilians, [], cancelled=True)
    ws.replace_annotations(1, anns)
    lead = []
    anns.clear()
    add(LEAD, militants, [choice(MILITANTS, "Supports"), note(LEAD_NOTE)], project=2, lead=True)
    lead = anns
    ws.record_tasks(2, {militants.key: 2001})
    ws.replace_annotations(2, lead)
    ws.update_meta(adjudication_project_id="2", adjudication_lead=LEAD)
    return {"flags": [f.key for f in flags], "militants": militants.key, "civilians": civilians.key,
            "tasks": len(tasks)}
