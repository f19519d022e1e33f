"""The Label Studio projects verify keeps for a workspace: finding, creating, recovering them,
making frames reachable by the server, and importing the tasks that are missing.

Push uses the review project, adjudicate the adjudication project and the claim-decisions project; all go
through here.
The project is found from the workspace (its id and the server it lives on), else by the
workspace marker in project descriptions, else by the workspace's frame keys in a project of
the same case (a lost or rebuilt workspace), else created with the labeling config generated
from the case. Imports go in batches with the SDK's retries off; when an import's outcome is
unclear the project's keys are listed again before anything is retried.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import quote

from verify.case import Case
from verify.clock import timestamp
from verify.errors import OptionError, ProjectMissing, ServerError
from verify.labelstudio.client import (UPLOAD_BATCH, LabelStudioClient, TaskJSON, batched, encode_tasks, import_batches,
                                      validate_config)
from verify.labelstudio.config import (BEARS, GRAPHIC_WARNING, bears_field, build_claim_config, build_config, check_config,
                                       claim_instructions_html, instructions_html)
from verify.labelstudio import objects
from verify.media.context import header as context_header
from verify.records import Context, Frame, Video
from verify.workspace import Workspace

MARKER = "verify-workspace:"
NO_CONTEXT = ""  # the "context" of a task without a strip


def label_stream_url(server_url: str, project_id: int) -> str:
    """The URL that opens the project's label stream ("Label All Tasks") directly; a reviewer who is not
    logged in is sent to the login page and back here (``/user/login/?next=…``, seen on Label Studio 1.23.2)."""
    return f"{server_url.rstrip('/')}/projects/{project_id}/data?labeling=1"


def build_task(frame: Frame, video: Video, image_url: str, workspace_id: str, context: Context | None = None,
               context_url: str | None = None, claims: Sequence[str] = (), shared: dict[str, Any] | None = None,
               ) -> dict[str, Any]:
    """The Label Studio task for one frame (pure); with ``context`` (served at ``context_url``), the strip of the
    pictures around it, and what that strip shows. ``claims``: the case's claim ids, each given its (empty or
    filled) "bears" field, as the labeling config reads one per claim. ``shared``: ``video_fields(video, claims)``,
    made once per video when many tasks are built."""
    return {
        "data": {
            "image": image_url,
            "frame_key": frame.key,
            "timestamp": f"{_where(frame)} · video sha256 {video.sha256[:16]}",
            "t_ms": frame.t_ms,
            **(shared if shared is not None else video_fields(video, claims)),
            **context_fields(context, context_url),
        },
        "meta": {"verify_key": frame.key, "verify_workspace": workspace_id},
    }


def video_fields(video: Video, claims: Sequence[str] = ()) -> dict[str, Any]:
    """The task fields every frame of a video shares (pure): its source line, ids and what the reviewer's page
    keys on (``reviewer_fields``)."""
    prov = video.provenance
    bits = [prov.get("title") or prov["source_id"], prov.get("platform"), f"{prov.get('side', 'unknown')} side",
            f"uploader {prov.get('uploader') or 'unknown'}", f"posted {prov.get('posted_at') or 'date unknown'}"]
    return {
        "provenance": "Source: " + " · ".join(b for b in bits if b),
        "source_id": prov["source_id"],
        "video_sha256": video.sha256,
        **reviewer_fields(video, claims),
    }


def context_fields(context: Context | None, url: str | None) -> dict[str, Any]:
    """The task's context fields (pure): the strip's URL and header, and which pictures it shows (time and pixel
    sha256 each) with the strip's own sha256; empty values when the frame has no strip (the config refers to them)."""
    if context is None or not url:
        return {"context": NO_CONTEXT, "context_header": "", "context_sha256": "", "context_pictures": []}
    return {"context": url, "context_header": context_header(context.pictures), "context_sha256": context.sha256,
            "context_pictures": [{"t_ms": p["t_ms"], "pixel_sha256": p["pixel_sha256"]} for p in context.pictures]}


def reviewer_fields(video: Video, claims: Sequence[str] = ()) -> dict[str, str]:
    """What the reviewer's page keys on (pure): a warning when the source is graphic (the picture is blurred
    until they choose to see it), and a note on each claim the source bears on (asked first; the other
    ``claims`` get an empty one and are folded). A source that names no claims leaves every note empty, and
    the page then opens every claim."""
    fields = {"graphic_warning": GRAPHIC_WARNING if video.provenance.get("graphic") else ""}
    fields.update({bears_field(claim): "" for claim in claims})
    fields.update({bears_field(claim): BEARS for claim in video.claims})
    return fields


def _where(frame: Frame) -> str:
    if frame.preview:
        return f"Keyframe at {timestamp(frame.t_ms)} (PREVIEW: stream keyframes only, shots may be missing)"
    return f"Frame at {timestamp(frame.t_ms)} (shot {frame.shot + 1})"


@dataclass(frozen=True)
class Role:
    """A Label Studio project that verify keeps for a workspace."""

    meta: str  # workspace meta key holding the project id
    config_meta: str  # workspace meta key holding the sha256 of the config verify last set
    marker: str  # written into the project description, to find the project again
    suffix: str  # appended to the case title
    adjudication: bool  # one annotation per task, by the lead; a project lost on the server is made again
    claims: bool = False  # the lead decides claims whose frames conflict (its own labeling config: verify.labelstudio.claims)


REVIEW = Role("project_id", "config_sha256", MARKER, "", False)
ADJUDICATION = Role("adjudication_project_id", "adjudication_config_sha256", "verify-adjudication:", " (adjudication)", True)
CLAIMS = Role("claims_project_id", "claims_config_sha256", "verify-claims:", " (claim decisions)", True, claims=True)


def role_config(case: Case, role: Role, context: bool = True) -> str:
    """The labeling config of the role's project, checked against the case."""
    if role.claims:
        return build_claim_config()
    config = build_config(case, adjudication=role.adjudication, context=context)
    check_config(config, case)
    return config


def role_instructions(case: Case, role: Role, stream_url: str | None = None) -> str:
    """The role's project instructions (with ``stream_url``, the link to its label stream)."""
    if role.claims:
        return claim_instructions_html(case, stream_url)
    return instructions_html(case, role.adjudication, stream_url)


TITLE_MAX = 50  # Label Studio allows 50 characters


def project_title(case: Case, role: Role = REVIEW) -> str:
    """The case title and the role's suffix in Label Studio's 50 characters: a long title is cut at a
    word, its trailing punctuation dropped, and "…" says it was cut."""
    room = TITLE_MAX - len(role.suffix)
    title = " ".join(case.title.split())
    if len(title) > room:
        cut = title[: room - 1]
        if " " in cut and title[room - 1].isalnum():  # cut inside a word: drop that word
            cut = cut.rsplit(" ", 1)[0]
        title = cut.rstrip(" ,;:.–—-/(") + "…"
    return title + role.suffix


def ensure_project(
    ws: Workspace, client: LabelStudioClient, new_project: bool = False, reset_config: bool = False,
    role: Role = REVIEW, context: bool = True, link: bool = True,
) -> tuple[int, bool, int]:
    """Find the workspace's project (of this role) on the server, or create it.

    ``context``: the config shows the frame's context strip (not when frames are sent by direct upload,
    which Label Studio allows only for a config with one picture).
    ``link`` False: a project made now gets the link to its label stream in its instructions from the
    caller (``link_stream``), which can send it beside its next request. A project found without that link
    (its push stopped before it) gets it here.
    Returns (id, created, recovered): ``recovered`` is the number of this workspace's frames
    found in a project that was not yet marked as the workspace's (see ``recover_project``).
    """
    case = ws.case
    config = role_config(case, role, context)
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
    project = None
    if project_id is not None and role.adjudication:
        try:
            project = client.get_project(project_id)
        except ProjectMissing:  # only a queue of disputes, which are sent again: make a new one
            project_id = None
    created = False
    if project_id is None:
        project_id = client.create_project(
            title=project_title(case, role),
            description=f"{case.summary}\n\n{role.marker}{ws.id} case:{case.id}",
            label_config=config,
            instructions=role_instructions(case, role),
            maximum_annotations=per_task,
        )
        created = True
        if link:
            link_stream(client, case, project_id, role)
    else:
        project = project or client.get_project(project_id)
        server_sha = hashlib.sha256((project["label_config"] or "").encode()).hexdigest()
        edited_on_server = server_sha not in (config_sha, ws.get_meta(role.config_meta))
        if edited_on_server and not reset_config:
            raise ServerError(
                f"{client.url}: the labeling config of project {project_id} was changed on the server since verify pushed it; "
                "put the change into the case file, or run `verify push --reset-config` to replace it with the case's config"
            )
        if server_sha != config_sha or project["maximum_annotations"] != per_task:
            client.update_project(project_id, label_config=config, maximum_annotations=per_task,
                                  expert_instruction=linked_instructions(client, case, project_id, role))
        elif project["instructions"] == role_instructions(case, role):  # made, but not yet linked
            link_stream(client, case, project_id, role)
    ws.update_meta(**{role.meta: str(project_id), "server_url": client.url, role.config_meta: config_sha})
    return project_id, created, recovered


def link_stream(client: LabelStudioClient, case: Case, project_id: int, role: Role = REVIEW) -> None:
    """Put the link to the project's label stream into its instructions (it needs the project's id, so a
    project is made without it)."""
    client.update_project(project_id, expert_instruction=linked_instructions(client, case, project_id, role))


def linked_instructions(client: LabelStudioClient, case: Case, project_id: int, role: Role = REVIEW) -> str:
    """The project's instructions with the link to its label stream."""
    return role_instructions(case, role, label_stream_url(client.url, project_id))


def recover_project(ws: Workspace, client: LabelStudioClient, role: Role) -> tuple[int | None, int]:
    """A project of this case (and role) on the server holding frames of this workspace, by their keys.

    Frame keys are derived from the videos' bytes and the frames' pixels, so a workspace rebuilt
    from the same evidence finds its tasks again. The project is marked as this workspace's too.
    Returns (project id or None, number of matching frames).
    """
    ours = {f.key for f in ws.frames()}
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
    client: LabelStudioClient, project_id: int, frames: list[Frame],
    make_task: Callable[[Frame], dict[str, Any]], progress: Callable[[int], None] | None = None,
    existing: dict[str, int] | None = None,
) -> tuple[dict[str, int], int]:
    """Import the frames that are not yet tasks of the project; return (key → task id, number imported).

    ``existing``: the project's tasks when known without listing them (``{}`` for a project made just now).
    Imports go in batches with the SDK's retries off; when an import's outcome is unclear the
    project is listed again, and only a batch that is really missing makes it fail.
    """
    existing = client.task_keys(project_id) if existing is None else dict(existing)
    missing = [f for f in frames if f.key not in existing]
    batches = import_batches(missing)

    def encoded(batch: list[Frame]) -> TaskJSON:
        return encode_tasks([make_task(f) for f in batch])

    with ThreadPoolExecutor(max_workers=1) as pool:  # the next batch is built and encoded while the server stores this one
        ahead = pool.submit(encoded, batches[0]) if batches else None
        for i, batch in enumerate(batches):
            tasks = ahead.result()
            if i + 1 < len(batches):
                ahead = pool.submit(encoded, batches[i + 1])
            try:
                ids = client.import_tasks(project_id, tasks)
            except ServerError:
                ids = None
                existing = client.task_keys(project_id)
                if not all(f.key in existing for f in batch):
                    raise
            if ids is not None:
                existing.update(zip((f.key for f in batch), ids))
            elif not all(f.key in existing for f in batch):  # stored, but the ids were not returned
                existing = client.task_keys(project_id)
            if progress:
                progress(len(batch))
    return existing, len(missing)


def image_mode(client: LabelStudioClient, files_root: Path | None, images: str) -> str:
    """How frames reach the server: "s3" (an S3-compatible bucket, see ``verify.labelstudio.objects``) when
    VERIFY_S3_BUCKET is set, else "local" (local-files storage, the server shares this disk) when a files
    root is known, else "upload" (through the import API); ``images`` overrides."""
    if images == "s3" or (images == "auto" and objects.configured()):
        objects.settings()  # a missing bucket or a bad endpoint is refused before anything is done
        return "s3"
    if images == "upload" or (images == "auto" and files_root is None):
        return "upload"
    require_files_root(client, files_root)
    return "local"


def shows_strips(mode: str, context: bool = True) -> bool:
    """Whether new tasks show their frame's context strip (pure): not when strips are not asked for (``context``
    False), nor for frames sent by direct upload ("upload"), which Label Studio allows only for a labeling config
    with one picture."""
    return context and mode != "upload"


def strips_of(ws: Workspace, keys: Sequence[str]) -> dict[str, Context]:
    """Frame key → its context strip, for the frames ``keys`` that have one, in the order of ``keys``."""
    have = {c.frame_key: c for c in ws.contexts()}
    return {key: have[key] for key in keys if key in have}


def upload_frames(ws: Workspace, client: LabelStudioClient, project_id: int,
                  frames: list[Frame]) -> tuple[dict[str, str], int]:
    """Upload the frames the project does not have yet; return (key → served URL, number uploaded).

    Each upload is recorded at once, so an interrupted push does not upload those again (a
    crash between the upload and the record leaves an unused copy on the server, nothing worse).
    """
    urls = ws.uploads(project_id)
    missing = [f for f in frames if f.key not in urls]
    for batch in batched(missing, UPLOAD_BATCH):  # recorded batch by batch
        got = client.upload_files(project_id, [(f"{f.key}.jpg", ws.path(f.file)) for f in batch])
        new = {f.key: got[f"{f.key}.jpg"] for f in batch}
        ws.record_uploads(project_id, new)
        urls.update(new)
    return urls, len(missing)


def upload_objects(ws: Workspace, client: LabelStudioClient, project_id: int,
                   frames: list[Frame]) -> tuple[dict[str, str], int, str]:
    """Put the frames (and context strips: anything with ``key``, ``file``, ``sha256``) in the S3 bucket,
    named by content (what the workspace has recorded there is not even looked up), and attach the bucket
    to the project as an S3 storage with presigned URLs.

    Returns (key → ``s3://`` URI for the tasks, number uploaded, where). Each batch is recorded once
    stored, so an interrupted push does not send it again.
    """
    config = objects.settings()
    store = objects.ObjectStore(config)
    endpoint = config.endpoint or ""
    named = {f.key: objects.object_key(config.prefix, f.sha256) for f in frames}
    known = ws.stored_objects(endpoint, config.bucket)
    files = {named[f.key]: (ws.path(f.file), f.sha256) for f in frames if named[f.key] not in known}
    uploaded = 0
    if files:
        store.check()
        pending = list(files.items())
        for batch in batched(pending, UPLOAD_BATCH * 5):
            uploaded += store.store({key: path for key, (path, _) in batch})
            ws.record_objects(endpoint, config.bucket, {key: sha for key, (_, sha) in batch})
    attach_bucket(client, project_id, store)
    return {key: objects.object_uri(config.bucket, name) for key, name in named.items()}, uploaded, config.where


def attach_bucket(client: LabelStudioClient, project_id: int, store: objects.ObjectStore) -> None:
    """The store's bucket and prefix as the project's S3 storage, with the credentials the store uses (the server
    turns the tasks' ``s3://`` URIs into presigned URLs with them)."""
    config = store.config
    access_key, secret_key, token = store.credentials()
    client.ensure_s3_storage(project_id, config.bucket, config.prefix, config.endpoint, config.region,
                             access_key, secret_key, token, objects.PRESIGN_TTL_MIN)


def require_files_root(client: LabelStudioClient, files_root: Path | None) -> Path:
    """The server's local-files document root, or a VerifyError saying there is no way to serve frames."""
    if files_root is None:
        raise OptionError(
            "images", f"local needs the local-files root of {client.url}: set VERIFY_FILES_ROOT to its "
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, or choose upload"
        )
    return files_root


@contextmanager
def frames_served(ws: Workspace, client: LabelStudioClient, project_id: int, frames: list[Frame], mode: str,
                  files_root: Path | None, new: bool = False) -> Iterator[tuple[dict[str, str], str]]:
    """Make the frames reachable by the server; yield (key → URL, how) for the tasks to be imported.

    "upload" sends them first; "s3" puts them in the bucket first and attaches it as an S3 storage;
    "local" attaches the folder under the files root as a local-files storage (``new``: to a project made just
    now, which has none to look through), then hard-links the frames into it in the background while the body
    imports the tasks.
    """
    if mode == "upload":
        urls, uploaded = upload_frames(ws, client, project_id, frames)
        yield urls, f"uploaded to the server ({uploaded} new)"
        return
    if mode == "s3":
        urls, uploaded, where = upload_objects(ws, client, project_id, frames)
        yield urls, f"S3 {where} ({uploaded} new)"
        return
    folder, urls = frame_urls(ws, frames, files_root)
    folder.mkdir(parents=True, exist_ok=True)
    # the storage first, on its own: made while an import runs, it made each import twice as slow on SQLite
    # (the two writes wait on the database's lock; measured at 10,000 frames: 3.6-4.0 s alone, 7.9-8.1 s)
    client.ensure_local_storage(project_id, str(folder), listed=not new)
    with ThreadPoolExecutor(max_workers=1) as pool:
        linking = pool.submit(link_frames, ws.root, frames, folder)  # files only: beside the imports
        yield urls, f"local files under {folder}"
        linking.result()


def frame_urls(ws: Workspace, frames: list[Frame], files_root: Path) -> tuple[Path, dict[str, str]]:
    """Where the frames are served from (pure): the workspace's folder under the root, and key → URL."""
    folder = files_root / "verify" / ws.id
    prefix = "/data/local-files/?d=" + quote(str(folder.relative_to(files_root))) + "/"
    return folder, {f.key: prefix + quote(f.file.removeprefix("frames/")) for f in frames}  # files are frames/VIDEO/NAME


def link_frames(root: Path, frames: list[Frame], folder: Path) -> None:
    """Hard-link (or copy, across filesystems) each frame of the workspace at ``root`` into ``folder``, once.

    Each folder is listed once and only the frames missing from it are linked: a push into a new project finds
    them all there (failing one link per frame cost 0.2 s of CPU at 10,000 frames, beside the imports)."""
    present: dict[str, set[str]] = {}  # sub-folder (the video's) → names already in it
    for frame in frames:
        sub, name = frame.file.removeprefix("frames/").rsplit("/", 1)  # files are frames/VIDEO/NAME
        if sub not in present:
            (folder / sub).mkdir(parents=True, exist_ok=True)
            present[sub] = set(os.listdir(folder / sub))
        if name in present[sub]:
            continue
        target = folder / sub / name
        try:
            os.link(root / frame.file, target)
        except FileExistsError:
            pass
        except OSError:
            shutil.copy2(root / frame.file, target)
