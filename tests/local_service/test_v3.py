"""Tripo API v3 on the local service, and what v2 gained beside it: balance, credits, the
gateway's v3-shaped outputs, partial edits, and which API answers."""

from __future__ import annotations

import re
import time

import pytest
import requests

from .support import AUTH, PNG, create, data_url, get, png, post, upload, wait

pytestmark = pytest.mark.local_service

VIEW_KEYS = {"front_view_url", "left_view_url", "back_view_url", "right_view_url"}
PROMPTS = [{"view": "front", "prompt": "make it gold"}, {"view": "back", "prompt": "add a tail"}]


def v3_post(url, route, body, key_headers=AUTH):
    return requests.post(f"{url}/v3/generation/{route}", json=body, headers=key_headers,
                         timeout=5)


def v3_create(url, route, **body):
    resp = v3_post(url, route, body)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]["task_id"]


def v3_get(url, task_id):
    resp = requests.get(f"{url}/v3/tasks/{task_id}", headers=AUTH, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def v3_wait(url, task_id, timeout=10.0):
    """Poll until the task is final (`unknown` is not: the SDK keeps polling it too)."""
    deadline = time.monotonic() + timeout
    while (view := v3_get(url, task_id))["status"] in ("queued", "running", "unknown"):
        assert time.monotonic() < deadline, f"v3 task {task_id} still {view['status']}"
        time.sleep(0.05)
    return view


def v3_upload(url, data):
    resp = requests.post(f"{url}/v3/files", headers=AUTH, timeout=5,
                         files={"file": ("picture.png", data, "image/png")})
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]["file_token"]


def settings(url, **body):
    resp = requests.post(f"{url}/_local/faults", json=body, timeout=5)
    assert resp.status_code == 200, resp.text


def balance(url, path="/v3/account/balance"):
    resp = requests.get(f"{url}{path}", headers=AUTH, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def test_text_to_model_in_v3_shape(url):
    task_id = v3_create(url, "text-to-model", prompt="a lamp", model="v3.0-20250812",
                        face_limit=300, texture_quality="extreme", compress="geometry")
    view = v3_wait(url, task_id)
    assert view["status"] == "success" and view["type"] == "text_to_model"
    assert set(view["output"]) == {"model_url", "rendered_image_url"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", view["created_at"])
    assert view["completed_at"] >= view["created_at"]
    assert view["credits_consumed"] == 30
    assert not {"create_time", "consumed_credit", "error_msg"} & set(view)
    model = requests.get(view["output"]["model_url"], timeout=10)
    assert model.status_code == 200 and model.content[:4] == b"glTF"
    # A v3 task is read on v3 only; v2 does not know it.
    assert requests.get(f"{url}/tripo/v2/openapi/task/{task_id}", headers=AUTH,
                        timeout=5).status_code == 404


@pytest.mark.parametrize("route, body, param", [
    ("text-to-model", {}, "prompt"),
    ("text-to-model", {"prompt": "a cup", "type": "text_to_model"}, "type"),
    ("text-to-model", {"prompt": "a cup", "model_version": "v3.0-20250812"}, "model_version"),
    ("text-to-model", {"prompt": "a cup", "model": 3}, "model"),
    ("text-to-model", {"prompt": "a cup", "face_limit": 0}, "face_limit"),
    ("text-to-model", {"prompt": "a cup", "compress": True}, "compress"),
    ("text-to-model", {"prompt": "a cup", "texture": False, "texture_quality": "detailed"},
     "texture_quality"),
    ("image-to-model", {}, "input"),
    ("image-to-model", {"file": {"type": "png", "url": "http://h/a.png"}}, "file"),
    ("image-to-model", {"input": "file_never-issued"}, "input"),
    ("image-to-model", {"input": "not a token"}, "input"),
    ("image-to-model", {"input": "00000000-0000-4000-8000-000000000000"}, "input"),
    ("image-to-model", {"input": data_url(png(10, 10))}, "input"),
    ("image-to-model", {"input": "ftp://h/a.png"}, "input"),
    ("multiview-to-model", {"files": []}, "files"),
    ("multiview-to-model", {"inputs": [data_url(PNG), None, None]}, "inputs"),
    ("multiview-to-model", {"inputs": [None, data_url(PNG), data_url(PNG), None]}, "inputs[0]"),
    ("multiview-to-model", {"inputs": [data_url(PNG), None, None, None]}, "inputs"),
    ("multiview-to-model", {"inputs": [{"task_id": "x"}]}, "inputs[0].task_id"),
    ("text-to-image", {"negative_prompt": "x"}, "prompt"),
    ("image-to-image", {"prompt": "a fox"}, "input"),
    ("image-to-image", {"input": data_url(PNG)}, "prompt"),
    ("image-to-image", {"prompt": "a fox", "inputs": []}, "inputs"),
    ("image-to-image", {"prompt": "a fox", "input": data_url(PNG), "t_pose": "yes"}, "t_pose"),
    ("image-to-multiview", {"prompt": "a fox"}, "input"),
    ("edit-multiview", {"input": "t", "prompt": "gold"}, "prompt"),
    ("edit-multiview", {"original_task_id": "t", "prompts": PROMPTS}, "original_task_id"),
    ("edit-multiview", {"input": "t", "prompts": [{"view": "top", "prompt": "gold"}]},
     "prompts[0].view"),
    ("edit-multiview", {"input": "no-such-task", "prompts": PROMPTS}, "input"),
])
def test_v3_bodies_are_checked_with_a_named_field(url, route, body, param):
    resp = v3_post(url, route, body)
    assert resp.status_code == 400, resp.text
    error = resp.json()
    assert (error["code"], error["param"]) == (1004, param) and error["message"]


def test_errors_and_routes_in_tripos_shape(url):
    resp = v3_post(url, "text-to-model", {"prompt": "a cup"},
                   {"Authorization": "Bearer sk-wrong"})
    assert resp.status_code == 401 and resp.json()["code"] == 1002
    assert v3_post(url, "refine", {"prompt": "a cup"}).status_code == 404
    missing = requests.get(f"{url}/v3/tasks/no-such-task", headers=AUTH, timeout=5)
    assert missing.status_code == 404 and missing.json()["code"] == 2001
    settings(url, fail_create={"status": 429, "retry_after": 2})
    limited = v3_post(url, "text-to-model", {"prompt": "a cup"})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert limited.json()["code"] == 1007 and "error" not in limited.json()


def test_uploads_tokens_and_task_inputs_per_api(url):
    token = v3_upload(url, PNG)
    assert token.startswith("file_")
    image_token = upload(url, PNG).json()["data"]["image_token"]
    assert v3_post(url, "image-to-model", {"input": image_token}).status_code == 400
    assert post(url, {"type": "image_to_model",
                      "file": {"type": "png", "file_token": token}}).status_code == 400
    bad = requests.post(f"{url}/v3/files", headers=AUTH, timeout=5,
                        files={"file": ("a.txt", b"plain text", "text/plain")})
    assert bad.status_code == 400 and bad.json()["param"] == "file"
    picture = v3_create(url, "text-to-image", prompt="a kite")
    multiview = v3_create(url, "image-to-multiview", input=token)
    assert set(v3_wait(url, picture)["output"]) == {"generated_image_url"}
    assert set(v3_wait(url, multiview)["output"]["generate_multiview_image"]) == VIEW_KEYS
    ids = [v3_create(url, "image-to-model", input=picture, face_limit=200),
           v3_create(url, "multiview-to-model", inputs=[{"task_id": multiview}]),
           v3_create(url, "multiview-to-model", inputs=[token, None, data_url(PNG), None]),
           v3_create(url, "image-to-image", prompt="a fox", input=token, inputs=[picture])]
    for task_id in ids:
        assert v3_wait(url, task_id)["status"] == "success"
    # A task id that is not an image task is refused, naming the field.
    refused = v3_post(url, "image-to-model", {"input": ids[0]})
    assert refused.status_code == 400 and refused.json()["param"] == "input"
    stats = requests.get(f"{url}/_local/stats", timeout=5).json()
    assert stats["requests_by_api"]["v3"]["upload"] == 2
    assert set(stats["task_apis"].values()) == {"v3"}


@pytest.mark.parametrize("fault, code", [({}, 2008), ({"error_code": 2018}, 2018)])
def test_content_policy_is_failed_with_its_code_on_v3(url, fault, code):
    settings(url, next_status="banned", **fault)
    v3_id = v3_create(url, "text-to-model", prompt="a cup")
    settings(url, next_status="banned")
    v2_id = create(url, prompt="a cup")
    view = v3_wait(url, v3_id)
    assert (view["status"], view["error_code"]) == ("failed", code) and view["error_message"]
    assert view["credits_consumed"] == 0 and view["output"] == {}
    assert wait(url, [v2_id])[v2_id]["status"] == "banned"


def test_balance_spends_credits_and_can_run_out(url):
    for path in ("/v3/account/balance", "/tripo/v2/openapi/user/balance"):
        assert balance(url, path) == {"balance": 1_000_000, "frozen": 0}
    settings(url, unknown_for=3)  # in flight long enough to be seen, even on a slow machine
    v3_id = v3_create(url, "text-to-image", prompt="a kite")
    assert balance(url) == {"balance": 1_000_000 - 5, "frozen": 5}
    v2_id = create(url, prompt="a kite", face_limit=100)
    credits = v3_wait(url, v3_id, timeout=15)["credits_consumed"] + wait(url, [v2_id])[v2_id][
        "consumed_credit"]
    assert credits == 25
    assert balance(url) == {"balance": 1_000_000 - credits, "frozen": 0}
    settings(url, next_status="failed")
    assert wait(url, [create(url, prompt="a kite")])  # a failure spends nothing
    assert balance(url)["balance"] == 1_000_000 - credits
    settings(url, credits=credits + 19)  # a model costs 20, an image 5
    poor = v3_post(url, "text-to-model", {"prompt": "a cup"})
    assert poor.status_code == 403 and poor.json()["code"] == 2010
    assert post(url, {"type": "text_to_model", "prompt": "a cup"}).json()["code"] == 2010
    assert v3_post(url, "text-to-image", {"prompt": "a cup"}).status_code == 200


def test_balance_switches_off_and_takes_faults(url):
    settings(url, fail_balance={"status": 503})
    assert requests.get(f"{url}/v3/account/balance", headers=AUTH, timeout=5).json()[
        "code"] == 1000
    settings(url, balance=False)
    for path in ("/v3/account/balance", "/tripo/v2/openapi/user/balance"):
        assert requests.get(f"{url}{path}", headers=AUTH, timeout=5).status_code == 404
    assert requests.get(f"{url}/_local/stats", timeout=5).json()["faults"]["fail_balance"] == 1


def test_api_setting_answers_one_api_only(url):
    settings(url, api="v2")
    assert v3_post(url, "text-to-model", {"prompt": "a cup"}).status_code == 404
    assert post(url, {"type": "text_to_model", "prompt": "a cup"}).status_code == 200
    settings(url, api="v3")
    assert post(url, {"type": "text_to_model", "prompt": "a cup"}).status_code == 404
    assert v3_post(url, "text-to-model", {"prompt": "a cup"}).status_code == 200
    bad = requests.post(f"{url}/_local/faults", json={"api": "v4"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "api"


def test_gateway_outputs_v3_on_the_v2_paths(url):
    settings(url, outputs="v3")
    ids = {"model": create(url, prompt="a bell", face_limit=200, pbr=True),
           "image": create(url, type="text_to_image", prompt="a bell"),
           "views": create(url, type="generate_multiview_image",
                           file={"type": "png", "url": data_url(PNG)})}
    views = wait(url, ids.values())
    model, image, multiview = (views[ids[name]] for name in ("model", "image", "views"))
    assert set(model["output"]) == {"model_url", "rendered_image_url"}
    assert model["credits_consumed"] == 20 and "consumed_credit" not in model
    assert set(image["output"]) == {"generated_image_url"}
    assert set(multiview["output"]["generate_multiview_image"]) == VIEW_KEYS
    assert requests.get(model["output"]["model_url"], timeout=10).content[:4] == b"glTF"
    settings(url, outputs="v2")
    assert set(get(url, ids["model"])["output"]) == {"pbr_model", "rendered_image"}


@pytest.mark.parametrize("api", ["v2", "v3"])
def test_partial_edit_holds_only_the_edited_views(url, api):
    settings(url, partial_edit=True)
    if api == "v2":
        source = create(url, type="generate_multiview_image",
                        file={"type": "png", "url": data_url(PNG)})
        wait(url, [source])
        edit = create(url, type="edit_multiview_image", original_task_id=source,
                      prompts=PROMPTS)
        output = wait(url, [edit])[edit]["output"]
    else:
        source = v3_create(url, "image-to-multiview", input=data_url(PNG))
        v3_wait(url, source)
        edit = v3_create(url, "edit-multiview", input=source, prompts=PROMPTS)
        output = v3_wait(url, edit)["output"]
    shown = output["generate_multiview_image"]
    assert set(shown) == {"front_view_url", "back_view_url"}
    assert requests.get(shown["front_view_url"], timeout=10).status_code == 200
    left = shown["front_view_url"].replace("front_view", "left_view")
    assert requests.get(left, timeout=10).status_code == 404
