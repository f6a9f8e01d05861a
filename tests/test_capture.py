"""Scene captures under the real bpy module: sizes, alpha, framing, which side is "left",
the headless viewport fallback, and a scene left exactly as it was (also after a failure).

The scene: a grey cube at the origin, a red cone on +X and a green sphere on +Y, small
enough to hide behind the cube when seen from the other side.
"""

import math
import os
import struct

import numpy as np
import pytest

from modelstream_addon.blender import capture

SETTINGS_TYPES = {'BOOLEAN', 'INT', 'FLOAT', 'STRING', 'ENUM'}
UNSET = {"wireframe_color_type"}  # holds no valid value in a fresh scene; nothing sets it


def _material(bpy, name, rgba):
    material = bpy.data.materials.new(name)
    material.diffuse_color = rgba
    return material


def _add(bpy, op, name, rgba, **kwargs):
    op(**kwargs)
    obj = bpy.context.object
    obj.name = name
    obj.data.materials.append(_material(bpy, name, rgba))
    return obj


@pytest.fixture
def bpy():
    """The three-object scene with settings far from the capture ones, nothing selected."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    mesh = bpy.ops.mesh
    cube = _add(bpy, mesh.primitive_cube_add, "Cube", (0.6, 0.6, 0.7, 1), size=2)
    _add(bpy, mesh.primitive_cone_add, "Cone", (1, 0, 0, 1), radius1=0.8, depth=1.6,
         location=(2.5, 0, 0))
    _add(bpy, mesh.primitive_uv_sphere_add, "Sphere", (0, 1, 0, 1), radius=0.6,
         location=(0, 2.5, 0))
    hidden = _add(bpy, mesh.primitive_cube_add, "HiddenInView", (1, 1, 0, 1), size=50,
                  location=(0, 0, -60))
    hidden.hide_set(True)
    hidden.hide_render = True
    disabled = _add(bpy, mesh.primitive_cube_add, "Disabled", (1, 1, 0, 1), size=50,
                    location=(0, 0, 60))
    disabled.hide_viewport = True
    bpy.ops.object.select_all(action='DESELECT')
    bpy.context.view_layer.objects.active = cube
    scene = bpy.context.scene
    scene.render.engine = 'CYCLES'
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    scene.render.resolution_percentage = 50
    scene.render.filepath = "//renders/frame_####"
    scene.render.image_settings.file_format = 'JPEG'
    scene.view_settings.view_transform = 'AgX'
    scene.display.shading.light = 'MATCAP'
    scene.world = bpy.data.worlds.new("UserWorld")
    return bpy


@pytest.fixture
def camera(bpy):
    """A scene camera seeing all three objects, removed again after the test."""
    bpy.ops.object.camera_add(location=(7, -7, 5), rotation=(math.radians(65), 0,
                                                              math.radians(45)))
    camera = bpy.context.object
    camera.select_set(False)
    bpy.context.scene.camera = camera
    bpy.context.view_layer.objects.active = bpy.data.objects["Cube"]
    yield camera
    data = camera.data
    bpy.data.objects.remove(camera)
    bpy.data.cameras.remove(data)


def _settings(struct_):
    return {p.identifier: (tuple(getattr(struct_, p.identifier)) if getattr(p, "is_array", False)
                           else getattr(struct_, p.identifier))
            for p in struct_.bl_rna.properties
            if p.type in SETTINGS_TYPES and p.identifier not in UNSET}


def _state(bpy):
    """Everything a capture may touch, as plain values."""
    scene, view_layer = bpy.context.scene, bpy.context.view_layer
    data = ("cameras", "objects", "images", "worlds", "meshes", "materials")
    return {
        "names": sorted(obj.name for obj in bpy.data.objects),
        "counts": {name: len(getattr(bpy.data, name)) for name in data},
        "render": _settings(scene.render),
        "image": _settings(scene.render.image_settings),
        "view": _settings(scene.view_settings),
        "display": _settings(scene.display),
        "shading": _settings(scene.display.shading),
        "camera": scene.camera and scene.camera.name,
        "world": scene.world and scene.world.name,
        "objects": {obj.name: (obj.hide_render, obj.hide_viewport, obj.hide_get(),
                               obj.select_get(), tuple(map(tuple, obj.matrix_world)))
                    for obj in view_layer.objects},
        "active": view_layer.objects.active and view_layer.objects.active.name,
    }


@pytest.fixture
def unchanged(bpy):
    """Fails the test if the scene differs after it from the scene before it."""
    before = _state(bpy)
    yield
    assert _state(bpy) == before


def _png(path):
    """(width, height, bit depth, colour type) from the PNG header: 2 is RGB, 6 RGBA."""
    with open(path, "rb") as f:
        head = f.read(26)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height, head[24], head[25]


def _pixels(bpy, path):
    """RGBA floats, rows bottom to top."""
    image = bpy.data.images.load(path, check_existing=False)
    try:
        width, height = image.size
        pixels = np.empty(width * height * 4, np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(height, width, 4)


def _mask(pixels, channel):
    """Pixels where one colour channel clearly dominates: 0 red cone, 1 green sphere."""
    main = pixels[..., channel]
    others = np.delete(pixels[..., :3], channel, axis=2).max(axis=2)
    return (main > 0.2) & (main > 2 * others)


def _centroid(mask):
    rows, cols = np.nonzero(mask)
    return cols.mean(), rows.mean()


RED, GREEN = 0, 1


def test_orbit_writes_four_square_rgb_pngs(bpy, unchanged, tmp_path):
    paths = capture.capture_orbit(bpy.context, tmp_path / "orbit", resolution=64)
    assert list(paths) == ["front", "left", "back", "right"]
    for name, path in paths.items():
        assert path == str(tmp_path / "orbit" / f"{name}.png")
        assert os.path.getsize(path) > 0
        assert _png(path) == (64, 64, 8, 2)


def test_orbit_left_is_the_subjects_left(bpy, unchanged, tmp_path):
    """Facing -Y, the subject's left is +X: the left view shows the cone, the right view
    hides it behind the cube; the sphere (behind the subject) is right in the left view."""
    paths = capture.capture_orbit(bpy.context, tmp_path, resolution=96)
    views = {name: _pixels(bpy, path) for name, path in paths.items()}
    red = {name: _mask(pixels, RED).sum() for name, pixels in views.items()}
    green = {name: _mask(pixels, GREEN).sum() for name, pixels in views.items()}
    assert red["left"] > 300 and red["right"] == 0
    assert green["back"] > 100 and green["front"] == 0
    assert _centroid(_mask(views["left"], GREEN))[0] > 60
    assert _centroid(_mask(views["right"], GREEN))[0] < 36
    assert _centroid(_mask(views["front"], RED))[0] > 60
    assert _centroid(_mask(views["back"], RED))[0] < 36
    assert np.abs(views["front"] - views["left"]).mean() > 0.02


def test_orbit_centres_and_fills_with_the_margin(bpy, unchanged, tmp_path):
    """Transparent ortho views: the widest extent (the front's 4.3 units) fills 80 %."""
    paths = capture.capture_orbit(bpy.context, tmp_path, resolution=128, transparent=True)
    for name, path in paths.items():
        assert _png(path) == (128, 128, 8, 6)
        alpha = _pixels(bpy, path)[..., 3]
        assert (alpha == 0).any() and (alpha == 1).any()
        rows, cols = np.nonzero(alpha > 0.5)
        left, right = cols.min(), 127 - cols.max()
        bottom, top = rows.min(), 127 - rows.max()
        assert abs(left - right) <= 2 and abs(bottom - top) <= 2, name
        assert min(left, bottom) >= 11, name
    rows, cols = np.nonzero(_pixels(bpy, paths["front"])[..., 3] > 0.5)
    assert abs(cols.max() - cols.min() + 1 - 0.8 * 128) <= 3


def test_orbit_perspective_keeps_the_subject_inside(bpy, unchanged, tmp_path):
    paths = capture.capture_orbit(bpy.context, tmp_path, resolution=64, ortho=False,
                                  transparent=True, margin=0.05)
    for path in paths.values():
        alpha = _pixels(bpy, path)[..., 3]
        border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
        assert (border == 0).all() and (alpha > 0.5).mean() > 0.1


def test_orbit_faces_the_active_objects_front(bpy, unchanged, tmp_path):
    """The cube turned 90 degrees about Z faces +X, so its front is the world's left view."""
    cube = bpy.data.objects["Cube"]
    cube.rotation_euler.z = math.radians(90)
    local = capture.capture_orbit(bpy.context, tmp_path / "local", resolution=64,
                                  front='ACTIVE_LOCAL')
    world = capture.capture_orbit(bpy.context, tmp_path / "world", resolution=64)
    for ours, theirs in (("front", "left"), ("left", "back"), ("back", "right"),
                         ("right", "front")):
        diff = np.abs(_pixels(bpy, local[ours]) - _pixels(bpy, world[theirs]))
        assert diff.mean() < 0.005, ours
    cube.rotation_euler.z = 0
    bpy.context.view_layer.update()


def test_orbit_subject_is_the_objects_or_the_selection(bpy, unchanged, tmp_path):
    cone = bpy.data.objects["Cone"]
    paths = capture.capture_orbit(bpy.context, tmp_path / "a", resolution=64, objects=[cone])
    front = _pixels(bpy, paths["front"])
    assert _mask(front, RED).mean() > 0.2 and not _mask(front, GREEN).any()
    bpy.data.objects["Sphere"].select_set(True)
    before = _state(bpy)
    paths = capture.capture_orbit(bpy.context, tmp_path / "b", resolution=64)
    assert _state(bpy) == before
    front = _pixels(bpy, paths["front"])
    assert _mask(front, GREEN).mean() > 0.2 and not _mask(front, RED).any()
    bpy.data.objects["Sphere"].select_set(False)


def test_nothing_to_capture_fails_before_any_change(bpy, tmp_path):
    for name in ("Cube", "Cone", "Sphere"):
        bpy.data.objects.remove(bpy.data.objects[name])
    bpy.context.view_layer.update()
    before = _state(bpy)
    with pytest.raises(capture.CaptureError, match="Nothing to capture"):
        capture.capture_orbit(bpy.context, tmp_path, resolution=64)
    with pytest.raises(capture.CaptureError, match="Nothing to capture"):
        capture.capture_viewport(bpy.context, tmp_path / "v.png", resolution=64)
    assert _state(bpy) == before
    assert not os.listdir(tmp_path)


def test_viewport_without_a_screen_is_the_orbit_front(bpy, unchanged, tmp_path):
    orbit = capture.capture_orbit(bpy.context, tmp_path, resolution=64)
    with bpy.context.temp_override(screen=None):
        assert bpy.context.screen is None
        path = capture.capture_viewport(bpy.context, tmp_path / "view.png", resolution=64)
    assert _png(path) == (64, 64, 8, 2)
    assert np.abs(_pixels(bpy, path) - _pixels(bpy, orbit["front"])).max() < 0.02


def _view3d(bpy):
    area = next(a for a in bpy.context.screen.areas if a.type == 'VIEW_3D')
    region = next(r for r in area.regions if r.type == 'WINDOW')
    return area.spaces.active, region


def test_viewport_headless_matches_the_view_projection(bpy, unchanged, tmp_path):
    """A perspective top view: the sphere lands where the view's own matrix puts it, both
    in the view's aspect and in the square middle crop."""
    from mathutils import Quaternion, Vector

    space, region = _view3d(bpy)
    r3d = space.region_3d
    r3d.view_perspective = 'PERSP'
    r3d.view_rotation = Quaternion()
    r3d.view_location = (1, 1, 0)
    r3d.view_distance = 9
    r3d.update()
    point = r3d.perspective_matrix @ Vector((0, 2.5, 0, 1))
    ndc_x, ndc_y = point.x / point.w, point.y / point.w
    wide = capture.capture_viewport(bpy.context, tmp_path / "wide.png", resolution=128,
                                    square=False)
    width, height = _png(wide)[:2]
    assert (width, height) == (128, round(128 * region.height / region.width))
    x, y = _centroid(_mask(_pixels(bpy, wide), GREEN))
    assert abs(x + 0.5 - (ndc_x + 1) / 2 * width) < 1.5
    assert abs(y + 0.5 - (ndc_y + 1) / 2 * height) < 1.5
    square = capture.capture_viewport(bpy.context, tmp_path / "square.png", resolution=128)
    assert _png(square)[:2] == (128, 128)
    short = min(region.width, region.height)
    x, y = _centroid(_mask(_pixels(bpy, square), GREEN))
    assert abs(x + 0.5 - (ndc_x * region.width / short + 1) / 2 * 128) < 1.5
    assert abs(y + 0.5 - (ndc_y * region.height / short + 1) / 2 * 128) < 1.5


def test_viewport_headless_ortho_scale(bpy, unchanged, tmp_path):
    """Front ortho view: the 2-unit cube spans 2 / (distance * 72 / lens) of the width."""
    from mathutils import Euler

    space, region = _view3d(bpy)
    r3d = space.region_3d
    r3d.view_perspective = 'ORTHO'
    r3d.view_rotation = Euler((math.radians(90), 0, 0)).to_quaternion()
    r3d.view_location = (0, 0, 0)
    r3d.view_distance = 10
    path = capture.capture_viewport(bpy.context, tmp_path / "ortho.png", resolution=128,
                                    transparent=True)
    pixels = _pixels(bpy, path)
    cube = (pixels[..., 3] > 0.5) & (pixels[..., 2] > pixels[..., 0] + 0.02)  # blue-grey
    cols = np.nonzero(cube[64])[0]
    crop = min(region.width, region.height) / max(region.width, region.height)
    expected = 2 / (10 * 72 / space.lens * crop) * 128
    assert abs(len(cols) - expected) <= 2
    assert abs((cols.min() + cols.max()) / 2 - 63.5) <= 1


def test_viewport_camera_view_needs_a_camera(bpy, unchanged, tmp_path):
    space, _ = _view3d(bpy)
    space.region_3d.view_perspective = 'CAMERA'
    with pytest.raises(capture.CaptureError, match="camera"):
        capture.capture_viewport(bpy.context, tmp_path / "none.png", resolution=64)


def test_viewport_camera_view_renders_the_scene_camera(bpy, camera, unchanged, tmp_path):
    space, _ = _view3d(bpy)
    space.region_3d.view_perspective = 'CAMERA'
    view = capture.capture_viewport(bpy.context, tmp_path / "view.png", resolution=96,
                                    square=False)
    render = capture.capture_render(bpy.context, tmp_path / "render.png", resolution=96,
                                    square=False)
    assert _png(view) == _png(render) == (96, 54, 8, 2)
    view, render = _pixels(bpy, view), _pixels(bpy, render)
    for channel in (RED, GREEN):
        ours, theirs = _centroid(_mask(view, channel)), _centroid(_mask(render, channel))
        assert np.hypot(ours[0] - theirs[0], ours[1] - theirs[1]) < 1


def test_viewport_only_selected_hides_the_rest(bpy, unchanged, tmp_path):
    bpy.data.objects["Cube"].select_set(True)
    before = _state(bpy)
    every = capture.capture_viewport(bpy.context, tmp_path / "all.png", resolution=96)
    alone = capture.capture_viewport(bpy.context, tmp_path / "cube.png", resolution=96,
                                     only_selected=True)
    assert _state(bpy) == before
    every, alone = _pixels(bpy, every), _pixels(bpy, alone)
    assert _mask(every, RED).any() and _mask(every, GREEN).any()
    assert not _mask(alone, RED).any() and not _mask(alone, GREEN).any()
    assert np.abs(every - alone).max() > 0.1
    bpy.data.objects["Cube"].select_set(False)


def test_render_needs_a_scene_camera(bpy, unchanged, tmp_path):
    with pytest.raises(capture.CaptureError, match="no camera"):
        capture.capture_render(bpy.context, tmp_path / "r.png", resolution=64)
    assert not os.listdir(tmp_path)


def test_render_sizes_and_alpha(bpy, camera, unchanged, tmp_path):
    square = capture.capture_render(bpy.context, tmp_path / "sq.png", resolution=64)
    wide = capture.capture_render(bpy.context, tmp_path / "wide.png", resolution=64,
                                  square=False, transparent=True)
    assert _png(square) == (64, 64, 8, 2) and _png(wide) == (64, 36, 8, 6)
    assert (_pixels(bpy, square)[..., 3] == 1).all()
    alpha = _pixels(bpy, wide)[..., 3]
    assert (alpha == 0).any() and (alpha == 1).any()


def test_render_scene_engine_or_workbench_preview(bpy, camera, tmp_path):
    """The scene's own engine and settings (single-colour blue Workbench here), or the
    preview's own look."""
    scene = bpy.context.scene
    scene.render.engine = 'BLENDER_WORKBENCH'
    scene.display.shading.light = 'FLAT'
    scene.display.shading.color_type = 'SINGLE'
    scene.display.shading.single_color = (0, 0, 1)
    before = _state(bpy)
    own = capture.capture_render(bpy.context, tmp_path / "own.png", resolution=64,
                                 engine='SCENE')
    preview = capture.capture_render(bpy.context, tmp_path / "preview.png", resolution=64)
    assert _mask(_pixels(bpy, own), 2).mean() > 0.1
    assert not _mask(_pixels(bpy, own), RED).any()
    assert _state(bpy) == before
    assert _mask(_pixels(bpy, preview), RED).any()


def test_render_only_selected(bpy, camera, unchanged, tmp_path):
    bpy.data.objects["Cone"].select_set(True)
    path = capture.capture_render(bpy.context, tmp_path / "cone.png", resolution=64,
                                  only_selected=True)
    pixels = _pixels(bpy, path)
    assert _mask(pixels, RED).any() and not _mask(pixels, GREEN).any()
    bpy.data.objects["Cone"].select_set(False)


def test_unwritable_path_fails_before_any_change(bpy, unchanged, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for call in (lambda p: capture.capture_viewport(bpy.context, p, resolution=64),
                 lambda p: capture.capture_orbit(bpy.context, p, resolution=64)):
        with pytest.raises(capture.CaptureError, match="Cannot"):
            call(blocker / "x.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(capture.CaptureError, match="Cannot write"):
        capture.capture_viewport(bpy.context, tmp_path / "dir.png", resolution=64)


def test_failure_midway_restores_everything(bpy, unchanged, tmp_path, monkeypatch):
    """The second view fails after the first was written: the scene is still restored."""
    place = capture._place
    calls = []

    def fail_second(written, path):
        calls.append(path)
        if len(calls) == 2:
            raise capture.CaptureError(f"Cannot write the image {path}: disk full")
        place(written, path)

    monkeypatch.setattr(capture, "_place", fail_second)
    bpy.data.objects["Cone"].select_set(True)
    before = _state(bpy)
    with pytest.raises(capture.CaptureError, match="disk full"):
        capture.capture_orbit(bpy.context, tmp_path, resolution=64)
    assert _state(bpy) == before
    assert os.listdir(tmp_path) == ["front.png"]
    calls[:] = ["a previous call"]
    with pytest.raises(capture.CaptureError, match="disk full"):
        capture.capture_viewport(bpy.context, tmp_path / "view.png", resolution=64,
                                 only_selected=True)
    assert _state(bpy) == before
    bpy.data.objects["Cone"].select_set(False)
