"""Your own mesh in, over loopback: model uploads (multipart and presigned PUT), import, and
retexturing that keeps the mesh's topology."""

from __future__ import annotations

import http.client
import json
import struct
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from .support import AUTH, PNG, accessor, box_glb, parse_glb, png_size
from .test_v3 import v3_create, v3_post, v3_upload, v3_wait

pytestmark = pytest.mark.local_service

FBX = b"Kaydara FBX Binary  \x00\x1a\x00" + struct.pack("<I", 7400) + bytes(64)
OBJ = b"# a triangle\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"


def mesh_post(url, path, body):
    return requests.post(f"{url}{path}", json=body, headers=AUTH, timeout=10)


def mesh_create(url, path, **body) -> str:
    resp = mesh_post(url, path, body)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]["task_id"]


def upload_file(url, data, name="model.glb"):
    return requests.post(f"{url}/v3/files", headers=AUTH, timeout=10,
                         files={"file": (name, data, "application/octet-stream")})


def imported(url, glb: bytes) -> str:
    """The id of a finished import of `glb`."""
    token = upload_file(url, glb).json()["data"]["file_token"]
    task_id = mesh_create(url, "/v3/models/import", input=token)
    assert v3_wait(url, task_id)["status"] == "success"
    return task_id


def model_of(url, view) -> tuple[dict, bytes]:
    resp = requests.get(view["output"]["model_url"], timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "model/gltf-binary"
    return parse_glb(resp.content)


def counts(doc) -> list[tuple[int, int]]:
    """(vertices, indices) of every primitive, in order."""
    return [(doc["accessors"][p["attributes"]["POSITION"]]["count"],
             doc["accessors"][p["indices"]]["count"])
            for mesh in doc["meshes"] for p in mesh["primitives"]]


def test_files_take_models_besides_pictures(url):
    for data, name in ((box_glb(1, 1, 1), "a.glb"), (FBX, "a.fbx"), (OBJ, "a.obj"),
                       (PNG, "a.png")):
        resp = upload_file(url, data, name)
        assert resp.status_code == 200, (name, resp.text)
        assert resp.json()["data"]["file_token"].startswith("file_")
    broken = b"glTF" + struct.pack("<II", 2, 28) + struct.pack("<I4s", 8, b"JSON") + b"{broken}"
    for data in (b"just some text", broken):
        resp = upload_file(url, data)
        assert resp.status_code == 400 and resp.json()["param"] == "file", resp.text
    # A model is no picture: image-to-model refuses a GLB's token, naming the field.
    token = upload_file(url, box_glb(1, 1, 1)).json()["data"]["file_token"]
    refused = v3_post(url, "image-to-model", {"input": token})
    assert refused.status_code == 400 and refused.json()["param"] == "input", refused.text


def test_presigned_put_stores_a_file_for_import(url):
    resp = mesh_post(url, "/v3/files/presign", {"format": "glb"})
    assert resp.status_code == 200, resp.text
    grant = resp.json()["data"]
    assert set(grant) == {"file_token", "presigned_url", "expires_in"}
    assert grant["file_token"].startswith("file_") and grant["expires_in"] > 0
    assert grant["presigned_url"].startswith(f"{url}/bucket/{grant['file_token']}?")
    early = mesh_post(url, "/v3/models/import", {"input": grant["file_token"]})
    assert early.status_code == 400 and "nothing was PUT" in early.json()["message"]
    glb = box_glb(1, 2, 1)
    forged = requests.put(grant["presigned_url"][:-4] + "0000", data=glb, timeout=10)
    assert forged.status_code == 403 and b"<Code>AccessDenied</Code>" in forged.content
    wrong = requests.put(grant["presigned_url"], data=PNG, timeout=10)
    assert wrong.status_code == 400 and b"presigned for glb" in wrong.content
    # No API key on the PUT: the signature in the URL is the grant, as with S3.
    stored = requests.put(grant["presigned_url"], data=glb, timeout=10)
    assert stored.status_code == 200 and stored.headers["ETag"], stored.text
    task_id = mesh_create(url, "/v3/models/import", input=grant["file_token"])
    view = v3_wait(url, task_id)
    assert (view["status"], view["type"], view["credits_consumed"]) == (
        "success", "import_model", 0)
    assert set(view["output"]) == {"model_url"}
    assert requests.get(view["output"]["model_url"], timeout=10).content == glb
    for body in ({"format": "exe"}, {}):
        bad = mesh_post(url, "/v3/files/presign", body)
        assert bad.status_code == 400 and bad.json()["param"] == "format", bad.text


def test_presigned_put_refuses_more_than_150_mb_unread(url):
    grant = mesh_post(url, "/v3/files/presign", {"format": "glb"}).json()["data"]
    target = urlsplit(grant["presigned_url"])
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
    try:
        conn.putrequest("PUT", f"{target.path}?{target.query}")
        conn.putheader("Content-Length", str(150 * 1024 * 1024 + 1))
        conn.endheaders()  # and no body: the answer must not wait for one
        resp = conn.getresponse()
        assert resp.status == 400 and b"EntityTooLarge" in resp.read()
    finally:
        conn.close()


def json_glb(doc: dict) -> bytes:
    """A GLB of a JSON chunk only."""
    text = json.dumps({"asset": {"version": "2.0"}, **doc}).encode()
    text += b" " * (-len(text) % 4)
    return b"glTF" + struct.pack("<II", 2, 20 + len(text)) + struct.pack("<I4s", len(text),
                                                                         b"JSON") + text


def test_import_takes_a_usable_glb_only(url):
    files = {"fbx": FBX, "obj": OBJ, "png": PNG, "empty": json_glb({}),
             "loop": json_glb({"scenes": [{"nodes": [0]}], "nodes": [{"children": [0]}]}),
             "dangling": json_glb({"nodes": [{"mesh": 3}]})}
    tokens = {name: upload_file(url, data).json()["data"]["file_token"]
              for name, data in files.items()}
    cases = [({"input": tokens["fbx"]}, "imports GLB models only"),
             ({"input": tokens["obj"]}, "imports GLB models only"),
             ({"input": tokens["png"]}, "imports GLB models only"),
             ({"input": tokens["empty"]}, "no triangle mesh"),
             ({"input": tokens["loop"]}, "no triangle mesh"),
             ({"input": tokens["dangling"]}, "does not hold together"),
             ({"input": "file_never-issued"}, "not a file_token"),
             ({"input": "ftp://host/model.glb"}, "http(s) URL"), ({}, "required"),
             ({"input": 7}, "required")]
    for body, words in cases:
        resp = mesh_post(url, "/v3/models/import", body)
        assert resp.status_code == 400 and resp.json()["param"] == "input", (body, resp.text)
        assert words in resp.json()["message"], (body, resp.text)
    v2_name = mesh_post(url, "/v3/models/import", {"file": {"type": "glb", "file_token": "x"}})
    assert v2_name.status_code == 400 and v2_name.json()["param"] == "file"
    # A URL is fetched when the task runs: a GLB imports, anything else fails the task.
    model = v3_wait(url, v3_create(url, "text-to-model", prompt="a lamp", face_limit=100))
    by_url = v3_wait(url, mesh_create(url, "/v3/models/import",
                                      input=model["output"]["model_url"]))
    assert by_url["status"] == "success", by_url
    picture = v3_wait(url, mesh_create(url, "/v3/models/import",
                                       input=model["output"]["rendered_image_url"]))
    assert (picture["status"], picture["error_code"]) == ("failed", 1004), picture


def test_texture_keeps_the_topology_and_adds_uvs(url):
    source_id = imported(url, box_glb(1, 1.5, 0.5, subdivisions=2))
    source, _ = model_of(url, v3_wait(url, source_id))
    primitive = source["meshes"][0]["primitives"][0]
    assert "TEXCOORD_0" not in primitive["attributes"]  # trimesh's box has no UVs
    standard = mesh_create(url, "/v3/models/texture", input=source_id,
                           texture_prompt={"text": "rusty metal"}, texture_seed=3)
    detailed = mesh_create(url, "/v3/models/texture", input=source_id, pbr=False,
                           texture_quality="detailed")
    for task_id, credits, pbr in ((standard, 10, True), (detailed, 20, False)):
        view = v3_wait(url, task_id)
        assert (view["status"], view["type"], view["credits_consumed"]) == (
            "success", "texture_model", credits), view
        doc, blob = model_of(url, view)
        assert counts(doc) == counts(source)
        uvs = accessor(doc, blob, doc["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_0"])
        assert uvs.shape[1] == 2 and np.ptp(uvs) > 0.5  # a projection, not a point
        material = doc["materials"][0]["pbrMetallicRoughness"]
        image = doc["images"][doc["textures"][material["baseColorTexture"]["index"]]["source"]]
        assert image["mimeType"] == "image/png"
        view_of = doc["bufferViews"][image["bufferView"]]
        assert png_size(blob[view_of["byteOffset"]:][:view_of["byteLength"]]) == (256, 256)
        assert ("metallicRoughnessTexture" in material) is pbr
    # A generated model keeps its UVs (and counts) too; a texture of a texture works.
    model_id = v3_create(url, "text-to-model", prompt="a vase", face_limit=300)
    model, model_blob = model_of(url, v3_wait(url, model_id))
    again = v3_wait(url, mesh_create(url, "/v3/models/texture", input=model_id))
    doc, blob = model_of(url, again)
    assert counts(doc) == counts(model)
    uv_of = {name: d["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_0"]
             for name, d in (("model", model), ("doc", doc))}
    assert np.allclose(accessor(model, model_blob, uv_of["model"]),
                       accessor(doc, blob, uv_of["doc"]))
    assert v3_wait(url, mesh_create(url, "/v3/models/texture", input=again["task_id"],
                                    texture_prompt={"image": v3_upload(url, PNG)}))[
        "status"] == "success"
