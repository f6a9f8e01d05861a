"""Results in both shapes (issue 10): v2 names and the v3 names a gateway may pass through,
statuses nobody has seen yet, and both error fields. A paid task is never lost to a
renamed field."""

import pytest

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import formats, worker
from modelstream_addon.core import job as job_mod
from modelstream_addon.core.client import ModelStreamClient
from tests.conftest import KEY

URL = "https://cdn.example/m.glb"


@pytest.mark.parametrize("key", ["pbr_model", "model", "base_model", "model_url",
                                 "pbr_model_url", "base_model_url"])
@pytest.mark.parametrize("shape", [URL, {"url": URL}])
def test_every_model_key_as_string_or_object(key, shape):
    assert formats.model_url({key: shape}) == URL


def test_the_first_non_empty_model_key_wins():
    output = {"pbr_model": "", "model": None, "base_model": {"url": " "},
              "model_url": "https://cdn.example/v3.glb", "base_model_url": URL}
    assert formats.model_url(output) == "https://cdn.example/v3.glb"
    assert formats.model_url({"pbr_model": URL, "model_url": "https://other/x.glb"}) == URL
    assert formats.model_url("not an object") is None


@pytest.mark.parametrize("key", ["generated_image", "generated_image_url", "image",
                                 "image_url"])
def test_every_image_key(key):
    assert formats.image_urls({key: URL}, "image") == [("generated_image", URL)]


@pytest.mark.parametrize("key", ["rendered_image", "rendered_image_url"])
def test_every_preview_key(key):
    assert formats.image_urls({key: {"url": URL}}, "model") == [("preview", URL)]


@pytest.mark.parametrize("output", [
    {"generate_multiview_image": {f"{v}_view_url": f"https://c/{v}.png"
                                  for v in ("front", "left", "back", "right")}},
    {f"{v}_view_url": f"https://c/{v}.png" for v in ("right", "back", "left", "front")},
    {"views": [f"https://c/{v}.png" for v in ("front", "left", "back", "right")]},
])
def test_multiview_views_nested_flat_or_listed(output):
    assert formats.image_urls(output, "multiview") == [
        (v, f"https://c/{v}.png") for v in ("front", "left", "back", "right")]


@pytest.mark.parametrize("data, words", [
    ({"error_msg": "gpu on fire"}, "gpu on fire"),
    ({"error_message": "v3 says no"}, "v3 says no"),
    ({"error_code": 2018}, "content policy"),
    ({"error_code": 2008, "error_message": "nsfw"}, "content policy"),
])
def test_failure_text_from_either_error_field(data, words):
    assert words in worker._failure_text("failed", data)


@pytest.mark.parametrize("value, expected", [
    (50, 50), (49.9, 49), ("50%", 50), (" 7 ", 7), ("soon", 0), (None, 0), (float("inf"), 100),
    (float("nan"), 0), (-3, 0), ([1], 0)])
def test_progress_of_any_shape(value, expected):
    assert worker._progress(value) == expected


@pytest.mark.parametrize("status", ["Brand_New", "paused"])
def test_a_status_nobody_has_seen_is_polled_then_quoted(service, tmp_path, status):
    eng = engine_mod.Engine(str(tmp_path), poll_min=0.2, poll_max=0.3, unknown_limit=1.5)
    service.faults(next_status=status)
    job = eng.submit(ModelStreamClient(KEY, service.url),
                     {"type": "text_to_model", "prompt": "a cup", "face_limit": 100})
    eng.wait(job.id, timeout=60)
    eng.shutdown()
    assert job.state == job_mod.FAILED and repr(status.lower()) in job.error, job.error
    assert "for over" in job.error  # kept polling it for a while first
    assert job.task_id
    assert service.stats()["requests"]["get"] >= 3
