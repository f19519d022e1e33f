"""The S3 settings and names of `--images s3`, without a server (the real S3 round trip is tests/test_s3.py)."""

from __future__ import annotations

import ipaddress

import pytest

from verify.errors import OptionError
from verify.labelstudio import objects
from verify.labelstudio.project import image_mode
from tests.fake_labelstudio import FakeLabelStudio

SECRET = "s3cr3t-never-shown-0123456789"


def env(**more: str) -> dict:
    return {"VERIFY_S3_BUCKET": "frames", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET, **more}


def test_settings_come_from_the_standard_environment():
    got = objects.settings(env(AWS_ENDPOINT_URL="http://127.0.0.1:9000/", AWS_DEFAULT_REGION="eu-west-1",
                               VERIFY_S3_PREFIX="/desk/case-7/"))
    assert (got.bucket, got.prefix, got.endpoint, got.region) == ("frames", "desk/case-7", "http://127.0.0.1:9000", "eu-west-1")
    assert objects.settings(env(AWS_REGION="us-west-2", AWS_DEFAULT_REGION="eu-west-1")).region == "us-west-2"
    assert objects.settings(env()).prefix == objects.DEFAULT_PREFIX and objects.settings(env()).endpoint is None


def test_the_credentials_never_show_in_the_settings_repr_or_where():
    got = objects.settings(env(AWS_SESSION_TOKEN="tok-" + SECRET))
    assert SECRET not in repr(got) and SECRET not in got.where and "AKIDEXAMPLE" not in repr(got)
    assert SECRET not in repr(objects.ObjectStore(got))


@pytest.mark.parametrize("bad, named", [
    ({"VERIFY_S3_BUCKET": ""}, "VERIFY_S3_BUCKET"),
    ({"AWS_ENDPOINT_URL": "ftp://host"}, "AWS_ENDPOINT_URL"),
    ({"AWS_ENDPOINT_URL": "http://user:" + SECRET + "@host:9000"}, "AWS_ENDPOINT_URL"),
])
def test_a_bad_setting_is_refused_naming_it_and_never_echoing_a_secret(bad, named):
    with pytest.raises(OptionError) as caught:
        objects.settings(env(**bad))
    assert caught.value.option == "images" and named in str(caught.value) and SECRET not in str(caught.value)


def test_objects_are_named_by_content():
    sha = "ab" * 32
    assert objects.object_key("desk/x", sha) == f"desk/x/{sha}.jpg"
    assert objects.object_uri("frames", objects.object_key("desk/x", sha)) == f"s3://frames/desk/x/{sha}.jpg"


def test_auto_picks_s3_when_a_bucket_is_configured(monkeypatch, tmp_path):
    fake = FakeLabelStudio()
    monkeypatch.setenv("VERIFY_S3_BUCKET", "frames")
    assert image_mode(fake, tmp_path, "auto") == "s3" and image_mode(fake, None, "upload") == "upload"
    monkeypatch.delenv("VERIFY_S3_BUCKET")
    assert image_mode(fake, tmp_path, "auto") == "local" and image_mode(fake, None, "auto") == "upload"
    with pytest.raises(OptionError, match="VERIFY_S3_BUCKET"):
        image_mode(fake, tmp_path, "s3")


def test_label_studio_is_opened_for_exactly_the_endpoints_address():
    extra, module = objects.label_studio_server_settings("http://127.0.0.1:9000")
    kept = [ipaddress.ip_network(n) for n in extra["USER_ADDITIONAL_BANNED_SUBNETS"].split(",")]
    assert extra["USE_DEFAULT_BANNED_SUBNETS"] == "false"
    assert not any(ipaddress.ip_address("127.0.0.1") in n for n in kept)
    for still in ("127.0.0.2", "127.255.255.255", "10.1.2.3", "192.168.1.1", "169.254.169.254"):
        assert any(ipaddress.ip_address(still) in n for n in kept), still
    assert "S3_ORIGIN = 'http://127.0.0.1:9000'" in module and "CSP_IMG_SRC" in module
    compile(module, "settings.py", "exec")
    public, _ = objects.label_studio_server_settings("https://8.8.8.8:443")
    assert public == {}  # a public address needs no exception
    assert objects.label_studio_server_settings(None) == ({}, None)
