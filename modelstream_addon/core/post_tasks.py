"""Post-processing a model for a game or film pipeline: split it into parts, complete
parts, smart low poly and chains of LODs, stylize, convert for an engine. No bpy here.

Each builder returns a step: a v2-shaped body without its source, which
`model_tasks.next_body` completes with the task it works on (`original_model_task_id`,
v3's `input`). Everything is checked here, before anything is sent. Names, ranges and
defaults follow Tripo as the official SDKs send them: 1.0.0 on API v3 for segmentation,
completion, low poly and conversion; 0.4.2 on the v2 task API for stylize, which v3
retired (SDK 1.0.0 refuses it before sending).
"""

from __future__ import annotations

from .tasks import ValidationError, is_int

SEGMENT = "mesh_segmentation"
COMPLETE = "mesh_completion"
LOWPOLY = "highpoly_to_lowpoly"
STYLIZE = "stylize_model"
CONVERT = "convert_model"
TYPES = (SEGMENT, COMPLETE, LOWPOLY, STYLIZE, CONVERT)
MODELS = (SEGMENT, COMPLETE, LOWPOLY, STYLIZE)  # a model comes back; CONVERT, a file

SEGMENT_MODELS = ("v1.0-20250506", "v2.0-20260430")
GRANULARITIES = ("simple", "balanced", "detailed")  # segmentation v2.0 only
COMPLETION_MODES = ("ai_completion", "quick_cap")
LOWPOLY_MODELS = ("v1.0", "v2.0", "v3.0")
LOWPOLY_FACES = (500, 20000)
LOWPOLY_QUAD_FACES = (500, 10000)
DEFAULT_LODS = (10000, 3000, 1000)
MAX_LODS = 5
STYLES = ("lego", "voxel", "voronoi", "minecraft")
BLOCK_SIZES = (32, 128)  # minecraft's block size
# The format the service is asked for -> the extension of the file that comes back.
FORMATS = {"GLTF": "glb", "USDZ": "usdz", "FBX": "fbx", "OBJ": "obj", "STL": "stl",
           "3MF": "3mf"}
NO_RIG_FORMATS = ("OBJ", "STL", "3MF")  # geometry only: a rig cannot go into them
FBX_PRESETS = ("blender", "3dsmax", "mixamo")
ORIENTATIONS = ("+x", "-x", "+y", "-y")
TEXTURE_FORMATS = ("BMP", "DPX", "HDR", "JPEG", "OPEN_EXR", "PNG", "TARGA", "TIFF", "WEBP")
TEXTURE_SIZES = (128, 8192)
MAX_PART_NAME = 128
MAX_PARTS = 256


def _choice(value, choices, field):
    if value not in choices:
        raise ValidationError(field, f"must be one of {', '.join(choices)}, got {value!r}.")
    return value


def part_names(names, field="part_names", required=False):
    """The parts a step works on: distinct non-empty names, in the order given."""
    names = list(dict.fromkeys(names or ()))
    if any(not isinstance(n, str) or not n.strip() or len(n) > MAX_PART_NAME for n in names):
        raise ValidationError(field, "part names must be non-empty text of at most "
                              f"{MAX_PART_NAME} characters.")
    if len(names) > MAX_PARTS:
        raise ValidationError(field, f"at most {MAX_PARTS} parts, got {len(names)}.")
    if required and not names:
        raise ValidationError(field, "pick at least one part.")
    return names


def segment_step(model_version="", granularity="", split_by_connectivity=None):
    """Split a model into named parts. Granularity and connectivity are segmentation
    v2.0's options."""
    step = {"type": SEGMENT}
    if model_version:
        step["model_version"] = _choice(model_version, SEGMENT_MODELS, "model_version")
    newer = step.get("model_version") == SEGMENT_MODELS[1]
    if granularity:
        if not newer:
            raise ValidationError("granularity", f"needs segmentation model "
                                  f"{SEGMENT_MODELS[1]}.")
        step["segmentation_granularity"] = _choice(granularity, GRANULARITIES, "granularity")
    if split_by_connectivity is not None:
        if not newer:
            raise ValidationError("split_by_connectivity", "needs segmentation model "
                                  f"{SEGMENT_MODELS[1]}.")
        step["split_by_connectivity"] = bool(split_by_connectivity)
    return step


def complete_step(names, mode=""):
    """Complete the parts `names` of a segmentation result."""
    step = {"type": COMPLETE, "part_names": part_names(names, required=True)}
    if mode:
        step["completion_mode"] = _choice(mode, COMPLETION_MODES, "completion_mode")
    return step


def face_range(quad):
    return LOWPOLY_QUAD_FACES if quad else LOWPOLY_FACES


def _faces(value, quad, field="face_limit"):
    low, high = face_range(quad)
    if not is_int(value) or not low <= value <= high:
        raise ValidationError(field, f"must be a whole number from {low:,} to {high:,}"
                              f"{' with quads' if quad else ''}, got {value!r}.")
    return value


def lowpoly_step(face_limit, quad=False, bake=True, model_version="", names=()):
    """Smart low poly: a hand-made-looking mesh of at most `face_limit` faces."""
    step = {"type": LOWPOLY, "face_limit": _faces(face_limit, quad)}
    if quad:  # sent only when not the default, as the SDK sends them
        step["quad"] = True
    if not bake:
        step["bake"] = False
    if model_version:
        step["model_version"] = _choice(model_version, LOWPOLY_MODELS, "model_version")
    names = part_names(names)
    if names:
        step["part_names"] = names
    return step


def lod_steps(limits=DEFAULT_LODS, quad=False, bake=True, model_version=""):
    """One smart-low-poly step per LOD, highest first (LOD0), each from the same source,
    so no LOD inherits another's losses."""
    limits = list(limits)
    if not 1 <= len(limits) <= MAX_LODS:
        raise ValidationError("lod_limits", f"give 1 to {MAX_LODS} face limits, got "
                              f"{len(limits)}.")
    for n, limit in enumerate(limits):
        _faces(limit, quad, "lod_limits")
        if n and limit >= limits[n - 1]:
            raise ValidationError("lod_limits", "each LOD needs fewer faces than the one "
                                  f"before; got {limits[n - 1]:,} then {limit:,}.")
    return [lowpoly_step(limit, quad, bake, model_version) for limit in limits]


def stylize_step(style, block_size=80):
    step = {"type": STYLIZE, "style": _choice(style, STYLES, "style")}
    if style == "minecraft":
        low, high = BLOCK_SIZES
        if not is_int(block_size) or not low <= block_size <= high:
            raise ValidationError("block_size", f"must be a whole number from {low} to "
                                  f"{high}, got {block_size!r}.")
        step["block_size"] = block_size
    return step


# convert_model's options and the SDK's defaults: only what differs is sent.
CONVERT_DEFAULTS = {"quad": False, "face_limit": 0, "texture_size": 4096,
                    "texture_format": "JPEG", "pivot_to_center_bottom": False,
                    "scale_factor": 1.0, "with_animation": True, "fbx_preset": "blender",
                    "export_orientation": "+x", "flatten_bottom": False, "pack_uv": False,
                    "bake": True, "animate_in_place": False, "export_vertex_colors": False}


def convert_step(fmt, opts=None, *, rigged=False, source_texture=0):
    """Convert for an engine: `fmt` one of FORMATS, `opts` CONVERT_DEFAULTS' names.
    `rigged`: the source has a rig; `source_texture`: the side of its largest texture in
    pixels (0 when unknown), so a conversion the service would refuse is refused here."""
    opts = {**CONVERT_DEFAULTS, **(opts or {})}
    unknown = sorted(set(opts) - set(CONVERT_DEFAULTS))
    if unknown:
        raise ValidationError(unknown[0], "is not an option of convert_model.")
    _choice(fmt, tuple(FORMATS), "format")
    if rigged and fmt in NO_RIG_FORMATS:
        raise ValidationError("format", f"{fmt} holds geometry only and cannot carry this "
                              "model's rig: choose FBX, GLTF or USDZ.")
    _choice(opts["fbx_preset"], FBX_PRESETS, "fbx_preset")
    _choice(opts["export_orientation"], ORIENTATIONS, "export_orientation")
    _choice(opts["texture_format"], TEXTURE_FORMATS, "texture_format")
    size = opts["texture_size"]
    low, high = TEXTURE_SIZES
    if not is_int(size) or not low <= size <= high:
        raise ValidationError("texture_size", f"must be a whole number from {low} to "
                              f"{high}, got {size!r}.")
    if source_texture and size > source_texture and size != CONVERT_DEFAULTS["texture_size"]:
        raise ValidationError("texture_size", f"{size} px is larger than the model's own "
                              f"texture ({source_texture} px): the service cannot make "
                              "detail that is not there.")
    faces = opts["face_limit"]
    if faces and not (is_int(faces) and faces > 0):
        raise ValidationError("face_limit", f"must be a positive whole number, 0 for as "
                              f"it is, got {faces!r}.")
    scale = opts["scale_factor"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1000:
        raise ValidationError("scale_factor", f"must be a number above 0 and at most "
                              f"1000, got {scale!r}.")
    step = {"type": CONVERT, "format": fmt}
    step.update({name: value for name, value in opts.items()
                 if value != CONVERT_DEFAULTS[name]})
    return step


def extension(fmt):
    """The file extension a conversion to `fmt` comes back with."""
    return FORMATS.get(str(fmt).upper(), "")
