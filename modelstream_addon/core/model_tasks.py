"""Tasks on a model that already exists: import your own mesh, texture it, check it can be
rigged, rig it, retarget preset animations onto it; and the post-processing steps of
post_tasks.py (parts, low poly, stylize, convert). No bpy here.

Each is one task of the job engine; a chain runs them in order, each step taking the task
id of the one before (`original_model_task_id`, v3's `input`). Names and values follow
Tripo's API v3 as the official SDK `tripo3d` 1.0.0 sends them (client.py, models.py).
"""

from __future__ import annotations

import os

from . import post_tasks, tasks
from .tasks import MAX_PROMPT, TEXTURE_QUALITIES, ValidationError, image_ref, is_int

IMPORT = "import_model"
TEXTURE = "texture_model"
RIG_CHECK = "animate_prerigcheck"
RIG = "animate_rig"
RETARGET = "animate_retarget"
OWN_MESH = (IMPORT, TEXTURE, RIG_CHECK, RIG, RETARGET)
TYPES = OWN_MESH + post_tasks.TYPES
# A model comes back; a rig-check answers; a conversion brings a file to keep.
MODELS = (IMPORT, TEXTURE, RIG, RETARGET) + post_tasks.MODELS
RESULTS = MODELS + (post_tasks.CONVERT,)  # what a task followed by its id may bring

RIG_SPECS = ("tripo", "mixamo", "actorcore", "unity", "unreal", "vrm")
# SDK: unity / unreal / vrm need one of the newer rig models.
NEWER_SPECS = ("unity", "unreal", "vrm")
RIG_MODELS = ("v1.0-20240301", "v2.5-20260210", "v3.0-20260909")
ANIMATIONS = ("preset:idle", "preset:walk", "preset:run", "preset:dive", "preset:climb",
              "preset:jump", "preset:slash", "preset:shoot", "preset:hurt", "preset:fall",
              "preset:turn", "preset:quadruped:walk", "preset:hexapod:walk",
              "preset:octopod:walk", "preset:serpentine:march", "preset:aquatic:march")
MAX_ANIMATIONS = 5
# SDK: /v3/files takes up to 50 MB; beyond, a presigned PUT; the API caps uploads at 150 MB.
DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_UPLOAD_BYTES = 150 * 1024 * 1024
MODEL_MIME = {"glb": "model/gltf-binary", "fbx": "application/octet-stream",
              "obj": "text/plain"}


def output_kind(task_type):
    """'model', 'image', 'multiview' (tasks.py's), 'check' for a rig-check, or 'file' for
    a conversion (a file for another program, not imported)."""
    if task_type == RIG_CHECK:
        return "check"
    if task_type == post_tasks.CONVERT:
        return "file"
    return "model" if task_type in MODELS else tasks.output_kind(task_type)


def import_body(path):
    """Your model file, uploaded by the worker and imported as a model task."""
    size = os.path.getsize(path)
    if size > MAX_UPLOAD_BYTES:
        raise ValidationError("selection", f"the exported model is {size / 2**20:.0f} MB; "
                              f"the service takes at most {MAX_UPLOAD_BYTES // 2**20} MB. "
                              "Decimate it or texture fewer objects at once.")
    return {"type": IMPORT, "file": {"type": "glb", "path": os.path.abspath(path)}}


def texture_step(opts):
    """The texture step from the options: a prompt and/or a reference image, PBR, quality,
    seed and model version."""
    prompt = (opts.get("prompt") or "").strip()
    image = (opts.get("image_path") or "").strip()
    if not prompt and not image:
        raise ValidationError("prompt", "describe the texture (e.g. 'weathered bronze') or "
                              "give a reference image.")
    if len(prompt) > MAX_PROMPT:
        raise ValidationError("prompt", f"at most {MAX_PROMPT} characters, got {len(prompt)}.")
    quality = opts.get("texture_quality") or "standard"
    if quality not in TEXTURE_QUALITIES:
        raise ValidationError("texture_quality",
                              f"must be one of {', '.join(TEXTURE_QUALITIES)}, got {quality!r}.")
    step = {"type": TEXTURE, "pbr": bool(opts.get("pbr", True)), "texture_quality": quality}
    if prompt:
        step["prompt"] = prompt
    if image:
        step["file"] = image_ref(image, "image_path")
    seed = opts.get("texture_seed", -1)
    if not is_int(seed) or seed < -1:
        raise ValidationError("texture_seed", f"a whole number, -1 for random; got {seed!r}.")
    if seed >= 0:
        step["texture_seed"] = seed
    version = (opts.get("model_version") or "").strip()
    if version:
        step["model_version"] = version
    return step


def rig_steps(spec="tripo", model_version="", animations=()):
    """rig-check, rig, and a retarget when animations are asked for."""
    if spec not in RIG_SPECS:
        raise ValidationError("spec", f"must be one of {', '.join(RIG_SPECS)}, got {spec!r}.")
    model_version = (model_version or "").strip()
    if model_version and model_version not in RIG_MODELS:
        raise ValidationError("rig_model", f"must be one of {', '.join(RIG_MODELS)}, got "
                              f"{model_version!r}.")
    if spec in NEWER_SPECS and model_version in ("", RIG_MODELS[0]):
        raise ValidationError("spec", f"{spec} needs rig model {RIG_MODELS[1]} or "
                              f"{RIG_MODELS[2]}.")
    rig = {"type": RIG, "spec": spec}
    if model_version:
        rig["model_version"] = model_version
    steps = [{"type": RIG_CHECK}, rig]
    if animations:
        steps.append(retarget_step(animations))
    return steps


def retarget_step(animations):
    """One to five preset animations, each once."""
    animations = list(dict.fromkeys(animations or ()))
    unknown = [a for a in animations if a not in ANIMATIONS]
    if unknown:
        raise ValidationError("animations", f"unknown preset {unknown[0]!r}; known: "
                              f"{', '.join(ANIMATIONS)}.")
    if not 1 <= len(animations) <= MAX_ANIMATIONS:
        raise ValidationError("animations", f"pick 1 to {MAX_ANIMATIONS} animations, got "
                              f"{len(animations)}.")
    return {"type": RETARGET, "animations": animations}


def check_answer(output):
    """A rig-check's answer from its output, tolerantly: (riggable, rig type). The SDK
    reads `rig_type`, else v3's `topology`."""
    output = output if isinstance(output, dict) else {}
    riggable = output.get("riggable")
    kind = output.get("rig_type") or output.get("topology")
    return (riggable if isinstance(riggable, bool) else None,
            kind if isinstance(kind, str) else "")


def input_of_next(parent_type, parent_task_id, parent_body):
    """The task the step after `parent` works on: the model a rig-check checked, else the
    step's own result."""
    if parent_type == RIG_CHECK:
        return str(parent_body.get("original_model_task_id") or "")
    return parent_task_id


def next_body(step, model_task_id, answer=None):
    """The body of a chain's next step on `model_task_id` (and, after a rig-check, its
    answer). Raises ValidationError when the chain must stop: a model the service cannot
    rig, or did not say it can, spends no rig task."""
    body = {**step, "original_model_task_id": model_task_id}
    if step.get("type") == RIG:
        riggable, kind = answer if answer else (None, "")
        if riggable is False:
            raise ValidationError("rig", "the service's rig check says this model cannot be "
                                  "rigged; no rig task was sent.")
        if riggable is not True:
            raise ValidationError("rig", "the service's rig check did not say whether this "
                                  "model can be rigged; no rig task was sent.")
        if kind:
            body["rig_type"] = kind
    return body
