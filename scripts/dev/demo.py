"""The whole thing, end to end, with no API key.

Starts the local ModelStream service, builds the extension zip, installs it with Blender's
extension installer into an isolated Blender user folder, generates a model headlessly from
a prompt, and saves a .blend and a PNG render of the result. Run it with `bash scripts/demo.sh`;
`--variations 4` makes four, side by side (the README's picture of variations).
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


def frame_and_render(bpy, objects, png_path, engine):
    """A camera, a floor and light around the model, rendered to `png_path`."""
    from mathutils import Vector

    scene = bpy.context.scene
    corners = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
    low = Vector(min(c[i] for c in corners) for i in range(3))
    high = Vector(max(c[i] for c in corners) for i in range(3))
    center, radius = (low + high) / 2, (high - low).length / 2

    bpy.ops.mesh.primitive_plane_add(size=radius * 40, location=(center.x, center.y, low.z))
    floor_mat = bpy.data.materials.new("Floor")
    floor_mat.diffuse_color = (0.8, 0.8, 0.82, 1.0)
    bpy.context.object.data.materials.append(floor_mat)

    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    cam.data.lens = 50
    width, height = 800, 600
    half_fov = math.atan(math.tan(cam.data.angle / 2) * min(width, height) / max(width, height))
    direction = Vector((1.0, -1.4, 0.75)).normalized()
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
    scene.render.filepath = png_path
    if engine == "CYCLES":
        scene.render.engine = 'CYCLES'
        scene.cycles.device = 'CPU'
        scene.cycles.samples = 16
        scene.cycles.use_denoising = True
    else:
        scene.render.engine = 'BLENDER_WORKBENCH'
        shading = scene.display.shading
        shading.light = 'STUDIO'
        shading.color_type = 'TEXTURE'
        shading.show_shadows = True
        shading.show_cavity = True
    bpy.ops.render.render(write_still=True)


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
    args = parser.parse_args()
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
        print(f"Generating {args.prompt!r} through {url} ...", flush=True)
        result = bpy.ops.modelstream.generate(task_type="text_to_model", prompt=args.prompt,
                                              face_limit=args.face_limit, texture=True,
                                              pbr=True, variations=args.variations)
        if result != {'FINISHED'}:
            sys.exit("Generation failed: " + bpy.context.window_manager.modelstream_jobs[-1].error)
        meshes = [o for o in bpy.data.collections["ModelStream"].objects if o.type == 'MESH']
        blend_path = os.path.join(out, "model.blend")
        png_path = os.path.join(out, "model.png")
        frame_and_render(bpy, meshes, png_path, args.render_engine)
        bpy.ops.wm.save_as_mainfile(filepath=blend_path)
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"Blend file: {blend_path}")
    print(f"Render:     {png_path}")


if __name__ == "__main__":
    main()
