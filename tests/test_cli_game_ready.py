"""The Game Ready commands (parts, lods, stylize, export, size) as a pipeline runs them: the
CLI in a subprocess, on a .blend holding a robot the CLI generated itself, against the
local service over loopback."""

import json
import re
import types

import pytest

from tests.test_cli import CLI, FAST, SCENE, python, run_cli

# What a fresh Blender finds in a .blend: every object with its ModelStream properties,
# parent and collections; a mesh's triangles, faces facing along an axis, and world box.
GEOMETRY = """
import json, sys, bpy
from mathutils import Vector
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
found = {}
for o in bpy.data.objects:
    entry = {"type": o.type, "parent": o.parent.name if o.parent else "",
             "collections": [c.name for c in o.users_collection],
             "location": list(o.matrix_world.translation),
             **{k: o[k] for k in o.keys() if k.startswith("modelstream_")}}
    if o.type == 'MESH':
        o.data.calc_loop_triangles()
        corners = [o.matrix_world @ Vector(c) for c in o.bound_box]
        entry.update(triangles=len(o.data.loop_triangles), faces=len(o.data.polygons),
                     axis_faces=sum(max(map(abs, p.normal)) > 0.999 for p in o.data.polygons),
                     low=[min(c[i] for c in corners) for i in range(3)],
                     high=[max(c[i] for c in corners) for i in range(3)])
    found[o.name] = entry
print("FOUND " + json.dumps(found, default=lambda v: v.to_list() if hasattr(v, "to_list")
                            else list(v)))
"""

# Blender's own FBX importer on a file: what it made.
FBX_OPENS = """
import json, sys, bpy
from mathutils import Vector
bpy.ops.wm.read_homefile(use_empty=True)
assert bpy.ops.import_scene.fbx(filepath=sys.argv[1]) == {'FINISHED'}
meshes = [o for o in bpy.data.objects if o.type == 'MESH']
corners = [o.matrix_world @ Vector(c) for o in meshes for c in o.bound_box]
size = [max(c[i] for c in corners) - min(c[i] for c in corners) for i in range(3)]
print("FOUND " + json.dumps({"meshes": sorted(o.name for o in meshes), "size": size}))
"""


# A copy of a .blend whose model's meshes are moved off its origin and raised.
RAISE = """
import sys, bpy
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
for child in bpy.data.objects[sys.argv[2]].children:
    child.location += type(child.location)((0.3, -0.2, 0.7))
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[3])
"""


def objects(tmp_path, blend):
    out = python(tmp_path, GEOMETRY, str(blend))
    return json.loads(next(line for line in out.splitlines()
                           if line.startswith("FOUND "))[len("FOUND "):])


def meshes_under(found, root):
    """The meshes below `root`, at any depth."""
    def under(name):
        parent = found[name]["parent"]
        return parent == root or (parent and under(parent))
    return {name: o for name, o in found.items() if o["type"] == 'MESH' and under(name)}


def results(found, task_type):
    return [name for name, o in found.items() if o.get("modelstream_type") == task_type]


def box(meshes):
    return ([min(m["low"][i] for m in meshes) for i in range(3)],
            [max(m["high"][i] for m in meshes) for i in range(3)])


def created(service):
    return service.stats()["tasks_created"]


@pytest.fixture(scope="module")
def game_service(service_process):
    """The session's service, reset once for this module only: the robot's task must
    outlive each test."""
    service_process.reset()
    return service_process


def generate_robot(folder, service, service_name):
    """(.blend, the robot's Empty): made by the CLI's own `generate`."""
    blend = folder / "robot.blend"
    proc = run_cli(folder, service.url, "generate", "--service", service_name, "--prompt",
                   "a robot", "--face-limit", "4000", "--placement", "ORIGIN", "--out",
                   str(blend), *FAST)
    assert proc.returncode == 0, proc.stderr
    [name] = results(objects(folder, blend), "text_to_model")
    return blend, name


@pytest.fixture(scope="module")
def robot(tmp_path_factory, game_service):
    """A robot on Tripo API v3, where parts, LODs and export run."""
    return generate_robot(tmp_path_factory.mktemp("robot"), game_service, "tripo-v3")


@pytest.fixture(scope="module")
def modelstream_robot(tmp_path_factory, game_service):
    """A robot on the ModelStream service, where stylize runs: a task is known only to the
    service that made it."""
    return generate_robot(tmp_path_factory.mktemp("robot"), game_service, "modelstream")


def game(tmp_path, service, command, *args, v3=True):
    return run_cli(tmp_path, service.url, command, *(["--service", "tripo-v3"] if v3 else []),
                   *args, *FAST)


def test_the_game_ready_commands_take_their_flags(addon, capsys):
    """Parsed as the CLI parses them, with the installed add-on's properties."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("modelstream_cli_game_ready", CLI)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    loaded = cli.cli_addon.Addon("bl_ext.user_default.modelstream_addon")
    parser = cli.build_parser(loaded.option_props(), cli.DESCRIPTION, loaded.mesh_props(),
                              loaded.game_props())
    common = ["--blend", "in.blend", "--out", "out.blend"]
    args = parser.parse_args(["parts", *common, "--model", "Robot", "--complete", "head",
                              "torso", "--segment-model", "v1.0-20250506"])
    assert (args.model, args.complete, args.segment_model) == (
        "Robot", ["head", "torso"], "v1.0-20250506")
    args = parser.parse_args(["lods", *common, "--limits", "10000", "3000", "1000", "--quad"])
    assert args.limits == [10000, 3000, 1000] and args.lod_quad is True
    args = parser.parse_args(["stylize", *common, "--style", "minecraft", "--block-size", "64"])
    assert (args.style, args.block_size) == ("minecraft", 64)
    args = parser.parse_args(["export", *common, "--objects", "Cube", "--format", "USDZ",
                              "--fbx-preset", "mixamo", "--orientation=-y",
                              "--face-limit", "5000", "--texture-size", "1024",
                              "--pivot-bottom", "--to", "x.usdz"])
    assert (args.objects, args.export_format, args.fbx_preset, args.export_orientation,
            args.export_face_limit, args.texture_size, args.pivot_to_center_bottom,
            args.export_path) == (["Cube"], "USDZ", "mixamo", "-y", 5000, 1024, True, "x.usdz")
    args = parser.parse_args(["size", *common, "--height", "1.8", "--no-origin-at-base"])
    assert (args.height, args.origin_at_base) == (1.8, False)
    for command, flag in (("lods", "--objects"), ("stylize", "--objects"), ("size", "--raw"),
                          ("size", "--timeout"), ("export", "--complete")):
        with pytest.raises(SystemExit):
            parser.parse_args([command, *common, flag, "x"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    listed = capsys.readouterr().out
    assert all(command in listed for command in ("parts", "lods", "stylize", "export", "size"))
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--help"])
    assert "(default FBX)" in capsys.readouterr().out


def test_parts_splits_the_robot_into_named_parts_then_completes_two(tmp_path, game_service,
                                                                    robot):
    blend, name = robot
    out = tmp_path / "parts.blend"
    before = created(game_service)
    proc = game(tmp_path, game_service, "parts", "--blend", str(blend), "--model", name,
                "--complete", "head", "torso", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(out)]
    assert created(game_service) == before + 2
    found = objects(tmp_path, out)
    whole = sum(m["triangles"] for m in meshes_under(found, name).values())
    [split] = results(found, "mesh_segmentation")
    parts = {m["modelstream_part"]: m for m in meshes_under(found, split).values()}
    assert {"head", "torso", "arm_left", "arm_right"} <= set(parts) and len(parts) >= 6
    assert sum(p["triangles"] for p in parts.values()) == whole, "the parts lose triangles"
    assert box(parts.values())[0][0] > box(meshes_under(found, name).values())[1][0]
    [completed] = results(found, "mesh_completion")
    assert {m["modelstream_part"] for m in meshes_under(found, completed).values()} == set(parts)
    assert not results(objects(tmp_path, blend), "mesh_segmentation"), "--blend was changed"


def test_parts_of_your_own_meshes(tmp_path, game_service):
    scene, out = tmp_path / "scene.blend", tmp_path / "split.blend"
    python(tmp_path, SCENE, str(scene))
    before = created(game_service)
    proc = game(tmp_path, game_service, "parts", "--blend", str(scene), "--objects", "Cube",
                "Cone", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert created(game_service) == before + 2  # the import, then the split
    found = objects(tmp_path, out)
    [split] = results(found, "mesh_segmentation")
    assert len(meshes_under(found, split)) == 2 and {"Cube", "Cone"} <= set(found)


def test_complete_names_a_part_the_split_did_not_make(tmp_path, game_service, robot):
    blend, name = robot
    out = tmp_path / "parts.blend"
    before = created(game_service)
    proc = game(tmp_path, game_service, "parts", "--blend", str(blend), "--model", name,
                "--complete", "tail", "--out", str(out))
    assert proc.returncode == 2
    assert "'tail' is not a part" in proc.stderr and "head" in proc.stderr, proc.stderr
    assert created(game_service) == before + 1, "a completion was sent"
    assert proc.stdout.split() == [str(out)], "the split (paid for) was not saved"
    assert results(objects(tmp_path, out), "mesh_segmentation")


def test_lods_land_within_their_limits_named_for_an_engine(tmp_path, game_service, robot,
                                                           addon):
    blend, name = robot
    out = tmp_path / "lods.blend"
    limits = (3000, 1500, 600)
    before = created(game_service)
    proc = game(tmp_path, game_service, "lods", "--blend", str(blend), "--model", name,
                "--limits", *map(str, limits), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert created(game_service) == before + 3
    found = objects(tmp_path, out)
    group = addon.game_ready.lod_group(types.SimpleNamespace(name=name))
    lods = sorted(n for n in found if re.fullmatch(rf"{re.escape(group)}_LOD\d", n))
    assert lods == [f"{group}_LOD{n}" for n in range(3)]
    for lod, limit in zip(lods, limits, strict=True):
        meshes = meshes_under(found, lod)
        assert 0 < sum(m["triangles"] for m in meshes.values()) <= limit, lod
        assert all(f"{group}_LODs" in m["collections"] for m in meshes.values())
        assert found[lod]["location"] == found[lods[0]]["location"], "not one transform"


def test_stylize_voxel_on_the_modelstream_service(tmp_path, game_service, modelstream_robot):
    blend, name = modelstream_robot
    out = tmp_path / "voxel.blend"
    before = created(game_service)
    proc = game(tmp_path, game_service, "stylize", "--service", "modelstream", "--blend",
                str(blend), "--model", name, "--style", "voxel", "--out", str(out), v3=False)
    assert proc.returncode == 0, proc.stderr
    assert created(game_service) == before + 1
    found = objects(tmp_path, out)
    [voxel] = results(found, "stylize_model")
    cubes = meshes_under(found, voxel).values()
    assert cubes and all(m["axis_faces"] == m["faces"] > 0 for m in cubes), "not voxels"
    assert box(cubes)[0][0] > box(meshes_under(found, name).values())[1][0], "not beside"


def test_export_fbx_to_a_path_opens_in_blenders_importer(tmp_path, game_service, robot):
    blend, name = robot
    out, target = tmp_path / "exported.blend", tmp_path / "x.fbx"
    before = created(game_service)
    proc = game(tmp_path, game_service, "export", "--blend", str(blend), "--model", name,
                "--format", "FBX", "--to", "x.fbx", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(out), str(target)]
    assert created(game_service) == before + 1
    opened = json.loads(python(tmp_path, FBX_OPENS, str(target)).split("FOUND ")[-1])
    assert opened["meshes"], "Blender's FBX importer found no mesh"
    assert opened["size"][2] == max(opened["size"]), "the robot does not stand up"


@pytest.mark.parametrize("origin_at_base", [True, False])
def test_size_makes_the_robot_1_8_m_tall_without_a_request(tmp_path, game_service, robot,
                                                           origin_at_base):
    blend, name = tmp_path / "raised.blend", robot[1]
    python(tmp_path, RAISE, str(robot[0]), name, str(blend))
    out = tmp_path / "sized.blend"
    before = created(game_service)
    proc = run_cli(tmp_path, None, "size", "--blend", str(blend), "--model", name,
                   "--height", "1.8", "--out", str(out),
                   *([] if origin_at_base else ["--no-origin-at-base"]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(out)]
    assert created(game_service) == before
    found = objects(tmp_path, out)
    low, high = box(meshes_under(found, name).values())
    assert high[2] - low[2] == pytest.approx(1.8, abs=0.001)
    at = found[name]["location"]
    on_base = (low[2] == pytest.approx(at[2], abs=0.001)
               and (low[0] + high[0]) / 2 == pytest.approx(at[0], abs=0.001))
    assert on_base == origin_at_base, (low, high, at)


@pytest.mark.parametrize("args, says", [
    (["lods", "--limits", "10000", "20001"], "lod_limits: must be a whole number from 500"),
    (["lods", "--limits", "12000", "--quad"], "with quads"),
    (["export", "--format", "OBJ", "--to", "x.fbx"], "must end in .obj"),
    (["parts", "--service", "modelstream"], "need Tripo API v3"),
])
def test_refusals_exit_before_any_task(tmp_path, game_service, robot, args, says):
    blend, name = robot
    out = tmp_path / "refused.blend"
    before = created(game_service)
    command, *rest = args
    proc = run_cli(tmp_path, game_service.url, command,
                   *([] if "--service" in rest else ["--service", "tripo-v3"]), "--blend",
                   str(blend), "--model", name, *rest, "--out", str(out), *FAST)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and "modelstream: error:" in proc.stderr, proc.stderr
    assert created(game_service) == before, "a refused command created a task"
    assert not out.exists() and not proc.stdout


def test_a_rigged_robot_cannot_be_exported_as_obj(tmp_path, game_service, robot):
    blend, name = robot
    rigged = tmp_path / "rigged.blend"
    proc = game(tmp_path, game_service, "rig", "--blend", str(blend), "--model", name,
                "--out", str(rigged))
    assert proc.returncode == 0, proc.stderr
    [rig] = results(objects(tmp_path, rigged), "animate_rig")
    before = created(game_service)
    proc = game(tmp_path, game_service, "export", "--blend", str(rigged), "--model", rig,
                "--format", "OBJ", "--out", str(tmp_path / "obj.blend"))
    assert proc.returncode == 2 and "cannot carry this model's rig" in proc.stderr, proc.stderr
    assert created(game_service) == before
