"""Push: keyframes become Label Studio tasks of the workspace's review project, once each.

The project machinery (find, create or recover the project; serve the frames; import what
is missing, reconciling unclear outcomes) is ``verify.labelstudio.project``. A second push
imports nothing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from verify import custody
from verify.errors import VerifyError
from verify.labelstudio.client import LabelStudioClient
from verify.labelstudio.project import (build_task, ensure_project, frames_served, image_mode, import_missing,
                                       label_stream_url, link_stream, shows_strips, strips_of, video_fields)
from verify.records import Context, Frame
from verify.workspace import Workspace, locked, read_frames


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
    with_context: int = 0  # tasks imported now with a context strip
    label_stream_url: str = ""  # the link to hand to reviewers: it opens the label stream (blind), after login too


def _task_maker(ws: Workspace, urls: dict[str, str], strips: dict[str, Context], shown: dict[str, str]) -> Callable[[Frame], dict]:
    """The task of a frame, its picture at ``urls``; a frame with a strip in ``strips`` shows it, and is noted in ``shown``."""
    videos = {v.sha256: v for v in ws.videos()}
    claim_ids = [c.id for c in ws.case.claims]
    shared = {sha: video_fields(video, claim_ids) for sha, video in videos.items()}  # the same for each frame of a video
    workspace_id = ws.id

    def make_task(f: Frame) -> dict:
        strip = strips.get(f.key)
        if strip:
            shown[f.key] = strip.key
        return build_task(f, videos[f.video_sha256], urls[f.key], workspace_id, strip,
                          urls.get(strip.key) if strip else None, shared=shared[f.video_sha256])
    return make_task


@locked("push")
def push(
    ws: Workspace,
    client: LabelStudioClient,
    files_root: Path | None,
    include_duplicates: bool = False,
    new_project: bool = False,
    reset_config: bool = False,
    progress: Callable[[int], None] | None = None,
    images: str = "auto",
    context: bool = True,
) -> PushResult:
    """Send every extracted frame that is not yet a task; return what was done.

    ``context``: a new task shows the frame's context strip (``verify.media.strips`` makes them) beside it,
    served as frames are, unless frames go by direct upload (see ``shows_strips``); which strip each task shows is
    recorded in the workspace and the push's log entry.

    Raises:
        ServerError, AuthError, ProjectMissing: from Label Studio.
        VerifyError: no frames to push, or no way to serve them.
    """
    if not ws.has_frames():
        raise VerifyError("no frames to push; run `verify ingest VIDEO…` and `verify frames` first")
    mode = image_mode(client, files_root, images)
    context = shows_strips(mode, context)
    shown: dict[str, str] = {}  # frame key → key of the strip its new task shows
    with ThreadPoolExecutor(max_workers=2) as aside:
        # beside the project's creation the frames are read, and beside the frames' storage a new project's
        # instructions get their link (each about 0.1 s); both before the first import, as a write beside an
        # import slows it on SQLite
        reading = aside.submit(read_frames, ws.root, fingerprints=False)  # no re-upload fingerprints: less memory
        project_id, created, recovered = ensure_project(ws, client, new_project, reset_config, context=context, link=False)
        linking = aside.submit(link_stream, client, ws.case, project_id) if created else None
        frames = reading.result()
        wanted = [f for f in frames if include_duplicates or not f.duplicate_of]
        tasked = ws.tasks()  # of the project found or made just now
        strips = strips_of(ws, [f.key for f in wanted if f.key not in tasked]) if context else {}
        served = frames_served(ws, client, project_id, [*wanted, *strips.values()], mode, files_root, new=created)
        with served as (urls, how):
            if linking:
                linking.result()
            existing, imported = import_missing(client, project_id, wanted, _task_maker(ws, urls, strips, shown), progress,
                                                existing={} if created else None)
    ws.record_context_tasks(project_id, {key: strip for key, strip in shown.items() if key in existing})
    adjudication = int(ws.get_meta("adjudication_project_id") or 0)
    ws.record_tasks(project_id, {f.key: existing[f.key] for f in frames if f.key in existing},
                    keep_projects=(project_id, adjudication))
    custody.record(ws, "push", inputs=[(f.file, f.sha256) for f in wanted]
                   + [(strips[key].file, strips[key].sha256) for key in sorted(shown) if key in existing], server=client.url,
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
        with_context=sum(1 for key in shown if key in existing),
        label_stream_url=label_stream_url(client.url, project_id),
    )
