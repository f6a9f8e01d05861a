"""Task builders: user options -> a validated request body. No bpy here.

Everything is checked before a request is sent, so bad input never spends credit.
Errors name the field so the UI and the command line can point at it.
"""

from __future__ import annotations

from .errors import ConfigError

TASK_TYPES = ("text_to_model",)
TEXTURE_QUALITIES = ("standard", "detailed")
MAX_PROMPT = 1024


class ValidationError(ConfigError):
    """Bad input, found before any request."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}", param=field)
        self.field = field


def _prompt(value):
    prompt = (value or "").strip()
    if not prompt:
        raise ValidationError("prompt", "a prompt is required, e.g. 'a wooden chair'.")
    if len(prompt) > MAX_PROMPT:
        raise ValidationError("prompt", f"at most {MAX_PROMPT} characters, got {len(prompt)}.")
    return prompt


def _face_limit(value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError("face_limit", f"must be a positive whole number, got {value!r}.")
    return value


def _model_options(opts, body):
    """The mesh options shared by the model-making task types."""
    body["face_limit"] = _face_limit(opts.get("face_limit", 10000))
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
    body["texture_quality"] = quality
    for flag in ("quad", "auto_size"):
        if opts.get(flag):
            body[flag] = True
    for text in ("model_version", "style"):
        value = (opts.get(text) or "").strip()
        if value:
            body[text] = value
    return body


def build_task(opts):
    """Return the JSON body for one task from a dict of options (operator properties)."""
    task_type = opts.get("task_type") or "text_to_model"
    if task_type not in TASK_TYPES:
        raise ValidationError("task_type",
                              f"must be one of {', '.join(TASK_TYPES)}, got {task_type!r}.")
    body = {"type": task_type, "prompt": _prompt(opts.get("prompt"))}
    return _model_options(opts, body)


def describe(body):
    """A short human label for a job, e.g. for the Empty's name."""
    text = body.get("prompt") or body.get("type", "model")
    return " ".join(text.split())[:48]
