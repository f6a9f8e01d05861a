"""Create-task bodies and uploads checked the way the relay checks them: a 400 naming the field."""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
from urllib.parse import urlsplit

from .api import (
    DRAFT_TYPES,
    FILE_TYPES,
    MAX_PROMPT,
    MODEL_TYPES,
    MULTIVIEW_IMAGE_TYPES,
    SUCCESS,
    TASK_TYPES,
    RequestError,
)
from .images import check_image
from .render import VIEWS
from .stylize import STYLES
from .tasks import Source, Task


def validate(service, body, key: str) -> tuple[list, Task | None]:
    """The input images (Source, or None for a skipped view) and the task the body builds on
    (a refine's draft, or a multiview image task); RequestError when the relay would refuse."""
    return _BodyCheck(service, key).run(body)


def _text(body: dict, name: str, limit: int, required: bool) -> None:
    value = body.get(name)
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"'{name}' is required and must be a non-empty string", name)
    if len(value) > limit:
        raise RequestError(f"'{name}' must be at most {limit} characters", name)


def _model_options(body: dict, version: str = "model_version") -> None:
    """Model options; `version` names the model field (v2 model_version, v3 model)."""
    face_limit = body.get("face_limit")
    if face_limit is not None and (
            isinstance(face_limit, bool) or not isinstance(face_limit, int) or face_limit < 1):
        raise RequestError("'face_limit' must be a positive integer", "face_limit")
    for name in ("texture", "pbr", "quad", "auto_size"):
        if name in body and not isinstance(body[name], bool):
            raise RequestError(f"'{name}' must be a boolean", name)
    if "texture_quality" in body:
        if body["texture_quality"] not in ("standard", "detailed", "extreme"):
            raise RequestError("'texture_quality' must be 'standard', 'detailed' or 'extreme'",
                               "texture_quality")
        if body.get("texture") is False and not body.get("pbr"):
            raise RequestError("'texture_quality' needs texture or pbr", "texture_quality")
    for name in (version, "style"):
        if name in body and not isinstance(body[name], str):
            raise RequestError(f"'{name}' must be a string", name)


def _stylize_options(body: dict) -> None:
    """stylize_model: a style this service makes, block_size 32-128."""
    style = body.get("style")
    if style == "minecraft":
        raise RequestError("'style' minecraft (a .schem world) is not offered by this "
                           f"service; use one of: {', '.join(STYLES)}", "style")
    if style not in STYLES:
        raise RequestError(f"'style' must be one of: {', '.join(STYLES)}", "style")
    size = body.get("block_size", 80)
    if isinstance(size, bool) or not isinstance(size, int) or not 32 <= size <= 128:
        raise RequestError("'block_size' must be an integer 32-128", "block_size")


def _check_image(data: bytes, param: str) -> None:
    try:
        check_image(data)
    except ValueError as exc:
        raise RequestError(f"'{param}': {exc}", param) from None


def _data_url(url: str, param: str) -> bytes:
    header, comma, payload = url[5:].partition(",")
    parts = [part.strip().lower() for part in header.split(";")]
    if not comma or not parts[0].startswith("image/") or "base64" not in parts[1:]:
        raise RequestError(f"'{param}' must look like data:image/png;base64,...", param)
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except binascii.Error:
        raise RequestError(f"'{param}' does not hold valid base64", param) from None


def parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """The named fields of a multipart/form-data body (the email package reads MIME)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise ValueError("send the file as multipart/form-data")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise ValueError("the multipart body has no parts")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = part.get_payload(decode=True) or b""
    return fields


class _BodyCheck:
    """One create body, checked for one key against the service's tasks and uploads."""

    api = "v2"  # the API whose tasks and uploads this body may name

    def __init__(self, service, key: str):
        self.service, self.key = service, key

    def run(self, body) -> tuple[list, Task | None]:
        """Check a create-task body the way the relay does; extra fields pass through untouched.

        Returns the input images (Source, or None for a skipped view) and the task it builds
        on (a refine's draft, or a multiview image task).
        """
        if not isinstance(body, dict):
            raise RequestError("request body must be a JSON object", None)
        kind = body.get("type")
        if kind is None:
            raise RequestError("'type' is required", "type")
        if kind not in TASK_TYPES:
            raise RequestError(f"'type' must be one of: {', '.join(TASK_TYPES)}", "type")
        has_file = body.get("file") is not None
        if kind == "edit_multiview_image" and "prompt" in body:
            raise RequestError("edit_multiview_image takes per-view 'prompts' "
                               "[{view, prompt}], not 'prompt'", "prompt")
        if kind == "generate_multiview_image" and not has_file:
            raise RequestError("'file' is required: an image to make the views from", "file")
        _text(body, "prompt", MAX_PROMPT, kind in ("text_to_model", "text_to_image",
                                                   "generate_image"))
        _text(body, "negative_prompt", 255, False)
        sources, parent = [], None
        if kind == "image_to_model" or (has_file and kind in ("generate_image",
                                                              "generate_multiview_image")):
            sources = [self._file(body.get("file"), "file")]
        elif kind == "multiview_to_model":
            sources, parent = self._multiview(body)
        elif kind == "refine_model":
            parent = self._parent(body, "draft_model_task_id", DRAFT_TYPES)
        elif kind == "edit_multiview_image":
            self._view_prompts(body.get("prompts"))
            # An edited set cannot be edited again.
            parent = self._parent(body, "original_task_id", ("generate_multiview_image",))
        elif kind == "stylize_model":
            parent = self._parent(body, "original_model_task_id", (*MODEL_TYPES, kind))
            _stylize_options(body)
        if kind in MODEL_TYPES:
            _model_options(body)
        return sources, parent

    def _file(self, spec, param: str) -> Source:
        """A file object: {type, url} (http(s) or data:) or {type, file_token}."""
        if not isinstance(spec, dict) or not spec:
            raise RequestError(f"'{param}' must be an object like "
                               '{"type": "png", "url": "https://..."}', param)
        if spec.get("type") not in FILE_TYPES:
            raise RequestError(f"'{param}.type' must be one of: {', '.join(FILE_TYPES)}",
                               f"{param}.type")
        url, token = spec.get("url"), spec.get("file_token")
        if (url is None) == (token is None):
            raise RequestError(f"'{param}' needs one of 'url' or 'file_token'", param)
        if token is not None:
            data = isinstance(token, str) and self.service.upload(self.api, self.key, token)
            if not data:
                raise RequestError(f"'{param}.file_token' is not a token the upload endpoint "
                                   "issued to this key", f"{param}.file_token")
            return Source(data=data, param=param)
        if not isinstance(url, str):
            raise RequestError(f"'{param}.url' must be a string", f"{param}.url")
        return self._url(url, f"{param}.url", param)

    def _url(self, url: str, param: str, image_param: str) -> Source:
        """An image by http(s) URL (fetched later) or data: URL (when the setting allows);
        `image_param` names the field when the picture itself is refused."""
        if url[:5].lower() == "data:":
            if not self.service.settings["data_urls"]:
                raise RequestError("data URLs are not supported; upload the image or give an "
                                   "http(s) URL", param)
            data = _data_url(url, param)
            _check_image(data, image_param)
            return Source(data=data, param=param)
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise RequestError(f"'{param}' must be an http(s) or data: URL", param)
        return Source(url=url, param=param)

    def _multiview(self, body: dict) -> tuple[list, Task | None]:
        files, original = body.get("files"), body.get("original_task_id")
        if files is None and original is None:
            raise RequestError("'files' (front, left, back, right) or 'original_task_id' is "
                               "required", "files")
        if files is not None and original is not None:
            raise RequestError("give 'files' or 'original_task_id', not both",
                               "original_task_id")
        if original is not None:
            return [], self._parent(body, "original_task_id", MULTIVIEW_IMAGE_TYPES)
        if not isinstance(files, list) or len(files) != 4:
            raise RequestError("'files' must list exactly 4 views: front, left, back, right "
                               "(use {} for a skipped view)", "files")
        if files[0] == {}:
            raise RequestError("the front view, files[0], is required", "files[0]")
        sources = [None if spec == {} else self._file(spec, f"files[{i}]")
                   for i, spec in enumerate(files)]
        if sum(source is not None for source in sources) < 2:
            raise RequestError("give at least two views: the front and one more", "files")
        return sources, None

    def _parent(self, body: dict, name: str, kinds: tuple) -> Task:
        task_id = body.get(name)
        if not isinstance(task_id, str) or not task_id:
            raise RequestError(f"'{name}' is required", name)
        task = self.service.get_task(task_id, self.key, self.api)
        if task is None:
            raise RequestError(f"'{name}': there is no task {task_id}", name)
        if task.kind not in kinds:
            raise RequestError(f"'{name}' must be a {' / '.join(kinds)} task, not {task.kind}",
                               name)
        if self.service.progress(task)["status"] != SUCCESS:
            raise RequestError(f"'{name}': task {task_id} has not succeeded", name)
        return task

    @staticmethod
    def _view_prompts(prompts) -> None:
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
            raise RequestError("'prompts' must list 1-4 objects {view, prompt}", "prompts")
        seen = set()
        for i, entry in enumerate(prompts):
            if not isinstance(entry, dict) or entry.get("view") not in VIEWS \
                    or entry["view"] in seen:
                raise RequestError(f"'prompts[{i}].view' must be one of {', '.join(VIEWS)}, "
                                   "each at most once", f"prompts[{i}].view")
            seen.add(entry["view"])
            text = entry.get("prompt")
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_PROMPT:
                raise RequestError(f"'prompts[{i}].prompt' must be text of 1-{MAX_PROMPT} "
                                   "characters", f"prompts[{i}].prompt")
