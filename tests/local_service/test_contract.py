"""The relay's contract: keys, validation of every task type, the lifecycle, uploads."""

from __future__ import annotations

import time

import pytest
import requests

from .support import (
    AUTH,
    KEY,
    PNG,
    PNG_FILE,
    SIDE_FILE,
    create,
    data_url,
    get,
    png,
    post,
    upload,
    wait,
)

pytestmark = pytest.mark.local_service


def test_wrong_or_missing_key_is_401(url):
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": KEY}):
        resp = requests.post(f"{url}/tripo/v2/openapi/task", headers=headers, timeout=5,
                             json={"type": "text_to_model", "prompt": "a cup"})
        assert resp.status_code == 401
        assert resp.json() == {"error": {"message": resp.json()["error"]["message"],
                                         "type": "authentication_error", "param": None,
                                         "code": "invalid_api_key"}}
        assert resp.headers["X-Tripo-Trace-ID"]
    assert requests.get(f"{url}/tripo/v2/openapi/task/x", timeout=5).status_code == 401


@pytest.mark.parametrize("fields, param", [
    ({"prompt": ""}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({}, "prompt"),
    ({"prompt": "x" * 1025}, "prompt"),
    ({"prompt": "a cup", "face_limit": 0}, "face_limit"),
    ({"prompt": "a cup", "face_limit": True}, "face_limit"),
    ({"prompt": "a cup", "texture_quality": "ultra"}, "texture_quality"),
    ({"prompt": "a cup", "texture": "yes"}, "texture"),
    ({"prompt": "a cup", "negative_prompt": "x" * 256}, "negative_prompt"),
    ({"prompt": "a cup", "type": "sculpt"}, "type"),
    ({"prompt": "a cup", "type": None}, "type"),
])
def test_invalid_requests_name_the_field(url, fields, param):
    body = {"type": "text_to_model", **fields}
    resp = requests.post(f"{url}/tripo/v2/openapi/task", json=body, headers=AUTH, timeout=5)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_parameter"
    assert error["param"] == param
    assert error["message"]


def test_unknown_task_is_tripo_404(url):
    resp = requests.get(f"{url}/tripo/v2/openapi/task/no-such-task", headers=AUTH, timeout=5)
    assert resp.status_code == 404
    assert resp.json() == {"code": 2001, "message": "task not found",
                           "suggestion": "check the task id"}


def test_lifecycle_queued_running_success(url):
    body = {"prompt": "a small teapot", "face_limit": 300, "style": "clay", "seed_extra": 7}
    task_id = create(url, **body)
    seen = []
    deadline = time.monotonic() + 5
    while not seen or seen[-1]["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        seen.append(get(url, task_id))
        time.sleep(0.03)
    statuses = [view["status"] for view in seen]
    assert statuses[0] == "queued"
    assert statuses[-1] == "success"
    assert statuses.index("running") > 0 and "queued" not in statuses[statuses.index("running"):]
    queued = seen[0]
    assert queued["queuing_num"] >= 0 and queued["running_left_time"] == -1
    running = [v for v in seen if v["status"] == "running"]
    progress = [v["progress"] for v in running]
    assert progress == sorted(progress) and progress[-1] > progress[0]
    assert all(0 <= v["progress"] <= 99 and v["running_left_time"] >= 0 for v in running)
    final = seen[-1]
    assert final["progress"] == 100 and final["queuing_num"] == -1
    assert final["task_id"] == task_id and final["type"] == "text_to_model"
    assert final["input"] == {"type": "text_to_model", **body}
    assert isinstance(final["create_time"], int) and final["consumed_credit"] > 0
    assert set(final["output"]) == {"model", "rendered_image"}
    preview = requests.get(final["output"]["rendered_image"], timeout=5)
    assert preview.status_code == 200 and preview.headers["Content-Type"] == "image/png"
    assert preview.content.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("fields, param", [
    ({"type": "text_to_image"}, "prompt"),
    ({"type": "text_to_image", "prompt": "x" * 1025}, "prompt"),
    ({"type": "generate_image"}, "prompt"),
    ({"type": "generate_image", "prompt": "a fox", "file": {"type": "gif", "url": "http://h/a"}},
     "file.type"),
    ({"type": "image_to_model"}, "file"),
    ({"type": "image_to_model", "file": {"type": "png"}}, "file"),
    ({"type": "image_to_model", "file": {"type": "png", "url": "ftp://h/a.png"}}, "file.url"),
    ({"type": "image_to_model", "file": {"type": "png", "url": "data:text/plain;base64,aGk="}},
     "file.url"),
    ({"type": "image_to_model", "file": {"type": "png", "url": "data:image/png;base64,@@"}},
     "file.url"),
    ({"type": "image_to_model", "file": {"type": "png", "url": data_url(b"not an image")}},
     "file"),
    ({"type": "image_to_model", "file": {"type": "png", "url": data_url(png(10, 30))}}, "file"),
    ({"type": "image_to_model", "file": {"type": "png", "file_token": "never-issued"}},
     "file.file_token"),
    ({"type": "image_to_model", "file": PNG_FILE, "face_limit": -5}, "face_limit"),
    ({"type": "image_to_model", "file": PNG_FILE, "quad": "yes"}, "quad"),
    ({"type": "multiview_to_model"}, "files"),
    ({"type": "multiview_to_model", "files": [PNG_FILE, SIDE_FILE, {}]}, "files"),
    ({"type": "multiview_to_model", "files": [{}, PNG_FILE, SIDE_FILE, {}]}, "files[0]"),
    ({"type": "multiview_to_model", "files": [PNG_FILE, {}, {}, {}]}, "files"),
    ({"type": "multiview_to_model", "files": [PNG_FILE, {"type": "bmp", "url": "http://h/a"},
                                              {}, {}]}, "files[1].type"),
    ({"type": "multiview_to_model", "files": [PNG_FILE, {}, {"type": "png", "file_token": "x"},
                                              {}]}, "files[2].file_token"),
    ({"type": "multiview_to_model", "files": [PNG_FILE, {"type": "png",
                                                         "url": data_url(b"GIF89a")}, {}, {}]},
     "files[1]"),
    ({"type": "multiview_to_model", "original_task_id": "no-such-task"}, "original_task_id"),
    ({"type": "refine_model"}, "draft_model_task_id"),
    ({"type": "refine_model", "draft_model_task_id": "no-such-task"}, "draft_model_task_id"),
    ({"type": "generate_multiview_image", "prompt": "a fox"}, "file"),
    ({"type": "edit_multiview_image", "prompts": [{"view": "front", "prompt": "gold"}]},
     "original_task_id"),
    ({"type": "edit_multiview_image", "original_task_id": "no-such-task",
      "prompts": [{"view": "front", "prompt": "gold"}]}, "original_task_id"),
    ({"type": "edit_multiview_image", "original_task_id": "t", "prompt": "gold"}, "prompt"),
    ({"type": "edit_multiview_image", "original_task_id": "t", "prompts": ["", "gold"]},
     "prompts[0].view"),
    ({"type": "edit_multiview_image", "original_task_id": "t", "prompts": []}, "prompts"),
    ({"type": "edit_multiview_image", "original_task_id": "t",
      "prompts": [{"view": "top", "prompt": "gold"}]}, "prompts[0].view"),
    ({"type": "edit_multiview_image", "original_task_id": "t",
      "prompts": [{"view": "back", "prompt": ""}]}, "prompts[0].prompt"),
    ({"type": "text_to_model", "prompt": "a cup", "texture": False,
      "texture_quality": "detailed"}, "texture_quality"),
])
def test_each_type_validates_like_the_relay(url, fields, param):
    resp = post(url, fields)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error", "invalid_parameter", param)
    assert error["message"]


def test_references_must_be_finished_tasks_of_the_right_type(url):
    image_id = create(url, type="text_to_image", prompt="a kite")
    model_id = create(url, prompt="a kite", face_limit=100)
    for body, param in (
            ({"type": "refine_model", "draft_model_task_id": image_id}, "draft_model_task_id"),
            ({"type": "refine_model", "draft_model_task_id": model_id}, "draft_model_task_id"),
            ({"type": "edit_multiview_image", "original_task_id": image_id,
              "prompts": [{"view": "front", "prompt": "gold"}]}, "original_task_id"),
            ({"type": "multiview_to_model", "original_task_id": model_id}, "original_task_id")):
        resp = post(url, body)
        assert resp.status_code == 400 and resp.json()["error"]["param"] == param, resp.text
    assert "has not succeeded" in post(url, {"type": "refine_model",
                                              "draft_model_task_id": model_id}).text


def test_upload_then_use_the_token(url):
    resp = upload(url, PNG)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["code"] == 0 and set(body["data"]) == {"image_token"}
    token = body["data"]["image_token"]
    task_id = create(url, type="image_to_model", face_limit=200,
                      file={"type": "png", "file_token": token})
    assert wait(url, [task_id])[task_id]["status"] == "success"
    for data, field in ((b"plain text", "file"), (png(10, 10), "file"), (PNG, "image")):
        bad = upload(url, data, field=field)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "file", bad.text
    assert upload(url, PNG, key="sk-wrong").status_code == 401
    stats = requests.get(f"{url}/_local/stats", timeout=5).json()
    assert stats["requests"]["upload"] == 5 and stats["uploads"] == 1


def test_upload_and_data_urls_switch_off(url):
    faults = f"{url}/_local/faults"
    assert requests.post(faults, json={"upload": False, "data_urls": False}, timeout=5).ok
    resp = upload(url, PNG)
    assert resp.status_code == 404
    refused = post(url, {"type": "image_to_model", "file": PNG_FILE})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "file.url"
    assert "data URLs are not supported" in refused.json()["error"]["message"]
    assert requests.post(faults, json={"reset": True}, timeout=5).ok
    assert upload(url, PNG).status_code == 200
    assert post(url, {"type": "image_to_model", "file": PNG_FILE}).status_code == 200
    assert requests.get(f"{url}/_local/stats", timeout=5).json()["requests"]["upload"] == 2
