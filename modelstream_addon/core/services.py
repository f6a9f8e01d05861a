"""One small adapter per service: everything that differs on the wire lives here. No bpy.

The engine, the jobs and the client are one for both services; they build a v2-shaped body
(tasks.py) and ask the job's service for paths and the body it sends. ModelStream relays
Tripo's v2 task API as documented; Tripo API v3 is followed field by field from the
official SDK `tripo3d` 1.0.0 (client.py, models.py), which wins over any other text.
"""

from __future__ import annotations

import copy
import urllib.parse

from . import model_tasks, post_tasks
from .errors import ConfigError
from .tasks import ValidationError

SERVICE_ENV = "MODELSTREAM_SERVICE"


class ModelStream:
    """ModelStream's documented v2 paths; the body goes as tasks.py built it."""

    name = "modelstream"
    label = "ModelStream"
    default_base_url = "https://api.modelstream.ai"
    task_path = "/tripo/v2/openapi/task"
    upload_path = "/tripo/v2/openapi/upload"
    upload_token = "image_token"
    # Tripo's v2 SDK reads GET /user/balance; whether the relay has it is unknown.
    balance_path = "/tripo/v2/openapi/user/balance"
    credits_key = "consumed_credit"

    def unsupported(self, task_type):
        """Why this service has no such task, or '' (the panel greys it out)."""
        if task_type in model_tasks.OWN_MESH:
            return OWN_MESH_V3
        if task_type in post_tasks.TYPES and task_type != post_tasks.STYLIZE:
            return GAME_READY_V3
        return ""

    def refusal(self, body):
        """Why this service cannot run `body`, or ''."""
        return self.unsupported(body.get("type"))

    def check(self, body):
        """Refuse before any request what this service cannot run."""
        reason = self.refusal(body)
        if reason:
            raise ValidationError("task_type", reason)

    def create_request(self, body):
        """(path, JSON) of the POST that creates the task."""
        self.check(body)
        return self.task_path, body

    def get_path(self, task_id):
        """A task id is the service's text: quoted, it stays one path segment."""
        return f"{self.task_path}/{urllib.parse.quote(str(task_id), safe='')}"

    def task_type(self, data):
        """Our task type name for a task's data."""
        return str(data.get("type") or "")

    def credits(self, data):
        """Credits the task says it consumed, or None."""
        value = data.get(self.credits_key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)


# v2 `type` -> v3 route, exactly as the SDK's _CREATE_TASK_ROUTES.
V3_ROUTES = {
    "text_to_model": "text-to-model",
    "image_to_model": "image-to-model",
    "multiview_to_model": "multiview-to-model",
    "text_to_image": "text-to-image",
    "generate_image": "image-to-image",
    "generate_multiview_image": "image-to-multiview",
    "edit_multiview_image": "edit-multiview",
}
# Tasks on a model you have: the SDK's routes, outside /v3/generation.
V3_MODEL_ROUTES = {
    model_tasks.IMPORT: "/v3/models/import",
    model_tasks.TEXTURE: "/v3/models/texture",
    model_tasks.RIG_CHECK: "/v3/animations/rig-check",
    model_tasks.RIG: "/v3/animations/rig",
    model_tasks.RETARGET: "/v3/animations/retarget",
    post_tasks.SEGMENT: "/v3/mesh/segment",
    post_tasks.COMPLETE: "/v3/mesh/complete",
    post_tasks.LOWPOLY: "/v3/mesh/decimate",
    post_tasks.CONVERT: "/v3/models/convert",
}
OWN_MESH_V3 = ("Texturing, rigging and animating a model you have need Tripo API v3 "
               "(nothing was sent): choose it as the Service in the add-on preferences.")
GAME_READY_V3 = ("Parts, LODs and export for an engine need Tripo API v3 (nothing was "
                 "sent): choose it as the Service in the add-on preferences, or set "
                 "MODELSTREAM_SERVICE=tripo-v3.")
STYLIZE_RETIRED = ("Tripo API v3 has no stylize_model: Tripo retired it (nothing was sent). "
                   "Stylize runs on the ModelStream service (Tripo's v2 task API): choose "
                   "it as the Service in the add-on preferences.")
REFINE_RETIRED = ("Tripo API v3 has no refine_model: Tripo retired it (nothing was sent). "
                  "Choose ModelStream as the service in the add-on preferences to refine.")
IMAGE_NEEDED = ("Tripo API v3 makes generate_image from an input image (nothing was sent): "
                "pick one, or use text_to_image for a prompt alone.")


class TripoV3(ModelStream):
    """Tripo's API v3: a route per task type, `model` for `model_version`, images as an
    `input` string (URL or file_token) and multiview as `inputs`, no `type` field."""

    name = "tripo-v3"
    label = "Tripo API v3"
    default_base_url = "https://openapi.tripo3d.ai"
    task_path = "/v3/tasks"
    upload_path = "/v3/files"
    upload_token = "file_token"
    balance_path = "/v3/account/balance"
    credits_key = "credits_consumed"

    def unsupported(self, task_type):
        if task_type == "refine_model":
            return REFINE_RETIRED
        if task_type == post_tasks.STYLIZE:
            return STYLIZE_RETIRED
        known = task_type in V3_ROUTES or task_type in V3_MODEL_ROUTES
        return "" if known else f"Tripo API v3 has no task {task_type!r}."

    def refusal(self, body):
        if body.get("type") == "generate_image" and not body.get("file"):
            return IMAGE_NEEDED
        return self.unsupported(body.get("type"))

    def create_request(self, body):
        self.check(body)
        if body["type"] in V3_MODEL_ROUTES:
            return V3_MODEL_ROUTES[body["type"]], _model_task(body)
        wire = copy.deepcopy(body)
        kind = wire.pop("type")
        if "model_version" in wire:
            wire["model"] = wire.pop("model_version")
        if "file" in wire:
            wire["input"] = _input(wire.pop("file"))
        if "files" in wire:
            # SDK: a skipped view is None; the front view is required (tasks.py checks it).
            wire["inputs"] = [_input(ref) if ref else None for ref in wire.pop("files")]
        source = wire.pop("original_task_id", None)
        if source and kind == "multiview_to_model":
            wire["inputs"] = [{"task_id": source}]  # the views of a multiview image task
        elif source:
            wire["input"] = source  # edit-multiview names its source task as `input`
        return f"/v3/generation/{V3_ROUTES[kind]}", wire

    def task_type(self, data):
        """v3 may name a task by its route; both spellings map to ours."""
        kind = str(data.get("type") or "")
        by_route = {route: name for name, route in V3_ROUTES.items()}
        return by_route.get(kind, kind.replace("-", "_"))


def _model_task(body):
    """A task on a model, as the SDK sends it: the model (a file_token, or the task before)
    is `input`; a texture's prompt and image go under `texture_prompt`."""
    wire = copy.deepcopy(body)
    kind = wire.pop("type")
    if "model_version" in wire:
        wire["model"] = wire.pop("model_version")
    guide = {}
    if "prompt" in wire:
        guide["text"] = wire.pop("prompt")
    if "file" in wire:
        ref = _input(wire.pop("file"))
        if kind == model_tasks.TEXTURE:
            guide["image"] = ref
        else:
            wire["input"] = ref
    if guide:
        wire["texture_prompt"] = guide
    if "original_model_task_id" in wire:
        wire["input"] = wire.pop("original_model_task_id")
    return wire


def _input(ref):
    """An image reference as v3's `input` string: the upload's token, else the URL."""
    value = (ref.get("file_token") or ref.get("url")) if isinstance(ref, dict) else None
    if not value:
        raise ConfigError("An image goes to Tripo API v3 as an upload token or a URL; this "
                          "one had neither.")
    return value


SERVICES = {s.name: s for s in (ModelStream(), TripoV3())}
DEFAULT = "modelstream"


def named(name):
    """The adapter for a service name ('modelstream', 'tripo-v3'; any case, '_' or '-').
    Raises ConfigError naming the choices."""
    key = (name or DEFAULT).strip().lower().replace("_", "-")
    if key not in SERVICES:
        raise ConfigError(f"Unknown service {name!r}: use one of {', '.join(SERVICES)} "
                          f"(the {SERVICE_ENV} environment variable or the preferences).")
    return SERVICES[key]


def base_url(service, value):
    """The address to use: `value`, unless it is empty or another service's default (then
    this service's own), so switching service never sends v3 paths to ModelStream."""
    value = (value or "").strip().rstrip("/")
    if not value or value in {s.default_base_url for s in SERVICES.values()}:
        return service.default_base_url
    return value


def balance_of(data):
    """The balance from a balance answer (`balance`, as both SDKs read it), or None."""
    value = data.get("balance") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except ValueError:
        return None
