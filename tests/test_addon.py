"""The real add-on in the real bpy wheel, installed from its zip, against the local service."""

import socket
import threading
import zipfile

import pytest

from tests.conftest import ADDON, KEY


def scene_state(bpy):
    return {
        "objects": sorted(o.name for o in bpy.data.objects),
        "collections": sorted(c.name for c in bpy.data.collections),
        "meshes": len(bpy.data.meshes),
        "materials": len(bpy.data.materials),
        "images": len(bpy.data.images),
    }


def triangles(obj):
    mesh = obj.data
    mesh.calc_loop_triangles()
    return len(mesh.loop_triangles)


def test_zip_holds_only_the_addon(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert {"client.py", "engine.py", "tasks.py", "operators.py", "ui.py"} <= set(names)
    assert not [n for n in names if "test" in n or "__pycache__" in n or n.endswith(".pyc")
                or n.startswith(".")]


def test_register_unregister_register_leaves_nothing(addon):
    import addon_utils
    import bpy

    addon_utils.disable(ADDON, default_set=True)
    assert not hasattr(bpy.types, "MODELSTREAM_OT_generate")
    assert not hasattr(bpy.types, "MODELSTREAM_PT_generate")
    assert not hasattr(bpy.types.Scene, "modelstream")
    assert not hasattr(bpy.types.WindowManager, "modelstream_jobs")
    assert not [t for t in threading.enumerate() if t.name.startswith("modelstream")]
    addon_utils.enable(ADDON, default_set=True)
    assert hasattr(bpy.types, "MODELSTREAM_OT_generate")
    assert bpy.context.preferences.addons[ADDON].preferences.base_url.startswith("https://")


@pytest.mark.parametrize("texture", [True, False])
def test_generate_imports_the_model_at_the_cursor(blender, texture):
    bpy = blender
    bpy.context.scene.cursor.location = (1.0, 2.0, 3.0)
    result = bpy.ops.modelstream.generate(task_type="text_to_model", prompt="a stone lantern",
                                          face_limit=3000, texture=texture)
    assert result == {'FINISHED'}
    coll = bpy.data.collections["ModelStream"]
    empties = [o for o in coll.objects if o.type == 'EMPTY']
    assert len(empties) == 1
    empty = empties[0]
    assert empty.name.startswith("a stone lantern")
    assert tuple(empty.location) == (1.0, 2.0, 3.0)
    assert empty["modelstream_type"] == "text_to_model"
    assert empty["modelstream_prompt"] == "a stone lantern"
    task_id = empty["modelstream_task_id"]
    assert task_id
    meshes = [o for o in coll.objects if o.type == 'MESH']
    assert meshes and all(o.parent == empty for o in meshes)
    assert abs(sum(triangles(o) for o in meshes) - 3000) <= 300
    images = [n.image for o in meshes for slot in o.material_slots if slot.material
              for n in slot.material.node_tree.nodes if n.type == 'TEX_IMAGE' and n.image]
    assert bool(images) == texture
    job = bpy.context.window_manager.modelstream_jobs[-1]
    assert job.state == "IMPORTED" and job.task_id == task_id


def test_key_is_never_saved_in_the_blend(blender, tmp_path):
    bpy = blender
    assert bpy.ops.modelstream.generate(prompt="a red mailbox", face_limit=500) == {'FINISHED'}
    path = str(tmp_path / "scene.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path, compress=False)
    with open(path, "rb") as f:
        data = f.read()
    assert b"a red mailbox" in data
    assert KEY.encode() not in data


def test_panel_settings_are_used_when_the_operator_gets_none(blender):
    bpy = blender
    settings = bpy.context.scene.modelstream
    settings.prompt = "a blue vase"
    settings.face_limit = 800
    assert bpy.ops.modelstream.generate() == {'FINISHED'}
    empty = bpy.data.collections["ModelStream"].objects[0].parent or \
        bpy.data.collections["ModelStream"].objects[0]
    assert empty["modelstream_prompt"] == "a blue vase"


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("case, kwargs, expect", [
    ("empty prompt", {"prompt": "  "}, "prompt"),
    ("zero faces", {"face_limit": 0}, "face_limit"),
    ("negative faces", {"face_limit": -10}, "face_limit"),
    ("no key", {}, "No API key"),
    ("wrong key", {}, "Check the API key"),
    ("task failed", {}, "failed at the service"),
    ("unreachable", {}, "Could not connect"),
])
def test_bad_input_and_failures_leave_the_scene_unchanged(
        blender, service, monkeypatch, capfd, case, kwargs, expect):
    bpy = blender
    if case == "no key":
        monkeypatch.delenv("MODELSTREAM_API_KEY")
    elif case == "wrong key":
        monkeypatch.setenv("MODELSTREAM_API_KEY", "sk-wrong")
    elif case == "task failed":
        service.faults(next_status="failed")
    elif case == "unreachable":
        monkeypatch.setenv("MODELSTREAM_BASE_URL", closed_port_url())
    bpy.ops.mesh.primitive_cube_add()
    before = scene_state(bpy)
    args = {"prompt": "a wooden chair", "face_limit": 1000, **kwargs}
    assert bpy.ops.modelstream.generate(**args) == {'CANCELLED'}
    assert scene_state(bpy) == before
    err = capfd.readouterr().err
    assert expect in err
    assert KEY not in err
    wm = bpy.context.window_manager
    shown = wm.modelstream_error or wm.modelstream_jobs[-1].error
    assert expect in shown
    if case in ("empty prompt", "zero faces", "negative faces", "no key"):
        assert service.stats()["requests"]["create"] == 0


def test_online_access_off_sends_nothing(blender, service):
    bpy = blender
    bpy.context.preferences.system.use_online_access = False
    with pytest.raises(RuntimeError, match="Allow Online Access"):
        bpy.ops.modelstream.generate(prompt="a lamp")
    assert sum(service.stats()["requests"].values()) == 0
