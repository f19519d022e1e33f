"""Push: keyframes become Label Studio tasks of the workspace's review project, once each.

The project machinery (find, create or recover the project; serve the frames; import what
is missing, reconciling unclear outcomes) is ``verify.labelstudio.project``. A second push
imports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from verify import custody
from verify.errors import VerifyError
from verify.labelstudio.client import LabelStudioClient
from verify.labelstudio.project import build_task, ensure_project, frames_served, image_mode, import_missing
from verify.workspace import Workspace


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
    videos = {v.sha256: v for v in ws.videos()}
    wanted = [f for f in frames if include_duplicates or not f.duplicate_of]
    workspace_id = ws.id
    with frames_served(ws, client, project_id, wanted, mode, files_root) as (urls, how):
        existing, imported = import_missing(
            client, project_id, wanted, lambda f: build_task(f, videos[f.video_sha256], urls[f.key], workspace_id), progress
        )
    adjudication = int(ws.get_meta("adjudication_project_id") or 0)
    ws.record_tasks(project_id, {f.key: existing[f.key] for f in frames if f.key in existing},
                    keep_projects=(project_id, adjudication))
    custody.record(ws, "push", inputs=[(f.file, f.sha256) for f in wanted], server=client.url,
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
