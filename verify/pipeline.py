"""The pipeline: the stages a coordinator runs, as library calls, each logging its own custody entry.

    init → ingest → frames → push → (reviewers label) → pull → merge → report
                                                          ↘ adjudicate (disputed frames) ↗

Ingest, frames, context strips, push, pull and adjudicate live in their own modules and log
themselves; this module adds the stages that only tie others together (init, merge, report),
``context_strips`` (make the strips only when the push will show them) and ``sync``, which runs
context strips → push → pull → merge → report once each. The CLI calls one function here (or in a stage
module) per command and writes no custody entry itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from verify import custody
from verify.files import atomic_write
from verify.labelstudio.adjudicate import AdjudicateResult
from verify.labelstudio.adjudicate import adjudicate as send_disputes
from verify.labelstudio.client import LabelStudioClient
from verify.labelstudio.pull import PullResult, pull
from verify.labelstudio.project import image_mode, shows_strips
from verify.labelstudio.push import PushResult, push
from verify.media.strips import ContextsMade, make_strips
from verify.report.build import FORMATS, write_reports
from verify.verdicts.merge import Verdicts
from verify.verdicts.merge import merge as merge_verdicts
from verify.workspace import Workspace, locked

VERDICTS_FILE = "reports/verdicts.json"


@dataclass
class Merged:
    """The merge stage's result: the verdicts and the file they were written to."""

    verdicts: Verdicts
    file: str  # relative to the workspace
    sha256: str


@dataclass
class Reports:
    written: dict[str, tuple[Path, str]]  # format → (path, sha256)
    merged: Merged


@dataclass
class Synced:
    push: PushResult
    pull: PullResult
    reports: Reports
    contexts: ContextsMade | None = None  # None: no strip shows (--no-context, or frames sent by direct upload)


def init(root: str | Path, case_file: str | Path, tsa: list[str] | None = None) -> Workspace:
    """Create a workspace for a case (or install a changed case file in it) and log it.

    ``tsa``: the RFC 3161 time-stamp authorities to anchor the log, evidence and reports with from now on
    (``[]`` or ``["none"]``: stop stamping; None: keep the workspace's setting).

    Raises:
        CaseError: the case file is bad.
        WorkspaceError: the folder holds a workspace for another case.
        OptionError: a time-stamp authority's URL is not http(s).
    """
    from verify import timestamps

    ws = Workspace.create(root, case_file)
    if tsa is not None:
        timestamps.configure(ws, tsa)
    case = ws.case
    custody.record(ws, "init", inputs=[(str(Path(case_file).resolve()), case.sha256)], outputs=[("case.yaml", case.sha256)],
                   case_id=case.id)
    return ws


def current_verdicts(ws: Workspace, unknown_labels: str = "ignore") -> Verdicts:
    """The verdicts the workspace's pulled annotations add up to now, merged in memory (nothing written)."""
    return merge_verdicts(ws.case, ws.videos(), ws.frames(), ws.annotations(), ws.tasks(), unknown_labels)


@locked("merge")
def merge(ws: Workspace, unknown_labels: str = "ignore") -> Merged:
    """Merge the pulled annotations, write reports/verdicts.json and log it with the exports it rests on.

    Raises:
        VerifyError: ``unknown_labels="fail"`` and an annotation uses a label the case does not define.
    """
    verdicts = current_verdicts(ws, unknown_labels)
    data = json.dumps(verdicts.to_json(), indent=2, ensure_ascii=False).encode()
    ws.path("reports").mkdir(exist_ok=True)
    atomic_write(ws.path(VERDICTS_FILE), data)
    [(name, sha)] = custody.record_files(ws, "merge", [ws.path(VERDICTS_FILE)],
                                         inputs=[(e.file, e.sha256) for e in ws.exports_in_use()],
                                         unknown_labels=unknown_labels)
    return Merged(verdicts, name, sha)


@locked("report")
def report(ws: Workspace, formats: tuple[str, ...] = (), out: Path | None = None, unknown_labels: str = "ignore",
           merged: Merged | None = None, paper: str = "a4") -> Reports:
    """Write the reports from a merge (this one's, or a fresh ``merge``) and log every file written.

    Only the formats asked for are written (a PDF, on ``paper`` "a4" or "letter", leaves report.html as it was).

    Raises:
        VerifyError: a PDF was asked for and Chromium is missing or failed.
    """
    merged = merged or merge(ws, unknown_labels)
    written = write_reports(ws, merged.verdicts, tuple(formats) or FORMATS, Path(out) if out else None,
                            (merged.file, merged.sha256), paper)
    assets = sorted(written["md"].parent.joinpath("report-assets").glob("*.jpg")) if "md" in written else []
    hashes = custody.record_files(ws, "report", [*written.values(), *assets],
                                  inputs=[(e.file, e.sha256) for e in ws.exports_in_use()] + [(merged.file, merged.sha256)],
                                  formats=sorted(written), custody_head=ws.get_meta(custody.HEAD))
    return Reports({fmt: (path, sha) for (fmt, path), (_, sha) in zip(written.items(), hashes)}, merged)


@locked("push")
def context_strips(ws: Workspace, client: LabelStudioClient, files_root: Path | None, include_duplicates: bool = False,
                   images: str = "auto", context: bool = True) -> tuple[str, ContextsMade | None]:
    """Decide how frames will reach the server, and make the missing context strips (``verify.media.strips``) when
    the tasks pushed next will show them (frames sent by direct upload show none: ``shows_strips``).

    Returns (the image mode, for the push to use as decided; what was made, None when no strip shows).
    Raises:
        OptionError: ``images`` names no usable way to serve the frames (nothing is made).
    """
    mode = image_mode(client, files_root, images)
    return mode, make_strips(ws, include_duplicates) if shows_strips(mode, context) else None


@locked("sync")
def sync(ws: Workspace, client: LabelStudioClient, files_root: Path | None, include_duplicates: bool = False,
         unknown_labels: str = "ignore", images: str = "auto", progress: Callable[[int], None] | None = None,
         context: bool = True) -> Synced:
    """Make the missing context strips the push will show (none with ``context`` False or frames sent by direct
    upload), push new frames, pull the annotations, merge once and write the reports from that merge.

    Raises:
        ServerError, AuthError, ProjectMissing: from Label Studio (stages already done stay done).
        VerifyError: see each stage.
    """
    mode, strips = context_strips(ws, client, files_root, include_duplicates, images, context)
    pushed = push(ws, client, files_root, include_duplicates, progress=progress, images=mode, context=context)
    pulled = pull(ws, client)
    return Synced(pushed, pulled, report(ws, unknown_labels=unknown_labels, merged=merge(ws, unknown_labels)), strips)


@locked("adjudicate")
def adjudicate(ws: Workspace, client: LabelStudioClient, files_root: Path | None, lead: str | None = None,
               images: str = "auto", progress: Callable[[int], None] | None = None) -> AdjudicateResult:
    """Send the frames the current verdicts show disputed to the lead (see ``verify.labelstudio.adjudicate``)."""
    return send_disputes(ws, client, files_root, current_verdicts(ws), lead, progress=progress, images=images)
