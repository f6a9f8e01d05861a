"""Post-processing over loopback: segmentation into named parts, completion, smart low poly,
and each refusal a 400 naming its field before any task exists."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
import trimesh

from .support import box_glb, fbx_meshes, glb_parts, parse_glb
from .test_own_mesh import imported, mesh_create, mesh_post
from .test_rig import finished
from .test_v3 import v3_create, v3_wait

pytestmark = pytest.mark.local_service

ROBOT_PARTS = ["head", "torso", "arm_left", "arm_right", "leg_left", "leg_right"]


def model(url, prompt="a robot", **options) -> tuple[str, bytes]:
    """A finished text-to-model task's id and GLB."""
    view = v3_wait(url, v3_create(url, "text-to-model", prompt=prompt, **options))
    assert view["status"] == "success", view
    return view["task_id"], download(view)


def finished_all(url, *creates: tuple[str, dict]) -> list[dict]:
    """Each (path, body) created at once, then each waited for: one latency for them all."""
    ids = [mesh_create(url, path, **body) for path, body in creates]
    views = [v3_wait(url, task_id) for task_id in ids]
    assert all(view["status"] == "success" for view in views), views
    return views


def download(view) -> bytes:
    resp = requests.get(view["output"]["model_url"], timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.content


def triangles(glb: bytes) -> int:
    return sum(count for _, count in glb_parts(glb))


def welded(glb: bytes, node: str) -> trimesh.Trimesh:
    """One part of a GLB as a trimesh with its vertices merged by position."""
    scene = trimesh.load(io.BytesIO(glb), file_type="glb", force="scene")
    mesh = scene.geometry[scene.graph[node][1]].copy()
    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    return mesh


def test_segmentation_names_the_robots_parts_and_keeps_every_triangle(url):
    source, glb = model(url, face_limit=1200)
    assert len(glb_parts(glb)) == 1  # a robot comes as one mesh of six pieces
    view = finished(url, "/v3/mesh/segment", input=source)
    assert (view["type"], view["credits_consumed"]) == ("mesh_segmentation", 40)
    assert set(view["output"]) == {"model_url", "part_names"}
    assert view["output"]["part_names"] == ROBOT_PARTS
    parts = download(view)
    assert [name for name, _ in glb_parts(parts)] == ROBOT_PARTS
    assert triangles(parts) == triangles(glb)
    doc, _ = parse_glb(parts)
    assert doc["images"] and doc["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]
    # The head sits on top, the left arm at +X (glTF's left), each part a piece of its own.
    scene = trimesh.load(io.BytesIO(parts), file_type="glb", force="scene")
    bounds = {name: scene.geometry[scene.graph[name][1]].bounds for name in ROBOT_PARTS}
    assert bounds["head"][0][1] > bounds["torso"][1][1] > bounds["leg_left"][1][1]
    assert bounds["arm_left"][0][0] > bounds["torso"][1][0] > bounds["torso"][0][0] > \
        bounds["arm_right"][1][0]


def test_one_piece_is_clustered_into_numbered_parts(url):
    source = imported(url, box_glb(1, 2, 1, subdivisions=3))
    segment = "/v3/mesh/segment"
    balanced, detailed, pieces = finished_all(
        url, (segment, {"input": source}),
        (segment, {"input": source, "model": "v2.0-20260430",
                   "segmentation_granularity": "detailed"}),
        (segment, {"input": source, "model": "v2.0-20260430", "split_by_connectivity": False}))
    assert balanced["output"]["part_names"] == [f"part_{i}" for i in range(1, 5)]
    assert detailed["output"]["part_names"] == [f"part_{i}" for i in range(1, 7)]
    for view in (balanced, detailed):
        assert triangles(download(view)) == 12 * 4 ** 3
    assert len(pieces["output"]["part_names"]) == 4


def test_completion_closes_the_chosen_parts_only(url):
    source = imported(url, box_glb(1, 2, 1, subdivisions=3))
    segmentation = finished(url, "/v3/mesh/segment", input=source)
    cut = download(segmentation)
    assert not welded(cut, "part_1").is_watertight  # a cut-out patch has an open edge
    complete = "/v3/mesh/complete"
    view, whole = finished_all(
        url, (complete, {"input": segmentation["task_id"], "part_names": ["part_1"],
                         "completion_mode": "quick_cap"}),
        (complete, {"input": segmentation["task_id"]}))
    assert (view["type"], view["credits_consumed"]) == ("mesh_completion", 50)
    assert view["output"]["part_names"] == segmentation["output"]["part_names"]
    done = download(view)
    assert welded(done, "part_1").is_watertight
    before, after = dict(glb_parts(cut)), dict(glb_parts(done))
    assert after["part_1"] > before["part_1"]
    assert {k: v for k, v in after.items() if k != "part_1"} == {
        k: v for k, v in before.items() if k != "part_1"}
    everything = download(whole)
    assert all(welded(everything, name).is_watertight
               for name in segmentation["output"]["part_names"])


def test_smart_low_poly_stays_within_the_face_limit_and_keeps_the_texture(url):
    source, glb = model(url, face_limit=6000)
    assert triangles(glb) > 5000
    low, quad = finished_all(url, ("/v3/mesh/decimate", {"input": source, "face_limit": 800}),
                             ("/v3/mesh/decimate", {"input": source, "face_limit": 500,
                                                    "quad": True}))
    assert (low["type"], low["credits_consumed"]) == ("highpoly_to_lowpoly", 30)
    reduced = download(low)
    assert 600 < triangles(reduced) <= 800
    doc, _ = parse_glb(reduced)
    assert doc["images"] and doc["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]
    assert "TEXCOORD_0" in doc["meshes"][0]["primitives"][0]["attributes"]
    # The shape is kept: the same bounding box to within a centimetre.
    high_box = trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh").bounds
    low_box = trimesh.load(io.BytesIO(reduced), file_type="glb", force="mesh").bounds
    assert np.allclose(high_box, low_box, atol=0.01)
    assert quad["output"]["model_url"].endswith(".fbx")
    sizes = [size for polygons in fbx_meshes(download(quad)).values() for size in polygons]
    assert len(sizes) <= 500 and sizes.count(4) > 0.6 * len(sizes)


def test_smart_low_poly_of_chosen_parts(url):
    source, _ = model(url, face_limit=4000)
    segmentation = finished(url, "/v3/mesh/segment", input=source)
    before = dict(glb_parts(download(segmentation)))
    view = finished(url, "/v3/mesh/decimate", input=segmentation["task_id"], face_limit=500,
                    part_names=["torso", "head"])
    after = dict(glb_parts(download(view)))
    assert view["output"]["part_names"] == ROBOT_PARTS
    assert after["torso"] + after["head"] <= 500 < before["torso"] + before["head"]
    assert {name: after[name] for name in ROBOT_PARTS[2:]} == {
        name: before[name] for name in ROBOT_PARTS[2:]}


def stats(url) -> dict:
    return requests.get(f"{url}/_local/stats", timeout=5).json()


def test_post_processing_refusals_name_the_field_and_create_no_task(url):
    robot, _ = model(url, face_limit=400)
    segmentation = finished(url, "/v3/mesh/segment", input=robot)["task_id"]
    picture = v3_create(url, "text-to-image", prompt="a kite")
    v3_wait(url, picture)
    requests.post(f"{url}/_local/faults", json={"unknown_for": 30}, timeout=5)
    running = v3_create(url, "text-to-model", prompt="a robot")
    v2_task = requests.post(f"{url}/tripo/v2/openapi/task", timeout=5,
                            json={"type": "text_to_model", "prompt": "a cup"},
                            headers={"Authorization": "Bearer sk-local-modelstream"}).json()
    v2_task = v2_task["data"]["task_id"]
    created = stats(url)["tasks_created"]
    missing = "00000000-0000-4000-8000-000000000000"
    cases = [
        ("/v3/mesh/segment", {}, "input"),
        ("/v3/mesh/segment", {"input": missing}, "input"),
        ("/v3/mesh/segment", {"input": picture}, "input"),
        ("/v3/mesh/segment", {"input": running}, "input"),
        ("/v3/mesh/segment", {"input": v2_task}, "input"),
        ("/v3/mesh/segment", {"input": "file_x"}, "input"),
        ("/v3/mesh/segment", {"original_model_task_id": robot}, "original_model_task_id"),
        ("/v3/mesh/segment", {"input": robot, "model": "v3.0"}, "model"),
        ("/v3/mesh/segment", {"input": robot, "segmentation_granularity": "simple"},
         "segmentation_granularity"),
        ("/v3/mesh/segment", {"input": robot, "model": "v2.0-20260430",
                              "segmentation_granularity": "fine"}, "segmentation_granularity"),
        ("/v3/mesh/segment", {"input": robot, "split_by_connectivity": False},
         "split_by_connectivity"),
        ("/v3/mesh/segment", {"input": robot, "model": "v2.0-20260430",
                              "split_by_connectivity": "no"}, "split_by_connectivity"),
        ("/v3/mesh/segment", {"input": robot, "model": "v2.0-20260430",
                              "ref_image": "file_never"}, "ref_image"),
        ("/v3/mesh/complete", {"input": robot}, "input"),
        ("/v3/mesh/complete", {"input": segmentation, "part_names": ["tail"]}, "part_names"),
        ("/v3/mesh/complete", {"input": segmentation, "part_names": "head"}, "part_names"),
        ("/v3/mesh/complete", {"input": segmentation, "completion_mode": "magic"},
         "completion_mode"),
        ("/v3/mesh/decimate", {"input": robot, "face_limit": 499}, "face_limit"),
        ("/v3/mesh/decimate", {"input": robot, "face_limit": 20001}, "face_limit"),
        ("/v3/mesh/decimate", {"input": robot, "face_limit": 12000, "quad": True},
         "face_limit"),
        ("/v3/mesh/decimate", {"input": robot, "face_limit": "900"}, "face_limit"),
        ("/v3/mesh/decimate", {"input": robot, "model": "P-v2.0-20251225"}, "model"),
        ("/v3/mesh/decimate", {"input": robot, "smart_uv": True}, "smart_uv"),
        ("/v3/mesh/decimate", {"input": robot, "part_names": ["head"]}, "part_names"),
        ("/v3/mesh/decimate", {"input": segmentation, "part_names": ["tail"]}, "part_names"),
        ("/v3/mesh/decimate", {"input": picture}, "input"),
        ("/v3/mesh/decimate", {"input": running}, "input"),
    ]
    for path, body, param in cases:
        resp = mesh_post(url, path, body)
        assert resp.status_code == 400, (path, body, resp.text)
        assert (resp.json()["code"], resp.json()["param"]) == (1004, param), (path, body)
    assert stats(url)["tasks_created"] == created
