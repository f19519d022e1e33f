"""Motion in view: the strip of pictures around each keyframe that a reviewer sees beside it.

Unit: which pictures a strip shows (at the start and end of a video, on a variable frame rate, at odd
sizes and rotated), that its recorded times and pixel hashes are those of the decoded pictures, the
stage's records, log and audit. Integration: `verify push` puts a `context` URL in each task that the
real Label Studio serves byte for byte (local files and upload), and `--no-context` leaves it empty.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import cv2
import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import cli, cli_env, cli_workspace, drop_projects
from verify.cli import main
from verify.media.context import OFFSETS_MS, ContextParams, columns, select, shown, video_strips


def _decoded(path: Path) -> list[tuple[float, str]]:
    """(time, pixel sha256) of every picture of a video, decoded from the start."""
    from verify.media.decode import Video

    with Video(str(path)) as video:
        return [(p.t_ms, p.pixel_sha256()) for p in video.pictures()]


def _strips(path: Path, out: Path, times: list[float], pixels: dict[float, str] | None = None) -> list[dict]:
    out.mkdir(exist_ok=True)
    keyframes = [{"key": f"{i:032x}", "t_ms": t, "pixel_sha256": (pixels or {}).get(t, "")} for i, t in enumerate(times)]
    return sorted(video_strips(str(path), str(out), keyframes, asdict(ContextParams()))["strips"],
                  key=lambda s: s["pictures"][0]["t_ms"])


# --- choosing the pictures (pure) ---------------------------------------------------------------


def test_the_picture_on_screen_is_the_last_one_presented_at_or_before_the_time():
    times = [0.0, 40.0, 80.0, 200.0]
    assert [shown(times, t) for t in (-500, 0, 39.9, 40, 41, 199.999, 200, 5000)] == [0, 0, 0, 1, 1, 2, 3, 3]


def test_a_strip_at_the_start_or_end_of_a_video_is_clipped_and_shows_each_picture_once():
    times = [i * 40.0 for i in range(76)]  # 25 fps, 0 to 3.0 s
    assert [times[i] for i in select(times, 400.0)] == [0.0, 400.0, 880.0, 1400.0, 2400.0]  # -2, -1, -0.5 → the first picture
    assert [times[i] for i in select(times, 2800.0)] == [800.0, 1800.0, 2280.0, 2800.0, 3000.0]  # +1, +2 → the last
    assert [times[i] for i in select(times, 1600.0)] == [0.0, 600.0, 1080.0, 1600.0, 2080.0, 2600.0, 3000.0]
    assert select([0.0], 0.0) == [0]  # a one-picture video: the strip is that picture
    assert len(OFFSETS_MS) == 7 and 0.0 in OFFSETS_MS


def test_portrait_pictures_go_in_one_row_and_landscape_ones_four_to_a_row():
    assert columns(7, 180, 320) == 7
    assert columns(7, 320, 180) == 4 and columns(3, 320, 180) == 3 and columns(7, 300, 300) == 4


# --- the strips of real decoded video -----------------------------------------------------------


def test_on_a_variable_frame_rate_the_strip_shows_the_pictures_on_screen_with_their_own_times(tmp_path):
    from fixtures.generate import variable_frame_rate

    video = tmp_path / "vfr.mp4"
    variable_frame_rate(video)
    decoded = _decoded(video)
    times = [t for t, _ in decoded]
    pixels = dict(decoded)
    keyframes = [times[0], times[len(times) // 2], times[-1]]
    for strip, t in zip(_strips(video, tmp_path / "out", keyframes, pixels), keyframes):
        expected = [decoded[i] for i in select(times, t)]
        assert [(p["t_ms"], p["pixel_sha256"]) for p in strip["pictures"]] == expected
        assert [p["offset_ms"] for p in strip["pictures"]] == [round(e - t, 3) for e, _ in expected]
        assert strip["keyframe_matches"], "the picture at the keyframe's time is the keyframe"
        data = (tmp_path / "out" / strip["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == strip["sha256"]
        image = cv2.imdecode(__import__("numpy").frombuffer(data, "uint8"), cv2.IMREAD_COLOR)
        assert (strip["width"], strip["height"]) == image.shape[1::-1]
    first, middle, last = _strips(video, tmp_path / "again", keyframes, pixels)
    assert first["pictures"][0]["t_ms"] == times[0] and last["pictures"][-1]["t_ms"] == times[-1]
    assert len(middle["pictures"]) == 7


def test_odd_sizes_and_rotated_video_give_strips_of_upright_pictures(tmp_path):
    from fixtures.generate import phone_rotated
    from tests.test_pixel_formats import _write

    odd = _write(tmp_path / "odd.mkv", "ffv1", "yuv422p")  # 721×405, 4:2:2, six pictures at 10 fps
    [strip] = _strips(odd, tmp_path / "odd", [300.0], dict(_decoded(odd)))
    assert [p["t_ms"] for p in strip["pictures"]] == [0.0, 300.0, 500.0] and strip["keyframe_matches"]
    phone = tmp_path / "phone.mp4"
    phone_rotated(phone)  # stored landscape with a 90° display rotation; upright it is 360×640
    [strip] = _strips(phone, tmp_path / "phone", [1000.0], dict(_decoded(phone)))
    image = cv2.imread(str(tmp_path / "phone" / strip["file"]))
    assert [p["t_ms"] for p in strip["pictures"]] == [0.0, 480.0, 1000.0, 1480.0, 1960.0]  # 25 fps, 2 s: clipped
    assert image.shape[1] > 2 * image.shape[0], "portrait pictures side by side"
    first = image[6:6 + 320 // 8 - 4, 6:6 + 180 // 4 - 4]  # the first picture's top-left corner: the white block
    assert first.mean() > 230, "the pictures are not upright"


def test_the_stage_records_and_logs_its_strips_and_the_audit_stays_clean(ingested):
    from verify import custody, pipeline
    from verify.media.frames import extract
    from verify.media.strips import make_strips

    extract(ingested)
    made = make_strips(ingested)
    frames = [f for f in ingested.frames() if not f.duplicate_of]
    assert (made.made, made.already, made.failed, made.mismatched) == (len(frames), 0, [], 0)
    strips = {c.frame_key: c for c in ingested.contexts()}
    assert set(strips) == {f.key for f in frames}
    for frame in frames:
        strip = strips[frame.key]
        assert strip.file.startswith(f"frames/{frame.video_sha256[:16]}/context/") and strip.key.startswith("context-")
        assert hashlib.sha256(ingested.path(strip.file).read_bytes()).hexdigest() == strip.sha256
        assert frame.t_ms in strip.times_ms and strip.maker["params"]["offsets_ms"] == list(OFFSETS_MS)
    entries = [e for e in custody.read_entries(ingested) if e["action"] == "context"]
    assert len(entries) == len({f.video_sha256 for f in frames})
    logged = {f["path"]: f["sha256"] for e in entries for f in e["outputs"]["files"]}
    assert logged == {c.file: c.sha256 for c in strips.values()}
    audit = custody.audit(ingested)
    assert not (audit.changed or audit.missing or audit.unexpected or audit.rewritten or audit.removed), audit.to_json()
    assert audit.unlogged == ["case.yaml"] and not audit.log.problems  # (the fixture's workspace skips `verify init`)
    assert make_strips(ingested).made == 0  # made once

    # the report cites the strip each frame's task showed (as push records it), in JSON, Markdown and HTML
    cited = frames[0]
    ingested.update_meta(project_id="1")
    ingested.record_context_tasks(1, {cited.key: strips[cited.key].key})
    pipeline.report(ingested, formats=("json", "md", "html"))
    report = json.loads(ingested.path("reports/report.json").read_text())
    by_key = {f["key"]: f for f in report["frames"]}
    strip = strips[cited.key]
    assert by_key[cited.key]["context"]["file"] == strip.file and by_key[cited.key]["context"]["sha256"] == strip.sha256
    assert [p["t_ms"] for p in by_key[cited.key]["context"]["pictures"]] == strip.times_ms
    assert all(by_key[f.key]["context"] is None for f in frames[1:])  # made, but no task showed it
    times = ", ".join(by_key[cited.key]["context"]["times"])
    for name in ("report.md", "report.html"):
        text = ingested.path(f"reports/{name}").read_text()
        assert text.count(strip.sha256) == 1 and strip.file in text and times in text, name


def test_a_task_always_carries_the_context_field_empty_without_a_strip():
    from verify.labelstudio.project import build_task
    from verify.records import Context, Frame, Video

    video = Video("v" * 64, "militants-at-gate", "/x.mp4", "evidence/v.mp4", 1, "t", {}, {"source_id": "militants-at-gate"})
    frame = Frame("k" * 32, video.sha256, 400.0, 10, 0, "frames/v/a.jpg", "s", "p", "ff", 640, 360, 1.0)
    bare = build_task(frame, video, "/img", "ws")["data"]
    assert (bare["context"], bare["context_header"], bare["context_pictures"]) == ("", "", [])  # imports refuse a missing key
    strip = Context(frame.key, "context-abc", "frames/v/context/a.jpg", "c" * 64, 900, 400,
                    [{"t_ms": 0.0, "offset_ms": -400.0, "pixel_sha256": "a"}, {"t_ms": 400.0, "offset_ms": 0.0, "pixel_sha256": "p"}],
                    {}, "t")
    data = build_task(frame, video, "/img", "ws", strip, "/ctx")["data"]
    assert (data["context"], data["context_sha256"]) == ("/ctx", "c" * 64)
    assert data["context_pictures"] == [{"t_ms": 0.0, "pixel_sha256": "a"}, {"t_ms": 400.0, "pixel_sha256": "p"}]
    assert data["context_header"].startswith("Around this frame: 2 pictures from 0:00:00.000 to 0:00:00.400")


# --- against a real Label Studio ----------------------------------------------------------------


def _run(env: dict, *args: str) -> str:
    return cli(env, *args).output


@pytest.fixture(scope="module")
def pushed(label_studio, footage, tmp_path_factory):
    """Two sources ingested and extracted, pushed through the CLI (strips made on the way)."""
    ws = tmp_path_factory.mktemp("context") / "ws"
    env = cli_env(label_studio, ws)
    cli_workspace(env, footage, {"militants_at_gate": "militants-at-gate", "civilians_refused_vertical": "civilians-refused"})
    yield {"env": env, "ws": ws, "url": label_studio["url"], "headers": {"Authorization": f"Token {label_studio['api_key']}"},
            "first": _run(env, "push", "--new-project")}  # its own project: other modules push the same fixtures
    drop_projects(label_studio, ws)


def _tasks(pushed: dict) -> list[dict]:
    from verify.workspace import Workspace

    project = Workspace.open(pushed["ws"]).get_meta("project_id")
    answer = httpx.get(f"{pushed['url']}/api/tasks", params={"project": project, "page_size": 1000, "fields": "task_only"},
                       headers=pushed["headers"], timeout=60).json()
    return answer["tasks"] if isinstance(answer, dict) else answer


def _served_as_recorded(pushed: dict) -> int:
    from verify.workspace import Workspace

    ws = Workspace.open(pushed["ws"])
    strips = {c.frame_key: c for c in ws.contexts()}
    shown = ws.shown_contexts()
    tasks = _tasks(pushed)
    for task in tasks:
        data = task["data"]
        strip = strips[data["frame_key"]]
        assert shown[data["frame_key"]] == strip and data["context_sha256"] == strip.sha256
        assert [p["t_ms"] for p in data["context_pictures"]] == strip.times_ms
        served = httpx.get(pushed["url"] + data["context"], headers=pushed["headers"], timeout=60)
        assert served.status_code == 200 and hashlib.sha256(served.content).hexdigest() == strip.sha256
    return len(tasks)


@pytest.mark.integration
def test_push_serves_each_tasks_strip_from_local_files_as_recorded(pushed):
    assert "context strips: " in pushed["first"] and "local files" in pushed["first"]
    assert _served_as_recorded(pushed) > 0
    log = [json.loads(line) for line in (pushed["ws"] / "custody.log").read_text().splitlines()]
    push = next(e for e in log if e["action"] == "push")
    assert any("/context/" in f["path"] for f in push["inputs"]["files"])  # the push names the strips it showed
    assert CliRunner().invoke(main, ["audit"], env=pushed["env"]).exit_code == 0


@pytest.mark.integration
def test_upload_mode_shows_no_strip_and_no_context_sends_none(pushed):
    """Label Studio's direct upload refuses a config with a second picture, so an upload project has no strip."""
    out = _run(pushed["env"], "push", "--new-project", "--images", "upload")
    assert "uploaded to the server" in out
    tasks = _tasks(pushed)
    assert tasks and all(t["data"]["context"] == "" and t["data"]["context_sha256"] == "" for t in tasks)
    assert all(httpx.get(pushed["url"] + t["data"]["image"], headers=pushed["headers"], timeout=60).status_code == 200
               for t in tasks)
    from verify.workspace import Workspace

    project = Workspace.open(pushed["ws"]).get_meta("project_id")
    config = httpx.get(f"{pushed['url']}/api/projects/{project}", headers=pushed["headers"], timeout=60).json()["label_config"]
    assert 'name="context"' not in config and 'name="frame"' in config
    out = _run(pushed["env"], "push", "--new-project", "--no-context")
    assert "context strips" not in out
    tasks = _tasks(pushed)
    assert tasks and all(t["data"]["context"] == "" and t["data"]["context_sha256"] == "" for t in tasks)


@pytest.mark.integration
def test_the_real_ui_shows_the_strip_and_a_task_without_one_shows_no_error(pushed, label_studio):
    """Headless Chromium, 1440×1000: the strip loads under its header; a task whose "context" is empty shows neither
    an image nor Label Studio's "There was an issue loading URL" message."""
    from playwright.sync_api import sync_playwright

    from verify.labelstudio import server
    from verify.labelstudio.config import build_config
    from verify.labelstudio.project import build_task, frame_urls
    from verify.report.build import CHROMIUM_FLAGS, chromium
    from verify.workspace import Workspace

    ws = Workspace.open(pushed["ws"])
    config = build_config(ws.case)
    assert 'value="$context"' in config and 'value="$context_header"' in config
    url, headers = pushed["url"], pushed["headers"]
    project = httpx.post(f"{url}/api/projects", headers=headers, json={"title": "context ui", "label_config": config},
                         timeout=60).json()["id"]
    folder = Path(label_studio["files_root"]) / "verify" / ws.id
    httpx.post(f"{url}/api/storages/localfiles", headers=headers, timeout=60,
               json={"project": project, "path": str(folder), "use_blob_urls": True}).raise_for_status()
    strip = ws.contexts()[0]
    frame = next(f for f in ws.frames() if f.key == strip.frame_key)
    _, urls = frame_urls(ws, [frame, strip], Path(label_studio["files_root"]))  # served from where `push` linked them
    video = ws.video(frame.video_sha256)
    tasks = [build_task(frame, video, urls[frame.key], ws.id, strip, urls[strip.key]), build_task(frame, video, urls[frame.key], ws.id)]
    answer = httpx.post(f"{url}/api/projects/{project}/import", headers=headers, params={"return_task_ids": True},
                        json=tasks, timeout=60)
    assert answer.status_code == 201, answer.text
    creds = server.credentials(label_studio["base"])
    seen = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=[a for a in CHROMIUM_FLAGS if a != "--headless"])
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(f"{url}/user/login/")
        page.fill("input[name=email]", creds["admin_email"])
        page.fill("input[name=password]", creds["admin_password"])
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        for name, task in zip(("with", "without"), answer.json()["task_ids"]):
            page.goto(f"{url}/projects/{project}/data?task={task}")
            # the picture this task must show loaded (the strip; the frame where there is no strip), and every other
            # picture loaded or failed, so that what is absent is absent because it was never shown
            shown = strip.width if name == "with" else frame.width
            page.wait_for_function("w => [...document.querySelectorAll('img')].some(i => i.src.startsWith('blob:') && i.complete"
                                   " && i.naturalWidth === w) && [...document.querySelectorAll('img')].every(i => i.complete)",
                                   arg=shown, timeout=60_000)
            if name == "with":
                page.get_by_text("Around this frame: ").first.wait_for(timeout=60_000)
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # drawn
            seen[name] = {"widths": page.evaluate("() => [...document.querySelectorAll('img')].filter(i => i.src.startsWith('blob:'))"
                                                  ".map(i => i.naturalWidth)"),
                          "text": page.inner_text("body")}
        browser.close()
    assert strip.width in seen["with"]["widths"] and "Around this frame: " in seen["with"]["text"]
    assert strip.width not in seen["without"]["widths"] and "Around this frame" not in seen["without"]["text"]
    for name in seen:
        assert "issue loading" not in seen[name]["text"].lower(), name
