"""Turn the scene into PNG inputs for image_to_model and multiview_to_model.

Every capture renders through `bpy.ops.render.render` with temporary settings, which works
in background mode too; only a GUI viewport capture draws the 3D view offscreen instead.
Each one runs inside `_preserved()`, which puts back every setting and visibility flag it
may touch and deletes every data-block it created, also when the capture fails halfway.
"""

import contextlib
import math
import os
import shutil
import tempfile
from typing import NamedTuple

import bpy
import numpy as np
from mathutils import Color, Matrix, Vector

from ..core.tasks import VIEWS

NAME = "ModelStream Capture"
# Object types a render shows; lights, cameras and empties alone are nothing to capture.
TYPES = {'MESH', 'CURVE', 'SURFACE', 'META', 'FONT', 'CURVES', 'POINTCLOUD', 'VOLUME',
         'GREASEPENCIL', 'GPENCIL'}
# The 3D view draws its lens against twice Blender's 36 mm default sensor.
VIEW_SENSOR = 72.0
ORBIT_LENS, ORBIT_SENSOR = 50.0, 36.0
# Camera rotations in the subject's frame. "left" is the subject's left: a subject facing -Y
# has it at +X, so that camera sits at +X looking toward -X (Blender's Right view).
_TURNS = {name: Matrix.Rotation(math.radians(angle), 3, 'Z')
          @ Matrix.Rotation(math.radians(90.0), 3, 'X')
          for name, angle in (("front", 0.0), ("left", 90.0), ("back", 180.0),
                              ("right", -90.0))}
# Restored in this order, so an enum is set after the setting its choices depend on.
_RENDER = ("engine", "resolution_x", "resolution_y", "resolution_percentage",
           "pixel_aspect_x", "pixel_aspect_y", "film_transparent", "filepath",
           "use_file_extension", "use_border", "use_stamp", "use_compositing",
           "use_sequencer", "use_multiview", "dither_intensity")
_IMAGE = ("media_type", "file_format", "color_mode", "color_depth", "compression",
          "color_management")
_VIEW = ("view_transform", "look", "exposure", "gamma", "use_curve_mapping",
         "use_white_balance")
_SHADING = ("light", "studio_light", "studiolight_rotate_z", "studiolight_intensity",
            "use_world_space_lighting", "color_type", "single_color", "show_shadows",
            "shadow_intensity", "show_cavity", "cavity_type", "cavity_ridge_factor",
            "cavity_valley_factor", "curvature_ridge_factor", "curvature_valley_factor",
            "show_object_outline", "object_outline_color", "show_specular_highlight",
            "show_backface_culling", "show_xray", "xray_alpha")
_PREVIEW = {"light": 'STUDIO', "studio_light": 'Default', "studiolight_rotate_z": 0.0,
            "color_type": 'TEXTURE', "show_shadows": False, "show_cavity": False,
            "show_object_outline": False, "show_specular_highlight": True,
            "show_backface_culling": False, "show_xray": False}
_DATA = ("objects", "cameras", "worlds", "images")


class CaptureError(Exception):
    pass


# -- state ------------------------------------------------------------------------------

def _settings(scene):
    groups = ((scene, ("camera", "world")), (scene.render, _RENDER),
              (scene.render.image_settings, _IMAGE), (scene.view_settings, _VIEW),
              (scene.display, ("render_aa",)), (scene.display.shading, _SHADING))
    return [(owner, name) for owner, names in groups for name in names
            if hasattr(owner, name)]


def _copy(value):
    """Colours come back as live views of the setting: keep their numbers instead."""
    if isinstance(value, (Color, Vector, bpy.types.bpy_prop_array)):
        return tuple(value)
    return value


@contextlib.contextmanager
def _preserved(scene, view_layer):
    """Restore what a capture changes and remove the data-blocks it adds, even on failure."""
    settings = [(owner, name, _copy(getattr(owner, name))) for owner, name in _settings(scene)]
    objects = [(obj, obj.hide_render, obj.hide_viewport, obj.hide_get(view_layer=view_layer),
                obj.select_get(view_layer=view_layer)) for obj in view_layer.objects]
    active = view_layer.objects.active
    data = {name: set(getattr(bpy.data, name)) for name in _DATA}
    try:
        yield
    finally:
        for owner, name, value in settings:
            if _copy(getattr(owner, name)) != value:
                setattr(owner, name, value)
        for obj, render, viewport, hidden, selected in objects:
            if obj.hide_render != render:
                obj.hide_render = render
            if obj.hide_viewport != viewport:
                obj.hide_viewport = viewport
            if obj.hide_get(view_layer=view_layer) != hidden:
                obj.hide_set(hidden, view_layer=view_layer)
            if obj.select_get(view_layer=view_layer) != selected:
                obj.select_set(selected, view_layer=view_layer)
        if view_layer.objects.active != active:
            view_layer.objects.active = active
        for name in _DATA:
            blocks = getattr(bpy.data, name)
            for block in [b for b in blocks if b not in data[name]]:
                blocks.remove(block)


# -- checks -----------------------------------------------------------------------------

def _target(path):
    """An absolute PNG path whose folder exists and is writable, checked before any change."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise CaptureError(f"Cannot create the folder {folder}: {e.strerror or e}") from None
    if os.path.isdir(path) or not os.access(folder, os.W_OK):
        raise CaptureError(f"Cannot write the image {path}.")
    return path


def _check_resolution(resolution):
    if not 16 <= resolution <= 8192:
        raise CaptureError(f"Resolution {resolution} is outside 16-8192 pixels.")


def _family(objects):
    """Objects and their children: selecting an imported model's Empty means the model."""
    family = set()
    for obj in objects:
        family.add(obj)
        family.update(obj.children_recursive)
    return family


def _check_content(objects, where):
    if not any(obj.type in TYPES for obj in objects):
        raise CaptureError(f"Nothing to capture: no mesh, curve or text objects {where}.")


def _subjects(view_layer, objects):
    """The objects (with their children), else the selection, else everything visible."""
    def geometry(candidates, visible=True):
        return [obj for obj in candidates if obj.type in TYPES
                and view_layer.objects.get(obj.name) == obj
                and (not visible or obj.visible_get(view_layer=view_layer))]

    if objects is not None:
        subjects = geometry(_family(objects), visible=False)
    else:
        subjects = (geometry(_family(view_layer.objects.selected))
                    or geometry(view_layer.objects))
    _check_content(subjects, "among the given objects" if objects is not None
                   else "visible")
    return subjects


# -- framing ----------------------------------------------------------------------------

class _Frame(NamedTuple):
    ortho: bool
    scale: float  # ortho_scale, or the lens for perspective
    clip_start: float
    clip_end: float
    matrices: dict


def _points(objects, depsgraph):
    """World-space points that bound the objects: evaluated mesh vertices, else bound boxes."""
    chunks = []
    for obj in objects:
        evaluated = obj.evaluated_get(depsgraph)
        if evaluated.type == 'MESH' and len(evaluated.data.vertices):
            co = np.empty(len(evaluated.data.vertices) * 3, np.float32)
            evaluated.data.vertices.foreach_get("co", co)
            co = co.reshape(-1, 3)
        else:
            co = np.array([tuple(corner) for corner in evaluated.bound_box], np.float32)
        matrix = np.array(evaluated.matrix_world, np.float64)
        chunks.append(co @ matrix[:3, :3].T + matrix[:3, 3])
    return np.concatenate(chunks)


def _frame(points, rotation, ortho, margin):
    """One camera setup framing `points` the same way from all four sides.

    `rotation` is the subject's frame (its columns are the frame's axes in world space); the
    views look along its axes, so the centre of the frame-aligned box stays in the middle.
    """
    basis = np.array(rotation, np.float64)
    local = points @ basis
    centre = (local.min(axis=0) + local.max(axis=0)) / 2
    rel = local - centre
    radius = max(float(np.linalg.norm(rel, axis=1).max()), 1e-3)
    fill = 1.0 - 2.0 * margin
    tangent = ORBIT_SENSOR / 2 / ORBIT_LENS * fill
    extent = depth = distance = 0.0
    for turn in _TURNS.values():
        cam = rel @ np.array(turn, np.float64)  # right, up, toward the camera
        lateral = np.maximum(np.abs(cam[:, 0]), np.abs(cam[:, 1]))
        extent = max(extent, float(lateral.max()))
        depth = max(depth, float(cam[:, 2].max()))
        distance = max(distance, float((cam[:, 2] + lateral / tangent).max()))
    if ortho:
        distance = 2 * radius
        scale, clip_start, clip_end = max(2 * extent / fill, 1e-3), radius / 2, 4 * radius
    else:
        distance = max(distance, 1e-3)
        scale = ORBIT_LENS
        clip_start = max((distance - depth) / 2, distance * 1e-4)
        clip_end = (distance + radius) * 1.5
    centre_world = Vector(basis @ centre)
    matrices = {}
    for name, turn in _TURNS.items():
        orientation = rotation @ turn
        location = centre_world + orientation @ Vector((0.0, 0.0, distance))
        matrices[name] = Matrix.LocRotScale(location, orientation, None)
    return _Frame(ortho, scale, clip_start, clip_end, matrices)


def _front_rotation(view_layer, front):
    if front == 'NEG_Y':
        return Matrix.Identity(3)
    if front != 'ACTIVE_LOCAL':
        raise ValueError(f"front must be 'NEG_Y' or 'ACTIVE_LOCAL', not {front!r}")
    active = view_layer.objects.active
    if active is None:
        raise CaptureError("Facing the active object's front needs an active object.")
    return active.matrix_world.to_quaternion().to_matrix()


# -- scene setup ------------------------------------------------------------------------

def _camera(scene):
    data = bpy.data.cameras.new(NAME)
    data.sensor_fit = 'AUTO'
    obj = bpy.data.objects.new(NAME, data)
    scene.collection.objects.link(obj)
    scene.camera = obj
    return obj


def _framed_camera(scene, frame):
    obj = _camera(scene)
    data = obj.data
    data.sensor_width = ORBIT_SENSOR
    if frame.ortho:
        data.type = 'ORTHO'
        data.ortho_scale = frame.scale
    else:
        data.lens = frame.scale
    data.clip_start, data.clip_end = frame.clip_start, frame.clip_end
    return obj


def _view_camera(scene, space, crop):
    """A camera that sees what the view sees; `crop` keeps the middle of a wider view."""
    r3d = space.region_3d
    obj = _camera(scene)
    data = obj.data
    data.lens = space.lens
    data.sensor_width = VIEW_SENSOR * crop
    # Built from the view's own location, rotation and distance, as Blender does when it
    # redraws: background mode never redraws, so `view_matrix` can be stale, and
    # `region_3d.update()` crashes bpy on a file opened with its UI.
    matrix = (Matrix.Translation(r3d.view_location) @ r3d.view_rotation.to_matrix().to_4x4()
              @ Matrix.Translation((0.0, 0.0, r3d.view_distance)))
    if r3d.view_perspective == 'ORTHO':
        data.type = 'ORTHO'
        data.ortho_scale = r3d.view_distance * VIEW_SENSOR / space.lens * crop
        # An ortho view clips at +-clip_end/2 around its eye; back the camera off to match.
        matrix = matrix @ Matrix.Translation((0.0, 0.0, space.clip_end / 2))
        data.clip_start, data.clip_end = 1e-3, space.clip_end
    else:
        data.clip_start, data.clip_end = space.clip_start, space.clip_end
    obj.matrix_world = matrix
    return obj


def _workbench(scene, shading=None):
    """A fast solid-mode look: the view's shading if given, else studio light and textures.

    Solid mode draws with the Standard view transform whatever the scene's colour
    management says, so the render does too.
    """
    scene.render.engine = 'BLENDER_WORKBENCH'
    scene.render.use_compositing = False
    scene.render.dither_intensity = 0.0
    scene.display.render_aa = '5'
    target = scene.display.shading
    for name, value in _PREVIEW.items():
        setattr(target, name, value)
    if shading is not None:
        for name in _SHADING:
            if hasattr(shading, name):
                setattr(target, name, getattr(shading, name))
    view = scene.view_settings
    view.view_transform = 'Standard'
    view.look = 'None'
    view.exposure, view.gamma = 0.0, 1.0
    view.use_curve_mapping = False
    if hasattr(view, "use_white_balance"):
        view.use_white_balance = False
    _background(scene, shading)


def _background(scene, shading):
    """Solid mode's background: the theme colour, the view's own colour, or the world."""
    if shading is not None and shading.background_type == 'WORLD' and scene.world:
        return
    if shading is not None and shading.background_type == 'VIEWPORT':
        srgb = shading.background_color
    else:
        srgb = bpy.context.preferences.themes[0].view_3d.space.gradients.high_gradient
    world = bpy.data.worlds.new(NAME)
    world.color = Color(srgb).from_srgb_to_scene_linear()
    scene.world = world


def _output(scene, width, height, transparent):
    render = scene.render
    render.resolution_x, render.resolution_y = width, height
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    render.film_transparent = transparent
    render.use_border = render.use_stamp = render.use_sequencer = False
    render.use_multiview = False
    render.use_file_extension = False
    image = render.image_settings
    if hasattr(image, "media_type"):
        image.media_type = 'IMAGE'
    image.file_format = 'PNG'
    image.color_mode = 'RGBA' if transparent else 'RGB'
    image.color_depth = '8'
    image.color_management = 'FOLLOW_SCENE'


def _size(resolution, aspect, square):
    """Square, or `aspect` (width / height) with the longer side at `resolution`."""
    if square:
        return resolution, resolution
    if aspect >= 1:
        return resolution, max(1, round(resolution / aspect))
    return max(1, round(resolution * aspect)), resolution


def _show(view_layer, shown):
    """Render exactly `shown` among the view layer's objects."""
    for obj in view_layer.objects:
        hide = obj not in shown
        if obj.hide_render != hide:
            obj.hide_render = hide


# -- output -----------------------------------------------------------------------------

def _place(written, path):
    """Copy the finished PNG into place; the caller's path never sees a half render."""
    if not os.path.isfile(written) or not os.path.getsize(written):
        raise CaptureError(f"Blender wrote no image for {path}.")
    try:
        shutil.copyfile(written, path)
    except OSError as e:
        raise CaptureError(f"Cannot write the image {path}: {e.strerror or e}") from None


def _render(scene, view_layer, path):
    """Render into a private folder: render.filepath would expand '#' in the caller's path."""
    folder = tempfile.mkdtemp(prefix="modelstream-capture-")
    try:
        scene.render.filepath = os.path.join(folder, "capture.png")
        try:
            bpy.ops.render.render(write_still=True, scene=scene.name, layer=view_layer.name)
        except RuntimeError as e:
            raise CaptureError(f"Rendering failed: {e}") from None
        _place(scene.render.filepath, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _save_pixels(pixels, width, height, transparent, path):
    """Write RGBA float pixels through a temporary image (removed by `_preserved`)."""
    image = bpy.data.images.new(NAME, width, height, alpha=transparent)
    image.pixels.foreach_set(pixels)
    folder = tempfile.mkdtemp(prefix="modelstream-capture-")
    try:
        image.filepath_raw = os.path.join(folder, "capture.png")
        image.file_format = 'PNG'
        image.save()
        _place(image.filepath_raw, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _draw_offscreen(context, space, region, camera, width, height, square, transparent):
    """The view drawn by the GPU as on screen, as RGBA floats; None where it cannot draw."""
    import gpu

    if camera is not None:
        view = camera.matrix_world.inverted()
        projection = camera.calc_matrix_camera(
            context.evaluated_depsgraph_get(), x=width, y=height)
    else:
        # Stretching clip space keeps the middle square of a wider view.
        stretch = (1.0, 1.0)
        if square:
            short = min(region.width, region.height)
            stretch = (region.width / short, region.height / short)
        view = space.region_3d.view_matrix
        projection = Matrix.Diagonal((*stretch, 1.0, 1.0)) @ space.region_3d.window_matrix
    try:
        offscreen = gpu.types.GPUOffScreen(width, height)
    except Exception:  # no GPU context: the caller renders with a camera instead
        return None
    try:
        offscreen.draw_view3d(context.scene, context.view_layer, space, region, view,
                              projection, do_color_management=True,
                              draw_background=not transparent)
        with offscreen.bind():
            buffer = gpu.state.active_framebuffer_get().read_color(
                0, 0, width, height, 4, 0, 'FLOAT')
    except Exception:
        return None
    finally:
        offscreen.free()
    buffer.dimensions = width * height * 4
    return buffer


# -- captures ---------------------------------------------------------------------------

def _find_view(context):
    """The 3D view to capture and its main region: the context's, else the screen's first."""
    areas = context.screen.areas if context.screen else ()
    space = context.space_data
    if space is not None and space.type == 'VIEW_3D':
        areas = [context.area]
    for area in areas:
        region = next((r for r in area.regions if r.type == 'WINDOW'), None)
        if area.type == 'VIEW_3D' and region is not None:
            return area.spaces.active, region
    return None, None


def _only_selected(objects, view_layer):
    selected = _family(view_layer.objects.selected)
    return [obj for obj in objects if obj in selected]


def _aspect(render):
    return (render.resolution_x * render.pixel_aspect_x
            / (render.resolution_y * render.pixel_aspect_y))


def capture_viewport(context, path, *, resolution=1024, square=True, transparent=False,
                     only_selected=False):
    """Save what the active 3D view shows from its current angle as a PNG; returns the path.

    The GUI draws the view offscreen. Background mode (and a GUI without a GPU offscreen)
    renders a Workbench camera matching the view; with no 3D view at all it renders the
    Front view framing the selected, else visible, objects as `capture_orbit` does.
    `square` keeps the middle square of a wide view, else the longer side is `resolution`.
    """
    _check_resolution(resolution)
    scene, view_layer = context.scene, context.view_layer
    view_layer.update()  # a script's pending edits: stale matrices, removed objects
    space, region = _find_view(context)
    shown = [obj for obj in view_layer.objects
             if obj.visible_get(view_layer=view_layer, viewport=space)]
    if only_selected:
        shown = _only_selected(shown, view_layer)
    _check_content(shown, "among the selected objects" if only_selected else "in view")
    camera = frame = None
    if space is None:
        subjects = _subjects(view_layer, None)
        frame = _frame(_points(subjects, context.evaluated_depsgraph_get()),
                       Matrix.Identity(3), True, 0.1)
        width = height = resolution
    elif space.region_3d.view_perspective == 'CAMERA':
        camera = space.camera if space.use_local_camera else scene.camera
        if camera is None:
            raise CaptureError("The view looks through the scene camera, but there is none.")
        width, height = _size(resolution, _aspect(scene.render), square)
    else:
        width, height = _size(resolution, region.width / region.height, square)
    path = _target(path)
    with _preserved(scene, view_layer):
        if space is not None and not bpy.app.background:
            if only_selected:
                for obj in view_layer.objects:
                    if obj not in shown and not obj.hide_get(view_layer=view_layer):
                        obj.hide_set(True, view_layer=view_layer)
                view_layer.update()
            pixels = _draw_offscreen(context, space, region, camera, width, height, square,
                                     transparent)
            if pixels is not None:
                _save_pixels(pixels, width, height, transparent, path)
                return path
        _show(view_layer, set(shown))
        if frame is not None:
            _framed_camera(scene, frame).matrix_world = frame.matrices["front"]
        elif camera is not None:
            scene.camera = camera
        else:
            crop = (min(region.width, region.height) / max(region.width, region.height)
                    if square else 1.0)
            _view_camera(scene, space, crop)
        _workbench(scene, space.shading if space is not None else None)
        _output(scene, width, height, transparent)
        _render(scene, view_layer, path)
    return path


def capture_render(context, path, *, resolution=1024, engine='WORKBENCH', square=True,
                   transparent=False, only_selected=False):
    """Render the scene camera to a PNG; returns the path.

    engine='SCENE' renders with the scene's own engine and settings, 'WORKBENCH' is a fast
    solid-mode preview. Not square: the scene's aspect with the longer side `resolution`.
    """
    if engine not in ('WORKBENCH', 'SCENE'):
        raise ValueError(f"engine must be 'WORKBENCH' or 'SCENE', not {engine!r}")
    _check_resolution(resolution)
    scene, view_layer = context.scene, context.view_layer
    view_layer.update()  # a script's pending edits: stale matrices, removed objects
    if scene.camera is None:
        raise CaptureError("The scene has no camera: add one or pick the active camera in "
                           "the Scene properties.")
    shown = [obj for obj in view_layer.objects if not obj.hide_render]
    if only_selected:
        shown = _only_selected(shown, view_layer)
    _check_content(shown, "among the selected objects" if only_selected else "to render")
    width, height = _size(resolution, _aspect(scene.render), square)
    path = _target(path)
    with _preserved(scene, view_layer):
        if only_selected:
            _show(view_layer, set(shown))
        if engine == 'WORKBENCH':
            _workbench(scene)
        _output(scene, width, height, transparent)
        _render(scene, view_layer, path)
    return path


def capture_orbit(context, directory, *, resolution=512, ortho=True, transparent=False,
                  front='NEG_Y', objects=None, margin=0.1, views=VIEWS):
    """Render the subject from its front, left, back and right into `directory`.

    Returns {"front": path, "left": path, "back": path, "right": path} (or only the
    `views` asked for, e.g. ("front",) for a single preview). The subject is
    `objects`, else the selected objects, else everything visible; only it is rendered,
    centred, the same size in all four square views, with `margin` (a fraction of the
    image) free on each side. front='ACTIVE_LOCAL' faces the active object's local -Y.
    """
    _check_resolution(resolution)
    if not 0.0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), not {margin!r}")
    scene, view_layer = context.scene, context.view_layer
    view_layer.update()  # a script's pending edits: stale matrices, removed objects
    rotation = _front_rotation(view_layer, front)
    subjects = _subjects(view_layer, objects)
    paths = {name: _target(os.path.join(directory, f"{name}.png")) for name in views}
    frame = _frame(_points(subjects, context.evaluated_depsgraph_get()), rotation, ortho,
                   margin)
    with _preserved(scene, view_layer):
        _show(view_layer, set(subjects))
        camera = _framed_camera(scene, frame)
        _workbench(scene)
        _output(scene, resolution, resolution, transparent)
        for name in views:
            camera.matrix_world = frame.matrices[name]
            _render(scene, view_layer, paths[name])
    return paths
