"""The API's vocabulary as the double knows it: paths, task types, statuses, error shapes.

A copy kept on purpose, never imported from the add-on: a mistake there must not be mirrored
here (see README.md).
"""

from __future__ import annotations

DEFAULT_KEY = "sk-local-modelstream"
TASK_PATH = "/tripo/v2/openapi/task"
UPLOAD_PATH = "/tripo/v2/openapi/upload"
TASK_TYPES = (
    "text_to_model", "image_to_model", "multiview_to_model", "refine_model", "text_to_image",
    "generate_image", "generate_multiview_image", "edit_multiview_image",
)
MODEL_TYPES = TASK_TYPES[:4]
DRAFT_TYPES = MODEL_TYPES[:3]  # what refine_model takes
MULTIVIEW_IMAGE_TYPES = ("generate_multiview_image", "edit_multiview_image")
FILE_TYPES = ("jpg", "jpeg", "png", "webp")
MULTIVIEW_OUTPUTS = ("nested", "flat")
MAX_PROMPT = 1024

# Gateway error shape for injected HTTP statuses: (type, code).
GATEWAY_ERRORS = {
    401: ("authentication_error", "invalid_api_key"),
    402: ("insufficient_quota", "insufficient_quota"),
    403: ("permission_error", "forbidden"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


class RequestError(Exception):
    """A 400 for the gateway's error shape, naming the offending field."""

    def __init__(self, message: str, param: str | None):
        super().__init__(message)
        self.param = param


def gateway_error(message: str, type_: str, code: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# Task statuses: ongoing, then one final status (any string a fault names is final too).
QUEUED, RUNNING, SUCCESS, FAILED, UNKNOWN = "queued", "running", "success", "failed", "unknown"
