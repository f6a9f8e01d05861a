"""Game Ready's bodies and checks without Blender: every refusal happens here, before a
request, with the field named; what the services send; converted files checked before
they are kept; export paths checked before a copy."""

import os
import struct
import zipfile

import pytest

from modelstream_addon.core import formats, model_tasks, paths, post_tasks, services, tasks
from modelstream_addon.core.tasks import ValidationError

V3 = services.named("tripo-v3")
V2 = services.named("modelstream")


def refused(field, fn, *args, **kwargs):
    with pytest.raises(ValidationError) as info:
        fn(*args, **kwargs)
    assert info.value.field == field, info.value
    return str(info.value)


def test_lods_default_to_three_limits_highest_first_each_in_range():
    steps = post_tasks.lod_steps()
    assert [s["face_limit"] for s in steps] == [10000, 3000, 1000]
    assert all(s["type"] == "highpoly_to_lowpoly" and "quad" not in s for s in steps)
    assert [s["face_limit"] for s in post_tasks.lod_steps([8000, 500], quad=True)] == [8000,
                                                                                       500]
    for limits, quad in (([20001], False), ([499], False), ([12000], True), ([3000, 3000],
                         False), ([1000, 3000], False), ([], False), ([9000] * 6, False),
                         (["10000"], False)):
        refused("lod_limits", post_tasks.lod_steps, limits, quad)


def test_smart_low_poly_face_limits_follow_the_documented_range():
    assert post_tasks.lowpoly_step(20000)["face_limit"] == 20000
    assert post_tasks.lowpoly_step(10000, quad=True) == {"type": "highpoly_to_lowpoly",
                                                         "face_limit": 10000, "quad": True}
    assert "10,000 with quads" in refused("face_limit", post_tasks.lowpoly_step, 10001, True)


def test_convert_sends_only_what_differs_and_refuses_what_the_service_would():
    assert post_tasks.convert_step("FBX") == {"type": "convert_model", "format": "FBX"}
    step = post_tasks.convert_step("FBX", {"fbx_preset": "3dsmax", "export_orientation": "-y",
                                           "pivot_to_center_bottom": True, "face_limit": 800})
    assert step == {"type": "convert_model", "format": "FBX", "fbx_preset": "3dsmax",
                    "export_orientation": "-y", "pivot_to_center_bottom": True,
                    "face_limit": 800}
    for fmt in ("OBJ", "STL", "3MF"):
        assert "rig" in refused("format", post_tasks.convert_step, fmt, rigged=True)
    assert post_tasks.convert_step("FBX", rigged=True)["format"] == "FBX"
    assert "1024 px" in refused("texture_size", post_tasks.convert_step, "GLTF",
                                {"texture_size": 2048}, source_texture=1024)
    assert post_tasks.convert_step("GLTF", {"texture_size": 512}, source_texture=1024)[
        "texture_size"] == 512
    refused("format", post_tasks.convert_step, "BLEND")
    refused("fbx_preset", post_tasks.convert_step, "FBX", {"fbx_preset": "maya"})
    refused("export_orientation", post_tasks.convert_step, "FBX", {"export_orientation": "z"})
    refused("scale_factor", post_tasks.convert_step, "FBX", {"scale_factor": 0})
    refused("face_limit", post_tasks.convert_step, "FBX", {"face_limit": -5})
    refused("colour", post_tasks.convert_step, "FBX", {"colour": 1})


def test_parts_stylize_and_segmentation_options_are_checked():
    assert post_tasks.complete_step(["head", "head", "arm_left"]) == {
        "type": "mesh_completion", "part_names": ["head", "arm_left"]}
    refused("part_names", post_tasks.complete_step, [])
    refused("part_names", post_tasks.complete_step, [""])
    refused("completion_mode", post_tasks.complete_step, ["head"], "glue")
    assert post_tasks.stylize_step("voxel", 40) == {"type": "stylize_model", "style": "voxel"}
    assert post_tasks.stylize_step("minecraft", 40)["block_size"] == 40
    refused("block_size", post_tasks.stylize_step, "minecraft", 200)
    refused("style", post_tasks.stylize_step, "cubist")
    assert post_tasks.segment_step() == {"type": "mesh_segmentation"}
    refused("granularity", post_tasks.segment_step, "", "detailed")
    assert post_tasks.segment_step("v2.0-20260430", "detailed", True) == {
        "type": "mesh_segmentation", "model_version": "v2.0-20260430",
        "segmentation_granularity": "detailed", "split_by_connectivity": True}


def test_v3_routes_and_bodies_are_the_sdks_and_each_service_refuses_the_other_s():
    route, wire = V3.create_request(model_tasks.next_body(post_tasks.lowpoly_step(3000),
                                                          "src-1"))
    assert (route, wire) == ("/v3/mesh/decimate", {"face_limit": 3000, "input": "src-1"})
    assert V3.create_request(model_tasks.next_body(post_tasks.segment_step(), "s"))[0] == \
        "/v3/mesh/segment"
    assert V3.create_request(model_tasks.next_body(post_tasks.complete_step(["a"]), "s")) == (
        "/v3/mesh/complete", {"part_names": ["a"], "input": "s"})
    assert V3.create_request(model_tasks.next_body(post_tasks.convert_step("OBJ"), "s")) == (
        "/v3/models/convert", {"format": "OBJ", "input": "s"})
    assert V2.create_request(model_tasks.next_body(post_tasks.stylize_step("lego"), "s")) == (
        "/tripo/v2/openapi/task",
        {"type": "stylize_model", "style": "lego", "original_model_task_id": "s"})
    assert "retired" in refused("task_type", V3.check, {"type": "stylize_model"})
    for kind in ("mesh_segmentation", "mesh_completion", "highpoly_to_lowpoly",
                 "convert_model"):
        assert "Tripo API v3" in refused("task_type", V2.check, {"type": kind})
    assert model_tasks.output_kind("convert_model") == "file"
    assert model_tasks.output_kind("mesh_segmentation") == "model"


def _model(**opts):
    return tasks.build_task({"task_type": "text_to_model", "prompt": "a robot", **opts})


def test_generation_options_are_sent_when_asked_and_their_rules_hold():
    plain = _model()
    assert not {"generate_parts", "smart_low_poly", "geometry_quality"} & set(plain)
    body = _model(texture=False, generate_parts=True, geometry_quality="detailed")
    assert body["generate_parts"] is True and body["geometry_quality"] == "detailed"
    assert "texture" in refused("generate_parts", _model, generate_parts=True)
    assert _model(generate_parts=True, model_version="v3.1-20260211")["generate_parts"]
    assert "quad" in refused("generate_parts", _model, texture=False, quad=True,
                             generate_parts=True)
    assert _model(smart_low_poly=True, face_limit=5000)["smart_low_poly"] is True
    assert _model(smart_low_poly=True, face_limit=0)["smart_low_poly"] is True  # Auto
    refused("face_limit", _model, smart_low_poly=True, face_limit=800)
    refused("face_limit", _model, smart_low_poly=True, quad=True, face_limit=12000)
    refused("geometry_quality", _model, geometry_quality="ultra")
    p1 = _model(model_version="P1-20260311")
    assert "quad" not in p1 and "smart_low_poly" not in p1, "P1 refuses even false keys"
    assert "P1" in refused("smart_low_poly", _model, model_version="P1-20260311",
                           smart_low_poly=True)


def _stl(path, triangles=2, extra=b""):
    with open(path, "wb") as f:
        f.write(b"\0" * 80 + struct.pack("<I", triangles) + b"\0" * 50 * triangles + extra)
    return str(path)


def _zip(path, names):
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, "#usda 1.0\n" if name.endswith("usda") else "<model/>")
    return str(path)


@pytest.mark.parametrize("fmt, make, ok", [
    ("obj", lambda p: p.write_text("o cube\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"), True),
    ("obj", lambda p: p.write_text("just some words\n"), False),
    ("stl", lambda p: _stl(p), True),
    ("stl", lambda p: _stl(p, 3, b"x"), False),
    ("stl", lambda p: p.write_text("solid x\nfacet normal 0 0 1\nendsolid\n"), True),
    ("usdz", lambda p: _zip(p, ["model.usda", "tex.png"]), True),
    ("usdz", lambda p: _zip(p, ["tex.png", "model.usda"]), False),
    ("usdz", lambda p: _zip(p, ["../escape.usda"]), False),
    ("3mf", lambda p: _zip(p, ["[Content_Types].xml", "3D/3dmodel.model"]), True),
    ("3mf", lambda p: _zip(p, ["[Content_Types].xml"]), False),
    ("fbx", lambda p: p.write_bytes(b"; FBX 7.4.0 project file\n"), False),
    ("glb", lambda p: p.write_bytes(b"glTF\x02\0\0\0\x0c\0\0\0"), False),
])
def test_a_converted_file_is_kept_only_when_it_is_what_it_says(tmp_path, fmt, make, ok):
    path = tmp_path / f"converted.{fmt}"
    make(path)
    if ok:
        assert formats.check_export_file(str(path), fmt, folder=str(tmp_path)) == fmt
        assert path.exists()
    else:
        with pytest.raises(formats.FileCheckError):
            formats.check_export_file(str(path), fmt, folder=str(tmp_path))
        assert not path.exists(), "a refused file was kept"


def test_the_export_path_is_checked_before_the_copy(tmp_path):
    source = tmp_path / "converted.fbx"
    source.write_bytes(b"data")
    target = tmp_path / "out" / "robot.fbx"
    for bad in ("", str(tmp_path / "robot.obj"), str(tmp_path / "missing" / "robot.fbx")):
        with pytest.raises(paths.UnsafePathError):
            paths.export_destination(bad, "fbx")
    (tmp_path / "dir.fbx").mkdir()
    link = tmp_path / "link.fbx"
    os.symlink(tmp_path / "elsewhere.fbx", link)
    for bad in (tmp_path / "dir.fbx", link):
        with pytest.raises(paths.UnsafePathError):
            paths.export_destination(str(bad), "fbx")
    target.parent.mkdir()
    assert paths.copy_out(str(source), str(target), "fbx") == str(target)
    assert target.read_bytes() == b"data"
    assert [p.name for p in target.parent.iterdir()] == ["robot.fbx"], "a temporary was left"
