"""Push: keyframes become Label Studio tasks, once each.

The project is found from the workspace (its id and the server it lives on), else by the
workspace marker in project descriptions, else created with the labeling config generated
from the case. Frames are staged under the server's local-files document root and a Local
Files storage is attached. Then the project's task keys are listed and only missing frames
are imported, in batches, with the SDK's retries off; if an import's outcome is unclear the
keys are listed again before anything is retried. A second push imports nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

from verify import custody
from verify.case import Case
from verify.errors import ServerError, VerifyError
from verify.labelstudio.config import build_config, check_config, instructions_html
from verify.labelstudio.client import UPLOAD_BATCH, LabelStudioClient, batched, validate_config
from verify.workspace import Workspace

MARKER = "verify-workspace:"


@dataclass
class PushResult:
    project_id: int
    project_url: str
    created_project: bool
    frames: int
    already_there: int
    imported: int
    skipped_duplicates: int
    recovered: int = 0  # frames that identified a project the workspace did not know
    images: str = ""  # how the frames reach the server


def timestamp(t_ms: float) -> str:
    """Milliseconds as H:MM:SS.mmm."""
    total = int(round(t_ms))
    hours, rest = divmod(total, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def build_task(frame: dict[str, Any], video: dict[str, Any], image_url: str, workspace_id: str) -> dict[str, Any]:
    """The Label Studio task for one frame (pure)."""
    prov = video["provenance"]
    bits = [prov.get("title") or prov["source_id"], prov.get("platform"), f"{prov.get('side', 'unknown')} side",
            f"uploader {prov.get('uploader') or 'unknown'}", f"posted {prov.get('posted_at') or 'date unknown'}"]
    return {
        "data": {
            "image": image_url,
            "frame_key": frame["key"],
            "provenance": "Source: " + " · ".join(b for b in bits if b),
            "timestamp": f"{_where(frame)} · video sha256 {video['sha256'][:16]}",
            "source_id": prov["source_id"],
            "video_sha256": video["sha256"],
            "t_ms": frame["t_ms"],
        },
        "meta": {"verify_key": frame["key"], "verify_workspace": workspace_id},
    }


def _where(frame: dict[str, Any]) -> str:
    if ((frame.get("extractor") or {}).get("params") or {}).get("mode") == "preview":
        return f"Keyframe at {timestamp(frame['t_ms'])} (PREVIEW: stream keyframes only, shots may be missing)"
    return f"Frame at {timestamp(frame['t_ms'])} (shot {frame['shot'] + 1})"


@dataclass(frozen=True)
class Role:
    """A Label Studio project that verify keeps for a workspace."""

    meta: str  # workspace meta key holding the project id
    config_meta: str  # workspace meta key holding the sha256 of the config verify last set
    marker: str  # written into the project description, to find the project again
    suffix: str  # appended to the case title
    adjudication: bool


REVIEW = Role("project_id", "config_sha256", MARKER, "", False)
ADJUDICATION = Role("adjudication_project_id", "adjudication_config_sha256", "verify-adjudication:", " (adjudication)", True)


def project_title(case: Case, role: Role = REVIEW) -> str:
    return case.title[: 50 - len(role.suffix)] + role.suffix  # Label Studio allows 50 characters


def ensure_project(
    ws: Workspace, client: LabelStudioClient, new_project: bool = False, reset_config: bool = False,
    role: Role = REVIEW,
) -> tuple[int, bool, int]:
    """Find the workspace's project (of this role) on the server, or create it.

    Returns (id, created, recovered): ``recovered`` is the number of this workspace's frames
    found in a project that was not yet marked as the workspace's (see ``recover_project``).
    """
    case = ws.case
    config = build_config(case, adjudication=role.adjudication)
    check_config(config, case)
    validate_config(config)
    config_sha = hashlib.sha256(config.encode()).hexdigest()
    per_task = 1 if role.adjudication else case.review.reviewers_per_frame
    stored = ws.get_meta(role.meta)
    same_server = ws.get_meta("server_url") == client.url
    project_id = int(stored) if stored and same_server and not new_project else None
    if project_id is None and not new_project:
        found = client.find_projects(role.marker + ws.id)
        if len(found) > 1:
            ids = ", ".join(str(p["id"]) for p in found)
            raise ServerError(f"{client.url}: projects {ids} all belong to this workspace; delete the extra ones in Label Studio")
        project_id = found[0]["id"] if found else None
    recovered = 0
    if project_id is None and not new_project:  # the workspace may be new or restored: look for the case's project
        project_id, recovered = recover_project(ws, client, role)
    created = False
    if project_id is None:
        project_id = client.create_project(
            title=project_title(case, role),
            description=f"{case.summary}\n\n{role.marker}{ws.id} case:{case.id}",
            label_config=config,
            instructions=instructions_html(case, role.adjudication),
            maximum_annotations=per_task,
        )
        created = True
    else:
        project = client.get_project(project_id)
        server_sha = hashlib.sha256((project["label_config"] or "").encode()).hexdigest()
        edited_on_server = server_sha not in (config_sha, ws.get_meta(role.config_meta))
        if edited_on_server and not reset_config:
            raise ServerError(
                f"{client.url}: the labeling config of project {project_id} was changed on the server since verify pushed it; "
                "put the change into the case file, or run `verify push --reset-config` to replace it with the case's config"
            )
        if server_sha != config_sha or project["maximum_annotations"] != per_task:
            client.update_project(project_id, label_config=config, maximum_annotations=per_task,
                                  expert_instruction=instructions_html(case, role.adjudication))
    with ws.transaction():
        ws.set_meta(role.meta, str(project_id))
        ws.set_meta("server_url", client.url)
        ws.set_meta(role.config_meta, config_sha)
    return project_id, created, recovered


def recover_project(ws: Workspace, client: LabelStudioClient, role: Role) -> tuple[int | None, int]:
    """A project of this case (and role) on the server holding frames of this workspace, by their keys.

    Frame keys are derived from the videos' bytes and the frames' pixels, so a workspace rebuilt
    from the same evidence finds its tasks again. The project is marked as this workspace's too.
    Returns (project id or None, number of matching frames).
    """
    ours = {f["key"] for f in ws.frames()}
    candidates = [p for p in client.find_projects(f"case:{ws.case.id}") if (role.marker in p["description"])]
    matches = sorted(((len(ours & set(client.task_keys(p["id"]))), p) for p in candidates), key=lambda m: -m[0])
    matches = [m for m in matches if m[0]]
    if not matches:
        return None, 0
    if len(matches) > 1 and matches[1][0] == matches[0][0]:
        ids = ", ".join(str(p["id"]) for _, p in matches)
        raise ServerError(f"{client.url}: projects {ids} all hold this workspace's frames; run `verify push --new-project`, "
                          "or delete the extra ones in Label Studio")
    count, project = matches[0]
    client.update_project(project["id"], description=f"{project['description']}\n{role.marker}{ws.id}")
    return project["id"], count


def import_missing(
    client: LabelStudioClient, project_id: int, frames: list[dict[str, Any]],
    make_task: Callable[[dict[str, Any]], dict[str, Any]], progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, int], int]:
    """Import the frames that are not yet tasks of the project; return (key → task id, number imported).

    Imports go in batches with the SDK's retries off; when an import's outcome is unclear the
    project is listed again, and only a batch that is really missing makes it fail.
    """
    existing = client.task_keys(project_id)
    missing = [f for f in frames if f["key"] not in existing]
    for batch in batched(missing):
        try:
            ids = client.import_tasks(project_id, [make_task(f) for f in batch])
        except ServerError:
            ids = None
            existing = client.task_keys(project_id)
            if not all(f["key"] in existing for f in batch):
                raise
        if ids is not None:
            existing.update(zip((f["key"] for f in batch), ids))
        elif not all(f["key"] in existing for f in batch):  # stored, but the ids were not returned
            existing = client.task_keys(project_id)
        if progress:
            progress(len(batch))
    return existing, len(missing)


def image_mode(client: LabelStudioClient, files_root: Path | None, images: str) -> str:
    """How frames reach the server: "local" (local-files storage, the server shares this disk) when a
    files root is known, else "upload" (through the import API); ``images`` overrides."""
    if images == "upload" or (images == "auto" and files_root is None):
        return "upload"
    require_files_root(client, files_root)
    return "local"


def upload_frames(ws: Workspace, client: LabelStudioClient, project_id: int,
                  frames: list[dict[str, Any]]) -> tuple[dict[str, str], int]:
    """Upload the frames the project does not have yet; return (key → served URL, number uploaded).

    Each upload is recorded at once, so an interrupted push does not upload those again (a
    crash between the upload and the record leaves an unused copy on the server, nothing worse).
    """
    rows = ws.db.execute("SELECT frame_key, url FROM uploads WHERE project_id = ?", (project_id,)).fetchall()
    urls = dict((r[0], r[1]) for r in rows)
    missing = [f for f in frames if f["key"] not in urls]
    for batch in batched(missing, UPLOAD_BATCH):  # recorded batch by batch
        got = client.upload_files(project_id, [(f"{f['key']}.jpg", ws.path(f["file"])) for f in batch])
        new = {f["key"]: got[f"{f['key']}.jpg"] for f in batch}
        with ws.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO uploads (project_id, frame_key, url) VALUES (?, ?, ?)",
                           [(project_id, k, u) for k, u in new.items()])
        urls.update(new)
    return urls, len(missing)


def require_files_root(client: LabelStudioClient, files_root: Path | None) -> Path:
    """The server's local-files document root, or a VerifyError saying there is no way to serve frames."""
    if files_root is None:
        raise VerifyError(
            f"{client.url}: --images local needs the server's local-files root: set VERIFY_FILES_ROOT to its "
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, or use --images upload"
        )
    return files_root


@contextmanager
def frames_served(ws: Workspace, client: LabelStudioClient, project_id: int, frames: list[dict[str, Any]], mode: str,
                  files_root: Path | None) -> Iterator[tuple[dict[str, str], str]]:
    """Make the frames reachable by the server; yield (key → URL, how) for the tasks to be imported.

    "upload" sends them first; "local" hard-links them under the files root (and attaches the
    storage) in the background while the body imports the tasks.
    """
    if mode == "upload":
        urls, uploaded = upload_frames(ws, client, project_id, frames)
        yield urls, f"uploaded to the server ({uploaded} new)"
        return
    folder, urls = frame_urls(ws, frames, files_root)
    with ThreadPoolExecutor(max_workers=1) as pool:
        serving = pool.submit(lambda: (link_frames(ws.root, frames, folder), client.ensure_local_storage(project_id, str(folder))))
        yield urls, f"local files under {folder}"
        serving.result()


def frame_urls(ws: Workspace, frames: list[dict[str, Any]], files_root: Path) -> tuple[Path, dict[str, str]]:
    """Where the frames are served from (pure): the workspace's folder under the root, and key → URL."""
    folder = files_root / "verify" / ws.id
    prefix = "/data/local-files/?d=" + quote(str(folder.relative_to(files_root))) + "/"
    return folder, {f["key"]: prefix + quote(str(Path(f["file"]).relative_to("frames"))) for f in frames}


def link_frames(root: Path, frames: list[dict[str, Any]], folder: Path) -> None:
    """Hard-link (or copy, across filesystems) each frame of the workspace at ``root`` into ``folder``, once."""
    made: set[Path] = set()
    for frame in frames:
        target = folder / Path(frame["file"]).relative_to("frames")
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        try:
            os.link(root / frame["file"], target)
        except FileExistsError:
            pass
        except OSError:
            shutil.copy2(root / frame["file"], target)


def push(
    ws: Workspace,
    client: LabelStudioClient,
    files_root: Path | None,
    include_duplicates: bool = False,
    new_project: bool = False,
    reset_config: bool = False,
    progress: Callable[[int], None] | None = None,
    images: str = "auto",
) -> PushResult:
    """Send every extracted frame that is not yet a task; return what was done.

    Raises:
        ServerError, AuthError, ProjectMissing: from Label Studio.
        VerifyError: no frames to push, or no way to serve them.
    """
    frames = ws.frames()
    if not frames:
        raise VerifyError("no frames to push; run `verify ingest VIDEO…` and `verify frames` first")
    mode = image_mode(client, files_root, images)
    project_id, created, recovered = ensure_project(ws, client, new_project, reset_config)
    videos = {v["sha256"]: v for v in ws.videos()}
    wanted = [f for f in frames if include_duplicates or not f["duplicate_of"]]
    workspace_id = ws.id
    with frames_served(ws, client, project_id, wanted, mode, files_root) as (urls, how):
        existing, imported = import_missing(
            client, project_id, wanted, lambda f: build_task(f, videos[f["video_sha256"]], urls[f["key"]], workspace_id), progress
        )
    known = ws.tasks()
    with ws.transaction() as db:
        # forget tasks of a project this workspace no longer uses (after --new-project)
        db.execute("DELETE FROM tasks WHERE project_id NOT IN (?, ?)", (project_id, int(ws.get_meta("adjudication_project_id") or 0)))
        db.executemany(
            "INSERT OR REPLACE INTO tasks (frame_key, project_id, task_id) VALUES (?, ?, ?)",
            [(f["key"], project_id, existing[f["key"]]) for f in frames
             if f["key"] in existing and known.get(f["key"]) != existing[f["key"]]],
        )
    custody.record(ws, "push", inputs=[(f["file"], f["sha256"]) for f in wanted], server=client.url,
                   label_studio_user=client.user.get("email"), project_id=project_id, created_project=created,
                   imported=imported, already_there=len(wanted) - imported, images=how)
    return PushResult(
        project_id=project_id,
        project_url=f"{client.url}/projects/{project_id}/data",
        created_project=created,
        frames=len(frames),
        already_there=len(wanted) - imported,
        imported=imported,
        skipped_duplicates=len(frames) - len(wanted),
        recovered=recovered,
        images=how,
    )
