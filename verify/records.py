"""The records that flow between stages: what the workspace stores, typed.

The workspace (``verify.workspace``) is the only code that reads or writes its tables; it
hands these records out and takes them in. JSON columns arrive decoded (``metadata``,
``provenance``, ``extractor``, ``result``, ``record``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Video:
    """An ingested video: its evidentiary copy, what the file says, and where it came from."""

    sha256: str
    source_id: str
    original_path: str
    evidence: str  # relative to the workspace: evidence/SHA.ext, read-only
    size: int
    ingested_at: str
    metadata: dict[str, Any]  # probe facts, and after extraction the decoder's measurements
    provenance: dict[str, Any]  # case source, platform fields, command-line fields
    frames_status: str | None = None  # None (pending), ok, partial, preview, failed
    frames_note: str | None = None

    @property
    def claims(self) -> list[str]:
        """The claim ids this video is said to bear on (empty: all of the case's)."""
        return list(self.provenance.get("claims") or [])


@dataclass(frozen=True, slots=True)
class Frame:
    """A keyframe extracted from a video, with the facts that prove where it came from."""

    key: str  # sha256 of (video, time, pixels), 32 hex digits: stable across re-extraction
    video_sha256: str
    t_ms: float  # presentation time from the stream start
    frame_index: int  # in presentation order
    shot: int
    file: str  # relative to the workspace: frames/VIDEO/NAME.jpg
    sha256: str  # of the JPEG
    pixel_sha256: str  # of the decoded picture, before any conversion
    phash: str
    width: int
    height: int
    sharpness: float
    extractor: dict[str, Any] = field(default_factory=dict)
    duplicate_of: str | None = None  # key of the frame of an earlier video this one re-uploads
    fingerprint: str | None = None  # re-upload matching fingerprint (JSON), see verify.media.match

    @property
    def preview(self) -> bool:
        return ((self.extractor or {}).get("params") or {}).get("mode") == "preview"


@dataclass(frozen=True, slots=True)
class Annotation:
    """One reviewer's annotation of one task, as pulled (a skip is an annotation with ``was_cancelled``)."""

    id: int
    task_id: int
    frame_key: str | None
    reviewer_id: int | None
    reviewer: str
    was_cancelled: bool
    ground_truth: bool  # a lead reviewer's decision (adjudication project)
    result: list[dict[str, Any]]
    created_at: str | None = None
    updated_at: str | None = None
    project_id: int = 0
    export_file: str = ""


@dataclass(frozen=True, slots=True)
class Capture:
    """One capture of a post (a download with yt-dlp, or an info JSON given with a file)."""

    id: int
    video_sha256: str
    url_given: str | None
    canonical_url: str | None
    captured_at: str
    info_file: str
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Export:
    """One raw Label Studio export, archived byte for byte in exports/."""

    file: str
    sha256: str
    pulled_at: str
    project_id: int
    tasks: int
    annotations: int


@dataclass(frozen=True, slots=True)
class Reupload:
    """Video ``video_sha256`` re-uploads (parts of) the earlier-ingested ``original_sha256``."""

    video_sha256: str
    original_sha256: str
    share: float  # share of the re-upload's frames the original explains (those are not reviewed again)
    frames: int  # how many
    span: str  # where in the original, e.g. "0:20–0:40 of A, mirrored, 1.25× speed"
    mirrored: bool
    speed: float  # the original's seconds per second of the re-upload


@dataclass(frozen=True, slots=True)
class Context:
    """A strip of the pictures on screen around a keyframe (``verify.media.context``), served beside it to reviewers.

    ``key`` serves it as frames are served (a file keyed by its own key); ``pictures`` say what it shows:
    each picture's presentation time, offset from the keyframe and pixel sha256, in order.
    """

    frame_key: str
    key: str  # "context-" + the first 24 hex digits of the JPEG's sha256
    file: str  # relative to the workspace: frames/VIDEO/context/NAME.jpg
    sha256: str  # of the JPEG
    width: int
    height: int
    pictures: list[dict[str, Any]]  # {"t_ms", "offset_ms", "pixel_sha256"}, by time
    maker: dict[str, Any]  # verify.context's version, the decoder, the parameters
    made_at: str

    @property
    def times_ms(self) -> list[float]:
        return [p["t_ms"] for p in self.pictures]
