"""Helpers for the local service's tests: start it, drive it over loopback, read its files.

The PNG writer here is independent of the service's own (Pillow) so a test compares two makers.
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "local_service"
KEY = "sk-local-modelstream"
SDK_KEY = "tsk_local_sdk"  # Tripo's SDK takes only keys that start with tsk_
AUTH = {"Authorization": f"Bearer {KEY}"}
LATENCY = 1.0


def launch(*args: str) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if k != "MODELSTREAM_LOCAL_KEY"}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    prefix = "ModelStream local service: "
    if not line.startswith(prefix):
        proc.kill()
        pytest.fail(f"service did not start: {line!r} {proc.stderr.read()}")
    return proc, line[len(prefix):].strip()


def create(url, **fields):
    body = {"type": "text_to_model", **fields}
    resp = requests.post(f"{url}/tripo/v2/openapi/task", json=body, headers=AUTH, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]["task_id"]


def get(url, task_id):
    resp = requests.get(f"{url}/tripo/v2/openapi/task/{task_id}", headers=AUTH, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def wait(url, task_ids, timeout=10.0):
    """Poll until every task is final; returns their last views by id."""
    deadline = time.monotonic() + timeout
    pending, done = set(task_ids), {}
    while pending:
        assert time.monotonic() < deadline, f"tasks still running: {pending}"
        for task_id in list(pending):
            data = get(url, task_id)
            if data["status"] not in ("queued", "running"):
                done[task_id] = data
                pending.discard(task_id)
        time.sleep(0.05)
    return done


def parse_glb(data: bytes):
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


def positions(doc, blob) -> bytes:
    accessor = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    view = doc["bufferViews"][accessor["bufferView"]]
    return blob[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]


def png_file(width: int, height: int, colour_type: int, raw: bytes) -> bytes:
    """An 8-bit PNG around already filtered scanlines."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def png_raw_rgb(width: int, height: int, shade: int = 0) -> bytes:
    """The RGB samples of the test picture, row by row."""
    return b"".join(bytes((x * 7 % 256, y * 5 % 256, shade))
                    for y in range(height) for x in range(width))


def png(width: int, height: int, shade: int = 0) -> bytes:
    """A small RGB PNG, each scanline unfiltered."""
    rgb, stride = png_raw_rgb(width, height, shade), 3 * width
    raw = b"".join(b"\0" + rgb[y * stride:(y + 1) * stride] for y in range(height))
    return png_file(width, height, 2, raw)


def filtered_png(rows: list[bytes], channels: int, colour_type: int) -> bytes:
    """A PNG whose scanlines cycle through all five filter types, as real encoders mix them."""
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
    return png_file(len(rows[0]) // channels, len(rows), colour_type, bytes(raw))


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


PNG = png(48, 40)
PNG_FILE = {"type": "png", "url": data_url(PNG)}
SIDE_FILE = {"type": "png", "url": data_url(png(40, 40, shade=200))}


def post(url, body, key=KEY):
    return requests.post(f"{url}/tripo/v2/openapi/task", json=body, timeout=5,
                         headers={"Authorization": f"Bearer {key}"})


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    return struct.unpack_from(">II", data, 16)


def fbx_children(data: bytes, pos: int, end: int) -> dict:
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


def fbx_polygon_sizes(data: bytes) -> list[int]:
    """Corner counts of the first mesh's polygons, read from PolygonVertexIndex."""
    assert data.startswith(b"Kaydara FBX Binary  \x00\x1a\x00")
    assert struct.unpack_from("<I", data, 23)[0] in (7400, 7500)
    assert data.endswith(b"\xf8\x5a\x8c\x6a\xde\xf5\xd9\x7e\xec\xe9\x0c\xe3\x75\x8f\x29\x0b")
    top = fbx_children(data, 27, len(data))
    assert {"FBXHeaderExtension", "GlobalSettings", "Definitions", "Objects",
            "Connections"} <= set(top)
    _, start, end = top["Objects"]
    _, start, end = fbx_children(data, start, end - 13)["Geometry"]
    props, _, _ = fbx_children(data, start, end - 13)["PolygonVertexIndex"]
    return _polygon_sizes(props)


def _polygon_sizes(props: bytes) -> list[int]:
    """Corner counts from a PolygonVertexIndex record's properties (a negative index closes
    a polygon)."""
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


def run_blender(script, files, timeout: float = 240) -> dict:
    """Run a Blender script of this folder on files in a child process (this venv's bpy);
    the JSON object it prints after SUMMARY."""
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, str(script), *map(str, files)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script.name} did not finish in {timeout} s: {exc.stderr}")
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("SUMMARY "))
    return json.loads(line.removeprefix("SUMMARY "))


def views(output: dict) -> dict:
    """The four view URLs, nested under generate_multiview_image for generate and edit alike."""
    assert set(output) == {"generate_multiview_image"}
    views = output["generate_multiview_image"]
    assert set(views) == {"front_view_url", "left_view_url", "back_view_url", "right_view_url"}
    return views


def upload(url, data, key=KEY, field="file"):
    return requests.post(f"{url}/tripo/v2/openapi/upload", timeout=5,
                         headers={"Authorization": f"Bearer {key}"},
                         files={field: ("picture.png", data, "image/png")})


def pixels(data: bytes) -> tuple[tuple[int, int], bytes]:
    """(size, RGBA bytes) of a picture file."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size, image.convert("RGBA").tobytes()


def base_colour(glb: bytes) -> tuple[str, bytes]:
    """(mime type, file) of the image a GLB's material wears as its base colour."""
    doc, blob = parse_glb(glb)
    texture = doc["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["index"]
    image = doc["images"][doc["textures"][texture]["source"]]
    view = doc["bufferViews"][image["bufferView"]]
    start = view.get("byteOffset", 0)
    return image["mimeType"], blob[start:start + view["byteLength"]]


_COMPONENTS = {5121: "u1", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def accessor(doc, blob, index):
    """An accessor's values as a (count, width) array (tightly packed views only)."""
    import numpy as np

    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    dtype = np.dtype(_COMPONENTS[acc["componentType"]])
    width = _WIDTHS[acc["type"]]
    assert view.get("byteStride", dtype.itemsize * width) == dtype.itemsize * width
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    return np.frombuffer(blob, dtype, acc["count"] * width, start).reshape(acc["count"], width)


def box_glb(width: float, height: float, depth: float, subdivisions: int = 1) -> bytes:
    """A box model (trimesh's, so not the service's own writer) without UVs."""
    import trimesh

    box = trimesh.creation.box(extents=(width, height, depth))
    for _ in range(subdivisions):
        box = box.subdivide()
    return box.export(file_type="glb")


def padded_glb(glb: bytes, size: int) -> bytes:
    """The GLB grown to `size` bytes by zeros at the end of its BIN chunk (no view reads them)."""
    doc, blob = parse_glb(glb)
    blob += bytes(size - len(glb) + -(size - len(glb)) % 4)
    doc["buffers"][0]["byteLength"] = len(blob)
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    return (struct.pack("<4sII", b"glTF", 2, 28 + len(text) + len(blob))
            + struct.pack("<I4s", len(text), b"JSON") + text
            + struct.pack("<I4s", len(blob), b"BIN\0") + blob)


def nosed_glb() -> bytes:
    """A 1.8 m figure whose front (+Z, glTF's) is marked by a nose: a 0.4 m square body
    standing on the origin and a 0.3 m nose reaching z = 0.5 (trimesh's, without UVs)."""
    import trimesh

    body = trimesh.creation.box(extents=(0.4, 1.8, 0.4))
    body.apply_translation((0, 0.9, 0))
    nose = trimesh.creation.box(extents=(0.1, 0.1, 0.3))
    nose.apply_translation((0, 1.5, 0.35))
    return trimesh.util.concatenate([body, nose]).export(file_type="glb")


def glb_parts(glb: bytes) -> list[tuple[str, int]]:
    """(node name, triangles) of every node with a mesh, in order."""
    doc, _ = parse_glb(glb)
    return [(node.get("name"), sum(doc["accessors"][p["indices"]]["count"] // 3
                                   for p in doc["meshes"][node["mesh"]]["primitives"]))
            for node in doc["nodes"] if "mesh" in node]


def fbx_meshes(data: bytes) -> dict[str, list[int]]:
    """Corner counts of every polygon of every FBX mesh, by the mesh's name."""
    top = fbx_children(data, 27, len(data))
    _, start, end = top["Objects"]
    out, pos = {}, start
    while pos < end - 13:
        record_end, _, props_len, name_len = struct.unpack_from("<IIIB", data, pos)
        if record_end == 0:
            break
        if data[pos + 13:pos + 13 + name_len] == b"Geometry":
            props = data[pos + 13 + name_len:pos + 13 + name_len + props_len]
            name_len_prop = struct.unpack_from("<I", props, 10)[0]
            name = props[14:14 + name_len_prop].split(b"\x00")[0].decode()
            children = fbx_children(data, pos + 13 + name_len + props_len, record_end - 13)
            out[name] = _polygon_sizes(children["PolygonVertexIndex"][0])
        pos = record_end
    return out
