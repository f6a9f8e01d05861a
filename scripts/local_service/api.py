"""The API's vocabulary as the double knows it: paths, task types, statuses, error shapes.

A copy kept on purpose, never imported from the add-on: a mistake there must not be mirrored
here (see README.md).
"""

from __future__ import annotations

DEFAULT_KEY = "sk-local-modelstream"
TASK_PATH = "/tripo/v2/openapi/task"
UPLOAD_PATH = "/tripo/v2/openapi/upload"
BALANCE_PATH = "/tripo/v2/openapi/user/balance"

# Tripo API v3 (the official SDK 1.0.0): the route names the task, there is no `type` field.
V3_GENERATION = "/v3/generation/"
V3_ROUTES = {
    "text-to-model": "text_to_model", "image-to-model": "image_to_model",
    "multiview-to-model": "multiview_to_model", "text-to-image": "text_to_image",
    "image-to-image": "generate_image", "image-to-multiview": "generate_multiview_image",
    "edit-multiview": "edit_multiview_image",
}
V3_TASKS = "/v3/tasks"
V3_FILES = "/v3/files"
V3_PRESIGN = "/v3/files/presign"
V3_BALANCE = "/v3/account/balance"
V3_MAX_UPLOAD = 50 * 1024 * 1024  # multipart; larger files go through a presigned PUT
V3_MAX_PRESIGNED = 150 * 1024 * 1024
# Your own mesh in (v3 only): the path names the task, as the SDK's create_task routes do.
V3_MESH_ROUTES = {
    "/v3/models/import": "import_model", "/v3/models/texture": "texture_model",
    "/v3/animations/rig-check": "animate_prerigcheck", "/v3/animations/rig": "animate_rig",
    "/v3/animations/retarget": "animate_retarget",
}
OWN_MESH_TYPES = tuple(V3_MESH_ROUTES.values())
# Post-processing of a model (v3 only): parts, completed parts, low poly, another format.
V3_POST_ROUTES = {
    "/v3/mesh/segment": "mesh_segmentation", "/v3/mesh/complete": "mesh_completion",
    "/v3/mesh/decimate": "highpoly_to_lowpoly", "/v3/models/convert": "convert_model",
}
POST_TYPES = (*V3_POST_ROUTES.values(), "stylize_model")  # stylize lives on v2 only
POST_CREDITS = {"mesh_segmentation": 40, "mesh_completion": 50, "highpoly_to_lowpoly": 30,
                "convert_model": 5, "stylize_model": 20}
# convert_model's formats and the extension of the file each makes (GLTF: a GLB).
CONVERT_FORMATS = {"GLTF": "glb", "USDZ": "usdz", "FBX": "fbx", "OBJ": "obj", "STL": "stl",
                   "3MF": "3mf"}
# What the SDK's convert_model signature defaults to; sending any other value costs 5 more.
CONVERT_DEFAULTS = {
    "quad": False, "force_symmetry": False, "face_limit": None, "flatten_bottom": False,
    "flatten_bottom_threshold": 0.01, "texture_size": 4096, "texture_format": "JPEG",
    "scale_factor": 1.0, "pivot_to_center_bottom": False, "with_animation": True,
    "pack_uv": False, "bake": True, "part_names": None, "export_vertex_colors": False,
    "fbx_preset": "blender", "export_orientation": "+x", "animate_in_place": False}
# The v3 generation options' extra credits (geometry_quality: detailed only).
OPTION_CREDITS = {"generate_parts": 20, "smart_low_poly": 10, "geometry_quality": 20, "quad": 5}
# Tasks whose output is a rigged mesh: convert refuses OBJ / STL / 3MF of them.
RIGGED_TYPES = ("animate_rig", "animate_retarget")
# Tripo's price list: import and the rig check are free, a retarget costs per animation, a
# detailed texture 10 more.
OWN_MESH_CREDITS = {"import_model": 0, "texture_model": 10, "animate_prerigcheck": 0,
                    "animate_rig": 25, "animate_retarget": 10}
# The tasks whose model texture, rig-check and rig take as their `input`.
MESH_TYPES = ("text_to_model", "image_to_model", "multiview_to_model", "import_model",
              "texture_model", "mesh_segmentation", "mesh_completion", "highpoly_to_lowpoly")
APIS = ("v2", "v3", "both")  # which paths answer: ModelStream's v2, Tripo's v3, or both
OUTPUTS = ("v2", "v3")  # the shape of results on the v2 paths (v3: a gateway passing through)
DEFAULT_CREDITS = 1_000_000
TASK_TYPES = (
    "text_to_model", "image_to_model", "multiview_to_model", "refine_model", "text_to_image",
    "generate_image", "generate_multiview_image", "edit_multiview_image", "stylize_model",
)
MODEL_TYPES = TASK_TYPES[:4]
DRAFT_TYPES = MODEL_TYPES[:3]  # what refine_model takes
MULTIVIEW_IMAGE_TYPES = ("generate_multiview_image", "edit_multiview_image")
FILE_TYPES = ("jpg", "jpeg", "png", "webp")
MULTIVIEW_OUTPUTS = ("nested", "flat")
MULTIVIEW_KEY = "generate_multiview_image"  # both multiview image tasks nest their views here
IMAGE_TYPES = ("text_to_image", "generate_image")  # tasks whose id v3 takes as an `input`
MAX_PROMPT = 1024

# Gateway error shape for injected HTTP statuses: (type, code).
GATEWAY_ERRORS = {
    401: ("authentication_error", "invalid_api_key"),
    402: ("insufficient_quota", "insufficient_quota"),
    403: ("permission_error", "forbidden"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


# Tripo's own error codes for the same statuses, on the v3 paths (Tripo answers directly).
TRIPO_CODES = {401: 1002, 402: 2010, 403: 2010, 404: 2001, 429: 1007}
CONTENT_POLICY_CODES = (2008, 2018)


def tripo_error(status: int, message: str, param: str | None = None,
                code: int | None = None) -> dict:
    """Tripo's error body {code, message, suggestion}; `param` names the field of a 400."""
    code = code or TRIPO_CODES.get(status, 1000 if status >= 500 else 1004)
    body = {"code": code, "message": message, "suggestion": _SUGGESTIONS.get(code, "")}
    if param is not None:
        body["param"] = param
    return body


_SUGGESTIONS = {1002: "check the API key", 1004: "check the request parameters",
                1007: "slow down and try again", 2000: "wait for a task to finish",
                2001: "check the task id", 2010: "top up the account's credits"}


class RequestError(Exception):
    """A 400 for the gateway's error shape, naming the offending field."""

    def __init__(self, message: str, param: str | None):
        super().__init__(message)
        self.param = param


class Refused(Exception):
    """A create the service turns down before any task exists: (HTTP status, Tripo code)."""

    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code = status, code


def gateway_error(message: str, type_: str, code: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# Task statuses: ongoing, then one final status (any string a fault names is final too).
QUEUED, RUNNING, SUCCESS, FAILED, UNKNOWN = "queued", "running", "success", "failed", "unknown"
