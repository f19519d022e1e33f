"""Media: the one place that decodes video (PyAV, FFmpeg's own libraries).

Why PyAV and not OpenCV's VideoCapture for decoding: it hands over each decoded picture as it
came out of the decoder, so the per-frame analysis can read the luma plane in place and only
the few kept frames are converted to colour; it gives the stream's own presentation times, the
display-matrix rotation, container tags (creation time, encoder, device), and can decode only
the stream's keyframes. OpenCV still does all the image work (``verify.media.frames``).

Everything here runs inside an isolated child process (``verify.media.isolate``).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterator

import av
import numpy as np

from verify.errors import MediaError

# pixel formats whose first plane is 8-bit luma at full resolution: read in place
_LUMA_FIRST = {
    "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "yuv410p", "yuv440p",
    "yuvj440p", "yuva420p", "yuva422p", "yuva444p", "nv12", "nv21", "nv16", "gray",
}
# only the local file itself: no nested network or pipe access from a demuxer
_OPEN_OPTIONS = {"protocol_whitelist": "file"}
DECODER = f"pyav/{av.__version__} (ffmpeg {'.'.join(map(str, av.library_versions['libavcodec']))} libavcodec)"


@dataclass
class Picture:
    """One decoded picture: its place in the stream and a view of its luma plane (not rotated)."""

    index: int  # in presentation order, counting every decoded picture (keyframes only in preview)
    t_ms: float  # presentation time from the stream start, in milliseconds
    luma: np.ndarray
    frame: av.VideoFrame
    rotation: int
    gain: float  # luma differences × gain are on the full 0-255 scale (limited-range video spans 16-235)

    def pixel_sha256(self) -> str:
        """sha256 of the decoded picture in the decoder's own pixel format, before any conversion.

        PyAV's array of the picture where it has one (so hashes recorded before stay valid);
        where it has none (4:2:0 and 4:2:2 of odd width or height, alpha, P010…) the planes'
        rows without their padding, one plane after the other; formats with packed or padded
        pixels it cannot lay out are hashed as their colour rendering.
        """
        try:
            data = self.frame.to_ndarray()
        except (AssertionError, ValueError, NotImplementedError):  # PyAV asserts even sizes for 4:2:0/4:2:2
            planes = _plane_rows(self.frame)
            if planes is not None:
                digest = hashlib.sha256()
                for rows in planes:
                    digest.update(np.ascontiguousarray(rows).data)
                return digest.hexdigest()
            data = self.frame.to_ndarray(format="bgr24")
        data = data if isinstance(data, np.ndarray) else np.concatenate([np.ravel(d) for d in data])
        return hashlib.sha256(np.ascontiguousarray(data).data).hexdigest()

    def bgr(self) -> np.ndarray:
        """The picture in colour (BGR, as OpenCV expects), turned upright per the rotation metadata."""
        import cv2

        image = self.frame.to_ndarray(format="bgr24")
        turn = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}.get(self.rotation % 360)
        return cv2.rotate(image, turn) if turn is not None else image


def _gain(frame: av.VideoFrame) -> float:
    name = frame.format.name
    full = frame.color_range == 2 or name.startswith("yuvj") or (name not in _LUMA_FIRST and _deep_luma(frame) is None)
    return 1.0 if full else 255 / 219


def _deep_luma(frame: av.VideoFrame) -> tuple[str, int] | None:
    """(numpy dtype, bits to drop) of a 9-16-bit luma first plane (yuv420p10le, p010le, gray12le…), else None."""
    fmt = frame.format
    first = fmt.components[0] if fmt.components else None
    if first is None or first.plane != 0 or not 8 < first.bits <= 16 or fmt.is_rgb or fmt.is_bayer or fmt.has_palette:
        return None
    if not (fmt.name.startswith(("yuv", "gray", "p0", "p2", "p4", "nv")) and fmt.name.endswith(("le", "be"))):
        return None
    shift = 16 - first.bits if fmt.name.startswith(("p0", "p2", "p4")) else 0  # P010 & co keep their bits high
    return (">u2" if fmt.is_big_endian else "<u2"), shift + first.bits - 8


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """The luma plane as 8-bit grey, without copying where the decoder's own format allows."""
    if frame.format.name in _LUMA_FIRST:
        plane = frame.planes[0]
        return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
    deep = _deep_luma(frame)
    if deep is not None:  # 10/12/16-bit: the top 8 bits of each sample
        dtype, drop = deep
        plane = frame.planes[0]
        samples = np.frombuffer(plane, dtype).reshape(plane.height, plane.line_size // 2)[:, : plane.width]
        return (samples >> drop).astype(np.uint8)
    return frame.to_ndarray(format="gray")  # RGB, palette, packed YUV…: converted by swscale


def _plane_rows(frame: av.VideoFrame) -> list[np.ndarray] | None:
    """Each plane's rows without line padding, for formats whose planes hold whole samples side by side."""
    fmt = frame.format
    if fmt.is_bit_stream or fmt.is_bayer or fmt.has_palette or not fmt.components:
        return None
    per_plane: dict[int, int] = {}
    for c in fmt.components:
        per_plane[c.plane] = per_plane.get(c.plane, 0) + (1 if c.bits <= 8 else 2)
    if not fmt.is_planar and len(fmt.components) > 1:  # packed pixels (RGB, YUYV…): the layout is not known here
        return None
    out = []
    for index, plane in enumerate(frame.planes):
        row = plane.width * per_plane.get(index, 0)
        if row == 0 or row > plane.line_size:
            return None
        out.append(np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :row])
    return out


class Video:
    """An opened video file: ``facts`` from its headers, ``pictures()`` decodes it once."""

    def __init__(self, path: str, threads: int = 2, keyframes_only: bool = False, max_pixels: int | None = None):
        try:
            self.container = av.open(path, options=_OPEN_OPTIONS, metadata_errors="replace")
        except av.FFmpegError as exc:
            raise MediaError(f"not readable as video: the container is corrupt or incomplete (FFmpeg: {_reason(exc)}); re-download or re-export it") from None
        if not self.container.streams.video:
            kinds = sorted({s.type for s in self.container.streams}) or ["no streams"]
            self.container.close()
            raise MediaError(f"no video stream (the file has: {', '.join(kinds)})")
        self.stream = self.container.streams.video[0]
        ctx = self.stream.codec_context
        self.width, self.height = ctx.width, ctx.height
        if max_pixels and self.width * self.height > max_pixels:
            self.close()
            raise MediaError(f"frames of {self.width}×{self.height} exceed the pixel cap of {max_pixels:,} (8K UHD); "
                             "not decoded: verify refuses larger video as a guard against decoder memory bombs")
        self.max_pixels = max_pixels
        self.stream.thread_type = "AUTO"
        ctx.thread_count = max(1, threads)
        if keyframes_only:
            ctx.skip_frame = "NONKEY"
        tb = self.stream.time_base or Fraction(1, 1000)
        self.time_base = Fraction(tb.numerator, tb.denominator)
        self.start_pts = self.stream.start_time or 0
        self.decode_errors = 0
        self.last_error = ""

    def __enter__(self) -> "Video":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    def pictures(self, prefetch: int = 0) -> Iterator[Picture]:
        """Decode every picture (or every keyframe) in presentation order.

        A corrupt packet is skipped and counted (``decode_errors``), as players do; a demuxer
        error ends the stream early with ``last_error`` set, keeping what was decoded.
        ``prefetch``: decode in a thread up to this many pictures ahead of the caller, so that
        decoding overlaps the caller's own work.
        """
        return _ahead(self._decode(), prefetch) if prefetch else self._decode()

    def _decode(self) -> Iterator[Picture]:
        index = -1
        last_t = None
        step = 1000 / float(self.stream.average_rate or 25)
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError as exc:
                self.last_error = _reason(exc)
                return
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                self.decode_errors += 1
                self.last_error = _reason(exc)
                continue
            for frame in frames:
                if self.max_pixels and frame.width * frame.height > self.max_pixels:
                    raise MediaError(f"a frame of {frame.width}×{frame.height} mid-stream exceeds the pixel cap of {self.max_pixels:,}")
                index += 1
                if frame.pts is not None:
                    t_ms = float((frame.pts - self.start_pts) * self.time_base * 1000)
                else:  # no timestamp in the stream: the previous one plus a nominal frame
                    t_ms = 0.0 if last_t is None else last_t + step
                last_t = t_ms
                yield Picture(index, round(t_ms, 3), _luma(frame), frame, frame.rotation, _gain(frame))

    def facts(self) -> dict[str, Any]:
        """What the container and stream headers say (estimates; ``verify frames`` measures)."""
        s, ctx, c = self.stream, self.stream.codec_context, self.container
        rate = s.average_rate or s.guessed_rate
        duration = float(s.duration * self.time_base) if s.duration else (c.duration / 1e6 if c.duration else None)
        tags = {**_tags(c.metadata), **{f"stream.{k}": v for k, v in _tags(s.metadata).items()}}
        return {
            "demuxer": c.format.name,
            "codec": ctx.name,
            "codec_long": ctx.codec.long_name,
            "profile": ctx.profile,
            "pixel_format": ctx.pix_fmt,
            "width": self.width,
            "height": self.height,
            "nominal_fps": round(float(rate), 3) if rate else None,
            "frame_count_estimate": s.frames or None,
            "duration_estimate_s": round(duration, 3) if duration else None,
            "start_time_s": round(float(self.start_pts * self.time_base), 6),
            "bitrate_kbps": round(c.bit_rate / 1000) if c.bit_rate else None,
            "streams": [f"{x.type}:{x.codec_context.name if x.codec_context else '?'}" for x in c.streams],
            "creation_time": tags.get("creation_time") or tags.get("stream.creation_time"),
            "encoder": tags.get("encoder") or tags.get("stream.encoder"),
            "tags": tags,
            "reader": DECODER,
        }


def _ahead(items: Iterator, depth: int) -> Iterator:
    """Yield from ``items`` while a thread keeps up to ``depth`` of them ready; its errors are re-raised here."""
    ready: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(end)
        except BaseException as exc:  # handed to the consumer
            ready.put(exc)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:  # the consumer stopped early or failed: let the thread finish before the file is closed
        stop.set()
        worker.join()


def _tags(metadata: dict) -> dict[str, str]:
    """Container/stream tags as short printable strings (they come from the file: untrusted)."""
    out = {}
    for key, value in list(metadata.items())[:64]:
        key = "".join(ch for ch in str(key) if ch.isprintable())[:80]
        out[key] = "".join(ch for ch in str(value) if ch.isprintable())[:500]
    return out


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).splitlines()[0][:200] if text else type(exc).__name__


def probe(path: str, max_pixels: int = 7680 * 4320) -> dict[str, Any]:
    """Headers plus the first decoded picture, proving the stream decodes. Runs isolated.

    A stream over ``max_pixels`` is described but not decoded (``verify frames`` refuses it).
    """
    with Video(path, threads=1) as video:
        facts = video.facts()
        if video.width * video.height > max_pixels:
            return {**facts, "over_pixel_cap": True}
        first = next(video.pictures(), None)
        if first is None:
            raise MediaError(f"the video stream has no decodable frame ({video.last_error or 'no pictures'})")
        upright = first.rotation % 180 == 0
        return {
            **facts,
            "rotation": first.rotation,
            "displayed_width": first.frame.width if upright else first.frame.height,
            "displayed_height": first.frame.height if upright else first.frame.width,
        }


def decode_at(path: str, index: int, keyframes_only: bool = False) -> dict[str, Any]:
    """Decode from the start to picture ``index``; its time and pixel hash. Runs isolated.

    Decoding from the start (never seeking) reproduces exactly the picture extraction saw.
    """
    with Video(path, threads=2, keyframes_only=keyframes_only) as video:
        for picture in video.pictures():
            if picture.index == index:
                return {"t_ms": picture.t_ms, "pixel_sha256": picture.pixel_sha256()}
        raise MediaError(f"the video ends before picture {index}")


def on_screen(video: Video, times_ms: list[float]) -> Iterator[tuple[int, Picture]]:
    """The picture on screen at each of ``times_ms`` (from the stream start, as ``Picture.t_ms``).

    That is the last picture presented at or before the time; a time before the first picture gets
    the first, a time after the last gets the last. Yields (position in ``times_ms``, picture) in the
    order of the times, as soon as each is known, decoding once from the start and never seeking (the
    same pictures, with the same times, that extraction saw); stops decoding after the latest time.

    Raises:
        MediaError: the stream has no decodable picture.
    """
    order = sorted(range(len(times_ms)), key=lambda i: times_ms[i])
    pos, previous = 0, None
    for picture in video.pictures():
        while pos < len(order) and times_ms[order[pos]] < picture.t_ms - 0.0005:
            yield order[pos], previous or picture  # before the first picture: the first one
            pos += 1
        if pos == len(order):
            return
        previous = picture
    if previous is None:
        raise MediaError(f"the video stream has no decodable frame ({video.last_error or 'no pictures'})")
    for i in order[pos:]:  # after the last picture: it stays on screen
        yield i, previous
