"""Settings the user edits (Scene) and job state mirrored for the UI (WindowManager).

The generate options are declared once and shared by the Scene settings and the operator,
so the panel, F3 and scripts speak the same names. Job state lives on the WindowManager,
which is never saved into the .blend.
"""

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..core import joblist, tasks

_TASK_LABELS = {
    "text_to_model": ("Text to Model", "A textured 3D model from a text prompt"),
    "image_to_model": ("Image to Model", "A 3D model from one image"),
    "multiview_to_model": ("Multiview to Model", "A 3D model from front/left/back/right "
                           "images, or from a multiview image task"),
    "refine_model": ("Refine Model", "A detailed model from an earlier draft model task. "
                     "Retired in Tripo's API v3: the service may refuse it"),
    "text_to_image": ("Text to Image", "An image from a text prompt"),
    "generate_image": ("Generate Image", "An image from a prompt and an optional image"),
    "generate_multiview_image": ("Multiview Images", "Four views (front, left, back, right) "
                                 "from a prompt or an image"),
    "edit_multiview_image": ("Edit Multiview Images",
                             "Edit the four views of an earlier multiview image task"),
}
TASK_TYPE_ITEMS = [(name, *_TASK_LABELS[name]) for name in tasks.TASK_TYPES]


def _recent_prompts(_self, _context, _edit_text):
    """The prompt field's drop-down: the last 20 prompts of the job history, newest first
    (Blender filters them by what is typed, and any other text may still be typed)."""
    return joblist.recent_prompts(joblist.jobs())


def _options_mixin(options):
    """The request options, as the API names them; `options` are Blender property flags."""

    class GenerateOptions:
        task_type: EnumProperty(
            name="Task Type", items=TASK_TYPE_ITEMS, default="text_to_model",
            description="What to generate", options=options)
        prompt: StringProperty(
            name="Prompt", options=options, search=_recent_prompts,
            description="Describe the model, e.g. 'a wooden chair with a red cushion' "
            "(at most 1024 characters); the drop-down recalls your last 20 prompts")
        model_version: StringProperty(
            name="Model Version", options=options,
            description="Model version, e.g. v3.0-20250812; empty uses the service's default")
        face_limit: IntProperty(
            name="Face Limit", default=10000, soft_min=0, soft_max=200000, options=options,
            description="Target number of faces of the generated mesh (0 = Auto: the model "
            "decides, up to 1.5 M faces on newer models)")
        texture: BoolProperty(
            name="Texture", default=True, description="Generate a texture", options=options)
        pbr: BoolProperty(
            name="PBR", default=False, options=options,
            description="Generate PBR materials (metallic/roughness); needs Texture")
        texture_quality: EnumProperty(
            name="Texture Quality", default="standard", options=options, items=[
                ("standard", "Standard", "Standard texture quality"),
                ("detailed", "Detailed", "Higher-resolution texture, slower"),
                ("extreme", "Extreme", "The most detailed texture, slowest")])
        quad: BoolProperty(
            name="Quad Mesh", default=False, options=options,
            description="Quad topology instead of triangles (delivered as FBX)")
        auto_size: BoolProperty(
            name="Auto Size", default=False, options=options,
            description="Scale the model to a plausible real-world size")
        generate_parts: BoolProperty(
            name="Generate Parts", default=False, options=options,
            description="The model comes as named parts (untextured triangles: texture, "
            "PBR and quad off)")
        smart_low_poly: BoolProperty(
            name="Smart Low Poly", default=False, options=options,
            description="Hand-made-looking low-poly topology: face limit 1,000-20,000 "
            "(500-10,000 with quads)")
        geometry_quality: EnumProperty(
            name="Geometry Quality", default="standard", options=options, items=[
                ("standard", "Standard", "Standard geometry"),
                ("detailed", "Detailed", "Finer geometry, slower and costs more")])
        style: StringProperty(
            name="Style", options=options,
            description="Stylization preset; empty for none. Deprecated upstream: the "
            "service may refuse it")
        image_path: StringProperty(
            name="Image", subtype='FILE_PATH', options=options,
            description="Input image: a PNG/JPEG/WEBP file (others are converted, large ones "
            "downscaled) or a public http(s) URL")
        view_front: StringProperty(name="Front", subtype='FILE_PATH', options=options,
                                   description="Front view image (required)")
        view_left: StringProperty(name="Left", subtype='FILE_PATH', options=options,
                                  description="The subject's left side; empty to skip")
        view_back: StringProperty(name="Back", subtype='FILE_PATH', options=options,
                                  description="Back view image; empty to skip")
        view_right: StringProperty(name="Right", subtype='FILE_PATH', options=options,
                                   description="The subject's right side; empty to skip")
        draft_model_task_id: StringProperty(
            name="Draft Task ID", options=options,
            description="Task id of the draft model to refine")
        original_task_id: StringProperty(
            name="Original Task ID", options=options,
            description="Task id of the multiview image task to edit or to build a model from")
        image_source: EnumProperty(
            name="Image Source", default='FILE', options=options, items=[
                ('FILE', "File", "An image file or URL"),
                ('VIEWPORT', "Viewport", "What the 3D viewport shows, from its current view"),
                ('RENDER', "Render", "The scene camera's view, rendered"),
                ('IMAGE', "Image", "An image already in this .blend")])
        image_name: StringProperty(name="Image", options=options,
                                   description="Name of the image in this .blend")
        multiview_source: EnumProperty(
            name="Views From", default='FILES', options=options, items=[
                ('FILES', "Files", "Four image files (front required, others optional)"),
                ('ORBIT', "Orbit Capture",
                 "Capture front, left, back and right around the selection")])
        capture_resolution: IntProperty(
            name="Capture Size", default=1024, min=64, max=4096, options=options,
            description="Side of the captured images, in pixels")
        capture_transparent: BoolProperty(
            name="Transparent Background", default=False, options=options,
            description="Capture with an alpha background")
        only_selected: BoolProperty(
            name="Only Selected", default=False, options=options,
            description="Hide other objects while capturing")
        render_engine: EnumProperty(
            name="Render With", default='WORKBENCH', options=options, items=[
                ('WORKBENCH', "Fast Preview", "Workbench: quick, flat shading"),
                ('SCENE', "Scene Engine", "The scene's own render engine and settings")])
        orbit_ortho: BoolProperty(name="Orthographic", default=True, options=options,
                                  description="Orthographic orbit views (else perspective)")
        orbit_front: EnumProperty(
            name="Front", default='NEG_Y', options=options, items=[
                ('NEG_Y', "-Y", "Blender's front: the views look from -Y"),
                ('ACTIVE_LOCAL', "Active Object",
                 "The active object's local -Y is its front")])
        prompt_front: StringProperty(name="Front", options=options,
                                     description="Edit for the front view only (optional)")
        prompt_left: StringProperty(name="Left", options=options,
                                    description="Edit for the left view only (optional)")
        prompt_back: StringProperty(name="Back", options=options,
                                    description="Edit for the back view only (optional)")
        prompt_right: StringProperty(name="Right", options=options,
                                     description="Edit for the right view only (optional)")
        placement: EnumProperty(
            name="Place At", default='CURSOR', options=options, items=[
                ('CURSOR', "3D Cursor", "At the 3D cursor"),
                ('ORIGIN', "World Origin", "At the world origin"),
                ('REPLACE', "Replace Active",
                 "Take the active object's place, rotation and size; it is hidden")])
        size_mode: EnumProperty(
            name="Size", default='KEEP', options=options, items=[
                ('KEEP', "As Delivered", "Keep the service's units"),
                ('FIT', "Fit Size", "Scale so the largest side is the target size"),
                ('HEIGHT', "Height (m)", "Scale so the model stands the target size tall")])
        target_size: FloatProperty(
            name="Target Size", default=1.0, min=0.001, soft_max=100.0, unit='LENGTH',
            options=options, description="Largest side (Fit Size) or height (Height) of "
            "the model after import")
        origin_at_base: BoolProperty(
            name="Origin at Base", default=False, options=options,
            description="Put the model's lowest point at the placement point, centred "
            "over it, as an engine expects an asset's origin")
        shading: EnumProperty(
            name="Shading", default='KEEP', options=options, items=[
                ('KEEP', "As Delivered", "Keep the file's shading"),
                ('SMOOTH', "Smooth", "Smooth shading"),
                ('FLAT', "Flat", "Flat shading")])
        variations: IntProperty(
            name="Variations", default=1, min=1, max=tasks.MAX_VARIATIONS, options=options,
            description="How many versions to make from the same inputs, each with its own "
            "seed (text, image and multiview to model); they land side by side")
        extra_params: StringProperty(
            name="Extra Parameters", options=options,
            description='More API parameters as a JSON object, e.g. {"model_seed": 7, '
            '"negative_prompt": "blurry"}')

    return GenerateOptions


SceneOptions = _options_mixin(set())
OperatorOptions = _options_mixin({'SKIP_SAVE'})
OPTION_NAMES = tuple(SceneOptions.__annotations__)  # declared once, above


class MODELSTREAM_PG_settings(bpy.types.PropertyGroup, SceneOptions):
    """The panel's inputs, saved with the scene (never a key)."""


def _column(name):
    """A read-only column whose value is the engine job's: rows store only the job id."""
    def get(row):
        return joblist.value(row.job_id, name)
    return get


class MODELSTREAM_PG_job(bpy.types.PropertyGroup):
    """One row of the jobs list: the job's id; the rest is read from the engine."""

    job_id: StringProperty()
    task_id: StringProperty(name="Task ID", get=_column("task_id"))
    task_type: StringProperty(get=_column("task_type"))
    label: StringProperty(get=_column("label"))
    state: StringProperty(get=_column("state"))
    message: StringProperty(get=_column("message"))
    error: StringProperty(get=_column("error"))
    transport: StringProperty(name="Images Sent By", get=_column("transport"))
    created: FloatProperty(get=_column("created"))
    finished: FloatProperty(get=_column("finished"))
    queue_position: IntProperty(get=_column("queue_position"))
    progress: FloatProperty(min=0.0, max=1.0, subtype='FACTOR', get=_column("progress"))
    object_name: StringProperty(get=_column("object_name"))


CLASSES = (MODELSTREAM_PG_settings, MODELSTREAM_PG_job)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.modelstream = PointerProperty(type=MODELSTREAM_PG_settings)
    bpy.types.WindowManager.modelstream_jobs = CollectionProperty(type=MODELSTREAM_PG_job)
    bpy.types.WindowManager.modelstream_job_index = IntProperty()
    bpy.types.WindowManager.modelstream_error = StringProperty()
    bpy.types.WindowManager.modelstream_connection_report = StringProperty()


def unregister():
    del bpy.types.WindowManager.modelstream_connection_report
    del bpy.types.WindowManager.modelstream_error
    del bpy.types.WindowManager.modelstream_job_index
    del bpy.types.WindowManager.modelstream_jobs
    del bpy.types.Scene.modelstream
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
