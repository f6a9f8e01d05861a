"""The local ModelStream service: contract shapes, task lifecycle, GLB output, faults.

The service runs as a subprocess, as a demo or a user would start it, and is driven over
loopback with requests. No bpy here.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "local_service.py"
KEY = "sk-local-modelstream"
AUTH = {"Authorization": f"Bearer {KEY}"}
LATENCY = 1.0


def _launch(*args: str) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if k != "MODELSTREAM_LOCAL_KEY"}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    prefix = "ModelStream local service: "
    if not line.startswith(prefix):
        proc.kill()
        pytest.fail(f"service did not start: {line!r} {proc.stderr.read()}")
    return proc, line[len(prefix):].strip()


@pytest.fixture(scope="module")
def url():
    proc, base = _launch("--latency", str(LATENCY))
    yield base
    proc.kill()
    proc.wait(timeout=5)


@pytest.fixture
def clean(url):
    """Tests that count or inject faults start from a fresh service state."""
    requests.post(f"{url}/_local/reset", timeout=5).raise_for_status()
    return url


def _create(url, **fields):
    body = {"type": "text_to_model", **fields}
    resp = requests.post(f"{url}/tripo/v2/openapi/task", json=body, headers=AUTH, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]["task_id"]


def _get(url, task_id):
    resp = requests.get(f"{url}/tripo/v2/openapi/task/{task_id}", headers=AUTH, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def _wait(url, task_ids, timeout=10.0):
    """Poll until every task is final; returns their last views by id."""
    deadline = time.monotonic() + timeout
    pending, done = set(task_ids), {}
    while pending:
        assert time.monotonic() < deadline, f"tasks still running: {pending}"
        for task_id in list(pending):
            data = _get(url, task_id)
            if data["status"] not in ("queued", "running"):
                done[task_id] = data
                pending.discard(task_id)
        time.sleep(0.05)
    return done


def _parse_glb(data: bytes):
    """(json document, BIN chunk) of a GLB, checking its framing on the way."""
    magic, version, total = struct.unpack_from("<4sII", data)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON" and json_len % 4 == 0
    doc = json.loads(data[20:20 + json_len])
    bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
    assert bin_type == b"BIN\0" and bin_len % 4 == 0
    assert 28 + json_len + bin_len == len(data)
    return doc, data[28 + json_len:]


def _positions(doc, blob) -> bytes:
    accessor = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    view = doc["bufferViews"][accessor["bufferView"]]
    return blob[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]


MODEL_CASES = {
    "plain": {"prompt": "a ceramic vase", "face_limit": 500, "texture": False},
    "other": {"prompt": "a crystal spire", "face_limit": 500, "texture": False},
    "textured": {"prompt": "a glazed donut", "face_limit": 20000, "texture": True},
    "pbr": {"prompt": "a metal crate", "face_limit": 2000, "texture": True, "pbr": True},
}


@pytest.fixture(scope="module")
def models(url):
    """Every case generated in parallel once: case -> (task view, GLB response)."""
    ids = {case: _create(url, **fields) for case, fields in MODEL_CASES.items()}
    views = _wait(url, ids.values())
    out = {}
    for case, task_id in ids.items():
        view = views[task_id]
        assert view["status"] == "success", view
        model_url = view["output"].get("pbr_model") or view["output"]["model"]
        out[case] = (view, requests.get(model_url, timeout=10))
    return out


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
    ({"prompt": "a cup", "type": "image_to_model"}, "type"),
    ({"prompt": "a cup", "type": "sculpt"}, "type"),
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
    task_id = _create(url, **body)
    seen = []
    deadline = time.monotonic() + 5
    while not seen or seen[-1]["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        seen.append(_get(url, task_id))
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


def test_glb_download_framing(models):
    for _, resp in models.values():
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "model/gltf-binary"
        assert int(resp.headers["Content-Length"]) == len(resp.content)
        assert resp.content.startswith(b"glTF")
        doc, _ = _parse_glb(resp.content)
        assert doc["asset"]["version"] == "2.0"
        for view_def in doc["bufferViews"]:
            assert view_def["byteOffset"] % 4 == 0


@pytest.mark.parametrize("case", MODEL_CASES)
def test_triangle_count_follows_face_limit(models, case):
    doc, _ = _parse_glb(models[case][1].content)
    primitive = doc["meshes"][0]["primitives"][0]
    indices = doc["accessors"][primitive["indices"]]
    assert indices["componentType"] == 5125  # UNSIGNED_INT
    limit = MODEL_CASES[case]["face_limit"]
    assert abs(indices["count"] // 3 - limit) <= 0.1 * limit
    position = doc["accessors"][primitive["attributes"]["POSITION"]]
    assert len(position["min"]) == len(position["max"]) == 3
    assert "NORMAL" in primitive["attributes"]


def test_texture_only_when_asked(models):
    for case in ("textured", "pbr"):
        doc, _ = _parse_glb(models[case][1].content)
        pbr = doc["materials"][0]["pbrMetallicRoughness"]
        assert doc["images"][pbr["baseColorTexture"]["index"]]["mimeType"] == "image/png"
        assert "TEXCOORD_0" in doc["meshes"][0]["primitives"][0]["attributes"]
    doc, _ = _parse_glb(models["plain"][1].content)
    assert "images" not in doc and "textures" not in doc
    pbr = doc["materials"][0]["pbrMetallicRoughness"]
    assert "baseColorTexture" not in pbr and len(pbr["baseColorFactor"]) == 4
    assert pbr["metallicFactor"] == 0.0


def test_pbr_model(models):
    view, resp = models["pbr"]
    assert set(view["output"]) == {"pbr_model", "rendered_image"}
    assert view["output"]["pbr_model"].endswith(".glb")
    doc, _ = _parse_glb(resp.content)
    pbr = doc["materials"][0]["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] > 0 and "metallicRoughnessTexture" in pbr


def test_prompts_give_different_shapes(models):
    plain = _positions(*_parse_glb(models["plain"][1].content))
    other = _positions(*_parse_glb(models["other"][1].content))
    assert plain != other


def test_next_status_failed_then_back_to_success(clean):
    resp = requests.post(f"{clean}/_local/faults", timeout=5,
                         json={"next_status": "failed", "error_code": 2008,
                               "error_msg": "content policy"})
    assert resp.status_code == 200
    failed_id, ok_id = _create(clean, prompt="a lamp"), _create(clean, prompt="a lamp")
    views = _wait(clean, [failed_id, ok_id])
    failed = views[failed_id]
    assert failed["status"] == "failed" and failed["output"] == {}
    assert (failed["error_code"], failed["error_msg"]) == (2008, "content policy")
    assert views[ok_id]["status"] == "success"
    assert requests.get(f"{clean}/_local/stats", timeout=5).json()["faults"]["next_status"] == 1


def test_stats_count_requests(clean):
    ids = [_create(clean, prompt="a chair"), _create(clean, prompt="a table")]
    _get(clean, ids[0])
    stats = requests.get(f"{clean}/_local/stats", timeout=5).json()
    assert stats["tasks_created"] == 2
    assert stats["requests"] == {"create": 2, "get": 1, "file": 0}
    assert set(stats["tasks"]) == set(ids)
    assert set(stats["tasks"].values()) <= {"queued", "running"}


def test_http_faults(clean):
    faults = {"fail_create": {"status": 429, "retry_after": 2},
              "fail_get": {"status": 500, "count": 2, "code": 1000}}
    assert requests.post(f"{clean}/_local/faults", json=faults, timeout=5).ok
    body = {"type": "text_to_model", "prompt": "a kettle"}
    resp = requests.post(f"{clean}/tripo/v2/openapi/task", json=body, headers=AUTH, timeout=5)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "2"
    assert resp.json()["error"]["type"] == "rate_limit_error"
    task_id = _create(clean, prompt="a kettle")
    for _ in range(2):
        resp = requests.get(f"{clean}/tripo/v2/openapi/task/{task_id}", headers=AUTH, timeout=5)
        assert resp.status_code == 500 and resp.json()["code"] == 1000
    assert _get(clean, task_id)["task_id"] == task_id
    stats = requests.get(f"{clean}/_local/stats", timeout=5).json()
    assert stats["faults"]["fail_create"] == 1 and stats["faults"]["fail_get"] == 2
    assert stats["tasks_created"] == 1 and stats["requests"]["create"] == 2


def test_dropped_connection_on_create(clean):
    assert requests.post(f"{clean}/_local/faults", timeout=5,
                         json={"fail_create": {"status": "reset"}}).ok
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{clean}/tripo/v2/openapi/task", headers=AUTH, timeout=5,
                      json={"type": "text_to_model", "prompt": "a bell"})
    assert _create(clean, prompt="a bell")


def test_download_faults(clean):
    task_id = _create(clean, prompt="a vase", face_limit=200)
    model_url = _wait(clean, [task_id])[task_id]["output"]["model"]
    faults = f"{clean}/_local/faults"
    assert requests.post(faults, json={"expire_url": 1, "corrupt_glb": 1}, timeout=5).ok
    assert requests.get(model_url, timeout=5).status_code == 403
    corrupt = requests.get(model_url, timeout=5)
    assert corrupt.status_code == 200 and corrupt.content.startswith(b"glTF")
    with pytest.raises(ValueError):
        _parse_glb(corrupt.content)
    assert requests.post(faults, json={"truncate_download": 1}, timeout=5).ok
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(model_url, timeout=5)
    _parse_glb(requests.get(model_url, timeout=5).content)
    stats = requests.get(f"{clean}/_local/stats", timeout=5).json()
    assert {k: stats["faults"][k] for k in ("expire_url", "corrupt_glb", "truncate_download")} \
        == {"expire_url": 1, "corrupt_glb": 1, "truncate_download": 1}


def test_delay_and_fault_validation(clean):
    bad = requests.post(f"{clean}/_local/faults", json={"delay": -1}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "delay"
    bad = requests.post(f"{clean}/_local/faults", json={"explode": 1}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "explode"
    assert requests.post(f"{clean}/_local/faults", json={"delay": 0.3}, timeout=5).ok
    start = time.monotonic()
    requests.get(f"{clean}/tripo/v2/openapi/task/x", headers=AUTH, timeout=5)
    assert time.monotonic() - start >= 0.3
    assert requests.post(f"{clean}/_local/faults", json={"reset": True}, timeout=5).ok
    assert requests.get(f"{clean}/_local/stats", timeout=5).json()["delay"] == 0


def test_sigterm_exits_cleanly_without_logging_the_key():
    proc, base = _launch("--key", "sk-secret-123", "--latency", "0", "--verbose")
    try:
        headers = {"Authorization": "Bearer sk-secret-123"}
        resp = requests.post(f"{base}/tripo/v2/openapi/task", headers=headers, timeout=5,
                             json={"type": "text_to_model", "prompt": "a cup"})
        assert resp.status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "/tripo/v2/openapi/task" in err  # verbose logs the request line ...
    assert "sk-secret-123" not in out + err  # ... but never the key


def test_python_api_in_process():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from local_service import LocalService
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    with LocalService(key="sk-in-process", latency=0) as service:
        headers = {"Authorization": "Bearer sk-in-process"}
        resp = requests.post(f"{service.url}/tripo/v2/openapi/task", headers=headers,
                             json={"type": "text_to_model", "prompt": "a cup"}, timeout=5)
        task_id = resp.json()["data"]["task_id"]
        resp = requests.get(f"{service.url}/tripo/v2/openapi/task/{task_id}", headers=headers,
                            timeout=5)
        assert resp.json()["data"]["status"] == "success"
