"""What the client takes from settings and the network (issue 11): keys checked before use
and scrubbed from service text, replies capped and bounded, result links held to address
rules, and a request that could not be built said to be "not sent". No bpy here."""

import json

import pytest

from modelstream_addon.core import errors, netguard, tasks
from modelstream_addon.core.client import ModelStreamClient
from tests.conftest import KEY


@pytest.mark.parametrize("key", ["sk-abc\ndef", "sk-abc def", "sk-\x00abc", "sk-ключ"])
def test_a_key_with_whitespace_or_control_characters_is_refused_without_echo(key):
    with pytest.raises(errors.ConfigError) as info:
        ModelStreamClient(key, "http://127.0.0.1:1")
    assert key.strip() not in str(info.value)


def test_the_key_is_scrubbed_from_service_text():
    assert netguard.scrub(f"bad key {KEY}!", KEY) == "bad key <API key>!"


@pytest.mark.parametrize("url, base", [
    ("file:///etc/passwd", "https://api.modelstream.ai"),
    ("ftp://cdn.example/m.glb", "https://api.modelstream.ai"),
    ("http://169.254.169.254/latest/meta-data", "https://api.modelstream.ai"),
    ("http://[fe80::1]/m.glb", "https://api.modelstream.ai"),
    ("http://127.0.0.1:8000/m.glb", "https://api.modelstream.ai"),
    ("http://10.0.0.5/m.glb", "https://api.modelstream.ai"),
    ("http://169.254.1.1/m.glb", "http://127.0.0.1:8765"),
    ("not a url", "https://api.modelstream.ai"),
])
def test_result_links_that_are_refused(url, base):
    with pytest.raises(errors.DownloadError, match="not followed|not an http"):
        netguard.check_download_url(url, base, "t1")


@pytest.mark.parametrize("url, base", [
    ("http://127.0.0.1:8765/files/m.glb", "http://127.0.0.1:8765"),
    ("http://10.0.0.5/m.glb", "http://192.168.1.2:8765"),
    ("https://8.8.8.8/m.glb", "https://api.modelstream.ai"),
])
def test_result_links_that_are_followed(url, base):
    netguard.check_download_url(url, base, "t1")


def test_deep_or_broken_replies_are_a_value_error_not_a_crash():
    with pytest.raises(ValueError, match="too deeply"):
        netguard.parse_reply(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ValueError):
        netguard.parse_reply(b"\xff\xfe{}")
    assert netguard.parse_reply(json.dumps({"a": [1, {"b": 2}]}).encode()) == {
        "a": [1, {"b": 2}]}


@pytest.mark.parametrize("text", ['{"model_seed": NaN}', '{"x": Infinity}', '{"y": -Infinity}'])
def test_nan_in_extra_params_is_refused_before_any_request(text):
    with pytest.raises(tasks.ValidationError, match="not valid JSON"):
        tasks.build_task({"task_type": "text_to_model", "prompt": "a cup", "extra_params": text})


def test_a_body_that_cannot_be_sent_is_not_sent(service):
    client = ModelStreamClient(KEY, service.url, max_retries=0)
    with pytest.raises(errors.NotSentError, match="not sent"):
        client.create_task({"type": "text_to_model", "prompt": "a cup",
                            "model_seed": float("nan")})
    assert service.stats()["requests"].get("create", 0) == 0


def test_a_host_that_answers_404_to_everything_does_not_pass_the_check(service):
    client = ModelStreamClient(KEY, service.url + "/no-such-prefix", max_retries=0)
    with pytest.raises(errors.ConfigError, match="base URL"):
        client.check()
    assert "accepted" in ModelStreamClient(KEY, service.url).check()
