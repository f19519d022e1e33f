"""Honest results from `verify frames`: a time that is not a time, a video with nothing to show,
and a server answer that is not Label Studio's."""

from __future__ import annotations

import math

import pytest

from verify.errors import OptionError, ServerError
from verify.media.frames import parse_at


@pytest.mark.parametrize("when", ["nan", "inf", "-1", "1:-30", "1e400"])
def test_a_time_that_is_not_a_time_in_the_video_is_refused(when):
    with pytest.raises(OptionError) as refused:
        parse_at(f"militants-at-gate@{when}")
    assert refused.value.option == "at" and "not a time" in str(refused.value)


def test_ordinary_times_parse():
    assert parse_at("a@4.8") == ("a", 4800.0)
    assert parse_at("5caa@0:01:02.500") == ("5caa", 62500.0)
    assert math.isclose(parse_at("x@0")[1], 0.0)


def test_an_all_blank_video_is_partial_with_a_reason_not_ok(tmp_path):
    import av
    import numpy as np

    from verify.media.frames import FrameParams, extract_video

    path = tmp_path / "grey.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _ in range(50):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((240, 320, 3), 128, np.uint8), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = extract_video(str(path), str(out_dir), {**FrameParams().__dict__})
    assert result["frames"] == [] and "every decoded picture was blank (50 of 50)" in result["warning"]


def test_a_200_answer_that_is_not_json_is_named_as_such():
    from label_studio_sdk.core.api_error import ApiError

    from verify.labelstudio.client import LabelStudioClient

    client = LabelStudioClient("http://127.0.0.1:9", "key")
    error = client._api_error(ApiError(status_code=200, body="<html>a login page</html>"), "list projects", None)
    assert isinstance(error, ServerError) and "not Label Studio's JSON" in str(error) and "refused" not in str(error)


def test_frames_at_catches_a_jpeg_replaced_with_its_record_rewritten(ingested, tmp_path):
    """Replace a frame's JPEG and its sha256 in verify.db: the record no longer matches custody.log."""
    import hashlib
    import shutil

    from verify.media.frames import check_frame, extract

    extract(ingested)
    video = next(v for v in ingested.videos() if v.source_id == "militants-at-gate")
    first, other = ingested.frames(video.sha256)[:2]
    path = ingested.path(first.file)
    path.chmod(0o644)
    shutil.copyfile(ingested.path(other.file), path)
    with ingested.transaction() as db:  # what a tamperer with access to the database does
        db.execute("UPDATE frames SET sha256 = ? WHERE key = ?", (hashlib.sha256(path.read_bytes()).hexdigest(), first.key))
    check = check_frame(ingested, f"militants-at-gate@{first.t_ms / 1000}")
    assert check.jpeg_intact and not check.as_logged and not check.ok
