"""Your own mesh in: Texture Selected, Rig, Animate (Tripo API v3).

The selection is exported with Blender's own glTF exporter (modifiers applied, in the
active object's space) into the job's folder, uploaded and imported as a model task; the
steps after it (texture, rig-check, rig, retarget) are a chain the engine sends one after
another. The result lands at the original's transform, beside it or in its place; the
original is never modified. Everything is checked before the first request.
"""

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty

from ..core import errors, model_tasks
from ..core.tasks import TEXTURE_QUALITIES, ValidationError
from . import inputs, preferences, runtime
from .importer import result_root, world_bounds
from .operator_base import caller_options, fail, online_poll

EXPORT_NAME = "selection.glb"
_ANIMATION_ITEMS = [(name, name.split(":", 1)[1].replace(":", " ").title(), f"Tripo's {name}")
                    for name in model_tasks.ANIMATIONS]


def _options_mixin(options):
    """Declared once for the scene's settings and the operators (SKIP_SAVE there)."""

    class MeshOptions:
        prompt: StringProperty(
            name="Texture Prompt", options=options,
            description="Describe the new texture, e.g. 'weathered bronze'")
        image_source: EnumProperty(
            name="Reference", default='FILE', options=options, items=[
                ('FILE', "File", "An image file or URL; empty for none"),
                ('VIEWPORT', "Viewport", "What the 3D viewport shows"),
                ('IMAGE', "Image", "An image already in this .blend")])
        image_path: StringProperty(name="Reference Image", subtype='FILE_PATH', options=options,
                                   description="A reference image for the texture (optional)")
        image_name: StringProperty(name="Image", options=options,
                                   description="Name of the image in this .blend")
        pbr: BoolProperty(name="PBR", default=True, options=options,
                          description="Metallic/roughness maps with the colour")
        texture_quality: EnumProperty(
            name="Texture Quality", default="standard", options=options,
            items=[(q, q.title(), f"{q.title()} texture") for q in TEXTURE_QUALITIES])
        texture_seed: IntProperty(name="Texture Seed", default=-1, min=-1, options=options,
                                  description="-1 for a new one each time")
        model_version: StringProperty(
            name="Texture Model", options=options,
            description="e.g. v3.0-20250812; empty uses the service's default")
        spec: EnumProperty(
            name="Rig For", default="tripo", options=options,
            items=[(s, s.title() if s != "vrm" else "VRM", f"A {s} skeleton")
                   for s in model_tasks.RIG_SPECS])
        rig_model: EnumProperty(
            name="Rig Model", default="DEFAULT", options=options,
            items=[('DEFAULT', "Service Default", "The service's default rig model")]
            + [(m, m, "Needed for Unity, Unreal and VRM" if m != model_tasks.RIG_MODELS[0]
                else "The first rig model") for m in model_tasks.RIG_MODELS])
        animations: EnumProperty(
            name="Animations", options=options | {'ENUM_FLAG'}, items=_ANIMATION_ITEMS,
            description=f"Preset animations, 1 to {model_tasks.MAX_ANIMATIONS}")
        placement: EnumProperty(
            name="Place Result", default='BESIDE', options=options, items=[
                ('BESIDE', "Beside", "At the original's transform, moved aside to its right"),
                ('REPLACE', "Replace", "In the original's place; the original is hidden"),
                ('CURSOR', "3D Cursor", "At the 3D cursor")])

    return MeshOptions


SceneMeshOptions = _options_mixin(set())
OperatorMeshOptions = _options_mixin({'SKIP_SAVE'})
MESH_OPTION_NAMES = tuple(SceneMeshOptions.__annotations__)


class MODELSTREAM_PG_mesh(bpy.types.PropertyGroup, SceneMeshOptions):
    """The Your Model panel's inputs, saved with the scene."""


# Export ---------------------------------------------------------------------------------

def meshes_of(context, objects=None):
    """The objects to send (default: the selection), checked: meshes only."""
    selected = list(context.selected_objects if objects is None else objects)
    if not selected:
        raise ValidationError("selection", "select the mesh objects to send.")
    other = next((o for o in selected if o.type != 'MESH'), None)
    if other is not None:
        raise ValidationError("selection", f"{other.name!r} is a {other.type.lower()}, not a "
                              "mesh: select mesh objects only.")
    return selected


def export_selection(context, objects, folder):
    """The objects, modifiers applied, as one GLB in the active object's space (so the
    result can land at its transform); nothing of the user's data changes."""
    reference = context.view_layer.objects.active
    reference = reference if reference in objects else objects[0]
    depsgraph = context.evaluated_depsgraph_get()
    to_local = reference.matrix_world.inverted()
    holder = bpy.data.collections.new("ModelStream export")
    context.scene.collection.children.link(holder)
    layers = context.view_layer
    active = layers.active_layer_collection
    made = []
    try:
        for obj in objects:
            mesh = bpy.data.meshes.new_from_object(obj.evaluated_get(depsgraph),
                                                  depsgraph=depsgraph)
            mesh.transform(to_local @ obj.matrix_world)
            made.append(mesh)
            copy = bpy.data.objects.new(obj.name, mesh)
            holder.objects.link(copy)
        if not any(len(mesh.polygons) for mesh in made):
            raise ValidationError("selection", "the selected meshes have no faces.")
        layers.active_layer_collection = layers.layer_collection.children[holder.name]
        path = f"{folder}/{EXPORT_NAME}"
        bpy.ops.export_scene.gltf(filepath=path, export_format='GLB', use_selection=False,
                                  use_active_collection=True, export_materials='NONE',
                                  export_animations=False, export_apply=False)
        return path, reference
    finally:
        layers.active_layer_collection = active
        for obj in list(holder.objects):
            bpy.data.objects.remove(obj)
        bpy.data.collections.remove(holder)
        for mesh in made:
            bpy.data.meshes.remove(mesh)


def _beside(reference, objects):
    """The original's transform moved right by the selection's width and a gap."""
    bounds = world_bounds(objects)
    width = (bounds[1].x - bounds[0].x) if bounds else 1.0
    matrix = reference.matrix_world.copy()
    matrix.translation.x += width * 1.2 or 1.0
    return [v for row in matrix for v in row]


def placement_for(context, opts, reference, objects):
    """Where the result goes: beside or in place of `reference`, or at the cursor."""
    where = opts.get("placement", 'BESIDE')
    if where == 'REPLACE':
        return {"placement": 'REPLACE', "replace": reference.name, "source": reference.name}
    if where == 'CURSOR':
        return {"placement": 'AT', "location": list(context.scene.cursor.location),
                "source": reference.name}
    return {"placement": 'MATRIX', "matrix": _beside(reference, objects),
            "source": reference.name}


# Starting a chain -----------------------------------------------------------------------

def client_for(context, service, kind):
    """The client, after the service has said it can run `kind` (v3 only)."""
    runtime.check_online()
    client = preferences.make_client(context, service)
    client.service.check({"type": kind})
    return client


def send_selection(context, opts, client, then, workdir, objects, copy_to=""):
    """Export the objects into `workdir` and submit their import, `then` after it."""
    objects = meshes_of(context, objects)
    path, reference = export_selection(context, objects, workdir)
    body = model_tasks.import_body(path)
    return runtime.submit(context, runtime.Prepared(
        body, client, workdir, placement_for(context, opts, reference, objects), then=then,
        copy_to=copy_to))


def texture_selected(context, opts, service=None, objects=None):
    """Texture the meshes (default: the selection); returns the first step's job."""
    client = client_for(context, service, model_tasks.IMPORT)
    meshes_of(context, objects)  # before any capture: a wrong selection costs nothing
    workdir = inputs.new_workdir()
    try:
        gathered = inputs.gather(context, opts, ("image_path",), workdir)
        return send_selection(context, opts, client, [model_tasks.texture_step(gathered)],
                               workdir, objects)
    except Exception:
        inputs.discard(workdir)
        raise


def _rig_model(opts):
    version = opts.get("rig_model", 'DEFAULT')
    return "" if version == 'DEFAULT' else version


def rig(context, opts, root=None, service=None, objects=None):
    """Rig (and, with animations, animate) a generated model, or the meshes (default: the
    selection) imported first; returns the first step's job."""
    client = client_for(context, service, model_tasks.RIG)
    steps = model_tasks.rig_steps(opts.get("spec", "tripo"), _rig_model(opts),
                                  sorted(opts.get("animations") or ()))
    if root is not None:
        first = model_tasks.next_body(steps[0], str(root["modelstream_task_id"]))
        prepared = runtime.Prepared(first, client, "", placement_for(context, opts, root,
                                                                     meshes_under(root)),
                                    then=steps[1:])
        return runtime.submit(context, prepared)
    meshes_of(context, objects)
    workdir = inputs.new_workdir()
    try:
        return send_selection(context, opts, client, steps, workdir, objects)
    except (errors.ModelStreamError, RuntimeError):
        inputs.discard(workdir)
        raise


def rig_task_of(root):
    """The rig task a rigged result came from, or ''."""
    if root is None:
        return ""
    if root.get("modelstream_type") == model_tasks.RIG:
        return str(root.get("modelstream_task_id", ""))
    return str(root.get(f"modelstream_{model_tasks.RIG}_task_id", ""))


def animate(context, opts, root, service=None):
    """Retarget preset animations onto a rigged result; returns the job."""
    client = client_for(context, service, model_tasks.RETARGET)
    step = model_tasks.retarget_step(sorted(opts.get("animations") or ()))
    rig_task = rig_task_of(root)
    if not rig_task:
        raise ValidationError("selection", "select a rigged model (made with Rig) to animate.")
    body = model_tasks.next_body(step, rig_task)
    placement = {**placement_for(context, opts, root, meshes_under(root)),
                 "steps": {**steps_of(root), model_tasks.RIG: rig_task}}
    return runtime.submit(context, runtime.Prepared(body, client, "", placement))


def steps_of(root):
    """The task ids of the steps a result came from, from its Empty's properties."""
    found = {kind: root.get(f"modelstream_{kind}_task_id") for kind in model_tasks.TYPES}
    return {kind: task_id for kind, task_id in found.items() if isinstance(task_id, str)}


def meshes_under(root):
    return [o for o in root.children_recursive if o.type == 'MESH'] or [root]


def generated_root(context):
    """The active object's result Empty when it is a model the service made, else None."""
    return result_root(context.view_layer.objects.active)


# Operators ------------------------------------------------------------------------------

class ChainOperator:
    """Starts a chain with `start`, then lands it: at once headless, from the timer in the
    GUI. Properties a caller set win; the rest come from the panel's settings (the Scene's
    `settings` group, `names` its options)."""

    bl_options = {'UNDO'}
    doing = ""  # said when it starts in the GUI
    needs = ""  # why the button is greyed out when `ready` says no
    settings = "modelstream_mesh"
    names = MESH_OPTION_NAMES

    @staticmethod
    def ready(context):
        return True

    @classmethod
    def poll(cls, context):
        if not online_poll(cls):
            return False
        if not cls.ready(context):
            cls.poll_message_set(cls.needs)
            return False
        return True

    said = "added "  # before what landed, in the report

    def execute(self, context):
        opts = caller_options(self, getattr(context.scene, self.settings), self.names)
        context.window_manager.modelstream_error = ""
        try:
            started = self.start(context, opts)
        except errors.ModelStreamError as e:
            return fail(self, context, str(e))
        jobs = started if isinstance(started, list) else [started]  # e.g. one per LOD
        if not bpy.app.background:
            for job in jobs:
                runtime.follow(context, job)
            self.report({'INFO'}, f"ModelStream: {self.doing} started")
            return {'FINISHED'}
        problems = []
        for job in jobs:  # every one lands before any failure is reported
            last = runtime.wait(context, job)
            problems.append(runtime.outcome(context, last))
            if not problems[-1]:
                self.report({'INFO'}, f"ModelStream: {self.said}{last.imported_as} (task "
                            f"{last.task_id})")
        problem = next((p for p in problems if p), "")
        return fail(self, context, problem) if problem else {'FINISHED'}


class MeshOperator(ChainOperator, OperatorMeshOptions):
    """An own-mesh command: texture, rig, animate."""


def has_mesh(context):
    return any(o.type == 'MESH' for o in context.selected_objects)


class MODELSTREAM_OT_texture_selected(MeshOperator, bpy.types.Operator):
    """Texture the selected meshes with ModelStream (Tripo API v3): the result comes back
    beside them; they are not changed"""

    bl_idname = "modelstream.texture_selected"
    bl_label = "Texture Selected"
    doing, needs = "texturing", "Select the mesh objects to texture"
    ready = staticmethod(has_mesh)

    def start(self, context, opts):
        return texture_selected(context, opts)


class MODELSTREAM_OT_rig(MeshOperator, bpy.types.Operator):
    """Rig the selected generated model (or the selected meshes) with ModelStream (Tripo
    API v3), checking first that it can be rigged; with animations, animate it too"""

    bl_idname = "modelstream.rig"
    bl_label = "Rig"
    doing, needs = "rigging", "Select a generated model or mesh objects to rig"

    @staticmethod
    def ready(context):
        return generated_root(context) is not None or has_mesh(context)

    def start(self, context, opts):
        return rig(context, opts, generated_root(context))


class MODELSTREAM_OT_animate(MeshOperator, bpy.types.Operator):
    """Retarget preset animations onto the selected rigged model: each comes back as an
    Action on one Armature"""

    bl_idname = "modelstream.animate"
    bl_label = "Animate"
    doing, needs = "animating", "Select a model rigged with Rig"

    @staticmethod
    def ready(context):
        return bool(rig_task_of(generated_root(context)))

    def start(self, context, opts):
        return animate(context, opts, generated_root(context))


CLASSES = (MODELSTREAM_PG_mesh, MODELSTREAM_OT_texture_selected, MODELSTREAM_OT_rig,
           MODELSTREAM_OT_animate)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.modelstream_mesh = PointerProperty(type=MODELSTREAM_PG_mesh)


def unregister():
    del bpy.types.Scene.modelstream_mesh
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
