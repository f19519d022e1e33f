"""Push, pull and adjudicate reconciling with the server, against an in-memory Label Studio.

The cases tests/test_faults.py and tests/test_integration.py cover against a real server
(unclear import outcomes, partial imports, deleted projects, edited configs, a lost workspace,
incremental pulls, adjudication), here in milliseconds each: one real workspace with real
frames is built per module, and each test gets its own copy and its own ``FakeLabelStudio``.

Tests touch the workspace only through the stages, ``Workspace.create/open``, ``ws.tasks()`` and
the number of frames and annotations; frame keys are read from the tasks the server holds.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import DATA, SEED_CASE, SOURCES
from tests.fake_labelstudio import FakeLabelStudio
from verify import pipeline, terminal
from verify.errors import AuthError, ProjectMissing, ServerError, VerifyError
from verify.labelstudio import client as client_module
from verify.labelstudio import pull as pull_module
from verify.labelstudio import push as push_module
from verify.labelstudio.client import LabelStudioClient
from verify.labelstudio.pull import pull
from verify.labelstudio.project import ensure_project, label_stream_url
from verify.labelstudio.push import push
from verify.workspace import Workspace

ANA, BEN, LEAD = "ana@desk.example", "ben@desk.example", "lead@desk.example"
FLAG_CLAIM, MILITANTS_CLAIM = "taliban_flag_raised", "militants_beside_pakistani_guards"


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(footage, tmp_path_factory) -> Path:
    """One real workspace: the four fixture videos ingested, their keyframes extracted (a few seconds)."""
    from verify.media.frames import extract
    from verify.media.ingest import ingest

    ws = Workspace.create(tmp_path_factory.mktemp("reconcile") / "ws", SEED_CASE)
    for name, source in SOURCES.items():
        [result] = ingest(ws, [footage[name]], source_id=source)
        assert result.ok, result.message
    extract(ws)
    assert len(ws.frames()) > 5
    ws.db.close()
    return ws.root


def _copy(base: Path, to: Path) -> Workspace:
    shutil.copytree(base, to, symlinks=True)
    return Workspace.open(to)


@pytest.fixture
def ws(base, tmp_path) -> Workspace:
    """A copy of the base workspace of this test's own (never pushed)."""
    return _copy(base, tmp_path / "ws")


@pytest.fixture
def server() -> FakeLabelStudio:
    fake = FakeLabelStudio()
    fake.whoami()  # as the CLI does before any stage
    fake.calls.clear()
    return fake


def _push(ws: Workspace, server: FakeLabelStudio, **options):
    return push(ws, server, None, images="upload", **options)


def _on_server(server: FakeLabelStudio, project_id: int) -> dict[str, int]:
    """Frame key → task id of the project's tasks, read from the server."""
    return {t["meta"]["verify_key"]: t["id"] for t in server.tasks_of(project_id)}


def _assert_converged(ws: Workspace, server: FakeLabelStudio, project_id: int, frames_wanted: int) -> None:
    """Every frame wanted is exactly one task of the project, and the workspace knows each task."""
    counts = server.keys_of(project_id)
    assert len(counts) == frames_wanted, f"{len(counts)} distinct frames on the server for {frames_wanted}"
    assert max(counts.values()) == 1, f"duplicates: {[k for k, n in counts.items() if n > 1]}"
    assert ws.tasks() == _on_server(server, project_id)


def _choice(claim: str, answer: str) -> dict:
    return {"type": "choices", "from_name": f"claim_{claim}", "to_name": "frame", "value": {"choices": [answer]}}


def _tasks_of_source(server: FakeLabelStudio, project_id: int, source_id: str) -> list[dict]:
    return sorted((t for t in server.tasks_of(project_id) if t["data"]["source_id"] == source_id), key=lambda t: t["data"]["t_ms"])


def adjudicate(ws: Workspace, server: FakeLabelStudio, files_root: Path | None, lead: str | None = None,
               images: str = "auto"):
    """The adjudicate stage: merge, then send the disputed frames to the lead."""
    return pipeline.adjudicate(ws, server, files_root, lead=lead, images=images)


def _frames(ws: Workspace) -> dict[str, dict]:
    """The merged frames by key, as verdicts.json has them: the one place these tests read verdicts."""
    return {f["key"]: f for f in pipeline.current_verdicts(ws).to_json()["frames"]}


# --- the fake stays the real client's double ---------------------------------------------------

def _public_methods(cls) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


def test_the_fake_has_the_clients_public_methods_with_the_same_signatures():
    real, fake = _public_methods(LabelStudioClient), _public_methods(FakeLabelStudio)
    assert set(fake) - set(real) == FakeLabelStudio.TEST_HELPERS, "the fake's extra public methods are its test helpers only"
    missing = set(real) - set(fake)
    assert not missing, f"LabelStudioClient methods the fake lacks: {sorted(missing)}"
    for name, signature in real.items():
        assert fake[name] == signature, f"{name}: client {signature} vs fake {fake[name]}"


def test_the_fake_has_every_client_attribute_verify_uses(server):
    package = Path(push_module.__file__).resolve().parents[1]
    used = set()
    for source in package.rglob("*.py"):
        used |= set(re.findall(r"\bclient\.(\w+)", source.read_text(encoding="utf-8")))
    assert {"url", "user", "task_keys", "import_tasks", "export_json"} <= used  # the scan finds them
    for name in used:
        assert hasattr(server, name), f"the stages use client.{name}; the fake has no {name}"
        if callable(getattr(LabelStudioClient, name, None)):
            assert callable(getattr(server, name))
    assert server.user == {"id": server.user["id"], "email": "admin@desk.example", "username": "admin"}


def test_the_fakes_export_has_the_fields_of_a_real_label_studio_export(ws, server):
    real = json.loads((DATA / "ls-1.23.2-export.json").read_text())
    result = _push(ws, server)
    server.add_reviewer(ANA, "ana-pass-2031x")
    task_id = next(iter(ws.tasks().values()))
    server.annotate(result.project_id, task_id, ANA, [_choice(FLAG_CLAIM, "Supports")])
    exported = json.loads(server.export_json(result.project_id))
    assert len(exported) == result.imported
    real_task = next(t for t in real if t["annotations"])
    fake_task = next(t for t in exported if t["annotations"])
    assert set(fake_task) == set(real_task)
    assert set(fake_task["annotations"][0]) == set(real_task["annotations"][0])
    assert fake_task["annotations"][0]["completed_by"] == next(u["id"] for u in server.users() if u["email"] == ANA)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", fake_task["updated_at"])


# --- push ---------------------------------------------------------------------------------------

def test_a_first_push_imports_each_frame_once_and_a_second_push_imports_nothing(ws, server):
    first = _push(ws, server)
    wanted = first.frames - first.skipped_duplicates
    assert first.created_project and first.imported == wanted > 0 and first.already_there == 0
    assert first.frames == len(ws.frames()) and first.skipped_duplicates > 0  # the re-upload's frames are not sent
    _assert_converged(ws, server, first.project_id, wanted)
    project = server.project(first.project_id)
    assert project["maximum_annotations"] == ws.case.review.reviewers_per_frame
    assert all(t["data"]["image"].startswith(f"/data/upload/{first.project_id}/") for t in server.tasks_of(first.project_id))
    assert (server.calls["import_tasks"], server.calls["task_keys"], server.upload_requests) == (1, 0, 1)  # a project made just now is not listed

    second = _push(ws, server)
    assert (second.project_id, second.created_project, second.imported, second.already_there) == (
        first.project_id, False, 0, wanted)
    assert server.calls["import_tasks"] == 1, "the second push sent an import"
    assert server.calls["task_keys"] == 1 and server.upload_requests == 1  # one listing; no image uploaded twice
    assert server.calls["create_project"] == 1
    _assert_converged(ws, server, first.project_id, wanted)


@pytest.mark.parametrize("fault", ["drop-after", "500-after"])
def test_an_import_stored_but_answered_with_an_error_is_listed_again_not_repeated(ws, server, fault):
    server.fail_import(fault)
    result = _push(ws, server)
    wanted = result.frames - result.skipped_duplicates
    assert result.imported == wanted
    assert server.calls["import_tasks"] == 1, "an import whose outcome was unclear was sent again"
    assert server.calls["task_keys"] == 1  # one listing after the unclear answer (the new project was not listed first)
    _assert_converged(ws, server, result.project_id, wanted)
    again = _push(ws, server)
    assert (again.imported, again.already_there, server.calls["import_tasks"]) == (0, wanted, 1)


def test_an_import_that_failed_before_storing_surfaces_and_a_rerun_imports_everything_once(ws, server):
    server.fail_import("502-before")
    with pytest.raises(ServerError, match=r"Label Studio failed \(502\) while trying to import tasks") as failed:
        _push(ws, server)
    assert type(failed.value) is ServerError  # not a ProjectMissing or AuthError
    [project_id] = server.projects()
    assert server.tasks_of(project_id) == [] and ws.tasks() == {}
    assert server.calls["task_keys"] == 1  # listed to learn the outcome, found nothing stored
    again = _push(ws, server)
    assert again.project_id == project_id and not again.created_project
    assert again.imported == again.frames - again.skipped_duplicates and again.already_there == 0
    _assert_converged(ws, server, project_id, again.imported)
    assert server.calls["import_tasks"] == 2


def test_an_import_stored_without_task_ids_is_listed_again_for_its_keys(ws, server):
    server.fail_import("no-ids")
    result = _push(ws, server)
    wanted = result.frames - result.skipped_duplicates
    assert result.imported == wanted
    assert (server.calls["import_tasks"], server.calls["task_keys"]) == (1, 1)  # listed for the keys only
    _assert_converged(ws, server, result.project_id, wanted)


@pytest.fixture
def small_batches(monkeypatch):
    """Imports in batches of 3 tasks (IMPORT_BATCH is read at call time; the first batch is no bigger)."""
    monkeypatch.setattr(client_module, "IMPORT_BATCH", 3)
    return 3


def test_imports_start_with_a_small_request_then_take_whole_batches(monkeypatch):
    items = list(range(12_000))
    monkeypatch.setattr(client_module, "IMPORT_BATCH", 5000)  # the server starts on 1,000 while 5,000 are built
    assert [len(b) for b in client_module.import_batches(items)] == [1000, 5000, 5000, 1000]
    assert [i for b in client_module.import_batches(items) for i in b] == items  # each once, in order
    monkeypatch.setattr(client_module, "IMPORT_BATCH", 3)  # never a first request bigger than a batch
    assert [len(b) for b in client_module.import_batches(items[:7])] == [3, 3, 1]
    assert client_module.import_batches([]) == []


def test_ten_thousand_frames_go_in_two_imports_and_a_hundred_thousand_in_eleven():
    """Each import request costs the server about 0.15 s beyond its tasks (measured: 1,000 + 9,000 took 0.3-0.4 s
    less than 1,000 + 5,000 + 4,000), so batches are as big as the benchmark's raw reference's, 10,000."""
    assert [len(b) for b in client_module.import_batches(list(range(10_000)))] == [1000, 9000]
    assert [len(b) for b in client_module.import_batches(list(range(100_000)))] == [1000] + [10_000] * 9 + [9000]


def test_a_partial_import_stopped_by_an_error_before_storing_is_completed_by_a_rerun(ws, server, small_batches):
    server.fail_import("502-before", after=1)  # the second batch
    with pytest.raises(ServerError, match=r"\(502\)"):
        _push(ws, server)
    [project_id] = server.projects()
    first_batch = len(server.tasks_of(project_id))
    assert first_batch == small_batches and server.import_sizes == [small_batches, small_batches]
    again = _push(ws, server)
    wanted = again.frames - again.skipped_duplicates
    assert wanted > 2 * small_batches  # three batches at least
    assert (again.already_there, again.imported) == (first_batch, wanted - first_batch)
    assert sum(server.import_sizes[2:]) == wanted - first_batch  # nothing of the first batch sent again
    assert all(size <= small_batches for size in server.import_sizes)
    _assert_converged(ws, server, project_id, wanted)


def test_a_batch_stored_but_answered_with_an_error_does_not_stop_the_next_batches(ws, server, small_batches):
    server.fail_import("500-after", after=1)
    result = _push(ws, server)
    wanted = result.frames - result.skipped_duplicates
    batches = -(-wanted // small_batches)
    assert result.imported == wanted and len(server.import_sizes) == batches == server.calls["import_tasks"]
    assert server.calls["task_keys"] == 1  # after the unclear answer only
    _assert_converged(ws, server, result.project_id, wanted)


def test_a_project_deleted_on_the_server_is_project_missing_until_push_new_project(ws, server):
    first = _push(ws, server)
    server.add_reviewer(ANA, "ana-pass-2031x")
    server.annotate(first.project_id, next(iter(ws.tasks().values())), ANA, [_choice(FLAG_CLAIM, "Supports")])
    assert pull(ws, server).annotations == 1
    server.delete_project(first.project_id)
    creates = server.calls["create_project"]
    with pytest.raises(ProjectMissing, match=rf"project {first.project_id} is gone from the server; run `verify push --new-project`"):
        _push(ws, server)
    with pytest.raises(ProjectMissing):
        pull(ws, server)
    assert server.calls["create_project"] == creates and server.projects() == []  # nothing made behind the user's back
    assert len(ws.annotations()) == 1  # annotations already pulled stay

    fresh = _push(ws, server, new_project=True)
    assert fresh.created_project and fresh.project_id != first.project_id
    assert fresh.imported == first.imported and fresh.already_there == 0
    _assert_converged(ws, server, fresh.project_id, fresh.imported)
    pulled = pull(ws, server)
    assert pulled.full and pulled.tasks == fresh.imported and pulled.annotations == 0
    assert len(ws.annotations()) == 0  # the new project has none yet; the old one's are not counted


def test_a_labeling_config_edited_on_the_server_is_refused_unless_reset_config(ws, server):
    first = _push(ws, server)
    ours = server.project(first.project_id)["label_config"]
    edited = ours.replace("</View>", '<Header value="added in the settings page"/></View>', 1)
    assert edited != ours
    server.edit_config_on_server(first.project_id, edited)
    imports = server.calls["import_tasks"]
    with pytest.raises(ServerError, match="was changed on the server since verify pushed it.*--reset-config"):
        _push(ws, server)
    assert server.project(first.project_id)["label_config"] == edited  # left as the admin made it
    assert server.calls["update_project"] == 1 and server.calls["import_tasks"] == imports  # 1: the link, at creation

    reset = _push(ws, server, reset_config=True)
    assert reset.project_id == first.project_id and reset.imported == 0
    assert server.project(first.project_id)["label_config"] == ours
    assert _push(ws, server).imported == 0  # and a plain push works again
    assert server.calls["update_project"] == 2


def test_a_new_projects_instructions_link_its_label_stream_and_a_push_stopped_before_the_link_is_mended(ws, server):
    first = _push(ws, server)
    link = label_stream_url(server.url, first.project_id)
    assert link in server.project(first.project_id)["expert_instruction"]
    assert server.calls["update_project"] == 1

    ws.update_meta(project_id=None)  # a project made by a push that stopped before it set the link (see push)
    made, created, _ = ensure_project(ws, server, new_project=True, link=False)
    assert created and "labeling=1" not in server.project(made)["expert_instruction"]
    assert _push(ws, server).project_id == made
    assert label_stream_url(server.url, made) in server.project(made)["expert_instruction"]
    assert _push(ws, server).imported == 0 and server.calls["update_project"] == 2  # linked once, then left alone


def test_a_copy_of_the_workspace_without_its_project_id_finds_the_project_by_its_marker(base, tmp_path, server):
    first = _push(_copy(base, tmp_path / "a"), server)
    copy = _copy(base, tmp_path / "b")  # same workspace id, but no project id recorded
    assert copy.tasks() == {}
    found = _push(copy, server)
    assert (found.project_id, found.created_project, found.recovered, found.imported) == (first.project_id, False, 0, 0)
    assert found.already_there == first.imported
    assert server.projects() == [first.project_id]
    _assert_converged(copy, server, first.project_id, first.imported)


def _forget_marker(server: FakeLabelStudio, project_id: int) -> None:
    """Make the project look made by another workspace (one since lost): same case, another workspace id."""
    description = server.project(project_id)["description"]
    lost = re.sub(r"verify-workspace:\S+", "verify-workspace:lost00000000", description)
    assert lost != description and "case:" in lost
    server.update_project(project_id, description=lost)


def test_a_lost_workspace_rebuilt_from_the_same_evidence_finds_its_project_by_frame_keys(base, tmp_path, server):
    first = _push(_copy(base, tmp_path / "lost"), server)
    _forget_marker(server, first.project_id)
    rebuilt = _copy(base, tmp_path / "rebuilt")
    found = _push(rebuilt, server)
    assert (found.project_id, found.created_project, found.imported) == (first.project_id, False, 0)
    assert found.recovered == first.imported  # every frame it pushed was found by its key
    _assert_converged(rebuilt, server, first.project_id, first.imported)
    assert server.projects() == [first.project_id] and server.calls["create_project"] == 1
    listings = server.calls["task_keys"]
    again = _push(rebuilt, server)  # marked as this workspace's now: found without looking at frame keys
    assert (again.project_id, again.recovered, again.imported) == (first.project_id, 0, 0)
    assert server.calls["task_keys"] == listings + 1


def test_a_lost_workspace_whose_frames_are_in_two_projects_equally_is_refused(base, tmp_path, server):
    lost = _copy(base, tmp_path / "lost")
    one = _push(lost, server)
    two = _push(lost, server, new_project=True)
    for project_id in (one.project_id, two.project_id):
        _forget_marker(server, project_id)
    with pytest.raises(ServerError, match=rf"projects {one.project_id}, {two.project_id} all hold this workspace's frames"):
        _push(_copy(base, tmp_path / "rebuilt"), server)
    assert server.projects() == [one.project_id, two.project_id]


def test_new_project_makes_another_project_with_every_frame_and_the_workspace_follows_it(ws, server):
    first = _push(ws, server)
    fresh = _push(ws, server, new_project=True)
    assert fresh.created_project and fresh.project_id > first.project_id
    assert fresh.imported == first.imported and fresh.already_there == 0
    _assert_converged(ws, server, fresh.project_id, fresh.imported)
    assert set(ws.tasks().values()).isdisjoint(_on_server(server, first.project_id).values())
    assert server.keys_of(first.project_id) == server.keys_of(fresh.project_id)  # the old project is left alone
    again = _push(ws, server)
    assert (again.project_id, again.created_project, again.imported) == (fresh.project_id, False, 0)


# --- pull ---------------------------------------------------------------------------------------

@pytest.fixture
def reviewed(ws, server):
    """Pushed, then ana and ben review: they agree on the Taliban flag's frames, split on a militants
    frame, and ben skips a civilians frame that ana answered."""
    pushed = _push(ws, server)
    project = pushed.project_id
    for email in (ANA, BEN):
        server.add_reviewer(email, f"{email.split('@')[0]}-pass-1234")
    flags = _tasks_of_source(server, project, "flag-hoisting-afghan-side")
    for task in flags:
        for who in (ANA, BEN):
            server.annotate(project, task["id"], who, [_choice(FLAG_CLAIM, "Supports")])
    [militants, *_] = _tasks_of_source(server, project, "militants-at-gate")
    server.annotate(project, militants["id"], ANA, [_choice(MILITANTS_CLAIM, "Supports")])
    server.annotate(project, militants["id"], BEN, [_choice(MILITANTS_CLAIM, "Contradicts")])
    [civilians, *_] = _tasks_of_source(server, project, "civilians-refused")
    server.annotate(project, civilians["id"], ANA, [_choice("civilians_refused_passage", "Supports")])
    server.annotate(project, civilians["id"], BEN, [], was_cancelled=True)
    return {"project": project, "tasks": pushed.imported, "flags": flags, "militants": militants, "civilians": civilians}


def test_a_first_pull_exports_every_task_and_records_every_annotation(ws, server, reviewed):
    result = pull(ws, server)
    on_server = server.annotations_of(reviewed["project"])
    assert result.full and result.tasks == reviewed["tasks"]
    assert result.annotations == len(on_server) == 2 * len(reviewed["flags"]) + 4
    assert (result.skipped, result.reviewers) == (1, 2)
    assert len(ws.annotations()) == len(on_server)
    assert server.export_requests == [sorted(ws.tasks().values())]  # verify's tasks, in one page
    assert len(result.export_files) == 1 and (ws.root / result.export_files[0]).is_file()
    militants = _frames(ws)[reviewed["militants"]["meta"]["verify_key"]]
    assert militants["verdicts"][MILITANTS_CLAIM]["verdict"] == "disputed"


def test_an_incremental_pull_replaces_only_the_changed_tasks_annotations(ws, server, reviewed):
    pull(ws, server)
    project = reviewed["project"]
    edited_task, deleted_task, new_task = reviewed["flags"][0], reviewed["civilians"], reviewed["militants"]
    by_task = {}
    for a in server.annotations_of(project):
        by_task.setdefault(a["task"], {})[a["completed_by"]] = a["id"]
    ana, ben = (next(u["id"] for u in server.users() if u["email"] == e) for e in (ANA, BEN))
    server.edit_annotation(by_task[edited_task["id"]][ana], result=[_choice(FLAG_CLAIM, "Can't tell")])
    server.delete_annotation(by_task[deleted_task["id"]][ana])
    server.add_reviewer(LEAD, "lead-pass-5521z")
    server.annotate(project, new_task["id"], LEAD, [_choice(MILITANTS_CLAIM, "Supports")])
    exports = len(server.export_requests)

    result = pull(ws, server)
    changed = sorted(t["id"] for t in (edited_task, deleted_task, new_task))
    assert not result.full and result.tasks == 3
    assert server.export_requests[exports:] == [changed]  # only the changed tasks were exported
    assert result.annotations == sum(len(by_task[t]) for t in changed) - 1 + 1  # one deleted, one added
    assert len(ws.annotations()) == len(server.annotations_of(project))  # the unchanged tasks' annotations kept
    frames = _frames(ws)
    assert frames[edited_task["meta"]["verify_key"]]["verdicts"][FLAG_CLAIM]["by_reviewer"] == {ANA: "cant_tell", BEN: "supports"}
    civilians = frames[deleted_task["meta"]["verify_key"]]
    assert civilians["verdicts"]["civilians_refused_passage"]["answers"] == 0 and civilians["skipped_by"] == [BEN]
    assert frames[new_task["meta"]["verify_key"]]["verdicts"][MILITANTS_CLAIM]["counts"]["supports"] == 2
    untouched = reviewed["flags"][1]["meta"]["verify_key"]
    assert frames[untouched]["verdicts"][FLAG_CLAIM]["by_reviewer"] == {ANA: "supports", BEN: "supports"}

    quiet = pull(ws, server)  # nothing changed since: nothing exported
    assert (quiet.full, quiet.tasks, quiet.annotations, quiet.export_files) == (False, 0, 0, [])
    assert len(server.export_requests) == exports + 1
    assert len(ws.annotations()) == len(server.annotations_of(project))


def test_a_full_pull_exports_every_task_in_pages_and_gives_the_same_annotations(ws, server, reviewed, monkeypatch):
    pull(ws, server)
    server.edit_annotation(server.annotations_of(reviewed["project"])[0]["id"], result=[_choice(FLAG_CLAIM, "Contradicts")])
    pull(ws, server)
    incremental = _frames(ws)
    monkeypatch.setattr(pull_module, "EXPORT_PAGE", 5)
    exports = len(server.export_requests)
    full = pull(ws, server, full=True)
    pages = server.export_requests[exports:]
    assert full.full and full.tasks == reviewed["tasks"] and len(full.export_files) == len(pages)
    assert len(pages) == -(-reviewed["tasks"] // 5) and all(0 < len(p) <= 5 for p in pages)
    assert sorted(i for p in pages for i in p) == sorted(ws.tasks().values())
    assert full.annotations == len(ws.annotations()) == len(server.annotations_of(reviewed["project"]))
    assert _frames(ws) == incremental


def test_a_pull_that_fails_part_way_keeps_the_old_annotations_and_records_the_pages_it_archived(
        ws, server, reviewed, monkeypatch):
    from verify import custody

    pull(ws, server)
    before = ws.annotations()
    server.edit_annotation(server.annotations_of(reviewed["project"])[0]["id"], result=[_choice(FLAG_CLAIM, "Contradicts")])
    monkeypatch.setattr(pull_module, "EXPORT_PAGE", 2)
    assert reviewed["tasks"] > 4  # more than two pages
    exports, real_export = len(ws.exports()), server.export_json
    answered = []

    def dies_on_the_third_page(project_id, ids=None):
        if len(answered) == 2:
            raise ServerError(f"{server.url}: export annotations failed (project {project_id}): 502 Bad Gateway")
        answered.append(ids)
        return real_export(project_id, ids)

    monkeypatch.setattr(server, "export_json", dies_on_the_third_page)
    with pytest.raises(ServerError), ws.lock(command="pull"):  # as `verify pull` runs it: its intent stays open
        pull(ws, server, full=True)
    assert ws.annotations() == before  # the new annotations were staged, page by page, and never swapped in
    assert len(ws.exports()) == exports + 2  # the two pages it archived are recorded, as the files on disk are
    assert all((ws.root / e.file).is_file() for e in ws.exports())
    with ws.lock():  # the next verify logs what the failed pull archived but did not log; audit then finds nothing amiss
        pass
    audit = custody.audit(ws)
    # case.yaml: Workspace.create logs no "init" (`verify init` does), and no run's intent explains it: never logged by hand
    assert audit.unlogged == ["case.yaml"] and not audit.log.problems, audit.to_json()
    assert not (audit.changed or audit.missing or audit.unexpected or audit.rewritten or audit.removed), audit.to_json()

    monkeypatch.setattr(server, "export_json", real_export)
    again = pull(ws, server, full=True)
    assert again.annotations == len(ws.annotations()) == len(server.annotations_of(reviewed["project"]))
    assert ws.annotations() != before  # the edit arrived


# --- adjudication ---------------------------------------------------------------------------------

def test_disputed_frames_go_to_the_lead_once_and_only_the_leads_decisions_come_back(ws, server, reviewed):
    pull(ws, server)
    server.add_reviewer(LEAD, "lead-pass-5521z")
    disputed_key = reviewed["militants"]["meta"]["verify_key"]
    sent = adjudicate(ws, server, None, lead=LEAD, images="upload")
    assert (sent.disputed, sent.imported, sent.lead) == (1, 1, LEAD)
    assert sent.project_id != reviewed["project"]
    [task] = server.tasks_of(sent.project_id)
    assert task["meta"]["verify_key"] == disputed_key
    assert f"“{ws.case.claim(MILITANTS_CLAIM).text}” ({ANA}: Supports, {BEN}: Contradicts)" in task["data"]["dispute"]
    assert server.project(sent.project_id)["maximum_annotations"] == 1

    imports = server.calls["import_tasks"]
    again = adjudicate(ws, server, None, lead=LEAD, images="upload")
    assert (again.project_id, again.disputed, again.imported) == (sent.project_id, 1, 0)
    assert server.calls["import_tasks"] == imports and len(server.tasks_of(sent.project_id)) == 1

    server.annotate(sent.project_id, task["id"], LEAD, [_choice(MILITANTS_CLAIM, "Supports")])
    server.annotate(sent.project_id, task["id"], ANA, [_choice(MILITANTS_CLAIM, "Contradicts")])  # not the lead: ignored
    pulled = pull(ws, server)
    assert (pulled.lead_decisions, pulled.ignored) == (1, 1)
    verdict = _frames(ws)[disputed_key]["verdicts"][MILITANTS_CLAIM]
    assert (verdict["verdict"], verdict["vote"], verdict["adjudicated_by"]) == ("supports", "disputed", LEAD)
    assert adjudicate(ws, server, None, lead=LEAD, images="upload").disputed == 0  # decided: no longer disputed


def test_adjudication_without_a_lead_takes_anyone_in_the_adjudication_project(ws, server, reviewed):
    pull(ws, server)
    sent = adjudicate(ws, server, None, images="upload")
    [task] = server.tasks_of(sent.project_id)
    server.annotate(sent.project_id, task["id"], BEN, [_choice(MILITANTS_CLAIM, "Contradicts")])
    pulled = pull(ws, server)
    assert (pulled.lead_decisions, pulled.ignored) == (1, 0)
    verdict = _frames(ws)[task["meta"]["verify_key"]]["verdicts"][MILITANTS_CLAIM]
    assert verdict["verdict"] == "contradicts" and verdict["adjudicated_by"] == BEN


def test_an_adjudication_project_deleted_on_the_server_is_made_again_by_the_next_adjudicate(ws, server, reviewed):
    pull(ws, server)
    first = adjudicate(ws, server, None, images="upload")
    server.delete_project(first.project_id)
    with pytest.raises(ProjectMissing, match="run `verify adjudicate`"):
        pull(ws, server)  # the reviewers' annotations are pulled; the lost queue is named
    again = adjudicate(ws, server, None, images="upload")
    assert again.project_id != first.project_id and (again.disputed, again.imported) == (1, 1)
    assert pull(ws, server).lead_decisions == 0  # pulls work again


def test_adjudication_refuses_a_lead_who_is_not_a_user_and_needs_a_pull_first(ws, server, reviewed):
    with pytest.raises(VerifyError, match="nothing is disputed; run `verify pull` first"):
        adjudicate(ws, server, None, lead=LEAD, images="upload")
    pull(ws, server)
    with pytest.raises(VerifyError, match=f"'{LEAD}' is not a user of {re.escape(server.url)}"):
        adjudicate(ws, server, None, lead=LEAD, images="upload")
    assert server.calls["create_project"] == 1  # no adjudication project made


def test_local_images_are_linked_under_the_files_root_and_served_by_one_storage(ws, tmp_path):
    root = tmp_path / "files-root"
    root.mkdir()
    server = FakeLabelStudio(document_root=root)
    result = push(ws, server, root, images="local")
    assert result.images.startswith("local files under ")
    tasks = server.tasks_of(result.project_id)
    assert len(tasks) == result.imported and all(t["data"]["image"].startswith("/data/local-files/?d=verify/") for t in tasks)
    for task in tasks:
        relative = task["data"]["image"].split("?d=", 1)[1]
        assert (root / relative).is_file()
    assert push(ws, server, root, images="local").imported == 0
    assert server.calls["ensure_local_storage"] == 2 and server.upload_requests == 0
    again = push(ws, server, root, images="local", new_project=True).project_id  # a new project: its storage is not looked for
    assert [s["project"] for s in server._storages.values()] == [result.project_id, again]


def test_push_reads_the_frames_of_a_workspace_whose_folder_name_means_something_in_a_uri(base, tmp_path, server):
    ws = _copy(base, tmp_path / "case #1? 100%")  # push reads the frames on a connection of their own, opened by URI
    result = push(ws, server, None, images="upload")
    assert result.frames == len(ws.frames()) > 0 and result.imported + result.skipped_duplicates == result.frames


def test_an_error_raised_by_the_fake_is_worded_as_the_real_client_words_it(server):
    """The fake raises through LabelStudioClient's own translation: same classes, same messages."""
    with pytest.raises(ProjectMissing, match=rf"^{re.escape(server.url)}: project 99 is gone from the server"):
        server.task_keys(99)
    server.fail_import("drop-after")
    project = server.create_project("A case", "", '<View><Image name="frame" value="$image"/></View>', "", 1)
    with pytest.raises(ServerError, match="cannot reach Label Studio to import tasks") as dropped:
        server.import_tasks(project, [{"data": {"image": "/x.jpg"}, "meta": {"verify_key": "k"}}])
    assert not isinstance(dropped.value, (AuthError, ProjectMissing))
    assert server.task_keys(project) == {"k": 1}  # stored nonetheless
    with pytest.raises(ServerError, match=r"refused to import tasks \(400\)"):
        server.import_tasks(project, [{"data": {"no_image": 1}}])
    assert server.task_keys(project) == {"k": 1}


# --- "cannot review" and the dispute the lead sees ------------------------------------------------

def _cannot(value: str, note: str | None = None) -> list[dict]:
    result = [{"type": "choices", "from_name": "cannot_review", "to_name": "frame", "value": {"choices": [value]}}]
    return result + ([{"type": "textarea", "from_name": "notes", "to_name": "frame", "value": {"text": [note]}}] if note else [])


def _rect(group: str, label: str, x: float, region_id: str) -> dict:
    return {"id": region_id, "type": "rectanglelabels", "from_name": group, "to_name": "frame", "original_width": 640,
            "original_height": 360, "image_rotation": 0,
            "value": {"x": x, "y": 20, "width": 15, "height": 30, "rotation": 0, "rectanglelabels": [label]}}


def test_a_pull_counts_cannot_review_apart_from_skips_whether_the_reason_is_stored_as_key_or_label(ws, server, reviewed):
    project = reviewed["project"]
    [_, second, third, *_] = reviewed["flags"]
    server.add_reviewer(LEAD, "lead-pass-5521z")
    server.annotate(project, third["id"], LEAD, _cannot("Unreadable (black, blurred, corrupted)", "all black"))
    server.annotate(project, second["id"], LEAD, _cannot("graphic"))  # the reason's key, as a config with aliases stores it
    result = pull(ws, server)
    assert (result.skipped, result.cannot_review) == (1, 2)  # ben's bare skip; the two reasons
    assert "reviews, 1 skip, 2 cannot review, by 3 reviewers" in terminal.pulled(result, False)[0]
    frames = _frames(ws)
    third_frame = frames[third["meta"]["verify_key"]]
    assert third_frame["cannot_review"][0] | {"at": None} == {
        "reviewer": LEAD, "reason": "unreadable", "reason_text": "Unreadable (black, blurred, corrupted)",
        "notes": ["all black"], "lead": False, "at": None}
    assert LEAD not in third_frame["verdicts"][FLAG_CLAIM]["by_reviewer"]
    assert frames[second["meta"]["verify_key"]]["skipped_by"] == []


def test_the_leads_task_shows_each_reviewers_boxes_as_predictions_their_notes_and_the_disputed_claims(ws, server):
    pushed = _push(ws, server)
    project = pushed.project_id
    for email in (ANA, BEN, LEAD):
        server.add_reviewer(email, f"{email.split('@')[0]}-pass-1234")
    [militants, *_] = _tasks_of_source(server, project, "militants-at-gate")
    ana_boxes = [_rect("actors", "Armed militants", 30, "ana-1"), _rect("actors", "Pakistani border guards", 55, "ana-2")]
    server.annotate(project, militants["id"], ANA, [_choice(MILITANTS_CLAIM, "Supports"), *ana_boxes,
                                                    ana_boxes[0],  # one drag stored twice: sent once
                                                    _rect("actors", "Tanks", 5, "ana-3")])  # not a label of the case
    server.annotate(project, militants["id"], BEN, [
        _choice(MILITANTS_CLAIM, "Contradicts"), _rect("actors", "Civilians", 31, "ben-1"),
        {"type": "textarea", "from_name": "notes", "to_name": "frame", "value": {"text": ["they wear police patches"]}}])
    pull(ws, server)
    sent = adjudicate(ws, server, None, lead=LEAD, images="upload")
    assert (sent.imported, sent.predictions, sent.boxes_left_out) == (1, 2, 1)
    [task] = server.tasks_of(sent.project_id)
    assert {p["model_version"]: [r["id"] for r in p["result"]] for p in task["predictions"]} == {
        ANA: ["ana-1", "ana-2"], BEN: ["ben-1"]}
    # the reviewer's region, as stored, under the one box control (drawn under its group's control before there was one)
    assert task["predictions"][0]["result"][0] == {**ana_boxes[0], "from_name": "box-labels"}
    assert all(r["type"] == "rectanglelabels" for p in task["predictions"] for r in p["result"])  # no answers pre-filled
    data = task["data"]
    assert f"“{ws.case.claim(MILITANTS_CLAIM).text}” ({ANA}: Supports, {BEN}: Contradicts)" in data["dispute"]
    assert f"Reviewers' notes: {BEN}: they wear police patches" in data["dispute"]
    claim = next(c for c in ws.case.claims if c.id == MILITANTS_CLAIM)
    assert data["disputed_claims"] == f"Disputed: {claim.text}" and task["meta"]["disputed_claims"] == [MILITANTS_CLAIM]
    entry = [json.loads(line) for line in (ws.root / "custody.log").read_text().splitlines()][-1]
    assert (entry["action"], entry["details"]["reviewer_predictions"], entry["details"]["boxes_left_out"]) == ("adjudicate", 2, 1)
    bears = {c.id: data[f"bears_{c.id}"] for c in ws.case.claims}  # the disputed claim asked first, the others folded
    assert bears.pop(MILITANTS_CLAIM) == f"Disputed: {ANA}: Supports, {BEN}: Contradicts"
    assert set(bears.values()) == {""}
