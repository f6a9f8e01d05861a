"""Game Ready (issue 19), headless, against the local service: parts, LODs, stylize, real
size and origin, export for an engine. v3 tasks go through a relay that notes each
request's path; stylize runs on the ModelStream (v2) paths."""


import pytest

from modelstream_addon.core import post_tasks
from tests.conftest import refused


def posts(relay):
    return [path for method, path in relay.seen if method == "POST"]


def triangles(bpy, objects):
    total = 0
    for obj in objects:
        obj.data.calc_loop_triangles()
        total += len(obj.data.loop_triangles)
    return total


def meshes(root):
    return [o for o in root.children_recursive if o.type == 'MESH']


def world_box(bpy, objects):
    from mathutils import Vector

    bpy.context.view_layer.update()
    corners = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
    return (Vector(min(c[i] for c in corners) for i in range(3)),
            Vector(max(c[i] for c in corners) for i in range(3)))


def generated(bpy, addon, prompt="a robot", **options):
    result = addon.api.generate(prompt=prompt, face_limit=4000, **options)
    return bpy.data.objects[result.object_name]


def select(bpy, obj):
    for other in bpy.context.view_layer.objects:
        other.select_set(other is obj)
    bpy.context.view_layer.objects.active = obj


def snapshot(obj):
    return (obj.name, tuple(map(tuple, obj.matrix_world)),
            sorted((o.name, len(o.data.vertices)) for o in meshes(obj)))


def test_a_robot_splits_into_named_parts_that_hold_its_triangles(blender, addon, v3):
    bpy = blender
    robot = generated(bpy, addon)
    select(bpy, robot)
    before, whole = snapshot(robot), triangles(bpy, meshes(robot))
    assert bpy.ops.modelstream.split_parts() == {'FINISHED'}
    assert posts(v3)[-1] == "/v3/mesh/segment"
    job = addon.runtime.jobs()[-1]
    assert job.state == "IMPORTED", job.error
    split = bpy.data.objects[job.imported_as]
    parts = addon.importer.parts_of(split)
    assert {"head", "torso"} <= set(parts) and len(parts) >= 6, sorted(parts)
    assert all(obj.name.startswith(name) for name, obj in parts.items())
    assert triangles(bpy, parts.values()) == whole, "the parts do not hold the whole model"
    assert list(split["modelstream_parts"]) == [o["modelstream_part"] for o in meshes(split)]
    assert snapshot(robot) == before, "the original changed"
    assert world_box(bpy, meshes(split))[0].x > world_box(bpy, meshes(robot))[1].x  # beside

    parts["head"].modelstream_complete = True
    parts["torso"].modelstream_complete = True
    select(bpy, split)
    assert bpy.ops.modelstream.complete_parts() == {'FINISHED'}
    done = addon.runtime.jobs()[-1]
    assert done.state == "IMPORTED" and done.body["type"] == "mesh_completion", done.error
    assert done.body["part_names"] == ["head", "torso"]
    assert set(addon.importer.parts_of(bpy.data.objects[done.imported_as])) == set(parts)


def test_own_meshes_are_imported_then_split(blender, addon, v3):
    bpy = blender
    bpy.ops.mesh.primitive_cube_add(location=(0, 0, 0))
    bpy.ops.mesh.primitive_uv_sphere_add(location=(3, 0, 0))
    for obj in bpy.context.scene.objects:
        obj.select_set(True)
    assert bpy.ops.modelstream.split_parts() == {'FINISHED'}
    assert posts(v3) == ["/v3/files", "/v3/models/import", "/v3/mesh/segment"]
    split = bpy.data.objects[addon.runtime.jobs()[-1].imported_as]
    assert len(addon.importer.parts_of(split)) == 2


def test_three_lods_land_within_their_face_limits_named_for_an_engine(blender, addon, v3):
    bpy = blender
    robot = generated(bpy, addon, "a robot", texture=True)
    select(bpy, robot)
    limits = (3000, 1500, 600)
    assert bpy.ops.modelstream.make_lods(lod_limits=", ".join(map(str, limits))) == {
        'FINISHED'}
    assert posts(v3)[-3:] == ["/v3/mesh/decimate"] * 3
    group = addon.game_ready.lod_group(robot)
    coll = bpy.data.collections[f"{group}_LODs"]
    counts = []
    for n, limit in enumerate(limits):
        root = bpy.data.objects[f"{group}_LOD{n}"]
        assert root.name in coll.objects and root["modelstream_lod"] == n
        lod = meshes(root)
        assert lod and all(o.name.startswith(f"{group}_LOD{n}") for o in lod)
        assert all(o.name in coll.objects for o in lod)
        assert 0 < triangles(bpy, lod) <= limit, (n, triangles(bpy, lod))
        counts.append(triangles(bpy, lod))
        assert tuple(map(tuple, root.matrix_world)) == tuple(
            map(tuple, bpy.data.objects[f"{group}_LOD0"].matrix_world)), "not one transform"
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == 3, counts


def test_a_voxel_version_lands_beside_its_source(blender, addon, service):
    bpy = blender
    vase = generated(bpy, addon, "a ceramic vase")
    select(bpy, vase)
    assert bpy.ops.modelstream.stylize(style="voxel") == {'FINISHED'}
    job = addon.runtime.jobs()[-1]
    assert job.state == "IMPORTED" and job.body["type"] == "stylize_model", job.error
    voxel = bpy.data.objects[job.imported_as]
    assert world_box(bpy, meshes(voxel))[0].x > world_box(bpy, meshes(vase))[1].x
    faces = [p for o in meshes(voxel) for p in o.data.polygons]
    axis = sum(1 for p in faces if max(abs(c) for c in p.normal) > 0.999)
    assert faces and axis == len(faces), "a voxel model has only axis-aligned faces"


@pytest.mark.parametrize("how", ["at import", "set size"])
def test_a_model_set_to_1_8_m_stands_1_8_m_tall_on_the_origin(blender, addon, service, how):
    bpy = blender
    bpy.context.scene.cursor.location = (1.0, 2.0, 0.5)
    if how == "at import":
        robot = generated(bpy, addon, "a donut", size_mode='HEIGHT', target_size=1.8,
                          origin_at_base=True)
    else:
        robot = generated(bpy, addon, "a donut")
        for child in robot.children:  # a model whose origin is not at its base
            child.location += type(child.location)((0.3, -0.2, 0.7))
        select(bpy, robot)
        assert bpy.ops.modelstream.set_size(height=1.8, origin_at_base=True) == {'FINISHED'}
    low, high = world_box(bpy, meshes(robot))
    assert high.z - low.z == pytest.approx(1.8, abs=0.001)
    at = robot.matrix_world.translation
    assert low.z == pytest.approx(at.z, abs=0.001)
    assert (low.x + high.x) / 2 == pytest.approx(at.x, abs=0.001)
    assert (low.y + high.y) / 2 == pytest.approx(at.y, abs=0.001)
    assert tuple(at) == pytest.approx((1.0, 2.0, 0.5))


def _centre(bpy, objects):
    low, high = world_box(bpy, objects)
    return (low + high) / 2


# Where the robot's left arm ends up (the local service's README: export_orientation names
# the axis its front faces in a Z-up world; unturned, "-y", it faces Blender's front view).
LEFT_ARM_TOWARDS = {"+x": (1, 1), "-y": (0, 1), "-x": (1, -1), "+y": (0, -1)}


@pytest.mark.parametrize("facing", ["+x", "-y"])
def test_an_fbx_export_opens_in_blenders_importer_facing_the_way_asked(blender, addon, v3,
                                                                       tmp_path, facing):
    bpy = blender
    robot = generated(bpy, addon)
    split = bpy.data.objects[addon.api.split_parts(robot.name).object_name]  # named parts
    select(bpy, split)
    target = tmp_path / "robot.fbx"
    assert bpy.ops.modelstream.export_model(export_format="FBX", export_orientation=facing,
                                            export_path=str(target)) == {'FINISHED'}
    assert posts(v3)[-1] == "/v3/models/convert"
    job = addon.runtime.jobs()[-1]
    assert job.state == "IMPORTED" and "Exported to" in job.message, job.error
    with open(job.output_path, "rb") as f:
        assert target.read_bytes() == f.read(), "the copy is not the converted file"
    before = set(bpy.data.objects)
    assert bpy.ops.import_scene.fbx(filepath=str(target)) == {'FINISHED'}
    new = [o for o in bpy.data.objects if o not in before and o.type == 'MESH']
    size = world_box(bpy, new)[1] - world_box(bpy, new)[0]
    assert size.z == max(size), "the robot does not stand up in Blender"
    left = _centre(bpy, [o for o in new if "arm_left" in o.name])
    right = _centre(bpy, [o for o in new if "arm_right" in o.name])
    axis, sign = LEFT_ARM_TOWARDS[facing]
    assert (left[axis] - right[axis]) * sign > 0.1, (facing, left, right)
    assert abs(left[1 - axis] - right[1 - axis]) < 0.05


def test_refusals_come_before_any_request(blender, addon, v3, tmp_path):
    bpy = blender
    robot = generated(bpy, addon)
    select(bpy, robot)
    sent = len(posts(v3))
    assert "lod_limits" in refused(bpy.ops.modelstream.make_lods, lod_limits="10000, 20001")
    assert "lod_limits" in refused(bpy.ops.modelstream.make_lods, lod_limits="12000",
                                   lod_quad=True)
    assert "lod_limits" in refused(bpy.ops.modelstream.make_lods, lod_limits="ten")
    assert "export_path" in refused(bpy.ops.modelstream.export_model, export_format="OBJ",
                                    export_path=str(tmp_path / "robot.fbx"))
    assert "export_path" in refused(bpy.ops.modelstream.export_model, export_format="FBX",
                                    export_path=str(tmp_path / "nowhere" / "robot.fbx"))
    with pytest.raises(addon.api.ValidationError, match="split into parts"):
        addon.api.complete_parts(robot.name, parts=["head"])
    assert not bpy.ops.modelstream.complete_parts.poll(), "not a split model"
    assert "generate_parts" in refused(bpy.ops.modelstream.generate, prompt="a robot",
                                       generate_parts=True, texture=True)
    assert "face_limit" in refused(bpy.ops.modelstream.generate, prompt="a robot",
                                   smart_low_poly=True, face_limit=300)
    assert len(posts(v3)) == sent, "a refused command sent a request"


def test_a_rigged_model_cannot_become_obj_and_nothing_is_sent(blender, addon, v3):
    bpy = blender
    result = addon.api.generate(prompt="a standing robot", face_limit=2000)
    addon.api.rig(result.object_name)
    rigged = addon.runtime.jobs()[-1]
    select(bpy, bpy.data.objects[rigged.imported_as])
    sent = len(posts(v3))
    for fmt in ("OBJ", "STL", "3MF"):
        assert "rig" in refused(bpy.ops.modelstream.export_model, export_format=fmt)
    assert len(posts(v3)) == sent


def test_on_modelstream_the_v3_commands_are_greyed_out_saying_how_to_switch(blender, addon,
                                                                          service):
    bpy = blender
    robot = generated(bpy, addon)
    select(bpy, robot)
    for op in ("split_parts", "make_lods", "export_model"):
        assert not getattr(bpy.ops.modelstream, op).poll(), op
    assert bpy.ops.modelstream.stylize.poll()
    assert post_tasks.SEGMENT in addon.services.GAME_READY_V3 or "Tripo API v3" in \
        addon.services.GAME_READY_V3


def test_the_python_api_does_it_all(blender, addon, v3, tmp_path):
    bpy = blender
    result = addon.api.generate(prompt="a robot", face_limit=3000)
    parts = addon.api.split_parts(result.object_name)
    assert parts.ok and parts.task_type == "mesh_segmentation"
    lods = addon.api.make_lods(result.object_name, limits=(2000, 800))
    assert [r.ok for r in lods] == [True, True]
    out = addon.api.export_model(result.object_name, format="GLTF",
                                 path=str(tmp_path / "robot.glb"))
    assert out.ok and (tmp_path / "robot.glb").stat().st_size > 100
    addon.api.set_size(result.object_name, height=2.0)
    robot = bpy.data.objects[result.object_name]
    low, high = world_box(bpy, meshes(robot))
    assert high.z - low.z == pytest.approx(2.0, abs=0.001)


def test_the_game_ready_panel_lists_a_split_models_parts_to_tick(blender, addon, v3):
    from tests.test_ui_draw import draw

    bpy = blender
    robot = generated(bpy, addon)
    split = bpy.data.objects[addon.api.split_parts(robot.name).object_name]
    select(bpy, split)
    shown = draw(bpy.types.MODELSTREAM_PT_game_ready, bpy)
    ticks = [name for kind, name in shown if name == "modelstream_complete"]
    assert len(ticks) == len(addon.importer.parts_of(split)) >= 6
    assert {("operator", f"modelstream.{op}") for op in (
        "split_parts", "complete_parts", "make_lods", "stylize", "set_size",
        "export_model")} <= set(shown)
    select(bpy, robot)
    shown = draw(bpy.types.MODELSTREAM_PT_game_ready, bpy)
    assert ("operator", "modelstream.complete_parts") not in shown  # no parts to complete
