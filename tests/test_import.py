"""Landing a model (blender/importer.py), headless, against the local service: what the
glTF importer keeps out of view stays out of the result and of its size; placing, sizing
and lining up add no depsgraph evaluation to the importer's own, yet stay right where only
the depsgraph knows an object's place."""

import pytest


def rigged_robot(bpy):
    assert bpy.ops.modelstream.generate(prompt="a standing robot", face_limit=400) == \
        {'FINISHED'}
    assert bpy.ops.modelstream.rig(animations={"preset:walk"}) == {'FINISHED'}


def world_box(bpy, objects):
    from mathutils import Vector

    bpy.context.view_layer.update()
    corners = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
    return (Vector(min(c[i] for c in corners) for i in range(3)),
            Vector(max(c[i] for c in corners) for i in range(3)))


def land(addon, bpy, path, **options):
    return addon.importer.import_model(
        bpy.context, path, "glb", name="landed", task_id="task-landed",
        task_type="text_to_model", prompt="landed", options=options)


def test_a_rigged_result_leaves_the_bone_shape_hidden_and_out_of_its_height(blender, addon,
                                                                            v3):
    bpy = blender
    rigged_robot(bpy)
    job = addon.runtime.jobs()[-1]
    assert job.state == "IMPORTED", job.error
    root = bpy.data.objects[job.imported_as]
    [armature] = [o for o in root.children_recursive if o.type == 'ARMATURE']
    shapes = {bone.custom_shape for bone in armature.pose.bones} - {None}
    assert shapes, "the glTF importer gives the bones a display shape"
    assert not shapes & set(root.children_recursive)
    assert not any(shape.visible_get() for shape in shapes)

    bpy.context.scene.cursor.location = (1.0, 2.0, 0.5)
    sized = land(addon, bpy, job.output_path, placement='CURSOR', size_mode='HEIGHT',
                 target_size=1.8, origin_at_base=True)
    skinned = [o for o in sized.children_recursive if o.type == 'MESH']
    assert skinned and all(o.find_armature() for o in skinned)
    low, high = world_box(bpy, skinned)
    assert high.z - low.z == pytest.approx(1.8, abs=0.001)
    assert low.z == pytest.approx(0.5, abs=0.001)


def test_landing_evaluates_no_depsgraph_beyond_the_importers(blender, addon, monkeypatch):
    bpy = blender
    addon.api.generate(prompt="a red vase", face_limit=500)
    path = addon.runtime.jobs()[-1].output_path
    bpy.ops.wm.read_homefile(use_empty=True)
    evaluations, by_importer = [], []
    bpy.app.handlers.depsgraph_update_post.append(lambda scene, graph: evaluations.append(1))
    gltf = addon.importer._IMPORTERS["glb"]

    def counted(filepath):  # bpy.ops evaluates the depsgraph before and after an operator
        before = len(evaluations)
        result = gltf(filepath)
        by_importer.append(len(evaluations) - before)
        return result

    monkeypatch.setitem(addon.importer._IMPORTERS, "glb", counted)
    for _ in range(2):  # the second lines up beside the first
        before = len(evaluations)
        land(addon, bpy, path, placement='CURSOR', size_mode='HEIGHT', target_size=1.8,
             origin_at_base=True, row="row-1")
        assert len(evaluations) - before == by_importer[-1]
    left, right = sorted((o for o in bpy.context.scene.objects if o.get("modelstream_row")),
                         key=lambda o: o.location.x)
    right_meshes = [o for o in right.children_recursive if o.type == 'MESH']
    left_meshes = [o for o in left.children_recursive if o.type == 'MESH']
    assert world_box(bpy, right_meshes)[0].x > world_box(bpy, left_meshes)[1].x
    low, high = world_box(bpy, left_meshes)
    assert (high.z - low.z, low.z) == pytest.approx((1.8, 0.0), abs=0.001)


def test_set_size_follows_a_constraint_that_scales_the_result(blender, addon):
    bpy = blender
    result = addon.api.generate(prompt="a donut", face_limit=500)
    root = bpy.data.objects[result.object_name]
    anchor = bpy.data.objects.new("anchor", None)
    bpy.context.scene.collection.objects.link(anchor)
    anchor.location, anchor.scale = (3.0, -1.0, 2.0), (2.0, 2.0, 2.0)
    follow = root.constraints.new('CHILD_OF')
    follow.target, follow.set_inverse_pending = anchor, False  # the anchor's place and size
    for other in bpy.context.view_layer.objects:
        other.select_set(other is root)
    bpy.context.view_layer.objects.active = root
    assert bpy.ops.modelstream.set_size(height=1.8, origin_at_base=True) == {'FINISHED'}
    low, high = world_box(bpy, [o for o in root.children_recursive if o.type == 'MESH'])
    at = root.matrix_world.translation
    assert high.z - low.z == pytest.approx(1.8, abs=0.001)
    assert (low.z, (low.x + high.x) / 2, (low.y + high.y) / 2) == \
        pytest.approx((at.z, at.x, at.y), abs=0.001)


WARM_UP = r"""
import sys, threading
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/scripts"]
import bpy
from local_service.models import make_glb
from modelstream_addon.blender import importer

with open(sys.argv[2], "wb") as f:
    f.write(make_glb("a warm stone", 300))
if sys.argv[3] == "warm":
    thread = threading.Thread(target=importer.warm_up)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
before = set(sys.modules)
assert bpy.ops.import_scene.gltf(filepath=sys.argv[2]) == {'FINISHED'}
print("LOADED", sorted(m for m in set(sys.modules) - before if m.startswith("io_scene_gltf2")))
"""


@pytest.mark.parametrize("warm", ["cold", "warm"])
def test_the_importer_loads_no_module_of_its_own_once_warmed_up(tmp_path, warm):
    """In the GUI the glTF importer's modules load on a thread before the first result
    lands (importer.warm_up); its first run on the main thread then loads none (a fresh
    Blender: earlier tests in this one have run the importer)."""
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = tmp_path / "warm_up.py"
    script.write_text(WARM_UP)
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "user")}
    run = subprocess.run([sys.executable, str(script), root, str(tmp_path / "m.glb"), warm],
                         capture_output=True, text=True, timeout=120, env=env)
    line = next((x for x in run.stdout.splitlines() if x.startswith("LOADED ")), None)
    assert line, run.stdout + run.stderr
    loaded = json.loads(line[len("LOADED "):].replace("'", '"'))
    if warm == "warm":
        assert loaded == [], f"the first import still loaded {loaded}"
    else:
        assert loaded, "the importer loaded nothing cold: the test sees nothing"
