"""The whole loop against a real Label Studio, with real reviewer accounts and real annotations.

A Label Studio server is started once per test session (tests/conftest.py). Reviewers are
signed up through the invite link by `verify reviewers add`, log in with their passwords, and
annotate through the API with their own tokens, as the UI would on their behalf.
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.conftest import SOURCES, cli, cli_env, cli_workspace, personal_access_token, truth, user_token

pytestmark = pytest.mark.integration

REVIEWERS = {"ana@desk.example": "ana-pass-2031x", "ben@desk.example": "ben-pass-8812y"}
NOTE = '<script>alert("x")</script> the crowd is held back at the gate'


run = cli  # `verify ARGS` in-process, exit code checked (tests/conftest.py)


@pytest.fixture(scope="module")
def loop(label_studio, footage, extracted, tmp_path_factory):
    """init → ingest → frames → push (twice) → reviewers annotate → sync, through the CLI.

    init → ingest → frames is the session's copy (`extracted`: the same commands, run once for this module and
    tests/test_postgres.py, which runs this loop again on PostgreSQL): what the loop proves is from the push on.
    Running them from scratch is proved here too, by test_a_lost_workspace_finds_its_project_again_…"""
    ws = extracted(SOURCES, tmp_path_factory.mktemp("loop") / "ws")
    env = cli_env(label_studio, ws)
    first = run(env, "push")
    second = run(env, "push")
    admin = {"Authorization": f"Token {label_studio['api_key']}"}
    project = json.loads((run(env, "status", "--json")).output)["label_studio"]["project_id"]
    tasks = _tasks(label_studio["url"], admin, project)

    for email, password in REVIEWERS.items():
        run(env, "reviewers", "add", email, "--password", password)
    tokens = {email: user_token(label_studio["url"], email, pw) for email, pw in REVIEWERS.items()}
    plan = _annotate(label_studio["url"], tasks, tokens, footage)
    synced = run(env, "sync")
    report = json.loads((ws / "reports" / "report.json").read_text())
    return {"env": env, "ws": ws, "first": first.output, "second": second.output, "tasks": tasks, "plan": plan,
            "report": report, "sync": synced.output, "admin": admin, "project": project, "url": label_studio["url"]}


def _tasks(url: str, headers: dict, project: int) -> list[dict]:
    answer = httpx.get(f"{url}/api/tasks", params={"project": project, "page_size": 1000, "fields": "task_only"},
                       headers=headers, timeout=60).json()
    return answer["tasks"] if isinstance(answer, dict) else answer


def _box_percent(video: Path, t_s: float, label: str) -> dict:
    t = truth(video)
    sample = min(t["objects"], key=lambda s: abs(s["t"] - t_s))
    x, y, w, h = next(o["box"] for o in sample["objects"] if o["label"] == label)
    W, H = t["width"], t["height"]
    return {"x": 100 * x / W, "y": 100 * y / H, "width": 100 * w / W, "height": 100 * h / H, "rotation": 0}


def _annotate(url: str, tasks: list[dict], tokens: dict, footage: dict) -> dict:
    """Ana and Ben review: agreement on the Taliban flag, a split on the militants, a skip and a note."""
    ana, ben = (f"Token {tokens[e]}" for e in REVIEWERS)

    def post(token, task, result, cancelled=False):
        answer = httpx.post(f"{url}/api/tasks/{task['id']}/annotations/", headers={"Authorization": token},
                            json={"result": result, "was_cancelled": cancelled, "lead_time": 5}, timeout=60)
        assert answer.status_code == 201, answer.text

    def choice(claim, value):
        return {"type": "choices", "from_name": f"claim_{claim}", "to_name": "frame", "value": {"choices": [value]}}

    def rect(group, label, box, video):
        t = truth(video)
        return {"type": "rectanglelabels", "from_name": group, "to_name": "frame", "original_width": t["width"],
                "original_height": t["height"], "image_rotation": 0, "value": {**box, "rectanglelabels": [label]}}

    by_source = {}
    for task in tasks:
        by_source.setdefault(task["data"]["source_id"], []).append(task)
    flag_video = footage["flag_afghan_side"]
    flag_tasks = [t for t in by_source["flag-hoisting-afghan-side"] if t["data"]["t_ms"] >= 5000]
    for task in flag_tasks:  # the Taliban flag is up: both agree, both box it
        box = _box_percent(flag_video, task["data"]["t_ms"] / 1000, "Taliban flag")
        shifted = {**box, "x": box["x"] + 0.5}
        post(ana, task, [choice("taliban_flag_raised", "Supports"), choice("attack_repelled", "Contradicts"),
                         rect("flags", "Taliban flag", box, flag_video)])
        post(ben, task, [choice("taliban_flag_raised", "Supports"), choice("attack_repelled", "Contradicts"),
                         rect("flags", "Taliban flag", shifted, flag_video), rect("flags", "Taliban flag", shifted, flag_video)])
    militants = sorted(by_source["militants-at-gate"], key=lambda t: t["data"]["t_ms"])[0]
    post(ana, militants, [choice("militants_beside_pakistani_guards", "Supports")])
    post(ben, militants, [choice("militants_beside_pakistani_guards", "Contradicts")])
    civilians = sorted(by_source["civilians-refused"], key=lambda t: t["data"]["t_ms"])[0]
    post(ana, civilians, [choice("civilians_refused_passage", "Supports"),
                          {"type": "textarea", "from_name": "notes", "to_name": "frame", "value": {"text": [NOTE]}}])
    post(ben, civilians, [], cancelled=True)
    return {"flag": [t["data"]["frame_key"] for t in flag_tasks], "militants": militants["data"]["frame_key"],
            "civilians": civilians["data"]["frame_key"]}


def test_push_sends_every_frame_but_reuploads_once_and_a_second_push_adds_nothing(loop):
    ws_frames = json.loads(run(loop["env"], "status", "--json").output)
    linked = sum(v["linked_frames"] for v in ws_frames["videos"])
    assert linked > 0
    assert len(loop["tasks"]) == ws_frames["frames"] - linked
    assert f"{len(loop['tasks'])} tasks imported, 0 already there" in loop["first"]
    assert f"0 tasks imported, {len(loop['tasks'])} already there" in loop["second"]
    assert len(_tasks(loop["url"], loop["admin"], loop["project"])) == len(loop["tasks"])  # sync pushed nothing new
    keys = [t["data"]["frame_key"] for t in loop["tasks"]]
    assert len(keys) == len(set(keys))


def test_tasks_show_source_and_timestamp_and_their_images_are_served(loop):
    task = loop["tasks"][0]
    assert task["data"]["provenance"].startswith("Source: ") and task["data"]["timestamp"].startswith("Frame at ")
    image = httpx.get(loop["url"] + task["data"]["image"], headers=loop["admin"], timeout=60)
    assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"


def test_project_uses_the_generated_config_and_asks_for_several_reviewers(loop):
    project = httpx.get(f"{loop['url']}/api/projects/{loop['project']}", headers=loop["admin"], timeout=60).json()
    assert project["maximum_annotations"] == 2
    assert "claim_taliban_flag_raised" in project["label_config"]


def test_verdicts_match_what_the_reviewers_entered(loop):
    report = loop["report"]
    claims = {c["id"]: c for c in report["claims"]}
    assert claims["taliban_flag_raised"]["verdict"] == "supported"
    assert {e["frame_key"] for e in claims["taliban_flag_raised"]["supporting"]} >= set(loop["plan"]["flag"])
    assert claims["attack_repelled"]["verdict"] == "contradicted"
    assert claims["militants_beside_pakistani_guards"]["verdict"] == "disputed"
    assert claims["civilians_refused_passage"]["verdict"] == "pending"  # one answer, one skip
    assert claims["afghan_flag_removed"]["verdict"] in ("unreviewed", "pending")
    frames = {f["key"]: f for f in report["frames"]}
    for key in loop["plan"]["flag"]:
        assert frames[key]["verdicts"]["taliban_flag_raised"]["counts"] == {"supports": 2, "contradicts": 0, "cant_tell": 0}
        [box] = frames[key]["boxes"]  # ana's box and ben's (drawn twice by one drag) merge into one
        assert box["label"] == "Taliban flag" and box["drawn_by"] == 2
    assert frames[loop["plan"]["militants"]]["verdicts"]["militants_beside_pakistani_guards"]["counts"] == {
        "supports": 1, "contradicts": 1, "cant_tell": 0}
    civ = frames[loop["plan"]["civilians"]]
    assert civ["skipped_by"] == ["ben@desk.example"] and civ["notes"][0]["text"] == NOTE
    assert report["summary"]["skips"] == 1
    assert report["reviewers"]["ana@desk.example"]["reviews"] == len(loop["plan"]["flag"]) + 2
    # the re-upload's frames were not reviewed again: it is a copy, with no verdict of its own (issue 24), and the
    # claim rests on the original's source alone
    sources = {s["source_id"]: s for s in report["sources"]}
    pakistani = sources["flag-hoisting-pakistani-side"]
    assert pakistani["copy_of"] == ["flag-hoisting-afghan-side"] and pakistani["verdicts"].get("taliban_flag_raised") in (None, "unreviewed")
    assert claims["taliban_flag_raised"]["independent_sources"]["supporting"] == ["flag-hoisting-afghan-side"]


def test_the_html_report_escapes_the_note_and_embeds_its_images(loop):
    html = (loop["ws"] / "reports" / "report.html").read_text()
    assert '<script>alert("x")</script>' not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert 'src="http' not in html and "<link" not in html  # no remote resources
    assert html.count('src="data:image/jpeg;base64,') >= len(loop["report"]["frames"])
    md = (loop["ws"] / "reports" / "report.md").read_text()
    assert "<script>" not in md
    export = loop["report"]["method"]["built_from_export"]
    assert export and (loop["ws"] / export["file"]).is_file()


def test_status_shows_reviewers_and_claims(loop):
    state = json.loads(run(loop["env"], "status", "--json").output)
    tasks, flag = len(loop["tasks"]), len(loop["plan"]["flag"])
    # ben: the flag frames and the militants frame answered, the civilians frame skipped; the rest still open to him
    assert state["reviewers"]["ben@desk.example"] == {"assigned": tasks, "done": flag + 1, "skipped": 1, "cannot_review": 0,
                                                      "remaining": tasks - flag - 2}
    # ana answered the civilians frame too; it still needs a second reviewer, but not her
    assert state["reviewers"]["ana@desk.example"] == {"assigned": tasks, "done": flag + 2, "skipped": 0, "cannot_review": 0,
                                                      "remaining": tasks - flag - 2}
    assert state["open_tasks"] == tasks - flag - 1
    claims = {c["id"]: c for c in state["claims"]}
    assert claims["taliban_flag_raised"]["verdict"] == "supported"
    assert (claims["taliban_flag_raised"]["done"], claims["taliban_flag_raised"]["answers"]) == (flag, 2 * flag)
    assert (claims["civilians_refused_passage"]["done"], claims["civilians_refused_passage"]["answered"]) == (0, 1)
    civilians = claims["civilians_refused_passage"]  # its own frames (those of the sources bearing on it), none complete
    assert 0 < civilians["frames"] < tasks and civilians["remaining"] == civilians["frames"]
    text = run(loop["env"], "status").output
    assert "ana@desk.example" in text and "taliban_flag_raised" in text and "supported" in text
    print(text)


def test_a_personal_access_token_works_too(loop, label_studio):
    pat = personal_access_token(label_studio)
    assert pat.count(".") == 2  # a JWT refresh token, not a legacy key
    env = {**loop["env"], "LABEL_STUDIO_API_KEY": pat}
    result = run(env, "pull")
    assert "pulled" in result.output and pat not in result.output
    # or from a file, never on the command line
    key_file = loop["ws"].parent / "pat.txt"
    key_file.write_text(pat + "\n")
    env = {k: v for k, v in loop["env"].items() if k != "LABEL_STUDIO_API_KEY"}
    from_file = run(env, "pull", "--api-key-file", str(key_file))
    assert "pulled" in from_file.output
    key_file.unlink()


def test_a_wrong_key_or_address_is_one_line_with_its_own_exit_code(loop):
    wrong_key = run({**loop["env"], "LABEL_STUDIO_API_KEY": "0" * 40}, "pull", code=8)
    assert wrong_key.output.count("\n") == 1 and "401" in wrong_key.output and "0" * 40 not in wrong_key.output
    wrong_url = run({**loop["env"], "LABEL_STUDIO_URL": "http://127.0.0.1:9"}, "push", code=7)
    assert wrong_url.output.count("\n") == 1 and "cannot reach Label Studio" in wrong_url.output
    assert "Traceback" not in wrong_key.output + wrong_url.output


def test_the_api_key_never_reaches_the_workspace(loop):
    key = loop["env"]["LABEL_STUDIO_API_KEY"].encode()
    for path in loop["ws"].rglob("*"):  # custody log, exports and reports included
        if path.is_file():
            assert key not in path.read_bytes(), path


def test_the_local_server_is_locked_down(label_studio):
    """Loopback only, no open sign-up, a dedicated files root, secrets in mode-600 files, no key in argv."""
    import os
    import stat

    from verify.labelstudio import server

    creds = server.credentials(label_studio["base"])
    assert label_studio["url"].startswith("http://127.0.0.1:")
    assert stat.S_IMODE(os.stat(label_studio["base"] / "credentials.json").st_mode) == 0o600
    assert Path(label_studio["files_root"]).resolve() != Path("/") and label_studio["base"] in Path(label_studio["files_root"]).parents
    pid = int((label_studio["base"] / "server.pid").read_text())
    assert creds["api_key"].encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    with httpx.Client(base_url=label_studio["url"], timeout=60) as web:  # sign-up without the invite link: refused
        web.get("/user/signup/")
        web.post("/user/signup/", data={"email": "stranger@example.org", "password": "stranger-pass-123",
                                        "csrfmiddlewaretoken": web.cookies.get("csrftoken", "")},
                 headers={"Referer": f"{label_studio['url']}/user/signup/"})
    users = httpx.get(f"{label_studio['url']}/api/users", headers={"Authorization": f"Token {creds['api_key']}"}, timeout=60).json()
    assert "stranger@example.org" not in {u["email"] for u in users}


def test_a_lead_decides_a_disputed_frame(loop, label_studio):
    env = loop["env"]
    run(env, "reviewers", "add", "lead@desk.example", "--password", "lead-pass-5521z")
    sent = run(env, "adjudicate", "--lead", "lead@desk.example")
    assert "1 disputed frame; 1 newly sent" in sent.output
    again = run(env, "adjudicate", "--lead", "lead@desk.example")
    assert "1 disputed frame; 0 newly sent" in again.output
    ws_meta = json.loads(run(env, "status", "--json").output)
    project = int(next(l for l in sent.output.splitlines() if "adjudication project" in l).split()[-1])
    tasks = _tasks(loop["url"], loop["admin"], project)
    assert [t["data"]["frame_key"] for t in tasks] == [loop["plan"]["militants"]]
    assert "Pakistani border guards.” (ana@desk.example: Supports, ben@desk.example: Contradicts)" in tasks[0]["data"]["dispute"]
    lead = user_token(loop["url"], "lead@desk.example", "lead-pass-5521z")
    ana = user_token(loop["url"], "ana@desk.example", REVIEWERS["ana@desk.example"])
    result = [{"type": "choices", "from_name": "claim_militants_beside_pakistani_guards", "to_name": "frame",
               "value": {"choices": ["Supports"]}}]
    for token, choice in ((lead, "Supports"), (ana, "Contradicts")):  # ana is not the lead: ignored
        answer = httpx.post(f"{loop['url']}/api/tasks/{tasks[0]['id']}/annotations/", headers={"Authorization": f"Token {token}"},
                            json={"result": [{**result[0], "value": {"choices": [choice]}}]}, timeout=60)
        assert answer.status_code == 201, answer.text
    synced = run(env, "sync")
    assert "pulled 1 lead decision from the adjudication project (1 submission there by others than the lead ignored)" in synced.output
    report = json.loads((loop["ws"] / "reports" / "report.json").read_text())
    frame = next(f for f in report["frames"] if f["key"] == loop["plan"]["militants"])
    verdict = frame["verdicts"]["militants_beside_pakistani_guards"]
    assert (verdict["verdict"], verdict["vote"]) == ("supports", "disputed") and verdict["adjudicated_by"]
    assert verdict["adjudicated_by"] == "lead@desk.example"
    claims = {c["id"]: c for c in report["claims"]}
    assert claims["militants_beside_pakistani_guards"]["verdict"] == "supported"
    assert report["method"]["adjudication"]["lead"] == "lead@desk.example"
    html = (loop["ws"] / "reports" / "report.html").read_text()
    assert "adjudicated" in html and "lead@desk.example" in html
    assert ws_meta["frames"] > 0


def test_an_annotation_edited_on_the_server_is_reflected_and_the_old_export_kept(loop):
    env = loop["env"]
    before = {p.name for p in (loop["ws"] / "exports").iterdir()}
    ana = user_token(loop["url"], "ana@desk.example", REVIEWERS["ana@desk.example"])
    civilians = loop["plan"]["civilians"]
    task = next(t for t in loop["tasks"] if t["data"]["frame_key"] == civilians)
    [annotation] = [a for a in httpx.get(f"{loop['url']}/api/tasks/{task['id']}/annotations/",
                                         headers=loop["admin"], timeout=60).json() if not a["was_cancelled"]]
    changed = [{"type": "choices", "from_name": "claim_civilians_refused_passage", "to_name": "frame",
                "value": {"choices": ["Can't tell"]}}]
    answer = httpx.patch(f"{loop['url']}/api/annotations/{annotation['id']}/", headers={"Authorization": f"Token {ana}"},
                         json={"result": changed}, timeout=60)
    assert answer.status_code == 200, answer.text
    run(env, "sync")
    report = json.loads((loop["ws"] / "reports" / "report.json").read_text())
    frame = next(f for f in report["frames"] if f["key"] == civilians)
    assert frame["verdicts"]["civilians_refused_passage"]["by_reviewer"] == {"ana@desk.example": "cant_tell"}
    assert frame["notes"] == []  # the note went with the edit
    after = {p.name for p in (loop["ws"] / "exports").iterdir()}
    assert before < after  # earlier exports stay, byte for byte
    assert any(NOTE in str(json.loads((loop["ws"] / "exports" / name).read_text())) for name in before)
    # that sync was incremental: only the changed task (and any changed within a second before the
    # previous pull: the mark is one second early, as the server's clock has whole seconds)
    [new] = [n for n in after - before if f"-project{loop['project']}-" in n]
    again = [t["id"] for t in json.loads((loop["ws"] / "exports" / new).read_text())]
    assert task["id"] in again and len(again) < len(loop["tasks"]) / 2

    # nothing changed: nothing exported
    quiet = run(env, "pull")
    assert "on 0 tasks (changed since the last pull)" in quiet.output
    assert {p.name for p in (loop["ws"] / "exports").iterdir()} == after

    # a deletion on the server is a change too
    httpx.delete(f"{loop['url']}/api/annotations/{annotation['id']}/", headers=loop["admin"], timeout=60).raise_for_status()
    gone = run(env, "pull")
    assert "on 1 task (changed since the last pull)" in gone.output
    state = json.loads(run(env, "status", "--json").output)
    assert {c["id"]: c for c in state["claims"]}["civilians_refused_passage"]["answered"] == 0

    # a full pull exports every task again and gives the same annotations
    import sqlite3

    def annotations():
        with closing(sqlite3.connect(loop["ws"] / "verify.db")) as db:
            return sorted(db.execute("SELECT id, project_id, task_id, result, was_cancelled FROM annotations").fetchall())

    incremental = annotations()
    full = run(env, "pull", "--full")
    assert f"on {len(loop['tasks'])} tasks (full export)" in full.output
    assert annotations() == incremental


def test_what_a_reviewer_can_see_of_the_others(loop, label_studio):
    """Blind review in the Community edition, as observed: the label stream is blind, the rest is not.
    (The README's "What a reviewer can see" quotes this test.)"""
    url, project = loop["url"], loop["project"]
    ben = {"Authorization": f"Token {user_token(url, 'ben@desk.example', REVIEWERS['ben@desk.example'])}"}
    me = httpx.get(f"{url}/api/current-user/whoami", headers=ben, timeout=60).json()["id"]
    flag = next(t for t in loop["tasks"] if t["data"]["frame_key"] == loop["plan"]["flag"][0])  # ana and ben answered
    facts = {}
    nxt = httpx.get(f"{url}/api/projects/{project}/next", headers=ben, timeout=60)
    facts["label stream: next task carries no one's annotations"] = nxt.status_code == 200 and not nxt.json().get("annotations")
    listing = httpx.get(f"{url}/api/tasks", headers=ben, params={"project": project, "page_size": 100, "fields": "all"}, timeout=60)
    row = next(t for t in listing.json()["tasks"] if t["id"] == flag["id"])
    facts["data manager: lists every task with its annotation count"] = (
        len(listing.json()["tasks"]) == len(loop["tasks"]) and row["total_annotations"] == 2)
    task = httpx.get(f"{url}/api/tasks/{flag['id']}", headers=ben, timeout=60).json()
    facts["data manager: opening a task shows another reviewer's answer"] = any(
        a["completed_by"] != me and a["result"] for a in task["annotations"])
    export = httpx.get(f"{url}/api/projects/{project}/export", headers=ben, params={"exportType": "JSON"}, timeout=60)
    facts["any member may export every annotation"] = export.status_code == 200 and any(
        a["completed_by"] != me for t in export.json() for a in t["annotations"])
    settings = httpx.get(f"{url}/api/projects/{project}", headers=loop["admin"], timeout=60).json()
    facts["verify's settings: annotation history hidden, skip allowed"] = (
        settings["show_annotation_history"] is False and settings["show_skip_button"] is True)
    print(json.dumps(facts, indent=1))
    assert all(facts.values()), facts


def test_a_lost_workspace_finds_its_project_again_by_case_and_frame_keys(loop, footage, tmp_path):
    """The workspace is gone; rebuilt from the same evidence, it finds the project and imports nothing."""
    env = {**loop["env"], "VERIFY_WORKSPACE": str(tmp_path / "rebuilt")}
    cli_workspace(env, footage, SOURCES)  # from scratch, not the session's copy: the frame keys must come out the same
    pushed = run(env, "push")
    assert f"project {loop['project']} found again on the server by its case id and" in pushed.output
    assert "0 tasks imported" in pushed.output
    assert json.loads(run(env, "status", "--json").output)["label_studio"]["project_id"] == loop["project"]
    assert f"project {loop['project']} found:" in run(env, "push").output  # marked as this workspace's now


def test_two_syncs_at_once_one_waits_its_turn_and_nothing_is_corrupted(loop):
    import os
    import sqlite3
    import subprocess
    import sys

    env = {**os.environ, **loop["env"]}
    # the first: a verify process in the middle of writing, holding the workspace lock as every writing command
    # does (a real sync is over too soon on this server to be caught in the act reliably)
    holder = ("import sys; from verify.workspace import Workspace\n"
              "with Workspace.open(sys.argv[1]).lock():\n    print('locked', flush=True); sys.stdin.readline()")
    first = subprocess.Popen([sys.executable, "-c", holder, str(loop["ws"])], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "locked"
    second = subprocess.run([sys.executable, "-m", "verify", "sync"], env=env, capture_output=True, text=True)
    first.communicate("done\n", timeout=60)
    assert first.returncode == 0
    assert second.returncode == 6, second.stdout + second.stderr
    assert f"workspace is in use by verify (pid {first.pid})" in second.stderr and "Traceback" not in second.stderr
    # its turn: the lock is free (the timeout bounds a hang; how long a sync takes on a busy machine is not the point)
    then = subprocess.run([sys.executable, "-m", "verify", "sync"], env=env, capture_output=True, text=True, timeout=300)
    assert then.returncode == 0, then.stdout + then.stderr
    with closing(sqlite3.connect(loop["ws"] / "verify.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    audit = run(loop["env"], "audit")
    assert "0 changed, 0 missing, 0 unexpected" in audit.output and "chain intact" in audit.output
