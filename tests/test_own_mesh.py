"""Your own mesh in (issue 14): Texture Selected, Rig, Animate over Tripo API v3, headless,
against the local service through a relay that notes each request's path."""

import os

import pytest

from modelstream_addon.core import model_tasks, tasks
from tests.conftest import refused


def posts(relay):
    return [path for method, path in relay.seen if method == "POST"]


def snapshot(obj):
    """What the user's object is: it must never change."""
    return (obj.name, [tuple(v.co) for v in obj.data.vertices], tuple(map(tuple, obj.matrix_world)),
            [m.name for m in obj.data.materials], obj.hide_get(), len(obj.modifiers))


def triangles(bpy, obj):
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    evaluated.calc_loop_triangles()
    return len(evaluated.loop_triangles)


def result_of(bpy, job):
    root = bpy.data.objects[job.imported_as]
    return root, [o for o in root.children_recursive if o.type == 'MESH']


def sent_vertices(bpy, import_job):
    """Vertices of the GLB the import step uploaded, as Blender's importer reads it."""
    path = os.path.join(import_job.owned, "selection.glb")
    before = set(bpy.data.objects)
    bpy.ops.import_scene.gltf(filepath=path)
    new = [o for o in bpy.data.objects if o not in before]
    count = sum(len(o.data.vertices) for o in new if o.type == 'MESH')
    for obj in new:
        bpy.data.objects.remove(obj)
    return count


def select_only(bpy, *objects):
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj in objects)
    bpy.context.view_layer.objects.active = objects[0] if objects else None


@pytest.mark.parametrize("shape", ["cube", "monkey"])
def test_texture_selected_comes_back_textured_beside_the_untouched_original(
        blender, addon, v3, shape):
    bpy = blender
    getattr(bpy.ops.mesh, f"primitive_{shape}_add")(location=(2.0, 1.0, 0.5),
                                                   rotation=(0.0, 0.0, 0.7))
    original = bpy.context.view_layer.objects.active
    original.modifiers.new("Bevel", 'BEVEL')  # applied in the export, not on the original
    before, tris = snapshot(original), triangles(bpy, original)
    assert bpy.ops.modelstream.texture_selected(prompt="weathered bronze") == {'FINISHED'}
    job = addon.runtime.jobs()[-1]
    assert job.state == "IMPORTED", job.error
    assert posts(v3) == ["/v3/files", "/v3/models/import", "/v3/models/texture"]
    root, meshes = result_of(bpy, job)
    assert sum(len(m.data.polygons) for m in meshes) == tris  # topology unchanged
    assert sum(len(m.data.vertices) for m in meshes) == sent_vertices(
        bpy, addon.runtime.jobs()[-2])
    images = [n.image for m in meshes for slot in m.material_slots
              for n in slot.material.node_tree.nodes if n.type == 'TEX_IMAGE' and n.image]
    assert images and all(i.size[0] > 0 for i in images)
    assert snapshot(original) == before
    assert root["modelstream_type"] == "texture_model"
    assert root["modelstream_import_model_task_id"] != root["modelstream_task_id"]
    assert root["modelstream_source_object"] == original.name
    bpy.context.view_layer.update()
    assert root.matrix_world.to_euler().z == pytest.approx(0.7, abs=1e-4)
    assert root.matrix_world.translation.x > 2.0 + 1.0  # beside it, not on it


def test_rig_and_animate_a_generated_model_with_two_presets(blender, addon, v3):
    bpy = blender
    assert bpy.ops.modelstream.generate(prompt="a standing robot", face_limit=400) == \
        {'FINISHED'}
    assert bpy.ops.modelstream.rig(animations={"preset:walk", "preset:run"}) == {'FINISHED'}
    job = addon.runtime.jobs()[-1]
    assert job.state == "IMPORTED", job.error
    assert posts(v3)[1:] == ["/v3/animations/rig-check", "/v3/animations/rig",
                             "/v3/animations/retarget"]
    root, meshes = result_of(bpy, job)
    [armature] = [o for o in root.children_recursive if o.type == 'ARMATURE']
    assert len(armature.data.bones) > 1
    shapes = {bone.custom_shape for bone in armature.pose.bones}  # the importer's bone display
    skinned = [m for m in meshes if m not in shapes]
    assert skinned and all(m.find_armature() == armature and m.vertex_groups for m in skinned)
    presets = [a for a in bpy.data.actions if "walk" in a.name or "run" in a.name]
    assert {"walk", "run"} <= {w for a in presets for w in ("walk", "run") if w in a.name}
    assert all(a.users or a.use_fake_user for a in presets)  # saved with the file
    tracks = armature.animation_data.nla_tracks if armature.animation_data else []
    on_armature = {strip.action for track in tracks for strip in track.strips}
    on_armature.add(armature.animation_data.action if armature.animation_data else None)
    assert set(presets) <= on_armature  # one Armature: switch in the Action editor or NLA
    assert root["modelstream_type"] == "animate_retarget"
    assert root.get("modelstream_animate_rig_task_id")


def test_a_model_that_cannot_be_rigged_spends_no_rig_task(blender, addon, v3):
    bpy = blender
    bpy.ops.mesh.primitive_plane_add(size=2.0)
    message = refused(bpy.ops.modelstream.rig)
    assert "cannot be rigged" in message
    assert posts(v3) == ["/v3/files", "/v3/models/import", "/v3/animations/rig-check"]


@pytest.mark.parametrize("make, words", [
    (lambda bpy: bpy.ops.object.camera_add(), "is a camera, not a mesh"),
    (lambda bpy: bpy.ops.object.empty_add(), "is a empty, not a mesh"),
    (lambda bpy: _vertices_only(bpy), "no faces"),
])
def test_a_selection_that_cannot_be_sent_is_refused_before_any_request(
        blender, v3, make, words):
    bpy = blender
    bpy.ops.mesh.primitive_cube_add(location=(3, 0, 0))
    make(bpy)
    odd = bpy.context.view_layer.objects.active
    select_only(bpy, *([odd] if words == "no faces" else [odd, bpy.data.objects["Cube"]]))
    before = len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.collections)
    assert words in refused(bpy.ops.modelstream.texture_selected, prompt="bronze")
    assert (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.collections)) == before
    assert posts(v3) == []


def _vertices_only(bpy):
    mesh = bpy.data.meshes.new("points")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [])
    obj = bpy.data.objects.new("points", mesh)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj


def test_texture_needs_a_prompt_or_an_image_and_tripo_v3(blender, service, monkeypatch):
    bpy = blender
    bpy.ops.mesh.primitive_cube_add()
    assert "Tripo API v3" in refused(bpy.ops.modelstream.texture_selected, prompt="bronze")
    monkeypatch.setenv("MODELSTREAM_SERVICE", "tripo-v3")
    assert "weathered bronze" in refused(bpy.ops.modelstream.texture_selected)
    assert service.stats()["tasks_created"] == 0


def test_a_model_over_the_upload_limit_is_refused(tmp_path):
    big = tmp_path / "big.glb"
    with open(big, "wb") as f:
        f.truncate(model_tasks.MAX_UPLOAD_BYTES + 1)  # sparse: no disk used
    with pytest.raises(tasks.ValidationError, match="150 MB"):
        model_tasks.import_body(str(big))
    assert os.path.getsize(big) > model_tasks.MAX_UPLOAD_BYTES


def test_rig_steps_are_checked():
    with pytest.raises(tasks.ValidationError, match="needs rig model"):
        model_tasks.rig_steps("unity")
    with pytest.raises(tasks.ValidationError, match="1 to 5"):
        model_tasks.retarget_step(model_tasks.ANIMATIONS[:6])
    with pytest.raises(tasks.ValidationError, match="cannot be rigged"):
        model_tasks.next_body({"type": model_tasks.RIG}, "t", (False, "others"))
    assert model_tasks.next_body({"type": model_tasks.RIG, "spec": "tripo"}, "t",
                                 (True, "biped"))["rig_type"] == "biped"


def test_each_step_says_its_credits_and_the_session_adds_them_up(blender, addon, v3):
    from tests.test_ui_draw import draw

    bpy = blender
    spent_before = addon.api.credits_used()
    bpy.ops.mesh.primitive_cube_add()
    result = addon.api.texture_selected(prompt="weathered bronze", pbr=False)
    steps = [j for j in addon.runtime.jobs() if j.body.get("type") in
             ("import_model", "texture_model") and j.created >= addon.runtime.SESSION_START]
    imported, textured = steps[-2:]
    assert result.ok and imported.credits == 0 and textured.credits > 0  # as the service said
    assert addon.api.credits_used() == pytest.approx(
        spent_before + sum(j.credits for j in steps[-2:]))
    shown = draw(bpy.types.MODELSTREAM_PT_jobs, bpy)
    assert ("label", f"Credits used this session: {addon.api.credits_used():g}") in shown


def test_the_cli_textures_meshes_of_a_blend_and_rigs_a_model(tmp_path, service):
    from tests.test_cli import SCENE, empties, inspect, python, run_cli

    scene, textured, rigged = (tmp_path / n for n in ("scene.blend", "tex.blend", "rig.blend"))
    python(tmp_path, SCENE, str(scene))
    proc = run_cli(tmp_path, service.url, "texture", "--service", "tripo-v3", "--blend",
                   str(scene), "--objects", "Cone", "--prompt", "weathered bronze",
                   "--no-pbr", "--out", str(textured), "--poll-min", "1")
    assert proc.returncode == 0, proc.stderr
    found = inspect(tmp_path, textured)[str(textured)]
    [empty] = empties(found)
    assert empty["modelstream_type"] == "texture_model"
    assert empty["modelstream_source_object"] == "Cone"
    assert {"Cube", "Cone"} <= set(found["objects"])
    proc = run_cli(tmp_path, service.url, "rig", "--service", "tripo-v3", "--blend",
                   str(textured), "--model", empty_name(found), "--animations",
                   "preset:idle", "--out", str(rigged), "--poll-min", "1")
    assert proc.returncode == 0, proc.stderr
    kinds = {o["type"] for o in inspect(tmp_path, rigged)[str(rigged)]["objects"].values()}
    assert 'ARMATURE' in kinds


def empty_name(found):
    return next(name for name, o in found["objects"].items() if o["type"] == 'EMPTY')


@pytest.mark.parametrize("source", ['FILE', 'IMAGE', 'VIEWPORT'])
def test_a_reference_image_guides_the_texture(blender, addon, v3, tmp_path, source):
    from tests.conftest import write_png

    bpy = blender
    path = write_png(tmp_path / "bronze.png", 64, 64, (180, 120, 60))
    bpy.data.images.load(path).name = "Bronze"
    bpy.ops.mesh.primitive_cube_add()
    assert bpy.ops.modelstream.texture_selected(
        image_source=source, image_path=path, image_name="Bronze") == {'FINISHED'}
    job = addon.runtime.jobs()[-1]
    assert job.state == "IMPORTED", job.error
    assert posts(v3) == ["/v3/files", "/v3/models/import", "/v3/files", "/v3/models/texture"]


def test_animate_a_rigged_model_later(blender, addon, v3):
    bpy = blender
    bpy.ops.mesh.primitive_cylinder_add(depth=3.0)  # tall: riggable as a biped
    assert bpy.ops.modelstream.rig(spec="mixamo") == {'FINISHED'}
    rigged = addon.runtime.jobs()[-1]
    assert rigged.state == "IMPORTED" and rigged.body["type"] == "animate_rig", rigged.error
    message = refused(bpy.ops.modelstream.animate)
    assert "1 to 5" in message  # no preset ticked: nothing sent
    assert bpy.ops.modelstream.animate(animations={"preset:jump"}) == {'FINISHED'}
    job = addon.runtime.jobs()[-1]
    assert job.state == "IMPORTED", job.error
    assert job.body == {"type": "animate_retarget", "animations": ["preset:jump"],
                        "original_model_task_id": rigged.task_id}
    assert posts(v3)[-1] == "/v3/animations/retarget"
    root = bpy.data.objects[job.imported_as]
    assert root["modelstream_animate_rig_task_id"] == rigged.task_id
    assert any("jump" in a.name for a in bpy.data.actions)
