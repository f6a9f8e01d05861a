"""Game Ready: output a game or film pipeline can ship. Split a model into named parts and
complete some, a chain of LODs, a stylized version, a real-world size with the origin at
its base, and a converted file for an engine.

Parts, LODs and conversion are Tripo API v3 tasks, stylize is a ModelStream (v2) task;
each is a job (a chain when your own meshes are imported first), journalled, never sent
twice and resumed after a restart, like every job. The bodies are built and checked in
core/post_tasks.py before anything is sent; results land beside their source, which is
never changed.
"""

import os

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ..core import formats, model_tasks, paths, post_tasks
from ..core.tasks import ValidationError
from . import importer, inputs, own_mesh, preferences, runtime
from .importer import parts_of
from .operator_base import fail
from .own_mesh import ChainOperator, client_for, generated_root, has_mesh, meshes_under

_FORMAT_ITEMS = [(f, f, f"A .{ext} file") for f, ext in post_tasks.FORMATS.items()]


def _options_mixin(options):
    """Declared once for the scene's settings and the operators (SKIP_SAVE there)."""

    class GameOptions:
        segment_model: EnumProperty(
            name="Segmentation Model", default="DEFAULT", options=options,
            items=[("DEFAULT", "Service Default", "The service's default segmentation")]
            + [(m, m, "Semantic parts, with granularity" if m == post_tasks.SEGMENT_MODELS[1]
                else "Parts by shape") for m in post_tasks.SEGMENT_MODELS])
        completion_mode: EnumProperty(
            name="Completion", default="ai_completion", options=options,
            items=[("ai_completion", "AI Completion", "Rebuild what the cut hid"),
                   ("quick_cap", "Quick Cap", "Close the cut with a cap")])
        lod_limits: StringProperty(
            name="LOD Face Limits", default="10000, 3000, 1000", options=options,
            description="Face limit of each LOD, LOD0 first, each 500-20,000 (500-10,000 "
            "with quads), fewer than the one before")
        lod_quad: BoolProperty(name="Quads", default=False, options=options,
                               description="Quad LODs (delivered as FBX)")
        style: EnumProperty(
            name="Style", default="voxel", options=options,
            items=[(s, s.title(), f"A {s} version of the model") for s in post_tasks.STYLES])
        block_size: IntProperty(name="Block Size", default=80, min=post_tasks.BLOCK_SIZES[0],
                                max=post_tasks.BLOCK_SIZES[1], options=options,
                                description="Minecraft's block size")
        export_format: EnumProperty(name="Format", default="FBX", options=options,
                                    items=_FORMAT_ITEMS)
        fbx_preset: EnumProperty(
            name="FBX Preset", default="blender", options=options,
            items=[(p, p.title() if p != "3dsmax" else "3ds Max", f"Axes and units for {p}")
                   for p in post_tasks.FBX_PRESETS])
        export_orientation: EnumProperty(
            name="Facing", default="+x", options=options,
            items=[(o, o.upper(), f"The model faces {o.upper()}")
                   for o in post_tasks.ORIENTATIONS])
        export_face_limit: IntProperty(
            name="Face Limit", default=0, min=0, soft_max=200000, options=options,
            description="Reduce to at most this many faces; 0 keeps the model as it is")
        texture_size: IntProperty(
            name="Texture Size", default=4096, min=post_tasks.TEXTURE_SIZES[0],
            max=post_tasks.TEXTURE_SIZES[1], options=options,
            description="Side of the textures, in pixels; at most the model's own")
        pivot_to_center_bottom: BoolProperty(
            name="Pivot at Bottom Centre", default=False, options=options,
            description="The file's origin at the bottom centre of the model")
        export_path: StringProperty(
            name="Export To", subtype='FILE_PATH', options=options,
            description="Also copy the converted file here (its extension must match the "
            "format); empty keeps it in the job's folder only")
        height: FloatProperty(name="Height", default=1.8, min=0.001, soft_max=100.0,
                              unit='LENGTH', options=options,
                              description="The model's height after Set Size")
        origin_at_base: BoolProperty(
            name="Origin at Base", default=True, options=options,
            description="The lowest point at the model's origin, centred over it")

    return GameOptions


SceneGameOptions = _options_mixin(set())
OperatorGameOptions = _options_mixin({'SKIP_SAVE'})
GAME_OPTION_NAMES = tuple(SceneGameOptions.__annotations__)


class MODELSTREAM_PG_game(bpy.types.PropertyGroup, SceneGameOptions):
    """The Game Ready panel's inputs, saved with the scene."""


# Starting the tasks ---------------------------------------------------------------------

def _source(root):
    """The result's task id; raises when `root` is not a result."""
    if root is None or not isinstance(root.get("modelstream_task_id"), str):
        raise ValidationError("selection", "select a model generated by ModelStream.")
    return root["modelstream_task_id"]


def _beside(context, root):
    return own_mesh.placement_for(context, {"placement": 'BESIDE'}, root, meshes_under(root))


def _on_result(context, root, step, service, placement=None, copy_to=""):
    client = client_for(context, service, step["type"])
    body = model_tasks.next_body(step, _source(root))
    return runtime.submit(context, runtime.Prepared(
        body, client, "", placement or _beside(context, root), copy_to=copy_to))


def _on_selection(context, step, service, objects, copy_to=""):
    """Your own meshes: imported first, then the step (a chain)."""
    client = client_for(context, service, step["type"])
    client.service.check({"type": model_tasks.IMPORT})
    own_mesh.meshes_of(context, objects)
    workdir = inputs.new_workdir()
    try:
        return own_mesh.send_selection(context, {"placement": 'BESIDE'}, client, [step],
                                       workdir, objects, copy_to)
    except Exception:
        inputs.discard(workdir)
        raise


def _segment_step(opts):
    model = opts.get("segment_model", "DEFAULT")
    return post_tasks.segment_step("" if model == "DEFAULT" else model)


def split_parts(context, opts, root=None, service=None, objects=None):
    """Split a result (or your meshes, imported first) into named parts; the first job."""
    step = _segment_step(opts)
    if root is not None:
        return _on_result(context, root, step, service)
    return _on_selection(context, step, service, objects)


def complete_parts(context, opts, root, names=None, service=None):
    """Complete the chosen parts (default: the ticked ones) of a segmentation result."""
    if root is None or root.get("modelstream_type") != post_tasks.SEGMENT:
        raise ValidationError("selection", "select a model split into parts (Split into "
                              "Parts makes one).")
    if names is None:
        names = [name for name, obj in parts_of(root).items() if obj.modelstream_complete]
    known = set(parts_of(root))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValidationError("part_names", f"{unknown[0]!r} is not a part of {root.name}.")
    step = post_tasks.complete_step(names, opts.get("completion_mode", ""))
    return _on_result(context, root, step, service)


def lod_limits(value):
    """Face limits from the panel's text ('10000, 3000, 1000') or a script's list."""
    if isinstance(value, str):
        try:
            return [int(v) for v in value.replace(";", ",").split(",") if v.strip()]
        except ValueError:
            raise ValidationError("lod_limits", "give whole numbers, LOD0 first, e.g. "
                                  "'10000, 3000, 1000'.") from None
    return list(value)


def lod_group(root):
    """The LODs' shared name: the source's, made a plain asset name."""
    name = "".join(c if c.isalnum() else "_" for c in root.name).strip("_")
    return name[:40] or "model"


def make_lods(context, opts, root, service=None):
    """A smart-low-poly version of the result per face limit; returns their jobs. They
    land as `<name>_LOD0`, `_LOD1`... in one collection, sharing one transform."""
    steps = post_tasks.lod_steps(lod_limits(opts.get("lod_limits", post_tasks.DEFAULT_LODS)),
                                 bool(opts.get("lod_quad", False)))
    source, placement = _source(root), _beside(context, root)
    client = client_for(context, service, post_tasks.LOWPOLY)
    group = lod_group(root)
    return [runtime.submit(context, runtime.Prepared(
        model_tasks.next_body(step, source), client, "",
        {**placement, "lod": {"group": group, "index": n}}))
        for n, step in enumerate(steps)]


def stylize(context, opts, root, service=None):
    step = post_tasks.stylize_step(opts.get("style", "voxel"), opts.get("block_size", 80))
    return _on_result(context, root, step, service)


def _source_texture(task_id):
    """The side of the largest texture of the source's downloaded GLB, 0 when unknown."""
    job = next((j for j in reversed(runtime.jobs()) if j.task_id == task_id
                and j.output_format == "glb" and os.path.isfile(j.output_path)), None)
    return formats.largest_texture(job.output_path) if job else 0


def export_model(context, opts, root=None, service=None, objects=None):
    """Convert a result (or your meshes, imported first) for an engine; the first job.
    The file is kept in the job's folder and, with `export_path`, copied there."""
    fmt = opts.get("export_format", "FBX")
    rigged = root is not None and bool(own_mesh.rig_task_of(root))
    source = _source(root) if root is not None else ""
    step = post_tasks.convert_step(fmt, {
        "fbx_preset": opts.get("fbx_preset", "blender"),
        "export_orientation": opts.get("export_orientation", "+x"),
        "face_limit": opts.get("export_face_limit", 0),
        "texture_size": opts.get("texture_size", 4096),
        "pivot_to_center_bottom": bool(opts.get("pivot_to_center_bottom", False)),
    }, rigged=rigged, source_texture=_source_texture(source) if source else 0)
    copy_to = ""
    if (opts.get("export_path") or "").strip():
        try:
            copy_to = paths.export_destination(bpy.path.abspath(opts["export_path"]),
                                               post_tasks.extension(fmt))
        except paths.UnsafePathError as e:
            raise ValidationError("export_path", str(e)) from None
    if root is not None:
        return _on_result(context, root, step, service, {"source": root.name}, copy_to)
    return _on_selection(context, step, service, objects, copy_to)


def set_size(context, root, height, origin_at_base=True):
    """A result made `height` tall, resting on its origin (optional): on the Empty and
    its children's places only, never the mesh data."""
    if root is None:
        raise ValidationError("selection", "select a model generated by ModelStream.")
    meshes = meshes_under(root)
    if height:
        importer.fit_height(context, root, meshes, height)
    if origin_at_base:
        importer.base_at_origin(context, root, meshes)


# Operators ------------------------------------------------------------------------------

class GameOperator(ChainOperator, OperatorGameOptions):
    """A Game Ready command: greyed out, saying how to switch, where the chosen service
    has no such task."""

    settings = "modelstream_game"
    names = GAME_OPTION_NAMES
    kind = ""  # the task type it sends

    @classmethod
    def poll(cls, context):
        reason = preferences.shown_service(context).unsupported(cls.kind)
        if reason:
            cls.poll_message_set(reason)
            return False
        return super().poll(context)


def _has_result(context):
    return generated_root(context) is not None


def _on_segmentation(context):
    root = generated_root(context)
    return root is not None and root.get("modelstream_type") == post_tasks.SEGMENT


class MODELSTREAM_OT_split_parts(GameOperator, bpy.types.Operator):
    """Split the selected generated model (or the selected meshes) into named parts; the
    parts land beside it, which is not changed"""

    bl_idname = "modelstream.split_parts"
    bl_label = "Split into Parts"
    doing, needs, kind = "splitting", "Select a generated model or mesh objects", \
        post_tasks.SEGMENT

    @staticmethod
    def ready(context):
        return _has_result(context) or has_mesh(context)

    def start(self, context, opts):
        return split_parts(context, opts, generated_root(context))


class MODELSTREAM_OT_complete_parts(GameOperator, bpy.types.Operator):
    """Complete the ticked parts of the selected split model"""

    bl_idname = "modelstream.complete_parts"
    bl_label = "Complete Parts"
    doing, needs, kind = "completing", "Select a model split into parts", post_tasks.COMPLETE
    ready = staticmethod(_on_segmentation)

    def start(self, context, opts):
        return complete_parts(context, opts, generated_root(context))


class MODELSTREAM_OT_make_lods(GameOperator, bpy.types.Operator):
    """Make LODs of the selected generated model: a smart-low-poly version per face
    limit, named <name>_LOD0, _LOD1... in one collection"""

    bl_idname = "modelstream.make_lods"
    bl_label = "Make LODs"
    doing, needs, kind = "LODs", "Select a generated model", post_tasks.LOWPOLY
    ready = staticmethod(_has_result)

    def start(self, context, opts):
        return make_lods(context, opts, generated_root(context))


class MODELSTREAM_OT_stylize(GameOperator, bpy.types.Operator):
    """A stylized version of the selected generated model (lego, voxel, voronoi), beside it"""

    bl_idname = "modelstream.stylize"
    bl_label = "Stylize"
    doing, needs, kind = "stylizing", "Select a generated model", post_tasks.STYLIZE
    ready = staticmethod(_has_result)

    def start(self, context, opts):
        return stylize(context, opts, generated_root(context))


class MODELSTREAM_OT_export_model(GameOperator, bpy.types.Operator):
    """Convert the selected generated model (or the selected meshes) into a file for an
    engine: FBX with a preset, USDZ, OBJ, STL, 3MF or GLTF"""

    bl_idname = "modelstream.export_model"
    bl_label = "Export for Engine"
    doing, needs, kind = "converting", "Select a generated model or mesh objects", \
        post_tasks.CONVERT
    said = ""  # what lands is a file, not an object

    @staticmethod
    def ready(context):
        return _has_result(context) or has_mesh(context)

    def start(self, context, opts):
        return export_model(context, opts, generated_root(context))


class MODELSTREAM_OT_set_size(bpy.types.Operator):
    """Make the selected generated model a real-world height, resting on its origin"""

    bl_idname = "modelstream.set_size"
    bl_label = "Set Size"
    bl_options = {'REGISTER', 'UNDO'}

    height: FloatProperty(name="Height", default=1.8, min=0.001, soft_max=100.0,
                          unit='LENGTH', options={'SKIP_SAVE'})
    origin_at_base: BoolProperty(name="Origin at Base", default=True, options={'SKIP_SAVE'})

    @classmethod
    def poll(cls, context):
        if not _has_result(context):
            cls.poll_message_set("Select a model generated by ModelStream")
            return False
        return True

    def invoke(self, context, event):
        settings = context.scene.modelstream_game
        for name in ("height", "origin_at_base"):
            if not self.properties.is_property_set(name):
                setattr(self, name, getattr(settings, name))
        return self.execute(context)

    def execute(self, context):
        try:
            set_size(context, generated_root(context), self.height, self.origin_at_base)
        except ValidationError as e:
            return fail(self, context, str(e))
        return {'FINISHED'}


def _register_part_flag():
    bpy.types.Object.modelstream_complete = BoolProperty(
        name="Complete", default=False,
        description="Complete this part with Complete Parts")


CLASSES = (MODELSTREAM_PG_game, MODELSTREAM_OT_split_parts, MODELSTREAM_OT_complete_parts,
           MODELSTREAM_OT_make_lods, MODELSTREAM_OT_stylize, MODELSTREAM_OT_export_model,
           MODELSTREAM_OT_set_size)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.modelstream_game = bpy.props.PointerProperty(type=MODELSTREAM_PG_game)
    _register_part_flag()


def unregister():
    del bpy.types.Object.modelstream_complete
    del bpy.types.Scene.modelstream_game
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
