"""Your own mesh in: the bodies of /v3/models/import and /texture and of /v3/animations/
rig-check, /rig and /retarget, checked as Tripo checks them, a 400 naming the field.

The shapes are the official SDK 1.0.0's (`import_model`, `texture_model`, `rig_check`, `rig`,
`retarget` in tripo3d/client.py). The SDK's argument names that are not wire fields
(`text_prompt`, `image_prompt`, `original_model_task_id`) are refused with a pointer to the
field that is, so a client that sends them is caught here, not by a silent default upstream.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .api import MAX_PROMPT, MESH_TYPES, V3_MAX_PRESIGNED, RequestError
from .gltf import check_glb
from .outputs import verdict
from .skin import BIPED, PRESETS
from .tasks import Source, Task
from .uploads import file_kind
from .v3 import _TASK_ID, _V3Check

RIG_MODELS = ("v1.0-20240301", "v2.5-20260210", "v3.0-20260909")  # the first is the default
RETIRED_RIG_MODELS = {"v2.0-20250506": "v2.5-20260210"}
RIG_TYPES = ("biped", "quadruped", "hexapod", "octopod", "avian", "serpentine", "aquatic",
             "others")
RIG_SPECS = ("tripo", "mixamo", "actorcore", "unity", "unreal", "vrm")  # tripo: the default
NEWER_SPECS = ("unity", "unreal", "vrm")  # they need a v2.5 or v3.0 rig model
MAX_ANIMATIONS = 5
TEXTURE_PROMPT = ("text", "image", "style_image")
# SDK arguments (and a v2 habit) -> the texture_prompt field that carries them on the wire.
_TEXTURE_ARGS = {"text_prompt": "text", "image_prompt": "image", "style_image": "style_image",
                 "prompt": "text"}


def validate_own_mesh(service, kind: str, body, key: str) -> tuple[list, Task | None]:
    """The inputs (an imported file, texture prompt images) and the task built on for an
    own-mesh route's body; RequestError when Tripo would refuse it."""
    return _MeshCheck(service, key).run_mesh(kind, body)


def _bools(body: dict, *names: str) -> None:
    for name in names:
        if name in body and not isinstance(body[name], bool):
            raise RequestError(f"'{name}' must be a boolean", name)


def _choice(body: dict, name: str, choices: tuple, default: str) -> str:
    value = body.get(name, default)
    if value not in choices:
        raise RequestError(f"'{name}' must be one of: {', '.join(choices)}", name)
    return value


def _out_format(body: dict) -> None:
    if body.get("out_format", "glb") == "fbx":
        raise RequestError("'out_format' fbx: the local service delivers GLB only; leave "
                           "out_format out or send glb", "out_format")
    _choice(body, "out_format", ("glb", "fbx"), "glb")


class _MeshCheck(_V3Check):
    def run_mesh(self, kind: str, body) -> tuple[list, Task | None]:
        self.common(body)
        if kind == "import_model":
            return [self._model_file(body.get("input"))], None
        if kind == "animate_retarget":
            rig = self._parent(body, "input", ("animate_rig",))
            self._animations(body, rig)
            return [], rig
        value = body.get("input")
        if isinstance(value, str) and not _TASK_ID.fullmatch(value):
            raise RequestError("'input' must be a model task's id; import a file first "
                               "(POST /v3/models/import)", "input")
        model = self._parent(body, "input", MESH_TYPES)
        if kind == "texture_model":
            return self._texture(body), model
        if kind == "animate_rig":
            self._rig(body, model)
        return [], model

    def _model_file(self, value) -> Source:
        """import's input: a file_token of an uploaded GLB, or an http(s) URL of one (fetched
        when the task runs; a file that is no usable GLB fails the task)."""
        if not isinstance(value, str) or not value.strip():
            raise RequestError("'input' is required: a file_token from /v3/files or an "
                               "http(s) URL of a GLB", "input")
        if value.startswith("file_"):
            data = self.service.upload(self.api, self.key, value)
            if data is None:
                waiting = self.service.presigned.waiting(self.key, value)
                raise RequestError("'input': nothing was PUT to this file_token's presigned URL "
                                   "yet" if waiting else "'input' is not a file_token /v3/files "
                                   "issued to this key", "input")
            kind = file_kind(data)
            if kind != "glb":
                raise RequestError(f"'input' is a {kind} file; the local service imports GLB "
                                   "models only", "input")
            try:
                check_glb(data, V3_MAX_PRESIGNED)
            except ValueError as exc:
                raise RequestError(f"'input': {exc}", "input") from None
            return Source(data=data, param="input", model=True)
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise RequestError("'input' must be a file_token from /v3/files or an http(s) URL",
                               "input")
        return Source(url=value, param="input", model=True)

    def _texture(self, body: dict) -> list:
        """texture_model's options; the texture prompt's images (URL, file_token or image
        task id) are returned as the task's sources."""
        for name, field in _TEXTURE_ARGS.items():
            if name in body:
                raise RequestError(f"'{name}' is not a v3 field: texture_model takes "
                                   f"texture_prompt.{field}", name)
        prompt, sources = body.get("texture_prompt"), []
        if prompt is not None:
            if not isinstance(prompt, dict) or not prompt:
                raise RequestError("'texture_prompt' must be an object with text, image "
                                   "and/or style_image", "texture_prompt")
            for name in prompt:
                if name not in TEXTURE_PROMPT:
                    raise RequestError(f"'texture_prompt.{name}' is not a field: give "
                                       f"{', '.join(TEXTURE_PROMPT)}", f"texture_prompt.{name}")
            text = prompt.get("text")
            if text is not None and (not isinstance(text, str) or not text.strip()
                                     or len(text) > MAX_PROMPT):
                raise RequestError(f"'texture_prompt.text' must be text of 1-{MAX_PROMPT} "
                                   "characters", "texture_prompt.text")
            sources = [self._input(prompt[name], f"texture_prompt.{name}")
                       for name in ("image", "style_image") if prompt.get(name) is not None]
        _bools(body, "texture", "pbr", "bake")
        if body.get("texture") is False and body.get("pbr") is False:
            raise RequestError("'texture' and 'pbr' are both false: nothing to make", "texture")
        for name in ("texture_seed", "model_seed"):
            seed = body.get(name)
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                     or seed < 0):
                raise RequestError(f"'{name}' must be a non-negative integer", name)
        _choice(body, "texture_quality", ("standard", "detailed", "extreme"), "standard")
        _choice(body, "texture_alignment", ("original_image", "geometry"), "original_image")
        names = body.get("part_names")
        if names is not None and (not isinstance(names, list) or not all(
                isinstance(name, str) and name for name in names)):
            raise RequestError("'part_names' must list part names", "part_names")
        return sources

    def _rig(self, body: dict, model: Task) -> None:
        """rig's options (v1.0 rigs bipeds only, in the older specs), then the model itself:
        one the rig check finds not riggable is refused."""
        version = body.get("model", RIG_MODELS[0])
        if version in RETIRED_RIG_MODELS:
            raise RequestError(f"'model' {version} is retired on v3: use "
                               f"{RETIRED_RIG_MODELS[version]}", "model")
        _choice(body, "model", RIG_MODELS, RIG_MODELS[0])
        rig_type = _choice(body, "rig_type", RIG_TYPES, BIPED)
        spec = _choice(body, "spec", RIG_SPECS, RIG_SPECS[0])
        if version == RIG_MODELS[0] and rig_type != BIPED:
            raise RequestError(f"'rig_type' {rig_type} needs model {RIG_MODELS[1]} or "
                               f"{RIG_MODELS[2]}; {RIG_MODELS[0]} rigs bipeds only", "rig_type")
        if version == RIG_MODELS[0] and spec in NEWER_SPECS:
            raise RequestError(f"'spec' {spec} needs model {RIG_MODELS[1]} or {RIG_MODELS[2]}",
                               "spec")
        _out_format(body)
        if not verdict(model)["riggable"]:
            raise RequestError(f"'input': the model of task {model.task_id} cannot be rigged "
                               "(its rig check says riggable: false)", "input")

    def _animations(self, body: dict, rig: Task) -> None:
        """retarget: `animation` or `animations` (1-5 presets, each once), each a preset for
        the rig's type."""
        one, many = body.get("animation"), body.get("animations")
        if one is None and many is None:
            raise RequestError("'animation' or 'animations' is required", "animation")
        if one is not None and many is not None:
            raise RequestError("give 'animation' or 'animations', not both", "animations")
        if many is not None and (not isinstance(many, list)
                                 or not 1 <= len(many) <= MAX_ANIMATIONS):
            raise RequestError(f"'animations' must list 1-{MAX_ANIMATIONS} presets",
                               "animations")
        items = [("animation", one)] if one is not None else [
            (f"animations[{i}]", name) for i, name in enumerate(many)]
        rig_type = rig.input.get("rig_type", BIPED)
        for i, (param, name) in enumerate(items):
            if name not in PRESETS:
                raise RequestError(f"'{param}' must be a preset: {', '.join(PRESETS)}", param)
            if many and name in many[:i]:
                raise RequestError(f"'{param}': {name} is listed twice", param)
            if PRESETS[name] != rig_type:
                raise RequestError(f"'{param}': {name} moves a {PRESETS[name]} rig; task "
                                   f"{rig.task_id} rigged a {rig_type}", param)
        _bools(body, "bake_animation", "export_with_geometry", "animate_in_place")
        _out_format(body)
