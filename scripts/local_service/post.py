"""Post-processing bodies (v3): /v3/mesh/segment, /complete, /decimate and /v3/models/convert,
checked as Tripo checks them, a 400 naming the field.

The shapes are the official SDK 1.0.0's (`mesh_segment`, `mesh_complete`, `mesh_decimate`,
`convert_model` in tripo3d/client.py): `input` is the id of a task with a model output,
created with the same key on v3.
"""

from __future__ import annotations

from .api import CONVERT_FORMATS, MESH_TYPES, RIGGED_TYPES, RequestError
from .convert import FBX_PRESETS, ORIENTATIONS, TEXTURE_FORMATS, texture_side
from .gltf import load
from .outputs import model_glb, part_names
from .shapes import MAX_FACES
from .tasks import Task
from .v3 import _TASK_ID, _V3Check

SEGMENT_MODELS = ("v1.0-20250506", "v2.0-20260430")  # the first is the default
GRANULARITIES = ("simple", "balanced", "detailed")
COMPLETION_MODELS = ("v1.0-20250506",)
COMPLETION_MODES = ("ai_completion", "quick_cap")
DECIMATE_MODELS = ("v1.0", "v2.0", "v3.0")
LOWPOLY_RANGE, LOWPOLY_QUAD_RANGE = (500, 20000), (500, 10000)
CONVERT_FACES = (100, MAX_FACES)
TEXTURE_SIDES = (128, 4096)
CONVERT_BOOLS = ("quad", "force_symmetry", "flatten_bottom", "pivot_to_center_bottom",
                 "with_animation", "pack_uv", "bake", "export_vertex_colors",
                 "animate_in_place")


def validate_post(service, kind: str, body, key: str) -> tuple[list, Task | None]:
    """The inputs (a segmentation's ref_image) and the model task built on."""
    return _PostCheck(service, key).run_post(kind, body)


def _choice(body: dict, name: str, choices: tuple, default=None):
    value = body.get(name, default)
    if value is not None and value not in choices:
        raise RequestError(f"'{name}' must be one of: {', '.join(choices)}", name)
    return value


def _bool(body: dict, name: str) -> None:
    if name in body and not isinstance(body[name], bool):
        raise RequestError(f"'{name}' must be a boolean", name)


def _integer(body: dict, name: str, low: int, high: int, why: str = "") -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(f"'{name}' must be an integer {low}-{high}{why}", name)
    return value


def _number(body: dict, name: str, low: float, high: float | None) -> None:
    """A number from `low` to `high`; with no `high`, above `low`."""
    value = body.get(name)
    if value is None:
        return
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not number or (value > high or value < low if high is not None else value <= low):
        span = f"{low}-{high}" if high is not None else f"above {low}"
        raise RequestError(f"'{name}' must be a number {span}", name)


class _PostCheck(_V3Check):
    def run_post(self, kind: str, body) -> tuple[list, Task | None]:
        self.common(body)
        value = body.get("input")
        if isinstance(value, str) and not _TASK_ID.fullmatch(value):
            raise RequestError("'input' must be the id of a task with a model output", "input")
        sources: list = []
        if kind == "mesh_completion":
            model = self._parent(body, "input", ("mesh_segmentation",))
            _choice(body, "model", COMPLETION_MODELS)
            _choice(body, "completion_mode", COMPLETION_MODES)
            self._part_names(body, model)
        elif kind == "mesh_segmentation":
            model = self._parent(body, "input", MESH_TYPES)
            sources = self._segment(body)
        elif kind == "highpoly_to_lowpoly":
            model = self._parent(body, "input", MESH_TYPES)
            self._decimate(body, model)
        else:
            model = self._parent(body, "input", MESH_TYPES + RIGGED_TYPES)
            self._convert(body, model)
        return sources, model

    def _segment(self, body: dict) -> list:
        version = _choice(body, "model", SEGMENT_MODELS, SEGMENT_MODELS[0])
        for name in ("segmentation_granularity", "split_by_connectivity", "ref_image"):
            if name in body and version != SEGMENT_MODELS[1]:
                raise RequestError(f"'{name}' needs model {SEGMENT_MODELS[1]}", name)
        _choice(body, "segmentation_granularity", GRANULARITIES)
        _bool(body, "split_by_connectivity")
        if body.get("ref_image") is not None:
            return [self._input(body["ref_image"], "ref_image")]
        return []

    def _part_names(self, body: dict, model: Task) -> None:
        names = body.get("part_names")
        if names is None:
            return
        if not isinstance(names, list) or not names or not all(
                isinstance(name, str) for name in names):
            raise RequestError("'part_names' must list part names", "part_names")
        known = part_names(model)
        if known is None:
            raise RequestError(f"'part_names': the model of task {model.task_id} has no named "
                               "parts; segment it first (POST /v3/mesh/segment)", "part_names")
        unknown = [name for name in names if name not in known]
        if unknown:
            raise RequestError(f"'part_names': {', '.join(map(repr, unknown))} not among the "
                               f"parts of task {model.task_id}: {', '.join(known)}",
                               "part_names")

    def _decimate(self, body: dict, model: Task) -> None:
        version = _choice(body, "model", DECIMATE_MODELS, "v2.0")
        for name in ("quad", "bake", "smart_uv"):
            _bool(body, name)
        if body.get("smart_uv") is True and version != "v3.0":
            raise RequestError("'smart_uv' needs model v3.0", "smart_uv")
        quad = body.get("quad") is True
        low, high = LOWPOLY_QUAD_RANGE if quad else LOWPOLY_RANGE
        _integer(body, "face_limit", low, high, " (with quad)" if quad else "")
        self._part_names(body, model)

    def _convert(self, body: dict, model: Task) -> None:
        kind = body.get("format")
        if kind not in CONVERT_FORMATS:
            raise RequestError(f"'format' must be one of: {', '.join(CONVERT_FORMATS)}", "format")
        if kind in ("OBJ", "STL", "3MF") and model.kind in RIGGED_TYPES:
            raise RequestError(f"'format' {kind} cannot hold the rig of task {model.task_id} "
                               f"({model.kind}): convert it to FBX, GLTF or USDZ", "format")
        for name in CONVERT_BOOLS:
            _bool(body, name)
        _integer(body, "face_limit", *CONVERT_FACES)
        _number(body, "flatten_bottom_threshold", 0, 1)
        _number(body, "scale_factor", 0, None)
        _choice(body, "texture_format", TEXTURE_FORMATS)
        _choice(body, "fbx_preset", tuple(FBX_PRESETS))
        _choice(body, "export_orientation", tuple(ORIENTATIONS))
        self._part_names(body, model)
        side = _integer(body, "texture_size", *TEXTURE_SIDES)
        if side is not None:
            source = texture_side(load(model_glb(model)))
            if source is not None and side > source:
                raise RequestError(f"'texture_size' {side} is larger than the source's "
                                   f"texture ({source} px); send at most {source}",
                                   "texture_size")

