"""Ingest: evidentiary copies, hashes, provenance, and refusing what is not a video."""

import hashlib
import os
import stat

import pytest

from verify.errors import MediaError, OptionError
from verify.media.ingest import ingest, sniff_container
from tests.conftest import SOURCES

MP4_HEAD = b"\x00\x00\x00\x18ftypisom" + bytes(100)


@pytest.mark.parametrize("head, expected", [
    (MP4_HEAD, "mp4/mov"),
    (b"\x1a\x45\xdf\xa3" + bytes(60), "matroska/webm"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
    (b"GIF89a" + bytes(20), "gif"),
    (bytes([0x47] + [0] * 187) * 3, "mpeg-ts"),
])
def test_containers_are_recognised_by_content(head, expected):
    assert sniff_container(head) == expected


@pytest.mark.parametrize("head, message", [
    (b"", "empty file"),
    (b"#EXTM3U\n#EXTINF:10,\n/etc/passwd\n", "playlist or concat list"),
    (b"ffconcat version 1.0\nfile 'other.mp4'\n", "playlist or concat list"),
    (b"\xef\xbb\xbf#EXTM3U\n", "playlist or concat list"),
    (b"<!doctype html><html><body>Video unavailable</body></html>", "not a video"),
    (b'{"id": "123", "title": "info json"}', "not a video"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "still image"),
    (os.urandom(64).replace(b"<", b"x").replace(b"{", b"x").replace(b"[", b"x") + b"padding", "not a recognised video container"),
])
def test_non_videos_are_refused_by_content(head, message):
    with pytest.raises(MediaError, match=message):
        sniff_container(head)


def test_ingest_keeps_a_read_only_copy_hashed_with_provenance(workspace, footage):
    video = footage["flag_afghan_side"]
    [result] = ingest(workspace, [video], source_id="flag-hoisting-afghan-side", overrides={"uploader": "@someone"})
    assert result.ok, result.message
    expected = hashlib.sha256(video.read_bytes()).hexdigest()
    assert result.sha256 == expected
    record = workspace.video(expected)
    copy = workspace.path(record.evidence)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == expected
    assert not copy.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    prov = record.provenance
    assert prov["source_id"] == "flag-hoisting-afghan-side" and prov["uploader"] == "@someone"
    assert prov["side"] == "afghan" and "taliban_flag_raised" in prov["claims"]
    meta = record.metadata
    assert (meta["width"], meta["height"], meta["nominal_fps"], meta["container"]) == (640, 360, 25.0, "mp4/mov")


def test_ingesting_the_same_bytes_again_changes_nothing(workspace, footage, tmp_path):
    video = footage["militants_at_gate"]
    ingest(workspace, [video], source_id="militants-at-gate")
    renamed = tmp_path / "same bytes, other näme.mp4"
    renamed.write_bytes(video.read_bytes())
    [again] = ingest(workspace, [renamed])
    assert again.ok and again.known and again.source_id == "militants-at-gate"
    assert len(workspace.videos()) == 1
    assert not [p for p in workspace.path("evidence").iterdir() if p.name.startswith(".incoming")]


def test_a_bad_file_fails_alone_and_the_others_are_ingested(workspace, footage, tmp_path):
    playlist = tmp_path / "clip.mp4"
    playlist.write_bytes(b"#EXTM3U\n" + str(footage["flag_afghan_side"]).encode() + b"\n")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(footage["militants_at_gate"].read_bytes()[:20000])  # moov atom at the end: lost
    files = [playlist, footage["flag_afghan_side"], empty, tmp_path / "missing.mp4", truncated, footage["militants_at_gate"]]
    results = ingest(workspace, files)
    by_name = {os.path.basename(r.path): r for r in results}
    assert "playlist" in by_name["clip.mp4"].message
    assert "empty file" in by_name["empty.mp4"].message
    assert by_name["missing.mp4"].message == "file not found"
    assert "corrupt or incomplete" in by_name["truncated.mp4"].message
    assert by_name["flag_afghan_side.mp4"].ok and by_name["militants_at_gate.mp4"].ok
    assert len(workspace.videos()) == 2
    assert sorted(p.suffix for p in workspace.path("evidence").iterdir()) == [".mp4", ".mp4"]


def test_unknown_source_and_bad_overrides_are_refused_before_any_input_is_taken(workspace, footage):
    with pytest.raises(OptionError) as unknown:
        ingest(workspace, [footage["flag_afghan_side"]], source_id="nope")
    assert unknown.value.option == "source_id" and "'nope' is not a source of case" in str(unknown.value)
    with pytest.raises(OptionError) as bad_url:
        ingest(workspace, [footage["flag_afghan_side"]], overrides={"url": "javascript:alert(1)"})
    assert bad_url.value.option == "url" and "only http:// or https://" in str(bad_url.value)
    with pytest.raises(OptionError) as bad_claim:
        ingest(workspace, [footage["flag_afghan_side"]], overrides={"claims": ("nope",)})
    assert bad_claim.value.option == "claims" and "'nope'" in str(bad_claim.value)
    with pytest.raises(OptionError) as bad_side:
        ingest(workspace, [footage["flag_afghan_side"]], overrides={"side": "north"})
    assert bad_side.value.option == "side" and bad_side.value.exit_code == 2
    assert workspace.videos() == [] and not list(workspace.path("evidence").iterdir())


def test_a_video_without_a_source_is_recorded_as_unattributed(workspace, footage):
    [result] = ingest(workspace, [footage["civilians_refused_vertical"]])
    assert result.ok and result.source_id.startswith("unattributed-")
    assert workspace.videos()[0].provenance["url"] is None


def test_all_fixture_sources_exist_in_the_seed_case(workspace):
    assert set(SOURCES.values()) <= {s.id for s in workspace.case.sources}
