"""convert_model over loopback: every format opened by its own readers (trimesh, pxr,
Blender's importers), facing the asked orientation, with its pivot, scale, face limit and
texture size, and the refusals a 400 naming the field before any task exists."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
import trimesh
from pxr import Usd, UsdGeom

from .support import box_glb, fbx_children, nosed_glb, run_blender
from .test_own_mesh import imported, mesh_post
from .test_post import download, finished_all, glb_parts, model, stats
from .test_rig import finished

pytestmark = pytest.mark.local_service

BLENDER = Path(__file__).with_name("blender_import.py")
# The nosed figure's bounding box in a Z-up world (Blender's) for each orientation: its
# 0.4 m body centred on the vertical axis, its nose reaching 0.5 m to the front.
FRONT = {"+x": ([-0.2, -0.2, 0], [0.5, 0.2, 1.8]), "-x": ([-0.5, -0.2, 0], [0.2, 0.2, 1.8]),
         "+y": ([-0.2, -0.2, 0], [0.2, 0.5, 1.8]), "-y": ([-0.2, -0.5, 0], [0.2, 0.2, 1.8])}
Y_UP = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]])  # Z-up (x, y, z) -> Y-up (x, z, -y)


def y_up(box) -> np.ndarray:
    """A Z-up bounding box as the same box in a Y-up file (low, high)."""
    corners = np.array(box) @ Y_UP.T
    return np.sort(corners, axis=0)


def convert(url, source: str, **body) -> tuple[dict, bytes]:
    view = finished(url, "/v3/models/convert", input=source, **body)
    assert view["type"] == "convert_model", view
    return view, download(view)


def opened(data: bytes, ext: str) -> trimesh.Scene:
    return trimesh.load(io.BytesIO(data), file_type=ext, force="scene")


def test_files_open_in_trimesh_facing_the_orientation(url):
    source = imported(url, nosed_glb())
    cases = {"GLTF": ("+x", "glb", True), "OBJ": ("-y", "obj", True), "STL": ("+y", "stl", False),
             "3MF": ("-x", "3mf", False)}  # format: orientation, extension, Y up
    bodies = [{"input": source, "format": kind} if orientation == "+x" else {
        "input": source, "format": kind, "export_orientation": orientation}
        for kind, (orientation, _, _) in cases.items()]
    views = finished_all(url, *(("/v3/models/convert", body) for body in bodies))
    for view, (kind, (orientation, ext, is_y_up)) in zip(views, cases.items(), strict=True):
        assert view["output"]["format"] == ext and view["output"]["model_url"].endswith(ext)
        expected = y_up(FRONT[orientation]) if is_y_up else np.array(FRONT[orientation])
        assert np.allclose(opened(download(view), ext).bounds, expected, atol=1e-4), (
            kind, orientation)
    three = zipfile.ZipFile(io.BytesIO(download(views[-1])))
    assert 'unit="meter"' in three.read("3D/3dmodel.model").decode()


def test_pivot_scale_and_face_limit(url):
    source = imported(url, nosed_glb())
    _, data = convert(url, source, format="STL", pivot_to_center_bottom=True, scale_factor=2.0)
    low, high = opened(data, "stl").bounds
    assert np.allclose([low[2], (low[0] + high[0]) / 2, (low[1] + high[1]) / 2], 0, atol=1e-5)
    assert np.allclose(high - low, [1.4, 0.8, 3.6], atol=1e-4)
    robot, glb = model(url, face_limit=3000)
    view, reduced = convert(url, robot, format="GLTF", face_limit=600)
    assert view["credits_consumed"] == 10
    assert sum(n for _, n in glb_parts(reduced)) <= 600 < sum(n for _, n in glb_parts(glb))


def test_usdz_opens_in_pxr_with_its_texture(url, tmp_path):
    robot, _ = model(url, face_limit=600)
    _, data = convert(url, robot, format="USDZ", export_orientation="-y")
    path = tmp_path / "robot.usdz"
    path.write_bytes(data)
    names = zipfile.ZipFile(path).namelist()
    assert names[0].endswith(".usdc") and any(Path(n).name.startswith("base_color.") for n in names)
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == "Y" and UsdGeom.GetStageMetersPerUnit(stage) == 1
    meshes = [UsdGeom.Mesh(p) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
    points = np.concatenate([np.array(m.GetPointsAttr().Get()) for m in meshes])
    assert np.allclose(points.min(axis=0)[1], 0, atol=1e-4)
    assert np.allclose(points.max(axis=0)[1], 1.0, atol=1e-3)  # a robot is 1 unit tall


def fbx_frame(data: bytes) -> dict:
    """UpAxis, FrontAxis, UnitScaleFactor... from an FBX's GlobalSettings."""
    top = fbx_children(data, 27, len(data))
    _, start, end = top["GlobalSettings"]
    _, start, end = fbx_children(data, start, end - 13)["Properties70"]
    out, pos = {}, start
    while pos < end - 13:
        record_end = int.from_bytes(data[pos:pos + 4], "little")
        props = data[pos + 14:record_end]
        name_len = int.from_bytes(props[1:5], "little")
        name = props[5:5 + name_len].decode()
        out[name] = props[-8:] if props[-9:-8] == b"D" else props[-4:]
        pos = record_end
    return {name: (np.frombuffer(value, "<f8")[0] if len(value) == 8 else
                   int.from_bytes(value, "little", signed=True)) for name, value in out.items()}


def test_fbx_presets_declare_their_frame(url):
    source = imported(url, nosed_glb())
    presets = ("blender", "mixamo", "3dsmax")
    views = finished_all(url, *(("/v3/models/convert", {"input": source, "format": "FBX",
                                                       "fbx_preset": preset})
                                for preset in presets))
    frames = {preset: fbx_frame(download(view)) for preset, view in zip(presets, views,
                                                                          strict=True)}
    assert (frames["blender"]["UpAxis"], frames["blender"]["UnitScaleFactor"]) == (1, 100.0)
    assert (frames["mixamo"]["UpAxis"], frames["mixamo"]["UnitScaleFactor"]) == (1, 1.0)
    assert (frames["3dsmax"]["UpAxis"], frames["3dsmax"]["FrontAxis"],
            frames["3dsmax"]["FrontAxisSign"], frames["3dsmax"]["UnitScaleFactor"]) == (
        2, 1, -1, 1.0)


def test_blender_importers_open_each_format_facing_the_orientation(url, tmp_path):
    source = imported(url, nosed_glb())
    robot, _ = model(url, face_limit=800)
    cases = {  # file: (source, body, orientation)
        "blender.fbx": (source, {"format": "FBX"}, "+x"),
        "mixamo.fbx": (source, {"format": "FBX", "fbx_preset": "mixamo",
                                "export_orientation": "-y"}, "-y"),
        "3dsmax.fbx": (source, {"format": "FBX", "fbx_preset": "3dsmax",
                                "export_orientation": "+y"}, "+y"),
        "model.obj": (source, {"format": "OBJ", "export_orientation": "-x"}, "-x"),
        "model.stl": (source, {"format": "STL"}, "+x"),
        "model.usdz": (source, {"format": "USDZ", "export_orientation": "-y"}, "-y"),
        "model.glb": (source, {"format": "GLTF", "export_orientation": "+y"}, "+y"),
        "robot.fbx": (robot, {"format": "FBX", "quad": True, "face_limit": 400}, None),
    }
    views = finished_all(url, *(("/v3/models/convert", {"input": task, **body})
                                for task, body, _ in cases.values()))
    files = []
    for name, view in zip(cases, views, strict=True):
        files.append(tmp_path / name)
        files[-1].write_bytes(download(view))
    seen = run_blender(BLENDER, files)
    for path, (name, (_, _, orientation)) in zip(files, cases.items(), strict=True):
        meshes = seen[str(path)]
        assert meshes, (name, seen)
        if orientation is None:
            continue
        low = np.min([mesh["low"] for mesh in meshes.values()], axis=0)
        high = np.max([mesh["high"] for mesh in meshes.values()], axis=0)
        assert np.allclose([low, high], FRONT[orientation], atol=2e-3), (name, low, high)
    parts = seen[str(files[-1])]
    assert sorted(parts) == sorted(["head", "torso", "arm_left", "arm_right", "leg_left",
                                    "leg_right"]) or len(parts) == 1
    polygons = sum(mesh["polygons"] for mesh in parts.values())
    assert polygons <= 400 and sum(mesh["quads"] for mesh in parts.values()) > polygons / 2
    assert all(mesh["image"] for mesh in parts.values())


def test_convert_refusals_name_the_field_and_create_no_task(url):
    robot, _ = model(url, face_limit=400)
    rig = finished(url, "/v3/animations/rig", input=imported(url, box_glb(0.6, 1.8, 0.4)))
    created = stats(url)["tasks_created"]
    cases = [
        ({"input": robot}, "format"),
        ({"input": robot, "format": "BLEND"}, "format"),
        ({"input": robot, "format": "fbx"}, "format"),
        ({"input": rig["task_id"], "format": "OBJ"}, "format"),
        ({"input": rig["task_id"], "format": "STL"}, "format"),
        ({"input": rig["task_id"], "format": "3MF"}, "format"),
        ({"input": robot, "format": "FBX", "fbx_preset": "maya"}, "fbx_preset"),
        ({"input": robot, "format": "FBX", "export_orientation": "+z"}, "export_orientation"),
        ({"input": robot, "format": "GLTF", "texture_size": 512}, "texture_size"),
        ({"input": robot, "format": "GLTF", "texture_size": 64}, "texture_size"),
        ({"input": robot, "format": "GLTF", "texture_format": "GIF"}, "texture_format"),
        ({"input": robot, "format": "GLTF", "face_limit": 50}, "face_limit"),
        ({"input": robot, "format": "GLTF", "scale_factor": 0}, "scale_factor"),
        ({"input": robot, "format": "GLTF", "quad": "yes"}, "quad"),
        ({"input": robot, "format": "GLTF", "flatten_bottom_threshold": 2},
         "flatten_bottom_threshold"),
        ({"input": robot, "format": "GLTF", "part_names": ["head"]}, "part_names"),
        ({"original_model_task_id": robot, "format": "GLTF"}, "original_model_task_id"),
    ]
    for body, param in cases:
        resp = mesh_post(url, "/v3/models/convert", body)
        assert resp.status_code == 400, (body, resp.text)
        assert (resp.json()["code"], resp.json()["param"]) == (1004, param), (body, resp.json())
    assert stats(url)["tasks_created"] == created
    # What is allowed: a rig as FBX, a texture as large as the source's, at 5 credits plain.
    fbx, sized = finished_all(
        url, ("/v3/models/convert", {"input": rig["task_id"], "format": "FBX"}),
        ("/v3/models/convert", {"input": robot, "format": "GLTF", "texture_size": 256}))
    assert (fbx["credits_consumed"], sized["credits_consumed"]) == (5, 10)
    assert requests.get(fbx["output"]["model_url"], timeout=10).content.startswith(b"Kaydara")
