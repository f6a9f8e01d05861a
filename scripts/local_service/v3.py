"""Tripo API v3 create bodies, checked as strictly as v2's: a 400 naming the field.

The shapes are the official SDK 1.0.0's (`tripo3d/client.py`): the route names the task, `model`
replaces `model_version`, an image is an `input` string (URL, file_token or the id of an image
task) and multiview views are `inputs`. v2's names are refused with a pointer to v3's, so a
client that mixes the two is caught here rather than by a paid request upstream.
"""

from __future__ import annotations

import re

from .api import IMAGE_TYPES, MAX_PROMPT, MODEL_TYPES, MULTIVIEW_IMAGE_TYPES, RequestError
from .images import image_info
from .outputs import make
from .tasks import Source, Task
from .validation import _BodyCheck, _model_options, _text

# v2 field -> what v3 takes instead.
V2_ONLY = {"type": "the route names the task", "model_version": "v3 takes 'model'",
           "file": "v3 takes 'input': a URL, a file_token or an image task's id",
           "files": "v3 takes 'inputs': [front, left, back, right]",
           "original_task_id": "v3 takes 'input': the task's id",
           "original_model_task_id": "v3 takes 'input': the model task's id"}
_TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_STRINGS = ("model", "size", "aspect_ratio", "output_format", "template", "geometry_quality",
            "texture_alignment", "orientation")
# Generation: the P1 model takes none of these keys, not even as false.
P1_MODEL = "P1-20260311"
P1_REFUSES = ("quad", "smart_low_poly", "generate_parts", "geometry_quality")
PARTS_TEXTURE_MODELS = ("v3.1-20260211",)  # the models that texture generated parts
SMART_RANGE, SMART_QUAD_RANGE = (1000, 20000), (500, 10000)
_BOOLS = ("t_pose", "sketch_to_render", "generate_parts", "smart_low_poly", "export_uv",
          "enable_image_autofix")


def validate_v3(service, kind: str, body, key: str) -> tuple[list, Task | None]:
    """The input images and the task built on for a v3 route's body; RequestError when
    Tripo would refuse it."""
    return _V3Check(service, key).run_v3(kind, body)


def generation_options(body: dict) -> None:
    """The v3 model routes' options and their combination rules."""
    model = body.get("model")
    if model == P1_MODEL:
        for name in P1_REFUSES:
            if name in body:
                raise RequestError(f"'{name}': model {P1_MODEL} does not take it, not even "
                                   "as false; leave it out", name)
    if body.get("geometry_quality", "standard") not in ("standard", "detailed"):
        raise RequestError("'geometry_quality' must be standard or detailed", "geometry_quality")
    quad = body.get("quad") is True
    face_limit = body.get("face_limit")
    if body.get("smart_low_poly") is True and face_limit is not None:
        low, high = SMART_QUAD_RANGE if quad else SMART_RANGE
        if not low <= face_limit <= high:
            raise RequestError(f"'face_limit' must be {low}-{high} with smart_low_poly"
                               + (" and quad" if quad else ""), "face_limit")
    textured = body.get("texture", True) is not False or body.get("pbr") is True
    if body.get("generate_parts") is True and textured and model not in PARTS_TEXTURE_MODELS:
        raise RequestError(f"'generate_parts' with a texture needs model "
                           f"{' or '.join(PARTS_TEXTURE_MODELS)}; with {model or 'the default'} "
                           "send texture: false and pbr: false", "generate_parts")


class _V3Check(_BodyCheck):
    api = "v3"

    def run_v3(self, kind: str, body) -> tuple[list, Task | None]:
        self.common(body)
        if kind == "edit_multiview_image" and "prompt" in body:
            raise RequestError("edit-multiview takes per-view 'prompts' [{view, prompt}], "
                               "not 'prompt'", "prompt")
        needs_prompt = kind in ("text_to_model", "text_to_image") or (
            kind == "generate_image" and "template" not in body)
        _text(body, "prompt", MAX_PROMPT, needs_prompt)
        _text(body, "negative_prompt", 255, False)
        sources, parent = [], None
        if kind in ("image_to_model", "generate_multiview_image"):
            sources = [self._input(body.get("input"), "input")]
        elif kind == "generate_image":
            sources = self._image_inputs(body)
        elif kind == "multiview_to_model":
            sources, parent = self._inputs(body.get("inputs"))
        elif kind == "edit_multiview_image":
            self._view_prompts(body.get("prompts"))
            # An edited set cannot be edited again.
            parent = self._parent(body, "input", ("generate_multiview_image",))
        if kind in MODEL_TYPES:
            _model_options(body, "model")
            generation_options(body)
        return sources, parent

    def common(self, body) -> None:
        """What every v3 body must be: a JSON object, none of v2's names, typed options."""
        if not isinstance(body, dict):
            raise RequestError("request body must be a JSON object", None)
        for name, instead in V2_ONLY.items():
            if name in body:
                raise RequestError(f"'{name}' is not a v3 field: {instead}", name)
        for name in _STRINGS:
            if name in body and not isinstance(body[name], str):
                raise RequestError(f"'{name}' must be a string", name)
        for name in _BOOLS:
            if name in body and not isinstance(body[name], bool):
                raise RequestError(f"'{name}' must be a boolean", name)
        if "compress" in body and body["compress"] != "geometry":
            raise RequestError("'compress' must be \"geometry\" when given", "compress")

    def _input(self, value, param: str) -> Source:
        """An image given as a URL, a file_token from /v3/files, or an image task's id."""
        if not isinstance(value, str) or not value.strip():
            raise RequestError(f"'{param}' is required: a URL, a file_token from /v3/files or "
                               "an image task's id", param)
        if value[:5].lower() in ("http:", "https", "data:"):
            return self._url(value, param, param)
        if value.startswith("file_"):
            data = self.service.upload(self.api, self.key, value)
            if not data:
                raise RequestError(f"'{param}' is not a file_token /v3/files issued to this "
                                   "key", param)
            try:
                image_info(data)  # /v3/files takes models too
            except ValueError as exc:
                raise RequestError(f"'{param}': {exc}", param) from None
            return Source(data=data, param=param)
        if _TASK_ID.fullmatch(value):
            task = self._parent({param: value}, param, IMAGE_TYPES)
            return Source(data=make(task, "generated_image.png"), param=param)
        raise RequestError(f"'{param}' is neither a URL, a file_token nor a task id", param)

    def _image_inputs(self, body: dict) -> list:
        """image-to-image: `input`, `inputs`, or both; at least one image."""
        if body.get("input") is None and body.get("inputs") is None:
            raise RequestError("'input' or 'inputs' is required", "input")
        sources = []
        if body.get("input") is not None:
            sources.append(self._input(body["input"], "input"))
        if body.get("inputs") is not None:
            items = body["inputs"]
            if not isinstance(items, list) or not items:
                raise RequestError("'inputs' must list one or more images", "inputs")
            sources += [self._input(item, f"inputs[{i}]") for i, item in enumerate(items)]
        return sources

    def _inputs(self, inputs) -> tuple[list, Task | None]:
        """multiview-to-model: [front, left, back, right] (null for a skipped side view), or
        [{"task_id": ...}] naming a multiview image task."""
        if isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], dict):
            name = "inputs[0].task_id"
            return [], self._parent({name: inputs[0].get("task_id")}, name,
                                    MULTIVIEW_IMAGE_TYPES)
        if not isinstance(inputs, list) or len(inputs) != 4:
            raise RequestError("'inputs' must list exactly 4 views: front, left, back, right "
                               "(null for a skipped view), or [{\"task_id\": ...}]", "inputs")
        if inputs[0] is None:
            raise RequestError("the front view, inputs[0], is required", "inputs[0]")
        sources = [None if item is None else self._input(item, f"inputs[{i}]")
                   for i, item in enumerate(inputs)]
        if sum(source is not None for source in sources) < 2:
            raise RequestError("give at least two views: the front and one more", "inputs")
        return sources, None
