"""The real add-on in the real bpy wheel, installed from its zip, against the local service."""

import socket
import threading
import zipfile

import pytest

from tests.conftest import ADDON, KEY, refused, task_input


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
    assert {"core/client.py", "core/engine.py", "core/tasks.py", "blender/operators.py",
            "blender/ui.py"} <= set(names)
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
    assert not [t for t in threading.enumerate() if t.name.startswith("modelstream-")
                and t.name != "modelstream-call"]
    assert not [h for h in bpy.app.handlers.load_post if "modelstream" in h.__module__]
    assert not hasattr(bpy.types, "MODELSTREAM_MT_main")
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


def test_panel_settings_are_used_when_the_operator_gets_none(blender, service):
    bpy = blender
    settings = bpy.context.scene.modelstream
    settings.prompt = "a blue vase"
    settings.face_limit = 800
    assert bpy.ops.modelstream.generate() == {'FINISHED'}
    empty = bpy.data.collections["ModelStream"].objects[0].parent or \
        bpy.data.collections["ModelStream"].objects[0]
    assert empty["modelstream_prompt"] == "a blue vase"
    assert task_input(service, empty["modelstream_task_id"])["face_limit"] == 800


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("case, kwargs, expect", [
    ("empty prompt", {"prompt": "  "}, "prompt"),
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
    message = refused(bpy.ops.modelstream.generate, **args)
    assert scene_state(bpy) == before
    assert expect in message and KEY not in message
    printed = capfd.readouterr()
    assert KEY not in printed.out + printed.err
    wm = bpy.context.window_manager
    shown = wm.modelstream_error or wm.modelstream_jobs[-1].error
    assert expect in shown
    if case in ("empty prompt", "negative faces", "no key"):
        assert service.stats()["requests"]["create"] == 0


def test_online_access_off_sends_nothing(blender, service):
    bpy = blender
    bpy.context.preferences.system.use_online_access = False
    with pytest.raises(RuntimeError, match="Allow Online Access"):
        bpy.ops.modelstream.generate(prompt="a lamp")
    assert sum(service.stats()["requests"].values()) == 0


def model_empty(bpy, task_type):
    return [o for o in bpy.data.collections["ModelStream"].objects
            if o.type == 'EMPTY' and o["modelstream_type"] == task_type][-1]


def task_images(bpy, task_type):
    return [i for i in bpy.data.images if i.get("modelstream_task_id")
            and i.name.startswith(task_type)]


def test_image_to_model_from_a_file_converted_when_needed(blender, tmp_path):
    from tests.conftest import write_png

    bpy = blender
    png = write_png(tmp_path / "in.png", 80, 80)
    assert bpy.ops.modelstream.generate(task_type="image_to_model", image_path=png,
                                        face_limit=800) == {'FINISHED'}
    assert model_empty(bpy, "image_to_model")["modelstream_task_id"]
    bmp = bpy.data.images.new("to_bmp", 64, 64)
    bmp.filepath_raw = str(tmp_path / "in.bmp")
    bmp.file_format = 'BMP'
    bmp.save()
    bpy.data.images.remove(bmp)
    assert bpy.ops.modelstream.generate(task_type="image_to_model",
                                        image_path=str(tmp_path / "in.bmp"),
                                        face_limit=800) == {'FINISHED'}


def test_multiview_to_model_from_files_with_a_skipped_slot(blender, service, tmp_path):
    from tests.conftest import write_png

    bpy = blender
    front = write_png(tmp_path / "front.png", 64, 64, (255, 0, 0))
    back = write_png(tmp_path / "back.png", 64, 64, (0, 0, 255))
    assert bpy.ops.modelstream.generate(task_type="multiview_to_model", view_front=front,
                                        view_back=back, face_limit=600) == {'FINISHED'}
    assert model_empty(bpy, "multiview_to_model")
    assert service.stats()["requests"]["upload"] == 2


def test_refine_model_from_a_draft(blender, service):
    bpy = blender
    assert bpy.ops.modelstream.generate(prompt="a draft boat", face_limit=500) == {'FINISHED'}
    draft = model_empty(bpy, "text_to_model")["modelstream_task_id"]
    assert bpy.ops.modelstream.generate(task_type="refine_model",
                                        draft_model_task_id=draft) == {'FINISHED'}
    refined = model_empty(bpy, "refine_model")["modelstream_task_id"]
    assert task_input(service, refined)["draft_model_task_id"] == draft


def test_text_to_image_leaves_tagged_image_datablocks(blender):
    bpy = blender
    assert bpy.ops.modelstream.generate(task_type="text_to_image",
                                        prompt="a fox in snow") == {'FINISHED'}
    images = task_images(bpy, "text_to_image")
    assert len(images) == 1 and images[0].size[0] > 0
    assert images[0].packed_file is not None and images[0].use_fake_user
    job = bpy.context.window_manager.modelstream_jobs[-1]
    assert images[0]["modelstream_task_id"] == job.task_id


def test_multiview_image_chain_into_a_model(blender, service, tmp_path):
    from tests.conftest import write_png

    bpy = blender
    assert bpy.ops.modelstream.generate(task_type="generate_multiview_image",
                                        prompt="a toy robot",
                                        image_path=write_png(tmp_path / "robot.png", 64, 64),
                                        ) == {'FINISHED'}
    views = task_images(bpy, "generate_multiview_image")
    assert sorted(i["modelstream_view"] for i in views) == ["back", "front", "left", "right"]
    first = views[0]["modelstream_task_id"]
    assert bpy.ops.modelstream.generate(task_type="edit_multiview_image", prompt="paint it red",
                                        prompt_back="add a door",
                                        original_task_id=first) == {'FINISHED'}
    edited = task_images(bpy, "edit_multiview_image")[0]["modelstream_task_id"]
    created = service.stats()["tasks_created"]
    message = refused(bpy.ops.modelstream.generate, task_type="edit_multiview_image",
                      prompt="again", original_task_id=edited)
    assert "cannot be edited again" in message
    assert service.stats()["tasks_created"] == created
    assert bpy.ops.modelstream.generate(task_type="multiview_to_model",
                                        original_task_id=edited,
                                        face_limit=700) == {'FINISHED'}
    assert model_empty(bpy, "multiview_to_model")


def test_quad_model_arrives_as_fbx(blender):
    bpy = blender
    assert bpy.ops.modelstream.generate(prompt="a quad crate", face_limit=1000,
                                        quad=True) == {'FINISHED'}
    meshes = [o for o in model_empty(bpy, "text_to_model").children_recursive
              if o.type == 'MESH']
    assert meshes and all(len(p.vertices) == 4 for p in meshes[0].data.polygons)


def test_bad_extra_params_are_refused_before_sending(blender, service):
    bpy = blender
    refused(bpy.ops.modelstream.generate, prompt="a cup", extra_params="{nope")
    assert "extra_params" in bpy.context.window_manager.modelstream_error
    assert service.stats()["requests"]["create"] == 0


def test_test_connection_checks_key_without_creating_a_task(blender, service, monkeypatch):
    bpy = blender
    assert bpy.ops.modelstream.test_connection() == {'FINISHED'}
    assert "accepted" in bpy.context.window_manager.modelstream_connection_report
    monkeypatch.setenv("MODELSTREAM_API_KEY", "sk-wrong")
    refused(bpy.ops.modelstream.test_connection)
    assert "API key" in bpy.context.window_manager.modelstream_connection_report
    assert service.stats()["tasks_created"] == 0


def test_missing_ca_bundle_is_a_clear_error(blender, addon):
    bpy = blender
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.ca_bundle = "/no/such/bundle.pem"
    try:
        refused(bpy.ops.modelstream.generate, prompt="a cup")
        assert "CA bundle" in bpy.context.window_manager.modelstream_error
    finally:
        prefs.ca_bundle = ""


def build_blockout(bpy):
    """An asymmetric little scene: a cube with a cone on its +X side."""
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    cube = bpy.context.object
    bpy.ops.mesh.primitive_cone_add(location=(1.0, 0.0, 0.0))
    cone = bpy.context.object
    for obj in (cube, cone):
        obj.select_set(True)
    return cube, cone


def full_state(bpy):
    scene = bpy.context.scene
    return {**scene_state(bpy), "cameras": len(bpy.data.cameras),
            "engine": scene.render.engine,
            "res": (scene.render.resolution_x, scene.render.resolution_y),
            "camera": scene.camera,
            "selected": sorted(o.name for o in bpy.context.selected_objects),
            "hidden": sorted(o.name for o in bpy.data.objects if o.hide_render)}


def test_orbit_capture_then_multiview_to_model(blender, service):
    bpy = blender
    build_blockout(bpy)
    before = full_state(bpy)
    assert bpy.ops.modelstream.generate(task_type="multiview_to_model",
                                        multiview_source='ORBIT', capture_resolution=128,
                                        face_limit=600) == {'FINISHED'}
    assert service.stats()["requests"]["upload"] == 4
    after = full_state(bpy)
    for key in ("cameras", "engine", "res", "camera", "hidden"):
        assert after[key] == before[key]
    assert model_empty(bpy, "multiview_to_model")


def test_viewport_capture_then_image_to_model(blender, service):
    bpy = blender
    build_blockout(bpy)
    before = full_state(bpy)
    assert bpy.ops.modelstream.generate(task_type="image_to_model", image_source='VIEWPORT',
                                        capture_resolution=128, face_limit=600) == {'FINISHED'}
    after = full_state(bpy)
    for key in ("cameras", "engine", "res", "camera", "hidden"):
        assert after[key] == before[key]
    assert model_empty(bpy, "image_to_model")


def test_capture_step_fills_the_inputs_for_review(blender):
    import os

    bpy = blender
    build_blockout(bpy)
    settings = bpy.context.scene.modelstream
    settings.task_type = "multiview_to_model"
    settings.multiview_source = 'ORBIT'
    settings.capture_resolution = 96
    assert bpy.ops.modelstream.capture() == {'FINISHED'}
    assert settings.multiview_source == 'FILES'
    views = [getattr(settings, f"view_{v}") for v in ("front", "left", "back", "right")]
    assert all(os.path.isfile(p) for p in views)
    assert "extensions" in views[0] or "modelstream_addon" in views[0]
    assert bpy.ops.modelstream.generate(face_limit=500) == {'FINISHED'}


def test_nothing_to_capture_is_a_clear_error(blender, service):
    bpy = blender
    before = scene_state(bpy)
    refused(bpy.ops.modelstream.generate, task_type="multiview_to_model",
            multiview_source='ORBIT')
    assert "multiview_source" in bpy.context.window_manager.modelstream_error
    assert scene_state(bpy) == before
    assert service.stats()["requests"]["upload"] == 0


def test_image_datablock_as_input(blender):
    bpy = blender
    image = bpy.data.images.new("sketch", 128, 128)
    image.generated_type = 'COLOR_GRID'
    assert bpy.ops.modelstream.generate(task_type="image_to_model", image_source='IMAGE',
                                        image_name="sketch", face_limit=500) == {'FINISHED'}
    refused(bpy.ops.modelstream.generate, task_type="image_to_model", image_source='IMAGE',
            image_name="missing")
    assert "missing" in bpy.context.window_manager.modelstream_error


def test_every_operator_is_in_the_menu_with_a_tooltip(addon):
    import bpy

    ids = {f"modelstream.{name}" for name in dir(bpy.ops.modelstream)}
    listed = {entry[0] for entry in addon.ui.MENU_OPERATORS if entry}
    assert ids and ids <= listed
    for op_id in ids:
        rna = getattr(bpy.ops.modelstream, op_id.split(".")[1]).get_rna_type()
        assert len(rna.description) > 10, op_id
    assert addon.ui._add_menu in bpy.types.VIEW3D_MT_add._dyn_ui_initialize()


def test_oversized_and_undersized_images_are_fixed_or_refused_before_sending(
        blender, addon, service, tmp_path):
    bpy = blender
    inputs = addon.inputs
    wide = bpy.data.images.new("wide", 6400, 40)
    wide.filepath_raw = str(tmp_path / "wide.png")
    wide.file_format = 'PNG'
    wide.save()
    bpy.data.images.remove(wide)
    workdir = str(tmp_path / "work")
    import os

    os.makedirs(workdir)
    fixed = inputs.prepare_file(str(tmp_path / "wide.png"), "image_path", workdir)
    from modelstream_addon.core import imagefile

    fmt, width, height = imagefile.sniff(fixed)
    assert fmt == "png" and width == 6000 and height == 37
    tiny = bpy.data.images.new("tiny", 12, 12)
    tiny.filepath_raw = str(tmp_path / "tiny.bmp")
    tiny.file_format = 'BMP'
    tiny.save()
    bpy.data.images.remove(tiny)
    before = scene_state(bpy)
    refused(bpy.ops.modelstream.generate, task_type="image_to_model",
            image_path=str(tmp_path / "tiny.bmp"))
    assert "12x12" in bpy.context.window_manager.modelstream_error
    assert scene_state(bpy) == before
    assert service.stats()["requests"].get("upload", 0) == 0
