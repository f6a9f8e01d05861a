"""The v3 generation options: generate_parts, smart_low_poly, geometry_quality, quad and
auto_size change the model and its price; their combination rules are 400s naming the
field before any task exists."""

from __future__ import annotations

import io

import numpy as np
import pytest
import trimesh

from .support import PNG, data_url, glb_parts
from .test_post import ROBOT_PARTS, download, stats
from .test_v3 import v3_create, v3_post, v3_wait

pytestmark = pytest.mark.local_service


def generated(url, *bodies: dict) -> list[dict]:
    """Text-to-model tasks created at once, then each waited for."""
    ids = [v3_create(url, "text-to-model", **body) for body in bodies]
    views = [v3_wait(url, task_id) for task_id in ids]
    assert all(view["status"] == "success" for view in views), views
    return views


def test_generate_parts_delivers_named_part_nodes(url):
    robot, vase, plain = generated(
        url, {"prompt": "a robot", "face_limit": 1000, "generate_parts": True,
              "model": "v3.1-20260211"},
        {"prompt": "a vase", "face_limit": 1000, "generate_parts": True, "texture": False,
         "pbr": False},
        {"prompt": "a robot", "face_limit": 1000})
    assert robot["output"]["part_names"] == ROBOT_PARTS
    assert [name for name, _ in glb_parts(download(robot))] == ROBOT_PARTS
    assert vase["output"]["part_names"] == ["part_1", "part_2", "part_3", "part_4"]
    assert (robot["credits_consumed"], vase["credits_consumed"]) == (40, 30)
    assert "part_names" not in plain["output"] and len(glb_parts(download(plain))) == 1


def test_smart_low_poly_geometry_quality_and_quad(url):
    bodies = {"smart": {"face_limit": 1000, "smart_low_poly": True},
              "detailed": {"geometry_quality": "detailed"},
              "standard": {"geometry_quality": "standard"},
              "quad": {"quad": True, "face_limit": 500}}
    views = dict(zip(bodies, generated(url, *({"prompt": "a vase", **body}
                                             for body in bodies.values())), strict=True))
    faces = {name: sum(n for _, n in glb_parts(download(view)))
             for name, view in views.items() if name != "quad"}
    assert 800 < faces["smart"] <= 1000
    assert faces["detailed"] > 15000 > 10000 >= faces["standard"] > 8000
    assert views["quad"]["output"]["model_url"].endswith(".fbx")
    assert {name: view["credits_consumed"] for name, view in views.items()} == {
        "smart": 30, "detailed": 40, "standard": 20, "quad": 25}


def height(glb: bytes) -> float:
    return float(np.ptp(trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh")
                        .vertices[:, 1]))


def test_auto_size_gives_a_real_world_height(url):
    robot, vase, plain = generated(
        url, {"prompt": "a robot", "face_limit": 600, "auto_size": True},
        {"prompt": "a vase", "face_limit": 600, "auto_size": True},
        {"prompt": "a robot", "face_limit": 600})
    assert abs(height(download(robot)) - 1.8) < 1e-3
    assert abs(height(download(vase)) - 0.4) < 1e-3
    assert abs(height(download(plain)) - 1.0) < 1e-3
    assert robot["credits_consumed"] == plain["credits_consumed"]


def test_option_rules_name_the_field_and_create_no_task(url):
    created = stats(url)["tasks_created"]
    p1 = "P1-20260311"
    cases = [
        ("text-to-model", {"model": p1, "quad": False}, "quad"),
        ("text-to-model", {"model": p1, "smart_low_poly": False}, "smart_low_poly"),
        ("text-to-model", {"model": p1, "generate_parts": False}, "generate_parts"),
        ("text-to-model", {"model": p1, "geometry_quality": "standard"}, "geometry_quality"),
        ("image-to-model", {"model": p1, "quad": False, "input": data_url(PNG)}, "quad"),
        ("multiview-to-model", {"model": p1, "generate_parts": True, "inputs": [
            data_url(PNG), data_url(PNG), None, None]}, "generate_parts"),
        ("text-to-model", {"geometry_quality": "ultra"}, "geometry_quality"),
        ("text-to-model", {"geometry_quality": True}, "geometry_quality"),
        ("text-to-model", {"smart_low_poly": True, "face_limit": 999}, "face_limit"),
        ("text-to-model", {"smart_low_poly": True, "face_limit": 20001}, "face_limit"),
        ("text-to-model", {"smart_low_poly": True, "quad": True, "face_limit": 10001},
         "face_limit"),
        ("text-to-model", {"smart_low_poly": "yes"}, "smart_low_poly"),
        ("text-to-model", {"generate_parts": True}, "generate_parts"),
        ("text-to-model", {"generate_parts": True, "texture": False, "pbr": True},
         "generate_parts"),
        ("text-to-model", {"generate_parts": True, "model": "v3.0-20250812"}, "generate_parts"),
        ("text-to-model", {"auto_size": 1}, "auto_size"),
        ("text-to-model", {"quad": "true"}, "quad"),
    ]
    for route, body, param in cases:
        body = {"prompt": "a robot", **body} if route == "text-to-model" else body
        resp = v3_post(url, route, body)
        assert resp.status_code == 400, (route, body, resp.text)
        assert (resp.json()["code"], resp.json()["param"]) == (1004, param), (body, resp.json())
    assert stats(url)["tasks_created"] == created
    # Inside the rules: P1 without the keys, smart low poly with quad at 500 faces.
    for body in ({"model": p1}, {"smart_low_poly": True, "quad": True, "face_limit": 500}):
        assert v3_post(url, "text-to-model", {"prompt": "a robot", **body}).status_code == 200
