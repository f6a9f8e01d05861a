"""Rig-check, rig and retarget over loopback: the verdict, the skin, one animation per preset,
what each costs, the bodies refused, and Blender's own importer reading the results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests

from .support import accessor, box_glb, run_blender
from .test_own_mesh import counts, imported, mesh_create, mesh_post, model_of
from .test_v3 import balance, v3_create, v3_wait

pytestmark = pytest.mark.local_service

BLENDER = Path(__file__).with_name("blender_gltf.py")
BIPED_BONES = ["Hips", "Spine", "Head", "LeftArm", "LeftForeArm", "RightArm", "RightForeArm",
               "LeftUpLeg", "LeftLeg", "RightUpLeg", "RightLeg"]
WALKS = ["preset:walk", "preset:run", "preset:idle"]


def finished(url, path, **body) -> dict:
    view = v3_wait(url, mesh_create(url, path, **body))
    assert view["status"] == "success", view
    return view


def test_rig_check_reads_the_proportions(url):
    cases = {(0.6, 1.8, 0.4): (True, "biped"), (2, 1, 0.8): (True, "quadruped"),
             (2, 0.2, 2): (False, "others")}
    for size, (riggable, topology) in cases.items():
        view = finished(url, "/v3/animations/rig-check", input=imported(url, box_glb(*size)))
        assert view["type"] == "animate_prerigcheck" and view["credits_consumed"] == 0
        assert view["output"] == {"riggable": riggable, "topology": topology}, (size, view)
    # A model the check finds not riggable cannot be rigged.
    flat = imported(url, box_glb(2, 0.2, 2))
    refused = mesh_post(url, "/v3/animations/rig", {"input": flat})
    assert refused.status_code == 400 and refused.json()["param"] == "input", refused.text
    assert "riggable: false" in refused.json()["message"]


def test_rig_binds_every_vertex_to_a_small_skeleton(url):
    source_id = imported(url, box_glb(0.6, 1.8, 0.4, subdivisions=2))
    source, _ = model_of(url, v3_wait(url, source_id))
    for spec, prefix in (("mixamo", "mixamorig:"), ("tripo", "")):
        view = finished(url, "/v3/animations/rig", input=source_id, spec=spec)
        assert (view["type"], view["credits_consumed"]) == ("animate_rig", 25)
        assert set(view["output"]) == {"model_url"}
        doc, blob = model_of(url, view)
        assert counts(doc) == counts(source)
        skin = doc["skins"][0]
        assert sorted(doc["nodes"][j]["name"] for j in skin["joints"]) == sorted(
            prefix + name for name in BIPED_BONES)
        assert accessor(doc, blob, skin["inverseBindMatrices"]).shape == (len(BIPED_BONES), 16)
        skinned = [node for node in doc["nodes"] if "mesh" in node]
        assert len(skinned) == 1 and skinned[0]["skin"] == 0
        attributes = doc["meshes"][0]["primitives"][0]["attributes"]
        vertices = doc["accessors"][attributes["POSITION"]]["count"]
        joints = accessor(doc, blob, attributes["JOINTS_0"])
        weights = accessor(doc, blob, attributes["WEIGHTS_0"])
        assert joints.shape == weights.shape == (vertices, 4)
        assert joints.max() < len(BIPED_BONES) and len(np.unique(joints[:, 0])) > 4
        assert np.allclose(weights.sum(axis=1), 1, atol=1e-6) and weights.min() >= 0


def test_retarget_makes_one_animation_per_preset(url):
    rig = finished(url, "/v3/animations/rig", input=imported(url, box_glb(0.6, 1.8, 0.4)))
    view = finished(url, "/v3/animations/retarget", input=rig["task_id"], animations=WALKS)
    assert (view["type"], view["credits_consumed"]) == ("animate_retarget", 30)
    doc, blob = model_of(url, view)
    assert [animation["name"] for animation in doc["animations"]] == WALKS
    joints = set(doc["skins"][0]["joints"])
    for animation in doc["animations"]:
        targets = {channel["target"]["node"] for channel in animation["channels"]}
        assert targets and targets <= joints
        clock = animation["samplers"][0]["input"]
        assert len(accessor(doc, blob, clock)) > 2 and doc["accessors"][clock]["max"] == [1.0]
    walk = doc["animations"][0]
    assert "translation" in {c["target"]["path"] for c in walk["channels"]}
    assert len(doc["meshes"]) == 1
    # One `animation`, in place, skeleton only.
    bare = finished(url, "/v3/animations/retarget", input=rig["task_id"],
                    animation="preset:walk", animate_in_place=True, export_with_geometry=False)
    assert bare["credits_consumed"] == 10
    doc, _ = model_of(url, bare)
    assert "meshes" not in doc and [a["name"] for a in doc["animations"]] == ["preset:walk"]
    assert {c["target"]["path"] for c in doc["animations"][0]["channels"]} == {"rotation"}
    # A legged creature rig takes its own preset.
    legs = finished(url, "/v3/animations/rig", input=imported(url, box_glb(2, 1, 0.8)),
                    model="v2.5-20260210", rig_type="quadruped")
    creature = finished(url, "/v3/animations/retarget", input=legs["task_id"],
                        animations=["preset:quadruped:walk"])
    doc, _ = model_of(url, creature)
    assert len(doc["skins"][0]["joints"]) == 5 + 2 * 2 * 2  # a spine and four two-bone legs


def test_own_mesh_bodies_are_checked_with_a_named_field(url):
    model = imported(url, box_glb(0.6, 1.8, 0.4))
    rig = finished(url, "/v3/animations/rig", input=model)["task_id"]
    image = v3_create(url, "text-to-image", prompt="a kite")
    v3_wait(url, image)
    cases = [
        ("/v3/models/texture", {}, "input"),
        ("/v3/models/texture", {"input": "00000000-0000-4000-8000-000000000000"}, "input"),
        ("/v3/models/texture", {"input": image}, "input"),
        ("/v3/models/texture", {"input": "file_abc"}, "input"),
        ("/v3/models/texture", {"original_model_task_id": model}, "original_model_task_id"),
        ("/v3/models/texture", {"input": model, "text_prompt": "gold"}, "text_prompt"),
        ("/v3/models/texture", {"input": model, "prompt": "gold"}, "prompt"),
        ("/v3/models/texture", {"input": model, "model_version": "v3.0-20250812"},
         "model_version"),
        ("/v3/models/texture", {"input": model, "texture_prompt": "gold"}, "texture_prompt"),
        ("/v3/models/texture", {"input": model, "texture_prompt": {"prompt": "gold"}},
         "texture_prompt.prompt"),
        ("/v3/models/texture", {"input": model, "texture_prompt": {"text": ""}},
         "texture_prompt.text"),
        ("/v3/models/texture", {"input": model, "texture_prompt": {"image": "file_x"}},
         "texture_prompt.image"),
        ("/v3/models/texture", {"input": model, "pbr": "yes"}, "pbr"),
        ("/v3/models/texture", {"input": model, "texture_seed": "7"}, "texture_seed"),
        ("/v3/models/texture", {"input": model, "texture_quality": "ultra"}, "texture_quality"),
        ("/v3/models/texture", {"input": model, "texture": False, "pbr": False}, "texture"),
        ("/v3/models/texture", {"input": model, "compress": True}, "compress"),
        ("/v3/animations/rig-check", {"input": rig}, "input"),
        ("/v3/animations/rig-check", {"input": image}, "input"),
        ("/v3/animations/rig", {"input": model, "rig_type": "robot"}, "rig_type"),
        ("/v3/animations/rig", {"input": model, "rig_type": "quadruped"}, "rig_type"),
        ("/v3/animations/rig", {"input": model, "spec": "unity"}, "spec"),
        ("/v3/animations/rig", {"input": model, "spec": "blender"}, "spec"),
        ("/v3/animations/rig", {"input": model, "model": "v2.0-20250506"}, "model"),
        ("/v3/animations/rig", {"input": model, "model": 1}, "model"),
        ("/v3/animations/rig", {"input": model, "out_format": "fbx"}, "out_format"),
        ("/v3/animations/rig", {"input": rig}, "input"),
        ("/v3/animations/retarget", {"input": rig}, "animation"),
        ("/v3/animations/retarget", {"input": model, "animation": "preset:walk"}, "input"),
        ("/v3/animations/retarget", {"input": rig, "animation": "walk"}, "animation"),
        ("/v3/animations/retarget", {"input": rig, "animations": []}, "animations"),
        ("/v3/animations/retarget", {"input": rig, "animations": "preset:walk"}, "animations"),
        ("/v3/animations/retarget", {"input": rig, "animations": WALKS + [
            "preset:jump", "preset:turn", "preset:fall"]}, "animations"),
        ("/v3/animations/retarget", {"input": rig, "animations": ["preset:walk", "preset:walk"]},
         "animations[1]"),
        ("/v3/animations/retarget", {"input": rig, "animations": ["preset:quadruped:walk"]},
         "animations[0]"),
        ("/v3/animations/retarget", {"input": rig, "animation": "preset:walk",
                                     "animations": ["preset:run"]}, "animations"),
        ("/v3/animations/retarget", {"input": rig, "animation": "preset:walk",
                                     "export_with_geometry": "no"}, "export_with_geometry"),
    ]
    for path, body, param in cases:
        resp = mesh_post(url, path, body)
        assert resp.status_code == 400, (path, body, resp.text)
        error = resp.json()
        assert (error["code"], error["param"]) == (1004, param), (path, body, error)
    assert requests.get(f"{url}/_local/stats", timeout=5).json()["tasks_created"] == 3


def test_each_task_reports_its_credits_and_the_balance_pays_them(url):
    start = balance(url)["balance"]
    model = imported(url, box_glb(0.6, 1.8, 0.4))
    textured = finished(url, "/v3/models/texture", input=model, texture_quality="detailed")
    check = finished(url, "/v3/animations/rig-check", input=textured["task_id"])
    rig = finished(url, "/v3/animations/rig", input=textured["task_id"])
    moves = finished(url, "/v3/animations/retarget", input=rig["task_id"], animations=WALKS[:2])
    spent = [view["credits_consumed"] for view in (textured, check, rig, moves)]
    assert spent == [20, 0, 25, 20]
    assert balance(url) == {"balance": start - sum(spent), "frozen": 0}


def test_blender_imports_an_armature_a_skinned_mesh_and_one_action_per_preset(url, tmp_path):
    model = imported(url, box_glb(0.6, 1.8, 0.4, subdivisions=1))
    rig = finished(url, "/v3/animations/rig", input=model, spec="mixamo")
    moves = finished(url, "/v3/animations/retarget", input=rig["task_id"], animations=WALKS)
    files = []
    for name, view in (("rig", rig), ("moves", moves)):
        files.append(tmp_path / f"{name}.glb")
        files[-1].write_bytes(requests.get(view["output"]["model_url"], timeout=10).content)
    seen = run_blender(BLENDER, files, timeout=180)
    bones = ["mixamorig:" + name for name in BIPED_BONES]
    for path, actions in ((files[0], []), (files[1], WALKS)):
        scene = seen[str(path)]
        [(armature, armature_bones)] = scene["armatures"].items()
        assert sorted(armature_bones) == sorted(bones)  # a retarget keeps its rig's names
        skinned = [mesh for mesh in scene["meshes"].values()
                   if mesh["modifiers"] == [["ARMATURE", armature]]]
        assert len(skinned) == 1 and skinned[0]["parent"] == armature, scene
        assert skinned[0]["groups"] == sorted(armature_bones)
        # Blender 4.2 names an Action "<animation>_<object>", 5.0 after the animation alone.
        names = [action.removesuffix(f"_{armature}") for action in scene["actions"]]
        assert sorted(names) == sorted(actions), scene
