"""Frames through S3-compatible object storage (`--images s3`), against a real SeaweedFS S3 gateway and
the real Label Studio of the session: objects named by content, a re-push that sends nothing, no secret
anywhere, and a reviewer's browser that really receives the frame's bytes through Label Studio.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import _free_port, cli, cli_env, cli_workspace, drop_projects
from verify.cli import main
from verify.workspace import Workspace

pytestmark = pytest.mark.integration

REVIEWER = ("sam@desk.example", "sam-pass-5521q")
PREFIX = "desk/spin-boldak"


run = cli  # `verify ARGS` in-process, exit code checked (tests/conftest.py)


def s3_env(s3: dict, **changes: str) -> dict:
    env = {"AWS_ACCESS_KEY_ID": s3["access_key"], "AWS_SECRET_ACCESS_KEY": s3["secret_key"],
           "AWS_ENDPOINT_URL": s3["endpoint"], "AWS_DEFAULT_REGION": s3["region"],
           "VERIFY_S3_BUCKET": s3["bucket"], "VERIFY_S3_PREFIX": PREFIX, "AWS_SESSION_TOKEN": None,
           "AWS_REGION": None, "AWS_ENDPOINT_URL_S3": None, "AWS_PROFILE": None}
    env.update(changes)
    return env


def stored(value: str) -> str:
    """The URI a task was imported with: the task API shows an s3:// URI as Label Studio's resolver link."""
    if value.startswith("/tasks/") and "fileuri=" in value:
        return base64.b64decode(parse_qs(urlsplit(value).query)["fileuri"][0]).decode()
    return value


def bucket(s3: dict):
    import boto3

    return boto3.client("s3", endpoint_url=s3["endpoint"], aws_access_key_id=s3["access_key"],
                        aws_secret_access_key=s3["secret_key"], region_name=s3["region"])


@pytest.fixture(scope="module")
def pushed(label_studio, s3_server, footage, tmp_path_factory):
    """One video's frames pushed twice with --images s3 through the CLI (bucket and prefix given as options, then
    by the environment)."""
    ws_dir = tmp_path_factory.mktemp("s3push") / "ws"
    env = cli_env(label_studio, ws_dir, **s3_env(s3_server))
    cli_workspace(env, footage, {"militants_at_gate": "militants-at-gate"})
    listed_before = bucket(s3_server).list_objects_v2(Bucket=s3_server["bucket"], Prefix=PREFIX + "/").get("Contents", [])
    # the first push names the bucket and prefix with options (none in its environment), the second by the environment;
    # its own project: other modules push the same fixtures
    first = run({**env, "VERIFY_S3_BUCKET": None, "VERIFY_S3_PREFIX": None}, "push", "--images", "s3", "--s3-bucket",
                s3_server["bucket"], "--s3-prefix", PREFIX, "--new-project")
    objects_after_first = {o["Key"]: o for o in bucket(s3_server).list_objects_v2(
        Bucket=s3_server["bucket"], Prefix=PREFIX + "/")["Contents"]}
    second = run(env, "push")  # auto: s3, since VERIFY_S3_BUCKET is set
    ws = Workspace.open(ws_dir)
    frames = ws.frames()
    project = int(ws.get_meta("project_id"))
    admin = {"Authorization": f"Token {label_studio['api_key']}"}
    tasks = httpx.get(f"{label_studio['url']}/api/tasks", params={"project": project, "page_size": 1000,
                                                                   "fields": "task_only"}, headers=admin, timeout=60).json()
    yield {"env": env, "ws": ws, "ws_dir": ws_dir, "frames": frames, "project": project, "first": first.output,
            "second": second.output, "before": listed_before, "after_first": objects_after_first,
            "tasks": tasks["tasks"] if isinstance(tasks, dict) else tasks, "admin": admin}
    drop_projects(label_studio, ws_dir)


def test_push_puts_each_frame_in_the_bucket_under_its_content_name(pushed, s3_server):
    assert pushed["before"] == []
    frames = pushed["frames"]
    strips = pushed["ws"].contexts()  # the context strips beside each frame are served the same way
    assert frames, "the video gave frames"
    names = {f"{PREFIX}/{f.sha256}.jpg": f for f in [*frames, *strips]}
    assert set(pushed["after_first"]) == set(names)
    s3 = bucket(s3_server)
    for key, frame in list(names.items())[:3]:
        body = s3.get_object(Bucket=s3_server["bucket"], Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == frame.sha256 == hashlib.sha256(pushed["ws"].path(frame.file).read_bytes()).hexdigest()
    assert f"({len(names)} new)" in pushed["first"] and f"s3://{s3_server['bucket']}/{PREFIX}/" in pushed["first"]
    uris = sorted(stored(t["data"]["image"]) for t in pushed["tasks"]) + sorted(stored(t["data"].get("context") or "") for t in pushed["tasks"])
    assert uris == sorted(f"s3://{s3_server['bucket']}/{PREFIX}/{f.sha256}.jpg" for f in frames) + \
                   sorted(f"s3://{s3_server['bucket']}/{PREFIX}/{c.sha256}.jpg" if c else "" for c in
                          [next((c for c in strips if c.frame_key == f.key), None) for f in frames])


def test_a_second_push_uploads_nothing_and_imports_nothing(pushed, s3_server):
    assert "(0 new)" in pushed["second"] and ": 0 tasks imported" in pushed["second"], pushed["second"]
    now = {o["Key"]: o for o in bucket(s3_server).list_objects_v2(Bucket=s3_server["bucket"], Prefix=PREFIX + "/")["Contents"]}
    assert {k: (o["ETag"], o["LastModified"]) for k, o in now.items()} == \
           {k: (o["ETag"], o["LastModified"]) for k, o in pushed["after_first"].items()}
    assert len(pushed["tasks"]) == len(pushed["frames"])
    recorded = pushed["ws"].stored_objects(s3_server["endpoint"], s3_server["bucket"])
    assert recorded == set(pushed["after_first"])
    storages = httpx.get(f"{pushed['env']['LABEL_STUDIO_URL']}/api/storages/s3", params={"project": pushed["project"]},
                         headers=pushed["admin"], timeout=60).json()
    assert [(s["bucket"], s["prefix"], s["presign"]) for s in storages] == [(s3_server["bucket"], PREFIX, True)]


def test_no_secret_reaches_the_workspace_or_the_custody_log(pushed, s3_server):
    secrets_ = [s3_server["secret_key"].encode(), s3_server["access_key"].encode()]
    files = [p for p in Path(pushed["ws_dir"]).rglob("*") if p.is_file()]
    assert any(p.name == "custody.log" for p in files)
    for path in files:
        data = path.read_bytes()
        assert not any(s in data for s in secrets_), f"a credential is in {path}"
    assert not any(s.decode() in pushed["first"] + pushed["second"] for s in secrets_)
    log = (Path(pushed["ws_dir"]) / "custody.log").read_text()
    assert f"s3://{s3_server['bucket']}/{PREFIX}/" in log


def test_a_reviewer_browser_receives_the_frames_bytes_through_label_studio(pushed, label_studio, s3_server):
    from playwright.sync_api import sync_playwright

    from tests.ui import launch, log_in, wait_for_frame
    from verify.labelstudio.connect import add_reviewer, connect

    client, _ = connect(label_studio["url"], label_studio["api_key"])
    add_reviewer(client, *REVIEWER)
    task = pushed["tasks"][0]
    assert task["data"]["image"].startswith(f"/tasks/{task['id']}/resolve/?fileuri=")  # resolved by Label Studio
    frame = next(f for f in pushed["frames"] if stored(task["data"]["image"]).endswith(f"/{f.sha256}.jpg"))
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = log_in(browser, label_studio["url"], *REVIEWER)
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            violations: list[str] = []
            page.expose_function("reportViolation", lambda v: violations.append(v))
            page.add_init_script("document.addEventListener('securitypolicyviolation', "
                                 "e => window.reportViolation(e.violatedDirective + ' ' + e.blockedURI))")
            images: list = []
            page.on("response", lambda r: images.append(r))
            page.goto(f"{label_studio['url']}/projects/{pushed['project']}/data?task={task['id']}")
            wait_for_frame(page)
            shown = page.evaluate("() => [...document.querySelectorAll('.lsf-image img')].map("
                                  "i => [i.currentSrc, i.complete, i.naturalWidth, i.naturalHeight])")
            assert any(done and width == frame.width and height == frame.height for _, done, width, height in shown), shown
            # the page loaded the frame's bytes through Label Studio's resolver for this task, which redirects to a
            # presigned URL of the bucket (seen here as the bucket's answer after the 303, or, in some runs, as the
            # resolver URL's answer with the same bytes)
            resolver = f"{label_studio['url']}/tasks/{task['id']}/resolve/"
            loaded = [r.url for r in images if r.status == 200 and (r.url.startswith(resolver) or r.url.startswith(
                s3_server["endpoint"] + "/")) and _sha256(r) == frame.sha256]
            assert loaded, [(r.status, r.url[:100]) for r in images if "resolve" in r.url or r.url.startswith(s3_server["endpoint"])]
            # and the reviewer's session is redirected by Label Studio to a presigned URL that serves those bytes
            hop = page.request.get(label_studio["url"] + task["data"]["image"], max_redirects=0)
            location = hop.headers.get("location", "")
            assert hop.status == 303 and location.startswith(f"{s3_server['endpoint']}/{s3_server['bucket']}/{PREFIX}/"), \
                (hop.status, location[:120])
            assert "Signature=" in location or "X-Amz-Signature=" in location  # presigned
            got = page.request.get(location)
            assert got.status == 200 and hashlib.sha256(got.body()).hexdigest() == frame.sha256
            # no Content-Security-Policy violation on the way to the picture (Label Studio's policy is report-only
            # by default, so a violation would load anyway and only show here); Label Studio's own inline-script
            # report (script-src) is not about pictures and is left to it
            pictures = [v for v in violations if not v.startswith("script-src")]
            csp = [m for m in console if "Content Security Policy" in m and "script-src" not in m.split("directive", 1)[-1][:40]]
            assert not pictures and not csp, (pictures, csp, violations)
        finally:
            browser.close()


def _sha256(response) -> str | None:
    try:
        return hashlib.sha256(response.body()).hexdigest()
    except Exception:  # noqa: BLE001 - a redirect or a response without a body kept
        return None


@pytest.mark.parametrize("case, changes, code, names", [
    ("missing bucket", {"VERIFY_S3_BUCKET": "no-such-bucket"}, 15, "VERIFY_S3_BUCKET"),
    ("refused credentials", {"AWS_SECRET_ACCESS_KEY": "wrong-secret-0123456789", "VERIFY_S3_PREFIX": "elsewhere"}, 16,
     "AWS_SECRET_ACCESS_KEY"),
    ("unreachable endpoint", {"AWS_ENDPOINT_URL": "http://127.0.0.1:{port}"}, 15, "AWS_ENDPOINT_URL"),
    ("no bucket named", {"VERIFY_S3_BUCKET": ""}, 2, "VERIFY_S3_BUCKET"),
])
def test_a_storage_problem_is_one_line_naming_the_setting(pushed, s3_server, case, changes, code, names):
    changes = {k: v.format(port=_free_port()) for k, v in changes.items()}
    env = {**pushed["env"], **changes}
    result = CliRunner().invoke(main, ["push", "--images", "s3"], env=env, catch_exceptions=False)
    assert result.exit_code == code, (case, result.output)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("verify: ") and names in lines[0], (case, result.output)
    assert "Traceback" not in result.output
    for secret in (s3_server["secret_key"], changes.get("AWS_SECRET_ACCESS_KEY", s3_server["secret_key"])):
        assert secret not in result.output
