"""The `verify` command line: a thin layer over the library's stages.

Each command opens the workspace, calls one library function and prints what happened. A
``VerifyError`` becomes one line on stderr and its exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

from verify import __version__, custody
from verify.errors import PartialFailure, VerifyError
from verify.workspace import Workspace

ENV_WORKSPACE = "VERIFY_WORKSPACE"


class Context:
    def __init__(self, workspace: str, debug: bool):
        self.workspace_dir = Path(workspace)
        self.debug = debug

    def open(self) -> Workspace:
        return Workspace.open(self.workspace_dir)


def run(func: Callable) -> Callable:
    """Turn library errors into one line and an exit code (or a traceback with --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context().find_object(Context)
        try:
            return func(*args, **kwargs)
        except VerifyError as exc:
            if ctx and ctx.debug:
                raise
            click.echo(f"verify: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("verify: interrupted; the workspace keeps every step that completed", err=True)
            sys.exit(130)

    return wrapper


def connection_options(func: Callable) -> Callable:
    """--url, --api-key-file and --files-root, shared by every command that talks to Label Studio."""
    func = click.option(
        "--api-key-file", "api_key", default=None, metavar="FILE", callback=_read_api_key, expose_value=True,
        type=click.Path(exists=True, dir_okay=False),
        help="Read the Label Studio access token (legacy token or personal access token) from FILE. Default: "
             "$LABEL_STUDIO_API_KEY, else the local server's. There is no option taking the token itself: "
             "command lines are visible to other users of this machine.",
    )(func)
    func = click.option(
        "--url", envvar="LABEL_STUDIO_URL", show_envvar=True, default=None,
        help="Label Studio base URL, e.g. http://127.0.0.1:8080. Default: the server started by `verify server start`.",
    )(func)
    func = click.option(
        "--files-root", envvar="VERIFY_FILES_ROOT", show_envvar=True, default=None, type=click.Path(file_okay=False),
        help="The server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, when it runs on this machine but was not started by verify.",
    )(func)
    return func


def _read_api_key(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return os.environ.get("LABEL_STUDIO_API_KEY") or None
    key = Path(value).read_text(encoding="utf-8", errors="replace").strip()
    if not key:
        raise click.BadParameter(f"{value} is empty; put the access token in it", param=param)
    return key


def unknown_labels_option(func: Callable) -> Callable:
    return click.option(
        "--unknown-labels", type=click.Choice(["ignore", "keep", "fail"]), default="ignore", show_default=True,
        help="Boxes whose label the case no longer defines: ignore them (they are counted in the report), "
             "keep them in the merge, or fail.",
    )(func)


images_option = click.option(
    "--images", type=click.Choice(["auto", "local", "upload"]), default="auto", show_default=True,
    help="How frames reach Label Studio: local = its local-files storage (the server shares this disk; needs the local "
         "server or VERIFY_FILES_ROOT); upload = through its import API (any server); auto = local when possible.")


def connect(url: str | None, api_key: str | None):
    """A client for the given server, or for the local one when nothing is given."""
    from verify.labelstudio import server
    from verify.labelstudio.client import LabelStudioClient, version_warning

    local = server.credentials()
    if not url and local:
        url = local["url"]
    if not api_key and local and url and url.rstrip("/") == local["url"]:
        api_key = local["api_key"]
    client = LabelStudioClient(url or "", api_key or "")
    client.whoami()
    warning = version_warning(client.version())
    if warning:
        click.echo(f"warning: {client.url}: {warning}", err=True)
    return client


def files_root_for(client, files_root: str | None) -> Path | None:
    from verify.labelstudio import server

    if files_root:
        return Path(files_root)
    local = server.credentials()
    if local and client.url == local["url"]:
        return Path(local["files_root"])
    return None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-w", "--workspace", envvar=ENV_WORKSPACE, show_envvar=True, default=".", show_default=True,
              type=click.Path(file_okay=False), help="The workspace folder (one per case).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(__version__, prog_name="verify")
@click.pass_context
def main(ctx: click.Context, workspace: str, debug: bool) -> None:
    """verify: video keyframes reviewed in Label Studio, merged into a verification report.

    \b
    A coordinator's loop:
      verify server start                      # a local Label Studio (or use --url)
      verify -w spin init configs/spin-boldak-2021.yaml
      verify -w spin ingest clip.mp4 --source militants-at-gate
      verify -w spin frames
      verify -w spin push                      # reviewers label in Label Studio
      verify -w spin sync                      # pull, merge, report
    """
    ctx.obj = Context(workspace, debug)


# --- server -----------------------------------------------------------------------------------


@main.group()
def server() -> None:
    """Run a local Label Studio (SQLite, loopback only) for this machine's reviewers."""


@server.command("start")
@click.option("--port", type=click.IntRange(1024, 65535), default=None, help="Port on 127.0.0.1 (default 8080, or the last one used).")
@run
def server_start(port: int | None) -> None:
    """Start the local Label Studio and wait until it answers.

    Example: verify server start --port 8080
    """
    from verify.labelstudio import server as srv

    click.echo("starting Label Studio (the first start runs database migrations: about a minute)…", err=True)
    state = srv.start(port)
    creds = srv.credentials()
    click.echo(f"Label Studio {state.message} at {state.url} (pid {state.pid})")
    click.echo(f"admin login: {creds['admin_email']}; password and API key are in {srv.home() / 'credentials.json'} (mode 600)")


@server.command("stop")
@run
def server_stop() -> None:
    """Stop the local Label Studio.

    Example: verify server stop
    """
    from verify.labelstudio import server as srv

    click.echo(f"Label Studio {srv.stop().message}")


@server.command("status")
@run
def server_status() -> None:
    """Say whether the local Label Studio is running, and where.

    Example: verify server status
    """
    from verify.labelstudio import server as srv

    state = srv.status()
    click.echo(f"{state.message}" + (f" at {state.url} (pid {state.pid})" if state.url else "") + f"; data in {state.home}")
    if not state.running:
        sys.exit(1)


# --- workspace stages ---------------------------------------------------------------------------


@main.command()
@click.argument("case_file", type=click.Path(dir_okay=False))
@click.pass_obj
@run
def init(ctx: Context, case_file: str) -> None:
    """Create a workspace for a case (or update its case file).

    Example: verify -w spin init configs/spin-boldak-2021.yaml
    """
    ws = Workspace.create(ctx.workspace_dir, case_file)
    case = ws.case
    custody.record(ws, "init", inputs=[(str(Path(case_file).resolve()), case.sha256)], outputs=[("case.yaml", case.sha256)],
                   case_id=case.id)
    click.echo(f"workspace {ws.root} for case {case.id!r}: {len(case.claims)} claims, {len(case.sources)} sources, "
               f"{sum(len(g.labels) for g in case.label_groups)} labels")


@main.command()
@click.argument("videos", nargs=-1)
@click.option("--from", "from_file", type=click.Path(dir_okay=False), default=None,
              help="A file of links (one per line) or a CSV with a url column and optional source, claims, side, notes.")
@click.option("--source", "source_id", help="The case source these videos are (its provenance is recorded).")
@click.option("--url", help="Where the video was posted (http/https).")
@click.option("--platform", help="Platform it was posted on.")
@click.option("--uploader", help="Account that posted it.")
@click.option("--posted-at", help="When it was posted (ISO 8601).")
@click.option("--side", help="Side of the border it appears to be filmed from.")
@click.option("--claim", "claims", multiple=True, help="A claim id it bears on (repeatable).")
@click.option("--info-json", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A yt-dlp .info.json for the file (NAME.info.json beside NAME.mp4 is found by itself).")
@click.option("--refresh", is_flag=True, help="Capture links again even if captured before (kept as a new capture).")
@click.option("--max-size", default=None, help="Skip downloads larger than this, e.g. 500M or 2G.")
@click.option("--cookies", type=click.Path(dir_okay=False), default=None,
              help="Netscape cookies file for logged-in platforms; used in place, never copied.")
@click.pass_obj
@run
def ingest(ctx: Context, videos: tuple[str, ...], from_file: str | None, source_id: str | None, info_json: str | None,
           refresh: bool, max_size: str | None, cookies: str | None, **provenance: Any) -> None:
    """Take videos in as evidence, from files or links: hash, keep an untouched read-only copy, probe,
    record provenance. Links are downloaded with yt-dlp and keep the platform's metadata.

    \b
    Example: verify ingest flag.mp4 --source flag-hoisting-afghan-side --uploader @someone
    Example: verify ingest https://example.org/post/123 --claim taliban_flag_raised
    Example: verify ingest --from links.csv --max-size 500M
    """
    from verify.media.ingest import ingest as ingest_videos
    from verify.media.links import parse_size, read_link_list

    if not videos and not from_file:
        raise click.UsageError("give video files or links, or --from FILE")
    max_bytes = parse_size(max_size) if max_size else None
    ws = ctx.open()
    results = []

    def show(result):
        mark = "ok  " if result.ok else "FAIL"
        click.echo(f"{mark} {result.path}: {result.message}", err=not result.ok)

    options = dict(info_json=Path(info_json) if info_json else None, refresh=refresh, max_bytes=max_bytes,
                   cookies=Path(cookies) if cookies else None)
    with ws.lock():
        if videos:
            results += ingest_videos(ws, list(videos), source_id, provenance, progress=show, **options)
        if from_file:
            items = read_link_list(Path(from_file))
            with click.progressbar(items, label=f"links from {from_file}", file=sys.stderr) as bar:
                for item in bar:
                    given = {**provenance, "side": item.side or provenance.get("side"),
                             "claims": item.claims or provenance.get("claims")}
                    if item.notes:
                        given["description"] = item.notes
                    results += ingest_videos(ws, [item.url], item.source or source_id, given, progress=show, **options)
    failed = [r for r in results if not r.ok]
    known = sum(1 for r in results if r.ok and r.known)
    click.echo(f"{len(results) - len(failed) - known} new, {known} already known, {len(failed)} failed, of {len(results)}")
    if failed:
        raise PartialFailure(f"{len(failed)} of {len(results)} inputs were not ingested (see FAIL lines); the others were")


@main.command()
@click.option("--max-interval", type=click.FloatRange(0.2, 600), default=None,
              help="Longest gap in seconds between frames of one shot (default: the case's frames.max_interval_s).")
@click.option("--redo", is_flag=True, help="Extract again for videos that already have frames.")
@click.option("--workers", type=click.IntRange(1, 32), default=min(2, os.cpu_count() or 1), show_default=True,
              help="Videos decoded in parallel.")
@click.option("--preview", is_flag=True,
              help="Quick look: decode only the stream's own keyframes (much faster; shots between keyframes can be "
                   "missed). Frames are marked as preview; a later plain `verify frames` does the full extraction.")
@click.option("--at", "checks", multiple=True, metavar="VIDEO@TIME",
              help="Re-extract the stored frame of VIDEO (source id or sha256 prefix) at TIME (seconds or H:MM:SS.mmm) "
                   "from the evidence and confirm its pixels and JPEG match the record (repeatable).")
@click.pass_obj
@run
def frames(ctx: Context, max_interval: float | None, redo: bool, workers: int, preview: bool, checks: tuple[str, ...]) -> None:
    """Extract keyframes: every shot covered, near-duplicates dropped, re-uploads linked.

    \b
    Example: verify frames --max-interval 2
    Example: verify frames --preview
    Example: verify frames --at militants-at-gate@4.8
    """
    from verify.errors import IntegrityError
    from verify.media.frames import FrameParams, check_frame, extract, pending

    ws = ctx.open()
    if checks:
        failed = 0
        for spec in checks:
            c = check_frame(ws, spec)
            where = f"{c.source_id} frame {c.frame_index} at {c.t_ms / 1000:.3f} s ({c.key})"
            if c.ok:
                click.echo(f"match {where}: decoded again from the evidence, pixels identical; JPEG intact")
            else:
                failed += 1
                problems = [name for name, good in (("pixels differ", c.pixels_match), ("time differs", c.time_match),
                                                    ("JPEG changed or missing", c.jpeg_intact)) if not good]
                click.echo(f"MISMATCH {where}: {', '.join(problems)}", err=True)
        if failed:
            raise IntegrityError(f"{failed} of {len(checks)} frames do not match their evidence")
        return
    params = FrameParams(max_interval_s=max_interval or ws.case.frames.max_interval_s, mode="preview" if preview else "full")
    todo = pending(ws, params, redo)
    if not todo:
        click.echo("every ingested video already has frames (use --redo to extract again)")
        return
    with ws.lock(), click.progressbar(length=len(todo), label="decoding", file=sys.stderr) as bar:
        lines = []

        def show(result):
            bar.update(1)
            lines.append(result)

        results = extract(ws, params, redo=redo, workers=workers, progress=show)
    for r in results:
        name = f"{r.source_id} ({r.sha256[:12]})"
        if r.ok:
            click.echo(f"ok   {name}: {r.message}" + (f"; WARNING {r.warning}" if r.warning else ""))
        else:
            click.echo(f"FAIL {name}: {r.message}", err=True)
    linked = sum(1 for f in ws.frames() if f["duplicate_of"])
    click.echo(f"{len(ws.frames())} frames in the workspace, {linked} linked to an identical frame of another source")
    failed = [r for r in results if not r.ok]
    if failed:
        raise PartialFailure(f"{len(failed)} of {len(results)} videos could not be decoded (see FAIL lines); the others were")


@main.command()
@connection_options
@click.option("--include-duplicates", is_flag=True, help="Also send frames linked to another source's frame for review.")
@click.option("--new-project", is_flag=True, help="Create a new project even if the workspace has one.")
@click.option("--reset-config", is_flag=True, help="Replace a labeling config edited on the server with the case's.")
@images_option
@click.pass_obj
@run
def push(ctx: Context, url, api_key, files_root, include_duplicates, new_project, reset_config, images) -> None:
    """Send keyframes to Label Studio as tasks (only those not already there).

    Example: verify push --url http://127.0.0.1:8080   (key in LABEL_STUDIO_API_KEY)
    """
    ws = ctx.open()
    with ws.lock():
        client = connect(url or ws.get_meta("server_url"), api_key)
        _push(ws, client, files_root_for(client, files_root), include_duplicates, new_project, reset_config, images)


def _push(ws, client, files_root, include_duplicates=False, new_project=False, reset_config=False, images="auto"):
    from verify.labelstudio.push import push as push_frames

    with click.progressbar(length=len(ws.frames()), label="importing", file=sys.stderr) as bar:
        result = push_frames(ws, client, files_root, include_duplicates, new_project, reset_config, progress=bar.update,
                             images=images)
    made = "created" if result.created_project else (
        f"found again on the server by its case id and {result.recovered} matching frames" if result.recovered else "found")
    click.echo(f"project {result.project_id} {made}: {result.imported} tasks imported, {result.already_there} already there, "
               f"{result.skipped_duplicates} re-uploaded frames not sent again")
    click.echo(f"images: {result.images}")
    click.echo(f"reviewers label at {result.project_url}")
    return result


@main.command()
@connection_options
@click.option("--full", is_flag=True, help="Export every task again, not only those changed since the last pull.")
@click.pass_obj
@run
def pull(ctx: Context, url, api_key, files_root, full: bool) -> None:
    """Fetch the reviewers' annotations (only tasks changed since the last pull); archive the raw exports in exports/.

    Example: verify pull
    Example: verify pull --full
    """
    ws = ctx.open()
    with ws.lock():
        _pull(ws, connect(url or ws.get_meta("server_url"), api_key), full)


def _pull(ws, client, full: bool = False):
    from verify.labelstudio.pull import pull as pull_annotations

    result = pull_annotations(ws, client, full)
    what = "full export" if result.full else "changed since the last pull"
    archived = f" → {len(result.export_files)} export(s) archived in exports/" if result.export_files else ""
    click.echo(f"pulled {result.annotations} annotations ({result.skipped} skips) by {result.reviewers} reviewers "
               f"on {result.tasks} tasks ({what}){archived}")
    if ws.get_meta("adjudication_project_id"):
        click.echo(f"pulled {result.lead_decisions} lead decisions from the adjudication project"
                   + (f" ({result.ignored} annotations there by others than the lead ignored)" if result.ignored else ""))
    return result


@main.command()
@unknown_labels_option
@click.pass_obj
@run
def merge(ctx: Context, unknown_labels: str) -> None:
    """Merge the pulled annotations into verdicts per frame, video and claim; write reports/verdicts.json.

    Example: verify merge
    """
    ws = ctx.open()
    with ws.lock():
        _merge(ws, unknown_labels)


def _merge(ws, unknown_labels="ignore"):
    from verify.verdicts.merge import merge_workspace
    from verify.workspace import atomic_write

    result = merge_workspace(ws, unknown_labels)
    atomic_write(ws.path("reports") / "verdicts.json", json.dumps(result, indent=2, ensure_ascii=False).encode())
    custody.record_files(ws, "merge", [ws.path("reports") / "verdicts.json"],
                         inputs=[(e["file"], e["sha256"]) for e in ws.exports_in_use()], unknown_labels=unknown_labels)
    for claim in result["claims"]:
        agree = claim["agreement"]["percent"]
        click.echo(f"{claim['id']:<36} {claim['verdict']:<13} reviewed {claim['reviewed_frames']}/{claim['frames']} frames"
                   + (f", {agree}% unanimous" if agree is not None else ""))
    return result


@main.command()
@connection_options
@click.option("--lead", default=None, help="Email of the lead reviewer whose answers decide (default: anyone who annotates the adjudication project).")
@images_option
@click.pass_obj
@run
def adjudicate(ctx: Context, url, api_key, files_root, lead: str | None, images: str) -> None:
    """Send the frames reviewers disagree on to a lead reviewer (an adjudication project).

    The lead's answers, pulled by `verify pull` or `verify sync`, decide those frames; the
    report shows the decision and the reviewers' vote.

    Example: verify adjudicate --lead editor@desk.example
    """
    from verify.labelstudio.adjudicate import adjudicate as send_disputes

    ws = ctx.open()
    with ws.lock():
        client = connect(url or ws.get_meta("server_url"), api_key)
        result = send_disputes(ws, client, files_root_for(client, files_root), lead, images=images)
    click.echo(f"{result.disputed} disputed frames; {result.imported} newly sent to adjudication project {result.project_id}")
    click.echo(f"the lead{' ' + lead if lead else ''} decides at {result.project_url}")


@main.command()
@click.option("--format", "formats", type=click.Choice(["html", "md", "json", "pdf"]), multiple=True,
              help="Report format (repeatable; default: html, md and json; pdf needs Chromium).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder to write to (default: WORKSPACE/reports).")
@unknown_labels_option
@click.pass_obj
@run
def report(ctx: Context, formats: tuple[str, ...], out: str | None, unknown_labels: str) -> None:
    """Write the verification report (HTML, Markdown, JSON).

    Example: verify report --format html
    """
    ws = ctx.open()
    with ws.lock():
        _report(ws, formats, out, unknown_labels)


def _report(ws, formats=(), out=None, unknown_labels="ignore"):
    from verify.report.build import FORMATS, write_reports

    written = write_reports(ws, tuple(formats) or FORMATS, Path(out) if out else None, unknown_labels)
    assets = sorted(written["md"].parent.joinpath("report-assets").glob("*.jpg")) if "md" in written else []
    hashes = custody.record_files(ws, "report", [*written.values(), *assets],
                                  inputs=[(e["file"], e["sha256"]) for e in ws.exports_in_use()],
                                  formats=sorted(written), custody_head=ws.get_meta(custody.HEAD))
    for (fmt, path), (_, sha) in zip(written.items(), hashes):
        click.echo(f"{fmt:<4} report: {path}  sha256 {sha}")
    return written


@main.command()
@connection_options
@click.option("--include-duplicates", is_flag=True, help="Also send frames linked to another source's frame for review.")
@unknown_labels_option
@images_option
@click.pass_obj
@run
def sync(ctx: Context, url, api_key, files_root, include_duplicates, unknown_labels, images) -> None:
    """Push new frames, pull annotations, merge, and write the reports, in one go.

    Example: verify sync
    """
    ws = ctx.open()
    with ws.lock():
        client = connect(url or ws.get_meta("server_url"), api_key)
        _push(ws, client, files_root_for(client, files_root), include_duplicates, images=images)
        _pull(ws, client)
        _merge(ws, unknown_labels)
        _report(ws, unknown_labels=unknown_labels)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
@run
def status(ctx: Context, as_json: bool) -> None:
    """Show the workspace: videos, frames, tasks, annotations per reviewer, claims covered (as of the last pull).

    Example: verify status --json
    """
    from verify.verdicts.merge import merge as merge_verdicts
    from verify.verdicts.merge import review_progress

    ws = ctx.open()
    videos, frames_ = ws.videos(), ws.frames()
    project = ws.get_meta("project_id")
    tasks = ws.tasks()
    annotations = ws.annotations()
    merged = merge_verdicts(ws.case, videos, frames_, annotations, tasks)
    progress = review_progress(ws.case, tasks, annotations)
    verdicts = {c["id"]: c["verdict"] for c in merged["claims"]}
    exports = ws.exports()
    state = {
        "workspace": str(ws.root),
        "case": ws.case.id,
        "videos": [{"source_id": v["source_id"], "sha256": v["sha256"], "frames_status": v["frames_status"] or "pending",
                    "frames": sum(1 for f in frames_ if f["video_sha256"] == v["sha256"]),
                    "linked_frames": sum(1 for f in frames_ if f["video_sha256"] == v["sha256"] and f["duplicate_of"])}
                   for v in videos],
        "frames": len(frames_),
        "tasks": len(tasks),
        "open_tasks": progress["open_tasks"],
        "reviewers_per_frame": progress["reviewers_per_frame"],
        "label_studio": {"url": ws.get_meta("server_url"), "project_id": int(project) if project else None},
        "last_pull": ws.get_meta("last_pull_at") or (exports[-1]["pulled_at"] if exports else None),
        "reviewers": progress["reviewers"],
        "claims": [{**c, "verdict": verdicts[c["id"]]} for c in progress["claims"]],
    }
    if as_json:
        click.echo(json.dumps(state, indent=2))
        return
    click.echo(f"workspace {state['workspace']} · case {state['case']}")
    for v in state["videos"]:
        linked = f", {v['linked_frames']} linked to another source" if v["linked_frames"] else ""
        click.echo(f"  video {v['source_id']} ({v['sha256'][:12]}): {v['frames']} frames ({v['frames_status']}){linked}")
    where = f"project {project} on {state['label_studio']['url']}" if project else "not pushed yet"
    click.echo(f"frames {state['frames']} · tasks {state['tasks']} ({where}) · last pull {state['last_pull'] or 'never'}")
    click.echo(f"{state['open_tasks']} of {state['tasks']} tasks still need answers ({state['reviewers_per_frame']} reviewers per frame)"
               + (" · as of the last pull; run `verify pull` for the latest" if state["last_pull"] else ""))
    if state["reviewers"]:
        click.echo(f"  {'reviewer':<32} {'assigned':>8} {'done':>6} {'skipped':>8} {'remaining':>10}")
    for name, s in state["reviewers"].items():
        click.echo(f"  {name[:32]:<32} {s['assigned']:>8} {s['done']:>6} {s['skipped']:>8} {s['remaining']:>10}")
    click.echo(f"  {'claim':<32} {'frames':>8} {'done':>6} {'answers':>8} {'remaining':>10}  verdict")
    for c in state["claims"]:
        click.echo(f"  {c['id'][:32]:<32} {c['frames']:>8} {c['done']:>6} {c['answers']:>8} {c['remaining']:>10}  {c['verdict']}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_obj
@run
def audit(ctx: Context, as_json: bool) -> None:
    """Re-hash every stored file against the workspace's manifest and check the custody log.

    Evidence copies, platform info files, frames, archived exports, reports and the case file:
    each must be there with its recorded sha256, and nothing else may be in evidence/, frames/,
    exports/ or reports/. Exit 0 when all is intact; 11 when files changed, are missing or are
    unexpected; 12 when the custody log is missing, edited or cut short; 13 when there is no
    manifest (verify.db) to audit against.

    \b
    Example: verify audit
    Example: verify audit --json
    """
    custody.require_manifest(ctx.workspace_dir)
    ws = ctx.open()
    with ws.lock():  # a consistent picture: no verify is writing meanwhile
        result = custody.audit(ws)
    if as_json:
        click.echo(json.dumps({"checked": result.checked, "changed": result.changed, "missing": result.missing,
                               "unexpected": result.unexpected, "log": {"entries": result.log.entries, "head": result.log.head,
                                                                        "problems": result.log.problems}}, indent=2))
    else:
        for kind, paths in (("CHANGED", result.changed), ("MISSING", result.missing), ("UNEXPECTED", result.unexpected)):
            for path in paths:
                click.echo(f"{kind:<10} {path}")
        for problem in result.log.problems:
            click.echo(f"LOG        {problem}")
        for note in result.log.notes:
            click.echo(f"NOTE       {note}")
        click.echo(f"{result.checked} stored files checked: {len(result.changed)} changed, {len(result.missing)} missing, "
                   f"{len(result.unexpected)} unexpected; custody log: {result.log.entries} entries, "
                   + ("chain intact" if result.log.ok else "BROKEN"))
    result.raise_for_problems()


# --- reviewers ------------------------------------------------------------------------------------


@main.group()
def reviewers() -> None:
    """List the server's users, or add a reviewer account."""


@reviewers.command("list")
@connection_options
@run
def reviewers_list(url, api_key, files_root) -> None:
    """List the users of the Label Studio server.

    Example: verify reviewers list
    """
    client = connect(url, api_key)
    for user in client.users():
        click.echo(f"{user['id']:>4}  {user['email']}  {user['name']}")


@reviewers.command("add")
@click.argument("email")
@click.option("--password", default=None, help="Their password (default: a random one, printed once).")
@connection_options
@run
def reviewers_add(email, password, url, api_key, files_root) -> None:
    """Create a reviewer account through the organization's invite link.

    Example: verify reviewers add alice@newsroom.example
    """
    from verify.labelstudio.client import new_password

    from verify.labelstudio import server as srv

    client = connect(url, api_key)
    chosen = password or new_password()
    user = client.add_reviewer(email, chosen)
    local = srv.credentials()
    if local and local["url"] == client.url:  # keep the local server's logins in its one secrets file
        local["reviewers"] = [r for r in local.get("reviewers", []) if r["email"] != email] + [{"email": email, "password": chosen}]
        srv.save_credentials(local)
    click.echo(f"reviewer {user['email']} (id {user['id']}) can log in at {client.url}/user/login/"
               + ("" if password else f" with password {chosen}"))


if __name__ == "__main__":
    main()
