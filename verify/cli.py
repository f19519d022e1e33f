"""The `verify` command line: a thin layer over the library's stages.

Each command opens the workspace, calls one library function and prints what happened. A
``VerifyError`` becomes one line on stderr and its exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import sqlite3
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from verify import __version__, terminal
from verify.errors import DiskFull, OptionError, VerifyError
from verify.labelstudio.objects import DEFAULT_PREFIX, ENV_BUCKET, ENV_PREFIX
from verify.terminal import shown
from verify.workspace import Workspace

ENV_WORKSPACE = "VERIFY_WORKSPACE"
FLAGS = {"source_id": "--source", "claims": "--claim"}  # library option → its flag, where the names differ


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
            if isinstance(exc, OptionError):
                flag = FLAGS.get(exc.option, "--" + exc.option.replace("_", "-"))
                click.echo(f"verify: {flag} {shown(exc.detail)}", err=True)
            else:
                click.echo(f"verify: {shown(exc)}", err=True)
            sys.exit(exc.exit_code)
        except (OSError, sqlite3.OperationalError) as exc:  # a full disk, wherever it strikes
            if (ctx and ctx.debug) or not (getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
                                           or "disk is full" in str(exc)):
                raise
            click.echo("verify: no space left on the workspace's disk; what completed is kept, nothing half-written "
                       "is; free space and run the command again", err=True)
            sys.exit(DiskFull.exit_code)
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
    _SECRETS.append(key)
    return key


_SECRETS: list[str] = []  # values a traceback must not show: access tokens read from files
_SECRET_NAMES = re.compile(r"KEY|TOKEN|SECRET|PASSW", re.IGNORECASE)  # environment settings holding one


def _redacting_hook(kind: type, value: BaseException, tb: Any) -> None:
    """sys.excepthook: a traceback (--debug, or a bug) printed with URL logins, tokens and passwords as ***."""
    import traceback

    secrets = _SECRETS + [v for k, v in os.environ.items() if _SECRET_NAMES.search(k)]
    sys.stderr.write(terminal.redacted("".join(traceback.format_exception(kind, value, tb)), secrets))


def unknown_labels_option(func: Callable) -> Callable:
    return click.option(
        "--unknown-labels", type=click.Choice(["ignore", "keep", "fail"]), default="ignore", show_default=True,
        help="Boxes whose label the case no longer defines: ignore them (they are counted in the report), "
             "keep them in the merge, or fail.",
    )(func)


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``name`` set to ``value`` in the environment while one command runs."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _into_environment(name: str) -> Callable[[click.Context, click.Parameter, str | None], None]:
    """A click callback: an option given stands for the environment setting ``name`` during its command (the
    S3 settings are read from the environment, where the AWS_* ones are too)."""
    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value is not None:
            ctx.with_resource(_environment(name, value))
    return callback


def images_option(func):
    """--images, and the bucket and prefix of --images s3 (options that stand for VERIFY_S3_BUCKET and VERIFY_S3_PREFIX)."""
    func = click.option(
        "--s3-prefix", metavar="PREFIX", expose_value=False, callback=_into_environment(ENV_PREFIX),
        help=f"With s3: the folder of the bucket the frames go to (default: {ENV_PREFIX}, else {DEFAULT_PREFIX}).")(func)
    func = click.option(
        "--s3-bucket", metavar="BUCKET", expose_value=False, callback=_into_environment(ENV_BUCKET),
        help=f"With s3 (or auto): the bucket the frames go to (default: {ENV_BUCKET}); credentials come from the "
             "environment only.")(func)
    return click.option(
        "--images", type=click.Choice(["auto", "local", "upload", "s3"]), default="auto", show_default=True,
        help="How frames reach Label Studio: local = its local-files storage (the server shares this disk; needs the "
             "local server or VERIFY_FILES_ROOT); upload = through its import API (any server); s3 = an S3-compatible "
             "bucket (--s3-bucket or VERIFY_S3_BUCKET, --s3-prefix or VERIFY_S3_PREFIX, AWS_ENDPOINT_URL and the AWS_* "
             "credentials from the environment), which the project reads with presigned URLs; auto = s3 when a bucket "
             "is named, else local when possible.")(func)


context_option = click.option(
    "--no-context", "no_context", is_flag=True,
    help="Send new tasks without the strip of pictures around each frame (by default missing strips are made "
         "from the evidence first, and each new task shows its strip; with --images upload no task shows one, "
         "as Label Studio takes one picture per uploaded task).")


def made_contexts(made) -> None:
    """Say what the context stage did (on stderr: warnings for videos whose strips could not be made)."""
    if made is None:
        return
    if made.made:
        click.echo(f"context strips: {made.made} made, {made.already} already there")
    for source, why in made.failed:
        click.echo(f"warning: {shown(source)}: no context strips ({shown(why)}); its frames are sent without one", err=True)
    if made.mismatched:
        click.echo(f"warning: {made.mismatched} strip(s) show a different picture at the frame's own time than the frame "
                   "(see custody.log, action context)", err=True)


def connect(url: str | None, api_key: str | None):
    """A client for the given server (or the local one); a release with a known advisory is warned about."""
    from verify.labelstudio.connect import connect as connect_to
    from verify.urls import LOGIN_DROPPED, has_login, without_login

    if has_login(url):  # never stored (server_url) nor printed; Label Studio takes a token, not a URL login
        click.echo("notice: " + LOGIN_DROPPED.format(what=f"--url {shown(url)}", how="Label Studio takes an access "
                                                     "token (--api-key-file or LABEL_STUDIO_API_KEY)"), err=True)
        url = without_login(url)

    client, warning = connect_to(url, api_key)
    if warning:
        click.echo(f"warning: {shown(client.url)}: {shown(warning)}", err=True)
    return client


def served_from(client, given: str | None):
    """The server's local-files root (given, or the local server's)."""
    from verify.labelstudio.connect import files_root_for

    return files_root_for(client, given)


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
    sys.excepthook = _redacting_hook


# --- server -----------------------------------------------------------------------------------


@main.group()
def server() -> None:
    """Run a local Label Studio (SQLite or PostgreSQL, loopback only) for this machine's reviewers."""


@server.command("start")
@click.option("--port", type=click.IntRange(1024, 65535), default=None, help="Port on 127.0.0.1 (default 8080, or the last one used).")
@click.option("--database", type=click.Choice(["sqlite", "postgresql"]), default=None,
              help="Where Label Studio keeps its data: sqlite (default), or postgresql: a cluster verify creates under "
                   "VERIFY_HOME (Debian's postgresql, loopback only), or the existing one named by POSTGRE_HOST, POSTGRE_PORT, "
                   "POSTGRE_NAME, POSTGRE_USER, POSTGRE_PASSWORD. Default: the one this VERIFY_HOME was set up with (a new one: "
                   "postgresql when DJANGO_DB=default and POSTGRE_HOST are set, else sqlite).")
@run
def server_start(port: int | None, database: str | None) -> None:
    """Start the local Label Studio and wait until it answers.

    Example: verify server start --port 8080 --database postgresql
    """
    from verify.labelstudio import server as srv

    click.echo("starting Label Studio (the first start runs database migrations: one or two minutes)…", err=True)
    state = srv.start(port, database=database)
    creds = srv.credentials()
    click.echo(f"Label Studio {state.message} at {state.url} (pid {state.pid}), database: {state.database}")
    click.echo(f"admin login: {creds['admin_email']}; password and API key are in {srv.home() / 'credentials.json'} (mode 600)")
    click.echo("reviewers: `verify reviewers add EMAIL`, then hand them the label-stream link `verify push` prints")


@server.command("stop")
@run
def server_stop() -> None:
    """Stop the local Label Studio (and the PostgreSQL verify started for it).

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
    click.echo(f"{state.message}" + (f" at {state.url} (pid {state.pid})" if state.url else "") + f"; data in {state.home}"
               + (f"; database: {state.database}" if state.database else ""))
    if not state.running:
        sys.exit(1)


# --- workspace stages ---------------------------------------------------------------------------


@main.command()
@click.argument("case_file")  # checked by load_case: a folder or a FIFO gets its one line (exit 3), not click's usage
@click.option("--tsa", multiple=True, metavar="URL",
              help="An RFC 3161 time-stamp authority to anchor the custody log, evidence and reports with after each "
                   "action (repeatable: tried in order; `--tsa none` stops stamping). Default: none, offline.")
@click.pass_obj
@run
def init(ctx: Context, case_file: str, tsa: tuple[str, ...]) -> None:
    """Create a workspace for a case (or update its case file).

    \b
    Example: verify -w spin init configs/spin-boldak-2021.yaml
    Example: verify -w spin init configs/spin-boldak-2021.yaml --tsa http://timestamp.example.org/tsr
    """
    from verify.case import load_case

    load_case(case_file)  # a bad case file fails here, before the pipeline's heavy libraries (FFmpeg, OpenCV…) load
    from verify.pipeline import init as init_workspace
    from verify.timestamps import ENV_PASSWORD, ENV_USER, configured
    from verify.urls import LOGIN_DROPPED, has_login

    for url in (u for u in tsa if has_login(u)):  # taken out before it is stored (timestamps.configure)
        click.echo("notice: " + LOGIN_DROPPED.format(what=f"--tsa {shown(url)}", how=f"an authority's login comes from "
                                                     f"{ENV_USER} and {ENV_PASSWORD}, or a netrc file"), err=True)

    ws = init_workspace(ctx.workspace_dir, case_file, list(tsa) if tsa else None)
    case = ws.case
    click.echo(f"workspace {shown(ws.root)} for case {case.id!r}: {len(case.claims)} claims, {len(case.sources)} sources, "
               f"{sum(len(g.labels) for g in case.label_groups)} labels")
    urls = configured(ws)
    click.echo("trusted timestamps: " + (", ".join(shown(u) for u in urls) if urls else
                                         "none (the custody log is not anchored outside the workspace; see --tsa)"))


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """--max-size as bytes; a value that is not a size is a usage error (exit 2), like any bad option value."""
    if value is None:
        return None
    from verify.media.links import parse_size

    try:
        return parse_size(value)
    except VerifyError:
        raise click.BadParameter(f"{shown(value)} is not a size; give one like 500M, 2G or 800k", param=param) from None


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
@click.option("--graphic", is_flag=True, default=False,
              help="Distressing footage: its frames reach reviewers blurred and grey until they choose to see them.")
@click.option("--info-json", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A yt-dlp .info.json for the file (NAME.info.json beside NAME.mp4 is found by itself).")
@click.option("--refresh", is_flag=True, help="Capture links again even if captured before (kept as a new capture).")
@click.option("--max-size", default=None, callback=_size, help="Skip downloads larger than this, e.g. 500M or 2G.")
@click.option("--cookies", type=click.Path(dir_okay=False), default=None,
              help="Netscape cookies file for logged-in platforms; used in place, never copied.")
@click.pass_obj
@run
def ingest(ctx: Context, videos: tuple[str, ...], from_file: str | None, source_id: str | None, info_json: str | None,
           refresh: bool, max_size: int | None, cookies: str | None, **provenance: Any) -> None:
    """Take videos in as evidence, from files or links: hash, keep an untouched read-only copy, probe,
    record provenance. Links are downloaded with yt-dlp and keep the platform's metadata.

    \b
    Example: verify ingest flag.mp4 --source flag-hoisting-afghan-side --uploader @someone
    Example: verify ingest https://example.org/post/123 --claim taliban_flag_raised
    Example: verify ingest --from links.csv --max-size 500M
    """
    from verify.media.ingest import ingest as ingest_videos
    from verify.media.ingest import ingest_listed
    from verify.media.links import read_link_list

    if not videos and not from_file:
        raise click.UsageError("give video files or links, or --from FILE")
    options = dict(refresh=refresh, max_bytes=max_size,
                   cookies=Path(cookies) if cookies else None)
    ws = ctx.open()
    results = []

    def show(result):
        click.echo(terminal.ingested(result), err=not result.ok)

    with ws.lock(command="ingest"):
        if videos:
            results += ingest_videos(ws, list(videos), source_id, provenance, progress=show,
                                     info_json=Path(info_json) if info_json else None, **options)
        if from_file:
            results += ingest_listed(ws, read_link_list(Path(from_file)), source_id, provenance, progress=show, **options)
    click.echo(terminal.ingest_summary(results))
    raise_for_failures(results, "inputs were not ingested", "none of the {n} inputs was ingested")


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
            check = check_frame(ws, spec)
            failed += not check.ok
            click.echo(terminal.frame_check(check), err=not check.ok)
        if failed:
            raise IntegrityError(f"{failed} of {len(checks)} frames do not match their evidence")
        return
    params = FrameParams(max_interval_s=max_interval or ws.case.frames.max_interval_s, mode="preview" if preview else "full")
    todo = pending(ws, params, redo)
    if not todo:
        if not ws.read_only:
            with ws.lock(command="frames"):
                pass  # completes the custody entry of a `verify frames` killed before it logged its frames
        click.echo("every ingested video already has frames (use --redo to extract again)" if ws.videos() else
                   "no videos in this workspace yet: run `verify ingest` (files or links) first, then `verify frames`")
        return
    with ws.lock(command="frames"), click.progressbar(length=len(todo), label="decoding", file=sys.stderr) as bar:
        lines = []

        def show(result):
            bar.update(1)
            lines.append(result)

        results = extract(ws, params, redo=redo, workers=workers, progress=show)
    for result in results:
        click.echo(terminal.extracted(result), err=not result.ok)
    stored = ws.frames()
    linked = sum(1 for f in stored if f.duplicate_of)
    click.echo(f"{len(stored)} frames in the workspace, {linked} linked to an identical frame of another source")
    raise_for_failures(results, "videos could not be decoded", "none of the {n} videos could be decoded")


def raise_for_failures(results: list, what: str, none: str) -> None:
    """Exit 10 when some inputs failed and the others completed; 4 when every one failed."""
    from verify.errors import MediaError, PartialFailure

    failed = sum(1 for r in results if not r.ok)
    if failed and failed == len(results):
        raise MediaError(none.format(n=failed) + " (see FAIL lines)")
    if failed:
        raise PartialFailure(f"{failed} of {len(results)} {what} (see FAIL lines); the others were")


@main.command()
@connection_options
@click.option("--include-duplicates", is_flag=True, help="Also send frames linked to another source's frame for review.")
@click.option("--new-project", is_flag=True, help="Create a new project even if the workspace has one.")
@click.option("--reset-config", is_flag=True, help="Replace a labeling config edited on the server with the case's.")
@images_option
@context_option
@click.pass_obj
@run
def push(ctx: Context, url, api_key, files_root, include_duplicates, new_project, reset_config, images, no_context) -> None:
    """Send keyframes to Label Studio as tasks (only those not already there).

    Example: verify push --url http://127.0.0.1:8080   (key in LABEL_STUDIO_API_KEY)
    """
    from verify.labelstudio.push import push as push_frames
    from verify.pipeline import context_strips

    ws = ctx.open()
    with ws.lock(command="push"):
        client = connect(url or ws.get_meta("server_url"), api_key)
        root = served_from(client, files_root)
        mode, strips = context_strips(ws, client, root, include_duplicates, images, not no_context)
        made_contexts(strips)
        with importing(ws) as progress:
            result = push_frames(ws, client, root, include_duplicates, new_project, reset_config,
                                 progress=progress, images=mode, context=not no_context)
    echo(terminal.pushed(result))


def echo(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


@contextmanager
def importing(ws: Workspace) -> Iterator[Callable[[int], None]]:
    """A progress bar for importing the workspace's frames (on stderr, and only when stderr is a terminal)."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    with click.progressbar(length=len(ws.frames()), label="importing", file=sys.stderr) as bar:
        yield bar.update


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
    from verify.labelstudio.pull import pull as pull_annotations

    ws = ctx.open()
    with ws.lock(command="pull"):
        result = pull_annotations(ws, connect(url or ws.get_meta("server_url"), api_key), full)
    echo(terminal.pulled(result, bool(ws.get_meta("adjudication_project_id")), bool(ws.get_meta("claims_project_id"))))


@main.command()
@unknown_labels_option
@click.pass_obj
@run
def merge(ctx: Context, unknown_labels: str) -> None:
    """Merge the pulled annotations into verdicts per frame, video and claim; write reports/verdicts.json.

    Example: verify merge
    """
    from verify.pipeline import merge as merge_stage

    ws = ctx.open()
    with ws.lock(command="merge"):
        echo(terminal.merged(merge_stage(ws, unknown_labels).verdicts))


@main.command()
@connection_options
@click.option("--lead", default=None, help="Email of the lead reviewer whose answers decide (default: anyone who annotates the adjudication project).")
@images_option
@click.pass_obj
@run
def adjudicate(ctx: Context, url, api_key, files_root, lead: str | None, images: str) -> None:
    """Send the frames reviewers disagree on to a lead reviewer (an adjudication project), and the claims whose
    frames conflict (a claim-decisions project: the conflicting frames side by side, decided with a note).

    The lead's answers, pulled by `verify pull` or `verify sync`, decide those frames; the
    report shows the decision and the reviewers' vote.

    Example: verify adjudicate --lead editor@desk.example
    """
    from verify.pipeline import adjudicate as send_disputes

    ws = ctx.open()
    with ws.lock(command="adjudicate"):
        client = connect(url or ws.get_meta("server_url"), api_key)
        result = send_disputes(ws, client, served_from(client, files_root), lead, images=images)
    for line, warning in terminal.adjudicated(result, lead):
        click.echo(line, err=warning)
    from verify.labelstudio.adjudicate import claims_sent

    echo(claims_sent(result))


@main.command()
@click.option("--format", "formats", type=click.Choice(["html", "md", "json", "geojson", "kml", "pdf"]), multiple=True,
              help="Report format (repeatable; default: html, md, json, geojson and kml; pdf needs Chromium).")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder to write to (default: WORKSPACE/reports).")
@click.option("--paper", type=click.Choice(["a4", "letter"]), default="a4", show_default=True,
              help="Page size of the PDF report.")
@unknown_labels_option
@click.pass_obj
@run
def report(ctx: Context, formats: tuple[str, ...], out: str | None, paper: str, unknown_labels: str) -> None:
    """Merge the pulled annotations and write the verification report (HTML, Markdown, JSON).

    Only the formats asked for are written: `--format pdf` leaves report.html and report.md as they are.

    \b
    Example: verify report --format html
    Example: verify report --format pdf --paper letter
    """
    from verify.pipeline import report as write_report

    ws = ctx.open()
    with ws.lock(command="report"):
        echo(terminal.reported(write_report(ws, formats, Path(out) if out else None, unknown_labels, paper=paper)))


@main.command()
@connection_options
@click.option("--include-duplicates", is_flag=True, help="Also send frames linked to another source's frame for review.")
@unknown_labels_option
@images_option
@context_option
@click.pass_obj
@run
def sync(ctx: Context, url, api_key, files_root, include_duplicates, unknown_labels, images, no_context) -> None:
    """Push new frames, pull annotations, merge, and write the reports, in one go.

    Example: verify sync
    """
    from verify.pipeline import sync as run_sync

    ws = ctx.open()
    with ws.lock(command="sync"):
        client = connect(url or ws.get_meta("server_url"), api_key)
        with importing(ws) as progress:
            done = run_sync(ws, client, served_from(client, files_root), include_duplicates, unknown_labels, images, progress,
                            context=not no_context)
    made_contexts(done.contexts)
    echo(terminal.pushed(done.push) + terminal.pulled(done.pull, bool(ws.get_meta("adjudication_project_id")),
                                                     bool(ws.get_meta("claims_project_id")))
         + terminal.merged(done.reports.merged.verdicts) + terminal.reported(done.reports))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
@run
def status(ctx: Context, as_json: bool) -> None:
    """Show the workspace: videos, frames, tasks, annotations per reviewer, claims covered (as of the last pull).

    Example: verify status --json
    """
    from verify.pipeline import current_verdicts
    from verify.status import workspace_status

    ws = ctx.open()
    state = workspace_status(ws, current_verdicts(ws))
    if as_json:
        click.echo(json.dumps(state.to_json(), indent=2))
        return
    echo(terminal.status(state))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--tsa-ca", type=click.Path(dir_okay=False, exists=True), envvar="VERIFY_TSA_CA", show_envvar=True,
              default=None, help="PEM file of the CA certificate(s) you trust for the time-stamp authority: the tokens' "
                                 "signatures and chains are verified against it, offline.")
@click.option("--head", "heads", multiple=True, metavar="SEQ:SHA256",
              help="A custody head recorded outside the workspace (e.g. a report's custody_head): the log must hold it.")
@click.option("--against", "reports", multiple=True, metavar="REPORT.json", type=click.Path(dir_okay=False, exists=True),
              help="A report.json kept outside the workspace (e.g. the one sent to the editor): the workspace must still "
                   "hold the custody head it was built from, with the same hash; else it was rolled back (exit 18). "
                   "Repeatable.")
@click.option("--accept", is_flag=True,
              help="Accept the FILEs the audit lists as UNLOGGED, after a person has checked them: logged as an "
                   "\"accept\" entry (who, when, each file's sha256) and listed in the report; then audit.")
@click.option("--note", default=None, metavar="TEXT", help="With --accept: why these files are accepted (kept in the log).")
@click.argument("files", nargs=-1, metavar="[FILE]...")
@click.pass_obj
@run
def audit(ctx: Context, as_json: bool, tsa_ca: str | None, heads: tuple[str, ...], reports: tuple[str, ...], accept: bool,
          note: str | None, files: tuple[str, ...]) -> None:
    """Re-hash every stored file against the workspace's manifest and check the custody log.

    Evidence copies, platform info files, frames, archived exports, reports and the case file:
    each must be there with its recorded sha256, and nothing else may be in evidence/, frames/,
    exports/ or reports/. Exit 0 when all is intact; 11 when files changed, are missing or are
    unexpected; 12 when the custody log is missing, edited or cut short; 13 when there is no
    manifest (verify.db) to audit against; 17 when a file given to --accept is not in the
    workspace or not UNLOGGED (nothing is accepted then); 18 when a report given to --against
    was built from a custody head the workspace no longer holds (it was rolled back).

    \b
    Example: verify audit
    Example: verify audit --json
    Example: verify audit --accept frames/898f7d0b3efa8578/000000800ms-c5cecb5a814d.jpg --note "sent by the reporter"
    """
    from verify import custody

    if files and not accept:
        raise click.UsageError("files are only given with --accept")
    if accept and not files:
        raise click.UsageError("--accept needs the UNLOGGED files to accept")
    if note is not None and not accept:
        raise click.UsageError("--note goes with --accept")
    against = [(shown(path), _custody_head_of(path)) for path in reports]
    custody.require_manifest(ctx.workspace_dir)
    ws = ctx.open()
    if accept:
        with ws.lock(command="accept"):
            entry = custody.accept(ws, list(files), note or "")
        for item in entry["outputs"].get("files") or []:
            click.echo(f"ACCEPTED   {shown(item['path'])}  sha256 {item['sha256']}", err=as_json)
        click.echo(f"custody.log entry {entry['seq']}: {entry['outputs']['count']} file(s) accepted", err=as_json)
    with ws.reading():  # a consistent picture: no verify is writing meanwhile
        result = custody.audit(ws, Path(tsa_ca) if tsa_ca else None, heads, against)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        echo(terminal.audited(result, signatures_checked=bool(tsa_ca)))
    result.raise_for_problems()


def _custody_head_of(path: str) -> str:
    """The custody head (SEQ:SHA256) a report.json was built from (its integrity.custody_head)."""
    try:
        with open(path, "rb") as f:
            report = json.loads(f.read(64 << 20))
        head = report["integrity"]["custody_head"]
    except (OSError, ValueError, KeyError, TypeError):
        raise OptionError("against", f"{shown(path)}: not a verify report.json with integrity.custody_head; give the "
                          "report.json of a report you hold") from None
    if not isinstance(head, str) or not head:
        raise OptionError("against", f"{shown(path)}: its report was built before any custody entry (no custody_head)")
    return head


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
        click.echo(f"{user['id']:>4}  {shown(user['email'])}  {shown(user['name'])}")


@reviewers.command("add")
@click.argument("email")
@click.option("--password", default=None, help="Their password (default: a random one, printed once).")
@connection_options
@run
def reviewers_add(email, password, url, api_key, files_root) -> None:
    """Create a reviewer account through the organization's invite link.

    Example: verify reviewers add alice@newsroom.example
    """
    from verify.labelstudio.connect import add_reviewer

    from verify.labelstudio.project import label_stream_url

    client = connect(url, api_key)
    user, chosen = add_reviewer(client, email, password)
    click.echo(f"reviewer {shown(user['email'])} (id {user['id']}) can log in at {shown(client.url)}/user/login/"
               + ("" if password else f" with password {chosen}"))
    project = _workspace_project(client.url)
    if project:
        click.echo(f"send them this link: it opens the label stream of project {project} after they log in: "
                   f"{shown(label_stream_url(client.url, project))}")
    else:
        click.echo("after `verify push`, send them the label stream link it prints")


def _workspace_project(server_url: str) -> int | None:
    """The review project of the workspace (-w), if there is one on this server."""
    ctx = click.get_current_context().find_object(Context)
    try:
        ws = ctx.open() if ctx else None
    except VerifyError:
        return None
    if ws is None or ws.get_meta("server_url") != server_url or not ws.get_meta("project_id"):
        return None
    return int(ws.get_meta("project_id"))


if __name__ == "__main__":
    main()
