"""The local ModelStream service: contract shapes, task lifecycle, outputs, faults.

The service runs as a subprocess, as a demo or a user would start it, and is driven over
loopback with requests. No bpy here.
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "local_service"
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
    assert stats["requests"] == {"create": 2, "get": 1, "file": 0, "upload": 0}
    assert set(stats["tasks"]) == set(ids)
    assert set(stats["tasks"].values()) <= {"queued", "running"}
    assert stats["task_types"] == dict.fromkeys(ids, "text_to_model")
    assert stats["uploads"] == 0 and stats["max_in_flight_seen"] == 2


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


def _filtered_png(rows: list[bytes], channels: int, colour_type: int) -> bytes:
    """A PNG whose scanlines cycle through all five filter types."""
    bpp, prev, raw = channels, bytes(len(rows[0])), bytearray()
    for y, row in enumerate(rows):
        kind = y % 5
        out = bytearray([kind])
        for i, value in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            paeth = min((abs(p - a), 0, a), (abs(p - b), 1, b), (abs(p - c), 2, c))[2]
            out.append((value - (0, a, b, (a + b) // 2, paeth)[kind]) & 255)
        raw += out
        prev = row

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    width = len(rows[0]) // channels
    header = struct.pack(">IIBBBBB", width, len(rows), 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))


def test_png_reader_undoes_every_filter():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from local_service import assets as local_assets
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    rgba = [bytes((x * 37 + y * 11) % 256 for x in range(4 * 25)) for y in range(23)]
    assert local_assets.decode_png(_filtered_png(rgba, 4, 6)) == (25, 23, rgba)
    grey = [bytes((x * 13 + y * 29) % 256 for x in range(21)) for y in range(20)]
    width, height, rows = local_assets.decode_png(_filtered_png(grey, 1, 0))
    assert (width, height) == (21, 20)
    assert rows == [bytes(v for g in row for v in (g, g, g, 255)) for row in grey]
    broken = bytearray(_filtered_png(grey, 1, 0))
    broken[-20] ^= 1  # inside IDAT: the CRC no longer matches
    assert local_assets.decode_png(bytes(broken)) is None
    assert local_assets.embeddable_texture(bytes(broken)) is None


def test_python_api_in_process():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from local_service.server import LocalService
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



# --- every task type --------------------------------------------------------------------------

def _png(width: int, height: int, shade: int = 0) -> bytes:
    """A small RGB PNG written here, independent of the service's own encoder."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    raw = b"".join(b"\0" + b"".join(bytes((x * 7 % 256, y * 5 % 256, shade)) for x in range(width))
                   for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


PNG = _png(48, 40)
PNG_FILE = {"type": "png", "url": _data_url(PNG)}
SIDE_FILE = {"type": "png", "url": _data_url(_png(40, 40, shade=200))}


def _post(url, body, key=KEY):
    return requests.post(f"{url}/tripo/v2/openapi/task", json=body, timeout=5,
                         headers={"Authorization": f"Bearer {key}"})


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    return struct.unpack_from(">II", data, 16)


def _fbx_children(data: bytes, pos: int, end: int) -> dict:
    """FBX 7.4 records between pos and end: name -> (properties bytes, children start, end)."""
    records = {}
    while pos < end:
        record_end, _, props_len, name_len = struct.unpack_from("<IIIB", data, pos)
        if record_end == 0:
            break
        name = data[pos + 13:pos + 13 + name_len].decode()
        props = pos + 13 + name_len
        records.setdefault(name, (data[props:props + props_len], props + props_len, record_end))
        pos = record_end
    return records


def _fbx_polygon_sizes(data: bytes) -> list[int]:
    """Corner counts of the first mesh's polygons, read from PolygonVertexIndex."""
    assert data.startswith(b"Kaydara FBX Binary  \x00\x1a\x00")
    assert struct.unpack_from("<I", data, 23)[0] in (7400, 7500)
    assert data.endswith(b"\xf8\x5a\x8c\x6a\xde\xf5\xd9\x7e\xec\xe9\x0c\xe3\x75\x8f\x29\x0b")
    top = _fbx_children(data, 27, len(data))
    assert {"FBXHeaderExtension", "GlobalSettings", "Definitions", "Objects",
            "Connections"} <= set(top)
    _, start, end = top["Objects"]
    _, start, end = _fbx_children(data, start, end - 13)["Geometry"]
    props, _, _ = _fbx_children(data, start, end - 13)["PolygonVertexIndex"]
    assert props[:1] == b"i"
    count, encoding, size = struct.unpack_from("<III", props, 1)
    raw = props[13:13 + size]
    corners = struct.unpack(f"<{count}i", zlib.decompress(raw) if encoding else raw)
    sizes, run = [], 0
    for corner in corners:
        run += 1
        if corner < 0:
            sizes.append(run)
            run = 0
    return sizes


def _views(output: dict, kind: str) -> dict:
    assert set(output) == {kind}
    views = output[kind]
    assert set(views) == {"front_view_url", "left_view_url", "back_view_url", "right_view_url"}
    return views


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
    ({"type": "image_to_model", "file": {"type": "png", "url": _data_url(b"not an image")}},
     "file"),
    ({"type": "image_to_model", "file": {"type": "png", "url": _data_url(_png(10, 30))}}, "file"),
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
                                                         "url": _data_url(b"GIF89a")}, {}, {}]},
     "files[1]"),
    ({"type": "multiview_to_model", "original_task_id": "no-such-task"}, "original_task_id"),
    ({"type": "refine_model"}, "draft_model_task_id"),
    ({"type": "refine_model", "draft_model_task_id": "no-such-task"}, "draft_model_task_id"),
    ({"type": "generate_multiview_image"}, "prompt"),
    ({"type": "edit_multiview_image", "prompt": "gold"}, "original_task_id"),
    ({"type": "edit_multiview_image", "original_task_id": "no-such-task"}, "prompt"),
])
def test_each_type_validates_like_the_relay(url, fields, param):
    resp = _post(url, fields)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error", "invalid_parameter", param)
    assert error["message"]


def test_references_must_be_finished_tasks_of_the_right_type(url):
    image_id = _create(url, type="text_to_image", prompt="a kite")
    model_id = _create(url, prompt="a kite", face_limit=100)
    for body, param in (
            ({"type": "refine_model", "draft_model_task_id": image_id}, "draft_model_task_id"),
            ({"type": "refine_model", "draft_model_task_id": model_id}, "draft_model_task_id"),
            ({"type": "edit_multiview_image", "original_task_id": image_id, "prompt": "gold"},
             "original_task_id"),
            ({"type": "multiview_to_model", "original_task_id": model_id}, "original_task_id")):
        resp = _post(url, body)
        assert resp.status_code == 400 and resp.json()["error"]["param"] == param, resp.text
    assert "has not succeeded" in _post(url, {"type": "refine_model",
                                              "draft_model_task_id": model_id}).text


@pytest.fixture(scope="module")
def outputs(url):
    """Every task type generated once, two waves (the second builds on the first):
    name -> (task view, {output key: response})."""
    first = {
        "text_to_image": {"type": "text_to_image", "prompt": "a paper crane"},
        "generate_image": {"type": "generate_image", "prompt": "a paper crane", "file": PNG_FILE},
        "multiview_image": {"type": "generate_multiview_image", "prompt": "a tin robot",
                            "negative_prompt": "blurry"},
        "image_to_model": {"type": "image_to_model", "file": PNG_FILE, "face_limit": 600},
        "multiview_to_model": {"type": "multiview_to_model", "face_limit": 600,
                               "files": [PNG_FILE, {}, SIDE_FILE, {}]},
        "quad": {"type": "text_to_model", "prompt": "a ceramic vase", "face_limit": 900,
                 "quad": True, "model_seed": 7},
        "draft": {"type": "text_to_model", "prompt": "a ceramic vase", "face_limit": 400},
    }
    ids = {name: _create(url, **body) for name, body in first.items()}
    views = {name: _wait(url, [task_id])[task_id] for name, task_id in ids.items()}
    original = ids["multiview_image"]
    second = {
        "refine": {"type": "refine_model", "draft_model_task_id": ids["draft"]},
        "edit": {"type": "edit_multiview_image", "original_task_id": original,
                 "prompt": "make it gold", "prompts": ["", "a red left arm"]},
        "from_views": {"type": "multiview_to_model", "original_task_id": original,
                       "face_limit": 500},
    }
    ids = {name: _create(url, **body) for name, body in second.items()}
    views.update({name: _wait(url, [task_id])[task_id] for name, task_id in ids.items()})
    out = {}
    for name, view in views.items():
        assert view["status"] == "success", view
        urls = view["output"].get(view["type"], view["output"])
        out[name] = (view, {key: requests.get(link, timeout=10) for key, link in urls.items()})
    return out


def test_every_output_is_served_with_its_length(outputs):
    for view, files in outputs.values():
        for key, resp in files.items():
            assert resp.status_code == 200, (view["type"], key)
            assert int(resp.headers["Content-Length"]) == len(resp.content) > 0
            link = view["output"].get(view["type"], view["output"])[key]
            assert link.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("name", ["text_to_image", "generate_image"])
def test_generated_images_are_pngs(outputs, name):
    view, files = outputs[name]
    assert set(view["output"]) == {"generated_image"}
    assert view["output"]["generated_image"].endswith(".png")
    resp = files["generated_image"]
    assert resp.headers["Content-Type"] == "image/png"
    assert max(_png_size(resp.content)) == 512


def test_generate_image_works_from_its_input(outputs):
    plain = outputs["text_to_image"][1]["generated_image"].content
    tinted = outputs["generate_image"][1]["generated_image"].content
    assert plain != tinted
    assert _png_size(tinted) == (512, 427)  # the 48 x 40 input, scaled to fit


@pytest.mark.parametrize("name", ["multiview_image", "edit"])
def test_multiview_images_are_four_distinct_views(outputs, name):
    view, files = outputs[name]
    urls = _views(view["output"], view["type"])
    assert [urls[f"{side}_view_url"].rsplit("/", 1)[1] for side in ("front", "left")] == \
        ["front_view.png", "left_view.png"]
    pictures = [resp.content for resp in files.values()]
    assert all(_png_size(picture) == (512, 512) for picture in pictures)
    assert len(set(pictures)) == 4


def test_edit_changes_the_views(outputs):
    original, edited = (outputs[name][1] for name in ("multiview_image", "edit"))
    for side in ("front", "left", "back", "right"):
        assert original[f"{side}_view_url"].content != edited[f"{side}_view_url"].content


def test_quad_is_a_binary_fbx_of_quads(outputs):
    view, files = outputs["quad"]
    assert set(view["output"]) == {"model", "rendered_image"}
    assert view["output"]["model"].endswith(".fbx")
    assert view["input"]["model_seed"] == 7  # unknown fields pass through
    resp = files["model"]
    assert resp.headers["Content-Type"] == "application/octet-stream"
    sizes = _fbx_polygon_sizes(resp.content)
    assert set(sizes) == {4} and 0.9 * 900 <= len(sizes) <= 900


@pytest.mark.parametrize("name", ["image_to_model", "multiview_to_model"])
def test_image_models_wear_the_front_image(outputs, name):
    view, files = outputs[name]
    assert set(view["output"]) == {"model", "rendered_image"}
    doc, blob = _parse_glb(files["model"].content)
    image = doc["images"][0]
    assert image["mimeType"] == "image/png"
    buffer_view = doc["bufferViews"][image["bufferView"]]
    start = buffer_view["byteOffset"]
    assert blob[start:start + buffer_view["byteLength"]] == PNG
    assert abs(doc["accessors"][doc["meshes"][0]["primitives"][0]["indices"]]["count"] // 3
               - 600) <= 60


def test_refine_has_more_faces_than_its_draft(outputs):
    def triangles(name):
        doc, _ = _parse_glb(outputs[name][1]["model"].content)
        return doc["accessors"][doc["meshes"][0]["primitives"][0]["indices"]]["count"] // 3
    assert triangles("refine") > triangles("draft")
    assert outputs["refine"][0]["type"] == "refine_model"


def test_model_from_multiview_task_wears_its_front_view(outputs):
    doc, blob = _parse_glb(outputs["from_views"][1]["model"].content)
    buffer_view = doc["bufferViews"][doc["images"][0]["bufferView"]]
    start = buffer_view["byteOffset"]
    front = outputs["multiview_image"][1]["front_view_url"].content
    assert blob[start:start + buffer_view["byteLength"]] == front


def test_http_image_urls_are_fetched_and_bad_ones_fail_the_task(url, outputs):
    picture = outputs["text_to_image"][0]["output"]["generated_image"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/gone.png"
    good = _create(url, type="image_to_model", file={"type": "png", "url": picture},
                   face_limit=300)
    bad = _create(url, type="image_to_model", file={"type": "png", "url": closed})
    views = _wait(url, [good, bad])
    assert views[good]["status"] == "success"
    assert views[bad]["status"] == "failed" and views[bad]["output"] == {}
    assert "file.url" in views[bad]["error_msg"] and views[bad]["error_code"]
    doc, _ = _parse_glb(requests.get(views[good]["output"]["model"], timeout=5).content)
    assert doc["images"][0]["mimeType"] == "image/png"


# --- upload and data URLs ---------------------------------------------------------------------

def _upload(url, data, key=KEY, field="file"):
    return requests.post(f"{url}/tripo/v2/openapi/upload", timeout=5,
                         headers={"Authorization": f"Bearer {key}"},
                         files={field: ("picture.png", data, "image/png")})


def test_upload_then_use_the_token(clean):
    resp = _upload(clean, PNG)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["code"] == 0 and set(body["data"]) == {"image_token"}
    token = body["data"]["image_token"]
    task_id = _create(clean, type="image_to_model", face_limit=200,
                      file={"type": "png", "file_token": token})
    assert _wait(clean, [task_id])[task_id]["status"] == "success"
    for data, field in ((b"plain text", "file"), (_png(10, 10), "file"), (PNG, "image")):
        bad = _upload(clean, data, field=field)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "file", bad.text
    assert _upload(clean, PNG, key="sk-wrong").status_code == 401
    stats = requests.get(f"{clean}/_local/stats", timeout=5).json()
    assert stats["requests"]["upload"] == 5 and stats["uploads"] == 1


def test_upload_and_data_urls_switch_off(clean):
    faults = f"{clean}/_local/faults"
    assert requests.post(faults, json={"upload": False, "data_urls": False}, timeout=5).ok
    resp = _upload(clean, PNG)
    assert resp.status_code == 404
    refused = _post(clean, {"type": "image_to_model", "file": PNG_FILE})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "file.url"
    assert "data URLs are not supported" in refused.json()["error"]["message"]
    assert requests.post(faults, json={"reset": True}, timeout=5).ok
    assert _upload(clean, PNG).status_code == 200
    assert _post(clean, {"type": "image_to_model", "file": PNG_FILE}).status_code == 200
    assert requests.get(f"{clean}/_local/stats", timeout=5).json()["requests"]["upload"] == 2


# --- faults -----------------------------------------------------------------------------------

@pytest.mark.parametrize("status, created", [("reset_before", 0), ("reset", 0),
                                             ("reset_after", 1)])
def test_dropped_create_before_or_after_the_task_exists(clean, status, created):
    faults = {"fail_create": {"status": status}}
    assert requests.post(f"{clean}/_local/faults", json=faults, timeout=5).ok
    with pytest.raises(requests.ConnectionError):
        _post(clean, {"type": "text_to_model", "prompt": "a bell"})
    stats = requests.get(f"{clean}/_local/stats", timeout=5).json()
    assert stats["requests"]["create"] == 1 and stats["tasks_created"] == created
    assert len(stats["tasks"]) == created and stats["faults"]["fail_create"] == 1


def test_retry_after_as_http_date(clean):
    faults = {"fail_create": {"status": 429, "retry_after": 2, "retry_after_format": "http-date"},
              "fail_get": {"status": 503, "retry_after": 1, "retry_after_format": "http-date"}}
    assert requests.post(f"{clean}/_local/faults", json=faults, timeout=5).ok
    resp = _post(clean, {"type": "text_to_model", "prompt": "a kettle"})
    assert resp.status_code == 429
    when = email.utils.parsedate_to_datetime(resp.headers["Retry-After"]).timestamp()
    assert 1 < when - time.time() <= 3
    get = requests.get(f"{clean}/tripo/v2/openapi/task/x", headers=AUTH, timeout=5)
    assert get.status_code == 503 and get.headers["Retry-After"].endswith(" GMT")
    bad = requests.post(f"{clean}/_local/faults", timeout=5, json={
        "fail_get": {"status": 429, "retry_after": 1, "retry_after_format": "weeks"}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "fail_get"


def test_unknown_for_then_success(clean):
    assert requests.post(f"{clean}/_local/faults", json={"unknown_for": 0.5}, timeout=5).ok
    odd, normal = _create(clean, prompt="a lamp"), _create(clean, prompt="a lamp")
    assert _get(clean, odd)["status"] == "unknown"
    assert _get(clean, normal)["status"] == "queued"
    seen = []
    deadline = time.monotonic() + 10
    while not seen or seen[-1] != "success":
        assert time.monotonic() < deadline
        seen.append(_get(clean, odd)["status"])
        time.sleep(0.05)
    first_known = next(i for i, status in enumerate(seen) if status != "unknown")
    assert "unknown" not in seen[first_known:] and "running" in seen[first_known:]
    assert requests.get(f"{clean}/_local/stats", timeout=5).json()["faults"]["unknown_for"] == 1


def test_next_status_any_final_status(clean):
    ids = {}
    for status in ("banned", "expired", "cancelled", "unknown", "melted"):
        assert requests.post(f"{clean}/_local/faults", json={"next_status": status},
                             timeout=5).ok
        ids[status] = _create(clean, prompt="a cup")
    views = _wait(clean, ids.values())
    for status, task_id in ids.items():
        assert views[task_id]["status"] == status and views[task_id]["output"] == {}
        assert "error_msg" not in views[task_id]


def test_max_in_flight_refuses_with_2000(clean):
    faults = f"{clean}/_local/faults"
    assert requests.post(faults, json={"max_in_flight": 2}, timeout=5).ok
    ids = [_create(clean, prompt="a mug", face_limit=100) for _ in range(2)]
    refused = _post(clean, {"type": "text_to_model", "prompt": "a mug"})
    assert refused.status_code == 429
    assert refused.json()["code"] == 2000 and refused.json()["message"] == "concurrency limit"
    assert refused.json()["suggestion"]
    _wait(clean, ids)
    assert _post(clean, {"type": "text_to_model", "prompt": "a mug"}).status_code == 200
    stats = requests.get(f"{clean}/_local/stats", timeout=5).json()
    assert stats["max_in_flight_seen"] == 2 and stats["tasks_created"] == 3
    assert stats["faults"]["max_in_flight"] == 1 and stats["settings"]["max_in_flight"] == 2
    assert requests.post(faults, json={"max_in_flight": None}, timeout=5).ok


def test_slow_get_and_slow(clean):
    task_id = _create(clean, prompt="a bowl")
    faults = f"{clean}/_local/faults"
    assert requests.post(faults, json={"slow_get": 0.4, "count": 1}, timeout=5).ok
    timings = []
    for _ in range(2):
        start = time.monotonic()
        _get(clean, task_id)
        timings.append(time.monotonic() - start)
    assert timings[0] >= 0.4 > timings[1]
    assert requests.post(faults, json={"slow": 0.2}, timeout=5).json()["delay"] == 0.2
    bad = requests.post(faults, json={"count": 2}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "count"
    stats = requests.get(f"{clean}/_local/stats", timeout=5).json()
    assert stats["faults"]["slow_get"] == 1 and stats["delay"] == 0.2


def test_cli_options_keys_limits_and_flat_multiview():
    proc, base = _launch("--key", "sk-one", "--key", "sk-two", "--latency", "0.5",
                         "--no-upload", "--no-data-urls", "--max-in-flight", "1",
                         "--multiview-output", "flat")
    try:
        assert _upload(base, PNG, key="sk-one").status_code == 404
        refused = _post(base, {"type": "image_to_model", "file": PNG_FILE}, key="sk-one")
        assert refused.json()["error"]["param"] == "file.url"
        first = _post(base, {"type": "generate_multiview_image", "prompt": "a fox"}, key="sk-one")
        assert _post(base, {"type": "text_to_image", "prompt": "a fox"},
                     key="sk-one").status_code == 429
        other = _post(base, {"type": "text_to_image", "prompt": "a fox"}, key="sk-two")
        assert other.status_code == 200  # the limit is per key
        task_id = first.json()["data"]["task_id"]
        stranger = requests.get(f"{base}/tripo/v2/openapi/task/{task_id}", timeout=5,
                                headers={"Authorization": "Bearer sk-two"})
        assert stranger.status_code == 404 and stranger.json()["code"] == 2001
        time.sleep(0.6)
        resp = requests.get(f"{base}/tripo/v2/openapi/task/{task_id}", timeout=5,
                            headers={"Authorization": "Bearer sk-one"})
        output = resp.json()["data"]["output"]
        assert set(output) == {"front_view_url", "left_view_url", "back_view_url",
                               "right_view_url"}
        stats = requests.get(f"{base}/_local/stats", timeout=5).json()
        assert stats["settings"] == {"delay": 0.0, "upload": False, "data_urls": False,
                                     "max_in_flight": 1, "multiview_output": "flat"}
        assert stats["max_in_flight_seen"] == 1
    finally:
        proc.kill()
        proc.wait(timeout=5)
