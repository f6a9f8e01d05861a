"""The whole thing, end to end, with no API key.

Starts the local ModelStream service, builds the extension zip, installs it with Blender's
extension installer into an isolated Blender user folder, generates a model headlessly from
a prompt, and saves a .blend and a PNG render of the result. Run it with `bash scripts/demo.sh`;
`--variations 4` makes four, side by side (the README's picture of variations);
`--game-ready` makes "a robot" on Tripo API v3, splits it into parts and makes three LODs,
side by side with labels (docs/game-ready.png).
"""

import argparse
import math
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
DEMO_KEY = "sk-local-demo"

from local_service import server as local_service  # noqa: E402  (scripts/ is on the path)


def start_service(latency):
    try:
        return local_service.spawn(DEMO_KEY, "--latency", str(latency))
    except RuntimeError as e:
        sys.exit(str(e))


def world_box(objects):
    from mathutils import Vector

    corners = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
    return (Vector(min(c[i] for c in corners) for i in range(3)),
            Vector(max(c[i] for c in corners) for i in range(3)))


def frame_and_render(bpy, objects, png_path, engine, size=(800, 600),
                     direction=(1.0, -1.4, 0.75), samples=16):
    """A camera, a floor and light around the model, rendered to `png_path`. A picture
    wider than tall is filled by the models' width."""
    from mathutils import Vector

    scene = bpy.context.scene
    low, high = world_box(objects)
    center, radius = (low + high) / 2, (high - low).length / 2

    bpy.ops.mesh.primitive_plane_add(size=radius * 40, location=(center.x, center.y, low.z))
    floor_mat = bpy.data.materials.new("Floor")
    floor_mat.diffuse_color = (0.8, 0.8, 0.82, 1.0)
    bpy.context.object.data.materials.append(floor_mat)

    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.data.lens = 50
    width, height = size
    half_fov = math.atan(math.tan(cam.data.angle / 2) * min(width, height) / max(width, height))
    if width > 2 * height:
        half_fov, radius = cam.data.angle / 2, (high - low).x / 2
    direction = Vector(direction).normalized()
    cam.location = center + direction * (radius / math.sin(half_fov) * 1.1)
    cam.rotation_euler = (-direction).to_track_quat('-Z', 'Y').to_euler()
    scene.camera = cam

    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", 'SUN'))
    sun.data.energy = 3.0
    sun.rotation_euler = (math.radians(40), math.radians(15), math.radians(30))
    scene.collection.objects.link(sun)
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.color = (0.45, 0.5, 0.58)
    background = world.node_tree.nodes.get("Background") if world.node_tree else None
    if background is not None:
        background.inputs["Color"].default_value = (0.45, 0.5, 0.58, 1.0)

    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.image_settings.file_format = 'PNG'
    scene.render.image_settings.color_mode = 'RGB'  # an opaque picture: no alpha to keep
    scene.render.image_settings.compression = 100
    scene.render.filepath = png_path
    if engine == "CYCLES":
        scene.render.engine = 'CYCLES'
        scene.cycles.device = 'CPU'
        scene.cycles.samples = samples
        scene.cycles.use_denoising = True
    else:
        scene.render.engine = 'BLENDER_WORKBENCH'
        shading = scene.display.shading
        shading.light = 'STUDIO'
        shading.color_type = 'TEXTURE'
        shading.show_shadows = True
        shading.show_cavity = True
    bpy.ops.render.render(write_still=True)


def meshes_under(root):
    return [o for o in root.children_recursive if o.type == 'MESH']


def triangles(root):
    total = 0
    for obj in meshes_under(root):
        obj.data.calc_loop_triangles()
        total += len(obj.data.loop_triangles)
    return total


def spread(bpy, meshes, factor):
    """Parts moved apart from their common centre, so they read as parts, and back up
    onto the floor they stood on."""
    from mathutils import Matrix, Vector

    low, high = world_box(meshes)
    center, floor = (low + high) / 2, low.z
    for obj in meshes:
        part_low, part_high = world_box([obj])
        offset = ((part_low + part_high) / 2 - center) * factor
        obj.matrix_world = Matrix.Translation(offset) @ obj.matrix_world
    bpy.context.view_layer.update()
    lift = Matrix.Translation(Vector((0.0, 0.0, floor - world_box(meshes)[0].z)))
    for obj in meshes:
        obj.matrix_world = lift @ obj.matrix_world
    bpy.context.view_layer.update()


def label(bpy, text, x, y, size):
    """A small caption standing on the floor, facing the front."""
    curve = bpy.data.curves.new(f"Label {text}", 'FONT')
    curve.body, curve.size, curve.align_x = text, size, 'CENTER'
    obj = bpy.data.objects.new(curve.name, curve)
    obj.location, obj.rotation_euler = (x, y, 0.0), (math.pi / 2, 0.0, 0.0)
    obj.visible_shadow = False  # Cycles: a caption, not a thing in the scene
    material = bpy.data.materials.get("Label")
    if material is None:
        material = bpy.data.materials.new("Label")
        material.diffuse_color = (0.08, 0.09, 0.11, 1.0)  # Workbench
        if material.node_tree is None:
            material.use_nodes = True
        shader = material.node_tree.nodes.get("Principled BSDF")
        if shader is not None:  # Cycles
            shader.inputs["Base Color"].default_value = material.diffuse_color
            shader.inputs["Roughness"].default_value = 0.9
    curve.materials.append(material)
    bpy.context.scene.collection.objects.link(obj)
    return obj


LOD_LIMITS = (10000, 3000, 1000)


def game_ready(bpy, args):
    """A robot made on Tripo API v3, its parts and three LODs in a row, each labelled;
    returns the objects to frame."""
    import importlib

    package = "bl_ext.user_default.modelstream_addon.blender"
    api = importlib.import_module(f"{package}.api")
    os.environ["MODELSTREAM_SERVICE"] = "tripo-v3"
    print("Generating 'a robot', then its parts and LODs ...", flush=True)
    try:
        robot = api.generate(prompt="a robot", face_limit=args.face_limit, texture=True)
        parts = api.split_parts(robot.object_name)
        # One task at a time: the local service's decimator (fast-simplification) mixes
        # up LODs that it makes at once.
        importlib.import_module(f"{package}.preferences").get().max_concurrent = 1
        lods = api.make_lods(robot.object_name, limits=LOD_LIMITS)
    except api.ModelStreamError as e:
        sys.exit(f"Game Ready failed: {e}")
    roots = [bpy.data.objects[r.object_name] for r in (robot, parts, *lods)]
    boxes = [world_box(meshes_under(root)) for root in roots]
    width = max(high.x - low.x for low, high in boxes)
    spacing = width * 1.9
    captions = [f"Generated: {triangles(roots[0])} tris",
                f"Split: {len(meshes_under(roots[1]))} parts"]
    captions += [f"LOD{n}: {triangles(root)} tris" for n, root in enumerate(roots[2:])]
    for n, root in enumerate(roots):
        root.location = (n * spacing, 0.0, root.location.z)
    bpy.context.view_layer.update()
    spread(bpy, meshes_under(roots[1]), 0.45)
    meshes = [o for root in roots for o in meshes_under(root)]
    front = world_box(meshes)[0].y
    labels = []
    for root, caption in zip(roots, captions, strict=True):
        low, high = world_box(meshes_under(root))
        labels.append(label(bpy, caption, (low.x + high.x) / 2, front - width * 0.3,
                            width * 0.22))
    return meshes + labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default="a ceramic vase with blue glaze")
    parser.add_argument("--face-limit", type=int, default=20000)
    parser.add_argument("--out", default=os.path.join(ROOT, "out", "demo"))
    parser.add_argument("--latency", type=float, default=4.0,
                        help="seconds the local service takes per task")
    parser.add_argument("--render-engine", choices=("CYCLES", "WORKBENCH"), default="CYCLES")
    parser.add_argument("--variations", type=int, default=1,
                        help="how many variations (1-8), each with its own seed, side by side")
    parser.add_argument("--game-ready", action="store_true",
                        help="a robot, its parts and three LODs side by side (Tripo API v3), "
                             "to game_ready.png")
    args = parser.parse_args()
    if args.game_ready and args.variations != 1:
        parser.error("--game-ready makes one robot: leave out --variations")
    out = os.path.abspath(args.out)
    user = os.path.join(out, "blender_user")
    shutil.rmtree(user, ignore_errors=True)
    os.makedirs(user)
    os.environ["BLENDER_USER_RESOURCES"] = user

    proc, url = start_service(args.latency)
    try:
        from build_extension import build

        zip_path = build(os.path.join(out, "dist"))
        import bpy

        bpy.context.preferences.system.use_online_access = True
        bpy.ops.wm.read_homefile(use_empty=True)
        bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                 enable_on_install=True)
        os.environ["MODELSTREAM_API_KEY"] = DEMO_KEY
        os.environ["MODELSTREAM_BASE_URL"] = url
        name = "game_ready" if args.game_ready else "model"
        blend_path = os.path.join(out, f"{name}.blend")
        png_path = os.path.join(out, f"{name}.png")
        if args.game_ready:
            frame_and_render(bpy, game_ready(bpy, args), png_path, args.render_engine,
                             (1000, 375), (0.25, -1.4, 0.5), samples=32)
        else:
            print(f"Generating {args.prompt!r} through {url} ...", flush=True)
            result = bpy.ops.modelstream.generate(
                task_type="text_to_model", prompt=args.prompt, face_limit=args.face_limit,
                texture=True, pbr=True, variations=args.variations)
            if result != {'FINISHED'}:
                sys.exit("Generation failed: "
                         + bpy.context.window_manager.modelstream_jobs[-1].error)
            meshes = [o for o in bpy.data.collections["ModelStream"].objects
                      if o.type == 'MESH']
            frame_and_render(bpy, meshes, png_path, args.render_engine)
        bpy.ops.wm.save_as_mainfile(filepath=blend_path)
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"Blend file: {blend_path}")
    print(f"Render:     {png_path}")


if __name__ == "__main__":
    main()
