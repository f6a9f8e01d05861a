"""Task builders: user options -> a validated request body. No bpy here.

Everything is checked before a request is sent, so bad input never spends credit.
Errors name the field so the UI and the command line can point at it.

A local image is written into the body as {"type": ..., "path": ...}; the engine turns it
into an upload token or a data URL on a worker thread just before the task is created.
"""

from __future__ import annotations

import json
import os
import random
import re
import urllib.parse
from dataclasses import dataclass

from . import imagefile
from .errors import ConfigError

MODEL_TYPES = ("text_to_model", "image_to_model", "multiview_to_model", "refine_model")
IMAGE_TYPES = ("text_to_image", "generate_image")
MULTIVIEW_IMAGE_TYPES = ("generate_multiview_image", "edit_multiview_image")
TASK_TYPES = MODEL_TYPES + IMAGE_TYPES + MULTIVIEW_IMAGE_TYPES
VIEWS = ("front", "left", "back", "right")
TEXTURE_QUALITIES = ("standard", "detailed", "extreme")
GEOMETRY_QUALITIES = ("standard", "detailed")
# smart_low_poly narrows the face limit (Tripo's docs): these, or QUAD_LOW_POLY with quads.
SMART_LOW_POLY_FACES = (1000, 20000)
QUAD_LOW_POLY_FACES = (500, 10000)
TEXTURED_PARTS = ("v3.1-20260211",)  # the model that makes textured parts
P1 = "P1-"  # Tripo's P1 models refuse quad, smart_low_poly, generate_parts and
# geometry_quality even when false: the keys are left out for them
# extra_params may override these (the user's explicit intent wins), never anything else
# an option sets, and never what names an input.
OVERRIDABLE = frozenset(("face_limit", "texture", "pbr", "texture_quality"))
NEVER_EXTRA = frozenset(("type", "file", "files", "prompts"))
MAX_PROMPT = 1024
# Variations: the task types Tripo takes a model_seed for, and how many at once.
SEEDED_TYPES = ("text_to_model", "image_to_model", "multiview_to_model")
MAX_VARIATIONS = 8
MAX_SEED = 2**31 - 1
_URL_TYPES = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}


class ValidationError(ConfigError):
    """Bad input, found before any request."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}", param=field)
        self.field = field


def _prompt(value, field="prompt", required=True):
    prompt = (value or "").strip()
    if not prompt and required:
        raise ValidationError(field, "a prompt is required, e.g. 'a wooden chair'.")
    if len(prompt) > MAX_PROMPT:
        raise ValidationError(field, f"at most {MAX_PROMPT} characters, got {len(prompt)}.")
    return prompt


def _face_limit(value):
    """0 is Auto: the model decides, so nothing is sent."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError("face_limit", "must be a whole number, 0 for Auto (the model "
                              f"decides), got {value!r}.")
    return value


def _task_id(opts, field):
    value = str(opts.get(field) or "").strip()
    if not value:
        raise ValidationError(field, "the id of an earlier task is required.")
    return value


def image_ref(value, field):
    """An http(s) URL as is, or a checked local file to be sent by the engine."""
    value = (value or "").strip()
    if not value:
        raise ValidationError(field, "an image file or http(s) URL is required.")
    scheme = urllib.parse.urlsplit(value).scheme.lower()
    if scheme in ("http", "https"):
        ext = os.path.splitext(urllib.parse.urlsplit(value).path)[1].lower()
        return {"type": _URL_TYPES.get(ext, "png"), "url": value}
    try:
        fmt = imagefile.check(value, field)
    except imagefile.ImageError as e:
        raise ValidationError(field, str(e).split(": ", 1)[1]) from None
    return {"type": imagefile.API_TYPES[fmt], "path": os.path.abspath(value)}


def _model_options(opts, body):
    """The mesh options shared by the model-making task types."""
    face_limit = _face_limit(opts.get("face_limit", 10000))
    if face_limit:
        body["face_limit"] = face_limit
    texture = bool(opts.get("texture", True))
    pbr = bool(opts.get("pbr", False))
    if pbr and not texture:
        raise ValidationError("pbr", "PBR materials need texture: turn texture on or PBR off.")
    body["texture"] = texture
    body["pbr"] = pbr
    quality = opts.get("texture_quality") or "standard"
    if quality not in TEXTURE_QUALITIES:
        raise ValidationError("texture_quality",
                              f"must be one of {', '.join(TEXTURE_QUALITIES)}, got {quality!r}.")
    if texture or pbr:  # upstream refuses a quality without a texture
        body["texture_quality"] = quality
    for flag in ("quad", "auto_size"):
        body[flag] = bool(opts.get(flag, False))
    for text in ("model_version", "style"):
        value = (opts.get(text) or "").strip()
        if value:
            body[text] = value
    _game_options(opts, body)


def _game_options(opts, body):
    """generate_parts, smart_low_poly and geometry_quality, sent only when asked for, with
    the combinations the service refuses refused here first."""
    parts = bool(opts.get("generate_parts", False))
    low_poly = bool(opts.get("smart_low_poly", False))
    quality = opts.get("geometry_quality") or "standard"
    if quality not in GEOMETRY_QUALITIES:
        raise ValidationError("geometry_quality", f"must be one of "
                              f"{', '.join(GEOMETRY_QUALITIES)}, got {quality!r}.")
    if str(body.get("model_version", "")).startswith(P1):
        asked = [name for name, on in (("quad", body["quad"]), ("smart_low_poly", low_poly),
                                       ("generate_parts", parts),
                                       ("geometry_quality", quality != "standard")) if on]
        if asked:
            raise ValidationError(asked[0], f"{body['model_version']} (a P1 model) does not "
                                  "take it: turn it off or pick another model version.")
        del body["quad"]
        return
    if parts:
        clash = [name for name in ("texture", "pbr", "quad") if body.get(name)
                 and not (name != "quad" and body.get("model_version") in TEXTURED_PARTS)]
        if clash:
            raise ValidationError("generate_parts", f"parts come untextured (but from "
                                  f"{TEXTURED_PARTS[0]}) and as triangles: turn "
                                  f"{' and '.join(clash)} off.")
        body["generate_parts"] = True
    if low_poly:
        low, high = QUAD_LOW_POLY_FACES if body["quad"] else SMART_LOW_POLY_FACES
        faces = body.get("face_limit")
        if faces is not None and not low <= faces <= high:
            raise ValidationError("face_limit", f"smart low poly makes {low:,} to {high:,} "
                                  f"faces{' with quads' if body['quad'] else ''}, got "
                                  f"{faces:,}.")
        body["smart_low_poly"] = True
    if quality != "standard":
        body["geometry_quality"] = quality


def _view_prompts(opts):
    """[{view, prompt}] for each view being edited: its own prompt, else the general one."""
    general = _prompt(opts.get("prompt"), required=False)
    prompts = []
    for view in VIEWS:
        own = _prompt(opts.get(f"prompt_{view}"), f"prompt_{view}", required=False)
        if own or general:
            prompts.append({"view": view, "prompt": own or general})
    if not prompts:
        raise ValidationError("prompt", "say what to change: a prompt for every view, or "
                              "one for a single view.")
    return prompts


def _views(opts):
    """[front, left, back, right] with {} for a skipped slot; front and one more needed."""
    files = []
    for view in VIEWS:
        value = (opts.get(f"view_{view}") or "").strip()
        files.append(image_ref(value, f"view_{view}") if value else {})
    if not files[0]:
        raise ValidationError("view_front", "the front view is required.")
    if sum(1 for f in files if f) < 2:
        raise ValidationError("view_left", "at least two views are needed (front and one "
                              "of left, back, right).")
    return files


def _extra(opts, body):
    """Newer upstream parameters pass through, so API drift never blocks a user."""
    text = (opts.get("extra_params") or "").strip()
    if not text:
        return
    try:
        extra = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise ValidationError("extra_params", f"not valid JSON: {e}.") from None
    if not isinstance(extra, dict):
        raise ValidationError("extra_params", 'must be a JSON object, e.g. {"model_seed": 1}.')
    refused = sorted(set(extra) & NEVER_EXTRA)
    if refused:
        raise ValidationError("extra_params", f"{', '.join(refused)} cannot be set here: "
                              "it comes from the task's own inputs.")
    clash = sorted(set(extra) & set(body) - OVERRIDABLE)
    if clash:
        raise ValidationError("extra_params", f"{', '.join(clash)} already set by its own "
                              "option; set it there.")
    if _names_a_local_file(extra):
        raise ValidationError("extra_params", "must not name a local file; pick images with "
                              "the image options.")
    body.update(extra)


def _no_constant(name):
    """NaN and Infinity are not JSON: the body could not even be sent."""
    raise ValueError(f"{name} is not a JSON number")


def _names_a_local_file(value):
    """A `path` key or a file: URL anywhere: the engine must never send a file the user
    did not pick as an input."""
    if isinstance(value, dict):
        return "path" in value or any(_names_a_local_file(v) for v in value.values())
    if isinstance(value, list):
        return any(_names_a_local_file(v) for v in value)
    return isinstance(value, str) and value.strip().lower().startswith("file:")


def overrides(opts):
    """The options extra_params overrides, for the job's details."""
    try:
        extra = json.loads((opts.get("extra_params") or "").strip() or "{}")
    except ValueError:
        return []
    return sorted(set(extra) & OVERRIDABLE) if isinstance(extra, dict) else []


def _check_text(opts):
    """Text that cannot be encoded (a lone surrogate from a script) would fail after the
    task was paid for, and poison the history: refuse it first."""
    for name, value in opts.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError(name, "contains invalid Unicode (a lone surrogate); "
                                      "type the text again.") from None


def build_task(opts):
    """Return the JSON body for one task from a dict of options (operator properties)."""
    _check_text(opts)
    kind = opts.get("task_type") or "text_to_model"
    if kind not in TASK_TYPES:
        raise ValidationError("task_type", f"must be one of {', '.join(TASK_TYPES)}, "
                              f"got {kind!r}.")
    body = {"type": kind}
    if kind in ("text_to_model", "text_to_image", "generate_image"):
        body["prompt"] = _prompt(opts.get("prompt"))
    if kind == "image_to_model":
        body["file"] = image_ref(opts.get("image_path"), "image_path")
    elif kind == "generate_image" and (opts.get("image_path") or "").strip():
        body["file"] = image_ref(opts["image_path"], "image_path")
    elif kind == "multiview_to_model":
        if (opts.get("original_task_id") or "").strip():
            body["original_task_id"] = _task_id(opts, "original_task_id")
        else:
            body["files"] = _views(opts)
    elif kind == "refine_model":
        body["draft_model_task_id"] = _task_id(opts, "draft_model_task_id")
    elif kind == "generate_multiview_image":
        prompt = _prompt(opts.get("prompt"), required=False)
        body["file"] = image_ref(opts.get("image_path"), "image_path")
        if prompt:
            body["prompt"] = prompt
    elif kind == "edit_multiview_image":
        body["original_task_id"] = _task_id(opts, "original_task_id")
        body["prompts"] = _view_prompts(opts)
    if kind in MODEL_TYPES and kind != "refine_model":
        _model_options(opts, body)
    _extra(opts, body)
    return body


def image_fields(opts):
    """The image options this task would read, so unrelated leftovers are never touched."""
    kind = opts.get("task_type")
    if kind in ("image_to_model", "generate_image", "generate_multiview_image"):
        return ("image_path",)
    if kind == "multiview_to_model" and not (opts.get("original_task_id") or "").strip():
        return tuple(f"view_{v}" for v in VIEWS)
    return ()


def output_kind(task_type):
    """'model', 'image' or 'multiview': what a task of this type returns."""
    if task_type in MODEL_TYPES:
        return "model"
    return "image" if task_type in IMAGE_TYPES else "multiview"


_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def safe_name(text, limit=48):
    """Text from a prompt or the service, fit for a datablock name: no control characters
    or lone surrogates, whitespace collapsed, short (Blender keeps 63 bytes)."""
    return " ".join(_UNSAFE.sub(" ", str(text)).split())[:limit]


def describe(body):
    """A short human label for a job, e.g. for the Empty's name; a variation's seed tells
    siblings apart."""
    label = safe_name(body.get("prompt") or str(body.get("type") or "model").replace("_", " "))
    seed = body.get("model_seed")
    return f"{label[:36]} (seed {seed})" if is_int(seed) else label


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def variation_count(opts):
    """How many variations the options ask for, checked before anything is captured."""
    count = opts.get("variations", 1)
    if not is_int(count) or not 1 <= count <= MAX_VARIATIONS:
        raise ValidationError("variations", f"must be a whole number from 1 to "
                              f"{MAX_VARIATIONS}, got {count!r}.")
    if count > 1 and opts.get("task_type", "text_to_model") not in SEEDED_TYPES:
        raise ValidationError("variations", "only text, image and multiview to model tasks "
                              "take a seed; use 1 for this task type.")
    return count


def vary(body, count, rng=None):
    """`count` copies of `body`, each with its own model_seed (and texture_seed when
    textured). Seeds from extra_params are the first variation's and the others follow
    them, so a recorded seed makes that variation again. One copy is `body` untouched."""
    if count == 1:
        return [body]
    rng = rng or random.SystemRandom()
    names = ["model_seed"] + (["texture_seed"] if body.get("texture", True) else [])
    first = {}
    for name in names:
        given = body.get(name)
        if given is not None and not (is_int(given) and 0 <= given <= MAX_SEED - count):
            raise ValidationError("extra_params", f"{name} must be a whole number from 0 to "
                                  f"{MAX_SEED - count} for {count} variations.")
        first[name] = given if given is not None else rng.randrange(MAX_SEED - count)
    return [{**body, **{name: seed + i for name, seed in first.items()}} for i in range(count)]


@dataclass
class Request:
    """What `build_request` returns: the bodies to send and what the job should say."""

    bodies: list  # one body, or one per variation with its own seeds
    note: str = ""  # e.g. the options extra_params overrides


def build_request(opts, gather=None, check=None):
    """The options to the validated request bodies, all variations included, in one call.

    `gather(opts, fields)` returns the options with the image `fields` the task reads made
    into files (captures and conversions, the Blender side's work); `check(body)` raises
    for what the service or the history refuses. Nothing is sent here: every error is a
    ValidationError or ConfigError before any credit is spent, and a wrong variation count
    is refused before anything is gathered."""
    count = variation_count(opts)
    fields = image_fields(opts)
    if gather is not None and fields:
        opts = gather(opts, fields)
    body = build_task(opts)
    if check is not None:
        check(body)
    overridden = overrides(opts)
    note = (f"extra_params sets {', '.join(overridden)}, overriding the option"
            + ("s" if len(overridden) > 1 else "")) if overridden else ""
    return Request(vary(body, count), note)
