"""Local ModelStream-compatible service: try the add-on without a key, run demos and tests.

Speaks the relay's contract (POST / GET /tripo/v2/openapi/task, all eight task types, and the
upstream upload endpoint), walks every task through queued -> running -> success on a clock,
and serves procedural GLB / FBX models and PNG images from its own file "CDN". Control
endpoints under /_local/ inject the failures a real service shows (slow replies, 429 / 500,
dropped connections, failed or unknown tasks, concurrency limits, truncated or corrupt
downloads, expired URLs), pad the next task's GLB to a size (`{"pad_glb_mb": 100}`, for
download benchmarks) and switch optional features off. Standard library only.

    python scripts/local_service [--host 127.0.0.1] [--port 0] [--key KEY ...]
                                    [--latency SECONDS] [--delay SECONDS] [--verbose]
                                    [--no-upload] [--no-data-urls] [--max-in-flight N]
                                    [--multiview-output nested|flat]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import email.parser
import email.policy
import email.utils
import hashlib
import hmac
import ipaddress
import json
import math
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from . import assets

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
MAX_BODY = 30 * 1024 * 1024  # a 20 MB image still fits, as a data URL or an upload
FETCH_TIMEOUT = 5.0
FETCH_ERROR_CODE = 1004  # a task whose input URL cannot be used failed on an invalid parameter
QUEUED_SHARE = 0.2  # of the latency, before the task starts running
COUNTED_FAULTS = ("fail_create", "fail_get", "truncate_download", "corrupt_glb", "expire_url")
HIT_COUNTERS = COUNTED_FAULTS + ("next_status", "slow_get", "unknown_for", "max_in_flight",
                                  "pad_glb_mb")
RESETS = ("reset", "reset_before", "reset_after")
_TASK_GET = re.compile(re.escape(TASK_PATH) + r"/([^/]+)")
_FILE = re.compile(r"/files/([^/]+)/([^/]+)")
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")
_CONTENT_TYPES = {".glb": "model/gltf-binary", ".fbx": "application/octet-stream",
                  ".png": "image/png"}

# Gateway error shape for injected HTTP statuses: (type, code).
_GATEWAY_ERRORS = {
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


def _text(body: dict, name: str, limit: int, required: bool) -> None:
    value = body.get(name)
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise RequestError(f"'{name}' is required and must be a non-empty string", name)
    if len(value) > limit:
        raise RequestError(f"'{name}' must be at most {limit} characters", name)


def _model_options(body: dict) -> None:
    face_limit = body.get("face_limit")
    if face_limit is not None and (
            isinstance(face_limit, bool) or not isinstance(face_limit, int) or face_limit < 1):
        raise RequestError("'face_limit' must be a positive integer", "face_limit")
    for name in ("texture", "pbr", "quad", "auto_size"):
        if name in body and not isinstance(body[name], bool):
            raise RequestError(f"'{name}' must be a boolean", name)
    if "texture_quality" in body and body["texture_quality"] not in ("standard", "detailed"):
        raise RequestError("'texture_quality' must be 'standard' or 'detailed'",
                           "texture_quality")
    for name in ("model_version", "style"):
        if name in body and not isinstance(body[name], str):
            raise RequestError(f"'{name}' must be a string", name)


def _check_image(data: bytes, param: str) -> None:
    try:
        assets.check_image(data)
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


@dataclass
class Source:
    """An input image: its bytes when known at create time, else a URL the service fetches."""
    data: bytes | None = None
    url: str | None = None
    param: str = "file"


@dataclass
class Task:
    task_id: str
    key: str
    input: dict
    created: float  # monotonic, drives the lifecycle
    create_time: int  # unix seconds, as reported
    sources: list = field(default_factory=list)  # Source or None (a skipped view)
    parent: Task | None = None  # the draft, or the multiview image task built on
    final_status: str = "success"
    error: dict | None = None
    unknown_for: float = 0.0  # seconds of status "unknown" before the lifecycle starts
    pad_to: int = 0  # bytes its GLB is padded up to (a pad_glb_mb fault), for big downloads
    images: list = field(default_factory=list)  # the sources' bytes once resolved
    ready: threading.Event = field(default_factory=threading.Event)
    files: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def kind(self) -> str:
        return self.input["type"]

    def option(self, name: str, default=None):
        """A model option; a refine inherits what its draft asked for."""
        if name in self.input:
            return self.input[name]
        if self.kind == "refine_model":
            return self.parent.option(name, default)
        return default

    @property
    def faces(self) -> int:
        """face_limit, else the default; a refine without one doubles its draft's."""
        if "face_limit" in self.input:
            return self.input["face_limit"]
        if self.kind == "refine_model":
            return min(assets.MAX_FACES, 2 * self.parent.faces)
        return assets.DEFAULT_FACES

    @property
    def pbr(self) -> bool:
        return self.option("pbr") is True

    @property
    def model_key(self) -> str:
        """Upstream names the output after the request: pbr_model when pbr was asked for."""
        return "pbr_model" if self.pbr else "model"

    def outputs(self) -> dict[str, str]:
        """Output key -> file name, for a successful task."""
        if self.kind in MULTIVIEW_IMAGE_TYPES:
            return {f"{view}_view_url": f"{view}_view.png" for view in assets.VIEWS}
        if self.kind not in MODEL_TYPES:
            return {"generated_image": "generated_image.png"}
        if self.option("quad") is True:
            return {"model": "model.fbx", "rendered_image": "rendered_image.png"}
        return {self.model_key: f"{self.model_key}.glb", "rendered_image": "rendered_image.png"}

    def credits(self) -> int:
        if self.kind not in MODEL_TYPES:
            return 10 if self.kind in MULTIVIEW_IMAGE_TYPES else 5
        textured = self.option("texture", True) or self.pbr
        detailed = self.option("texture_quality") == "detailed"
        return 10 + 10 * textured + 10 * detailed

    def seed(self) -> str:
        """What the task's shapes and colours derive from: its prompt, else its inputs."""
        if self.parent is not None:
            return self.parent.seed()
        prompt = self.input.get("prompt")
        if self.kind not in DRAFT_TYPES[1:] and isinstance(prompt, str) and prompt.strip():
            return prompt
        digest = hashlib.sha256()
        for image in self.images:
            digest.update(image or b"-")
        return f"image {digest.hexdigest()[:16]}"


def corrupt_glb(data: bytes) -> bytes:
    """Keep the GLB header and magic but spoil the JSON chunk, so only a real parse notices."""
    spoiled = bytearray(data)
    json_len = struct.unpack_from("<I", data, 12)[0]
    spoiled[20:20 + json_len] = b"#" * json_len
    return bytes(spoiled)


def _fetch(source: Source) -> bytes:
    """Download a task's input image as the real service does; ValueError says what failed."""
    request = urllib.request.Request(source.url, headers={"User-Agent": "ModelStreamLocal/1.0"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as resp:
            data = resp.read(assets.MAX_IMAGE_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ValueError(f"could not fetch {source.param}.url {source.url}: {reason}") from None
    try:
        assets.check_image(data)
    except ValueError as exc:
        raise ValueError(f"{source.param}.url {source.url}: {exc}") from None
    return data


class LocalService:
    """The service state plus its HTTP server; start() serves from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, key=None,
                 latency: float = 3.0, delay: float = 0.0, verbose: bool = False, *,
                 upload: bool = True, data_urls: bool = True, max_in_flight: int = 0,
                 multiview_output: str = "nested"):
        self.host, self.port = host, port
        keys = [key] if isinstance(key, str) else list(key or ())
        self.keys = tuple(keys or [os.environ.get("MODELSTREAM_LOCAL_KEY") or DEFAULT_KEY])
        self.key = self.keys[0]
        self.latency = max(0.0, latency)
        if multiview_output not in MULTIVIEW_OUTPUTS:
            raise ValueError(f"multiview_output must be one of {MULTIVIEW_OUTPUTS}")
        # Settings the control API may change; a reset restores these start-up values.
        self.config = {"delay": max(0.0, delay), "upload": upload, "data_urls": data_urls,
                       "max_in_flight": max(0, max_in_flight),
                       "multiview_output": multiview_output}
        self.verbose = verbose
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._clear()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalService:
        server = _Server((self.host, self.port), _Handler)
        server.service = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.1,),
                                        name="modelstream-local", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the service is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> LocalService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- state -----------------------------------------------------------------------------

    def _clear(self) -> None:
        """Forget tasks, uploads, counters and faults."""
        self._tasks: dict[str, Task] = {}
        self._uploads: dict[tuple[str, str], bytes] = {}
        self._tasks_created = 0
        self._max_seen = 0
        self._requests = {"create": 0, "get": 0, "file": 0, "upload": 0}
        self._clear_faults()

    def _clear_faults(self) -> None:
        self.settings = dict(self.config)
        self._pending: dict = {}
        self._hits = dict.fromkeys(HIT_COUNTERS, 0)

    @property
    def delay(self) -> float:
        return self.settings["delay"]

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def authorized(self, header: str | None) -> str | None:
        """The key a bearer header carries when it is one of ours, else None."""
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = token.strip().encode()
        return next((k for k in self.keys if hmac.compare_digest(token, k.encode())), None)

    def count_request(self, kind: str) -> None:
        with self._lock:
            self._requests[kind] += 1

    def take_fault(self, name: str) -> dict | None:
        """Consume one use of a pending fault: its settings when it fires, else None."""
        with self._lock:
            fault = self._pending.get(name)
            if fault is None:
                return None
            fault = dict(fault, count=fault["count"] - 1)
            if fault["count"] > 0:
                self._pending[name] = fault
            else:
                del self._pending[name]
            self._hits[name] += 1
            return fault

    def add_upload(self, key: str, data: bytes) -> str:
        token = str(uuid.uuid4())
        with self._lock:
            self._uploads[(key, token)] = data
        return token

    # --- validation ------------------------------------------------------------------------

    def validate(self, body, key: str) -> tuple[list, Task | None]:
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
        prompt_required = kind in ("text_to_model", "text_to_image", "generate_image",
                                   "edit_multiview_image") or (
            kind == "generate_multiview_image" and not has_file)
        _text(body, "prompt", MAX_PROMPT, prompt_required)
        _text(body, "negative_prompt", 255, False)
        sources, parent = [], None
        if kind == "image_to_model" or (has_file and kind in ("generate_image",
                                                              "generate_multiview_image")):
            sources = [self._file(body.get("file"), "file", key)]
        elif kind == "multiview_to_model":
            sources, parent = self._multiview(body, key)
        elif kind == "refine_model":
            parent = self._parent(body, "draft_model_task_id", DRAFT_TYPES, key)
        elif kind == "edit_multiview_image":
            parent = self._parent(body, "original_task_id", MULTIVIEW_IMAGE_TYPES, key)
            self._view_prompts(body.get("prompts"))
        if kind in MODEL_TYPES:
            _model_options(body)
        return sources, parent

    def _file(self, spec, param: str, key: str) -> Source:
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
            with self._lock:
                data = self._uploads.get((key, token)) if isinstance(token, str) else None
            if data is None:
                raise RequestError(f"'{param}.file_token' is not a token the upload endpoint "
                                   "issued to this key", f"{param}.file_token")
            return Source(data=data, param=param)
        if not isinstance(url, str):
            raise RequestError(f"'{param}.url' must be a string", f"{param}.url")
        if url[:5].lower() == "data:":
            if not self.settings["data_urls"]:
                raise RequestError("data URLs are not supported; upload the image or give an "
                                   "http(s) URL", f"{param}.url")
            data = _data_url(url, f"{param}.url")
            _check_image(data, param)
            return Source(data=data, param=param)
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise RequestError(f"'{param}.url' must be an http(s) or data: URL", f"{param}.url")
        return Source(url=url, param=param)

    def _multiview(self, body: dict, key: str) -> tuple[list, Task | None]:
        files, original = body.get("files"), body.get("original_task_id")
        if files is None and original is None:
            raise RequestError("'files' (front, left, back, right) or 'original_task_id' is "
                               "required", "files")
        if files is not None and original is not None:
            raise RequestError("give 'files' or 'original_task_id', not both",
                               "original_task_id")
        if original is not None:
            return [], self._parent(body, "original_task_id", MULTIVIEW_IMAGE_TYPES, key)
        if not isinstance(files, list) or len(files) != 4:
            raise RequestError("'files' must list exactly 4 views: front, left, back, right "
                               "(use {} for a skipped view)", "files")
        if files[0] == {}:
            raise RequestError("the front view, files[0], is required", "files[0]")
        sources = [None if spec == {} else self._file(spec, f"files[{i}]", key)
                   for i, spec in enumerate(files)]
        if sum(source is not None for source in sources) < 2:
            raise RequestError("give at least two views: the front and one more", "files")
        return sources, None

    def _parent(self, body: dict, name: str, kinds: tuple, key: str) -> Task:
        task_id = body.get(name)
        if not isinstance(task_id, str) or not task_id:
            raise RequestError(f"'{name}' is required", name)
        task = self.get_task(task_id, key)
        if task is None:
            raise RequestError(f"'{name}': there is no task {task_id}", name)
        if task.kind not in kinds:
            raise RequestError(f"'{name}' must be a {' / '.join(kinds)} task, not {task.kind}",
                               name)
        if self.progress(task)["status"] != "success":
            raise RequestError(f"'{name}': task {task_id} has not succeeded", name)
        return task

    @staticmethod
    def _view_prompts(prompts) -> None:
        if prompts is None:
            return
        if not isinstance(prompts, list) or len(prompts) > 4:
            raise RequestError("'prompts' must list at most 4 per-view prompts", "prompts")
        for i, prompt in enumerate(prompts):
            if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT:
                raise RequestError(f"'prompts[{i}]' must be a string of at most {MAX_PROMPT} "
                                   "characters", f"prompts[{i}]")

    # --- tasks -----------------------------------------------------------------------------

    def _in_flight(self, task: Task, now: float) -> bool:
        return not task.ready.is_set() or now - task.created < task.unknown_for + self.latency

    def create_task(self, body: dict, key: str, sources=(), parent: Task | None = None):
        """The new task, or None when the key already has max_in_flight tasks in flight."""
        with self._lock:
            now = time.monotonic()
            flying = sum(1 for t in self._tasks.values()
                         if t.key == key and self._in_flight(t, now))
            limit = self.settings["max_in_flight"]
            if limit and flying >= limit:
                self._hits["max_in_flight"] += 1
                return None
            task = Task(str(uuid.uuid4()), key, body, now, int(time.time()), list(sources),
                        parent)
            outcome = self.take_fault("next_status")
            if outcome:
                task.final_status = outcome["status"]
                if task.final_status == "failed" or outcome["explicit_error"]:
                    task.error = {"error_code": outcome["error_code"],
                                  "error_msg": outcome["error_msg"]}
            unknown = self.take_fault("unknown_for")
            if unknown:
                task.unknown_for = unknown["seconds"]
            pad = self.take_fault("pad_glb_mb")
            if pad:
                task.pad_to = pad["bytes"]
            self._tasks[task.task_id] = task
            self._tasks_created += 1
            self._max_seen = max(self._max_seen, flying + 1)
        if any(source and source.url for source in task.sources):
            threading.Thread(target=self._resolve, args=(task,), daemon=True,
                             name=f"fetch-{task.task_id}").start()
        else:
            self._resolve(task)
        return task

    @staticmethod
    def _resolve(task: Task) -> None:
        """Fetch URL inputs; a URL that cannot be used fails the task, as upstream does."""
        try:
            task.images = [source and (source.data or _fetch(source)) for source in task.sources]
        except ValueError as exc:
            task.final_status = "failed"
            task.error = {"error_code": FETCH_ERROR_CODE, "error_msg": str(exc)}
        task.ready.set()

    def get_task(self, task_id: str, key: str | None = None) -> Task | None:
        """A task by id; with a key, only a task that key created (upstream's rule)."""
        with self._lock:
            task = self._tasks.get(task_id)
        return task if task and key in (None, task.key) else None

    def progress(self, task: Task) -> dict:
        """Status fields from the time since creation: queued, then running, then final."""
        elapsed = time.monotonic() - task.created
        if elapsed < task.unknown_for:
            return {"status": "unknown", "progress": 0, "queuing_num": -1,
                    "running_left_time": -1}
        elapsed -= task.unknown_for
        queue_end = QUEUED_SHARE * self.latency
        if elapsed >= self.latency and task.ready.is_set():
            done = task.final_status == "success"
            return {"status": task.final_status, "progress": 100 if done else 0,
                    "queuing_num": -1, "running_left_time": -1}
        if elapsed < queue_end:
            return {"status": "queued", "progress": 0,
                    "queuing_num": 1 if elapsed < queue_end / 2 else 0, "running_left_time": -1}
        share = (elapsed - queue_end) / max(self.latency - queue_end, 1e-9)
        return {"status": "running", "progress": min(99, int(share * 100)), "queuing_num": -1,
                "running_left_time": max(1, math.ceil(self.latency - elapsed))}

    def task_view(self, task: Task, base_url: str) -> dict:
        """The task as Tripo's GET returns it."""
        state = self.progress(task)
        output = {}
        if state["status"] == "success":
            files = f"{base_url}/files/{task.task_id}"
            output = {key: f"{files}/{name}" for key, name in task.outputs().items()}
            if task.kind in MULTIVIEW_IMAGE_TYPES and \
                    self.settings["multiview_output"] == "nested":
                output = {task.kind: output}
        view = {"task_id": task.task_id, "type": task.kind, "status": state["status"],
                "input": task.input, "output": output, "progress": state["progress"],
                "create_time": task.create_time, "queuing_num": state["queuing_num"],
                "running_left_time": state["running_left_time"],
                "consumed_credit": task.credits() if state["status"] == "success" else 0}
        if task.error and state["status"] == task.final_status:
            view.update(task.error)
        return view

    def file_bytes(self, task: Task, name: str) -> tuple[bytes, str] | None:
        """A finished task's output, generated on first request and cached."""
        if self.progress(task)["status"] != "success" or name not in task.outputs().values():
            return None
        return self._make(task, name), _CONTENT_TYPES[os.path.splitext(name)[1]]

    def _make(self, task: Task, name: str) -> bytes:
        with task.lock:
            if name not in task.files:
                task.files.update(self._generate(task, name))
            return task.files[name]

    def _generate(self, task: Task, name: str) -> dict[str, bytes]:
        seed = task.seed()
        if task.kind in MULTIVIEW_IMAGE_TYPES:
            colours = dict.fromkeys(assets.VIEWS, seed)
            if task.kind == "edit_multiview_image":
                prompts = task.input.get("prompts") or []
                for i, view in enumerate(assets.VIEWS):
                    extra = prompts[i] if i < len(prompts) else ""
                    colours[view] = f"{seed}\n{task.input['prompt']}\n{extra}"
            views = assets.render_views(seed, colours)
            return {f"{view}_view.png": png for view, png in views.items()}
        if name == "generated_image.png":
            image = task.images[0] if task.images else None
            tinted = image and assets.tinted_png(image, task.input["prompt"])
            return {name: tinted or assets.render_views(seed, {"front": seed})["front"]}
        if name == "rendered_image.png":
            return {name: assets.texture_png(seed)}
        texture = task.option("texture", True) or task.pbr
        picture = texture and assets.embeddable_texture(self._front_image(task))
        if name.endswith(".fbx"):
            return {name: assets.make_fbx(seed, task.faces, texture, picture or None)}
        glb = assets.make_glb(seed, task.faces, texture, task.pbr, picture or None)
        return {name: assets.pad_glb(glb, task.pad_to) if task.pad_to else glb}

    def _front_image(self, task: Task) -> bytes | None:
        """The picture a model wears: its (front) input image, or its multiview's front view."""
        if task.kind == "refine_model":
            return self._front_image(task.parent)
        if task.parent is not None:
            return self._make(task.parent, "front_view.png")
        return task.images[0] if task.images else None

    def stats(self) -> dict:
        with self._lock:
            tasks = list(self._tasks.values())
            snapshot = {"tasks_created": self._tasks_created, "requests": dict(self._requests),
                        "faults": dict(self._hits), "delay": self.delay,
                        "pending_faults": dict(self._pending), "uploads": len(self._uploads),
                        "max_in_flight_seen": self._max_seen, "settings": dict(self.settings)}
        snapshot["tasks"] = {t.task_id: self.progress(t)["status"] for t in tasks}
        snapshot["task_types"] = {t.task_id: t.kind for t in tasks}
        return snapshot

    def set_faults(self, body) -> None:
        """Apply a /_local/faults body; all of it is checked before any of it takes effect."""
        if not isinstance(body, dict):
            raise RequestError("faults must be a JSON object", None)
        unknown = set(body) - {"reset", "delay", "slow", "slow_get", "count", "next_status",
                               "error_code", "error_msg", "unknown_for", "max_in_flight",
                               "pad_glb_mb",
                               "upload", "data_urls", "multiview_output", *COUNTED_FAULTS}
        if unknown:
            name = sorted(unknown)[0]
            raise RequestError(f"unknown fault '{name}'", name)
        updates, settings = {}, {}
        if "delay" in body and "slow" in body:
            raise RequestError("'slow' is another name for 'delay'; give one", "slow")
        for name in ("delay", "slow"):
            if name in body:
                settings["delay"] = float(_seconds(body, name))
        if "slow_get" in body:
            updates["slow_get"] = {"count": _count(body.get("count", 1), "count"),
                                   "seconds": _seconds(body, "slow_get")}
        elif "count" in body:
            raise RequestError("'count' goes with 'slow_get'", "count")
        if "unknown_for" in body:
            updates["unknown_for"] = {"count": 1, "seconds": _seconds(body, "unknown_for")}
        if "pad_glb_mb" in body:
            megabytes = _seconds(body, "pad_glb_mb", "a non-negative number of MiB")
            updates["pad_glb_mb"] = {"count": 1 if megabytes else 0,
                                     "bytes": int(megabytes * 1024 * 1024)}
        if "next_status" in body:
            status = body["next_status"]
            if not isinstance(status, str) or not status:
                raise RequestError("'next_status' must be a non-empty string", "next_status")
            updates["next_status"] = {
                "count": 1, "status": status, "error_code": body.get("error_code", 1000),
                "error_msg": body.get("error_msg", "generation failed (local fault injection)"),
                "explicit_error": "error_code" in body or "error_msg" in body}
        for name in ("fail_create", "fail_get"):
            if name in body:
                updates[name] = _http_fault(name, body[name])
        for name in ("truncate_download", "corrupt_glb", "expire_url"):
            if name in body:
                count = body[name]
                if isinstance(count, bool):
                    count = int(count)
                if not isinstance(count, int) or count < 0:
                    raise RequestError(f"'{name}' must be a count of downloads", name)
                updates[name] = {"count": count}
        if "max_in_flight" in body:
            limit = body["max_in_flight"]
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                      or limit < 0):
                raise RequestError("'max_in_flight' must be a task count (0 or null: no limit)",
                                   "max_in_flight")
            settings["max_in_flight"] = limit or 0
        for name in ("upload", "data_urls"):
            if name in body:
                if not isinstance(body[name], bool):
                    raise RequestError(f"'{name}' must be true or false", name)
                settings[name] = body[name]
        if "multiview_output" in body:
            if body["multiview_output"] not in MULTIVIEW_OUTPUTS:
                raise RequestError("'multiview_output' must be 'nested' or 'flat'",
                                   "multiview_output")
            settings["multiview_output"] = body["multiview_output"]
        with self._lock:
            if body.get("reset"):
                self._clear_faults()
            self.settings.update(settings)
            self._pending.update(updates)
            self._pending = {name: fault for name, fault in self._pending.items()
                             if fault["count"] > 0}


def _seconds(body: dict, name: str, what: str = "a non-negative number of seconds") -> float:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise RequestError(f"'{name}' must be {what}", name)
    return value


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"'{name}' must be a positive integer", name)
    return value


def _http_fault(name: str, spec) -> dict:
    """Validate {"status": 429 | 500 | ... | "reset[_before|_after]", "count", "retry_after",
    "retry_after_format": "seconds" | "http-date", "code"}."""
    if not isinstance(spec, dict):
        raise RequestError(f"'{name}' must be an object like {{\"status\": 429}}", name)
    status = spec.get("status")
    if status not in RESETS and (not isinstance(status, int) or not 400 <= status <= 599):
        raise RequestError(f"'{name}.status' must be an HTTP error status or one of "
                           f"{', '.join(RESETS)}", name)
    count = _count(spec.get("count", 1), f"{name}.count")
    retry_after = spec.get("retry_after")
    if retry_after is not None and (isinstance(retry_after, bool)
                                    or not isinstance(retry_after, (int, float))):
        raise RequestError(f"'{name}.retry_after' must be a number of seconds", name)
    retry_format = spec.get("retry_after_format", "seconds")
    if retry_format not in ("seconds", "http-date"):
        raise RequestError(f"'{name}.retry_after_format' must be 'seconds' or 'http-date'", name)
    code = spec.get("code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise RequestError(f"'{name}.code' must be a Tripo error code", name)
    return {"status": status, "count": count, "retry_after": retry_after,
            "retry_after_format": retry_format, "code": code}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    service: LocalService

    def handle_error(self, request, client_address):
        """A client that hangs up is normal here (tests cut connections on purpose)."""
        if self.service.verbose or not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ModelStreamLocal/1.0"
    timeout = 30  # idle keep-alive connections are dropped after this

    @property
    def service(self) -> LocalService:
        return self.server.service

    def log_message(self, format, *args):
        # Request lines only: never headers, so the Authorization header never reaches a log.
        if self.service.verbose:
            super().log_message(format, *args)

    def do_GET(self):
        self._dispatch("GET", None)

    def do_POST(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or (length and not length.isdigit()):
            return self._fail(400, "send the body with a Content-Length", close=True)
        if int(length or 0) > MAX_BODY:
            return self._fail(413, "request body too large", close=True)
        self._dispatch("POST", self.rfile.read(int(length or 0)))

    # --- routing ---------------------------------------------------------------------------

    def _dispatch(self, method: str, raw: bytes | None) -> None:
        self._sent = False
        self._drop_reply = False
        try:
            path = urlsplit(self.path).path
            if path.startswith("/_local/"):
                self._control(method, path, raw)
            elif path.startswith("/files/") and method == "GET":
                self._file(path)
            elif method == "POST" and path == TASK_PATH:
                self._create(raw)
            elif method == "POST" and path == UPLOAD_PATH:
                self._upload(raw)
            elif method == "GET" and (match := _TASK_GET.fullmatch(path)):
                self._get(match.group(1))
            else:
                self._fail(404, f"no route for {method} {path}", code="not_found")
        except Exception:
            traceback.print_exc()
            if self._sent:
                self.close_connection = True
            else:
                self._send_json(500, gateway_error("local service error", "api_error",
                                                   "internal_error"))

    def _authenticate(self, kind: str) -> str | None:
        """Delay and authenticate an API request, then apply a pending fail_<kind> fault.

        Returns the caller's key, or None when the request is already answered. A reset_after
        fault lets the request do its work and loses the reply instead.
        """
        extra = 0.0
        if kind == "get" and (slow := self.service.take_fault("slow_get")):
            extra = slow["seconds"]
        if self.service.delay + extra > 0:
            time.sleep(self.service.delay + extra)
        key = self.service.authorized(self.headers.get("Authorization"))
        if key is None:
            self._send_json(401, gateway_error("Incorrect API key provided.",
                                               "authentication_error", "invalid_api_key"))
            return None
        fault = self.service.take_fault(f"fail_{kind}") if kind != "upload" else None
        if fault and fault["status"] == "reset_after":
            self._drop_reply = True
        elif fault:
            self._inject(fault)
            return None
        return key

    def _create(self, raw: bytes) -> None:
        self.service.count_request("create")
        key = self._authenticate("create")
        if key is None:
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return self._fail(400, "request body is not valid JSON")
        try:
            sources, parent = self.service.validate(body, key)
        except RequestError as exc:
            return self._fail(400, str(exc), param=exc.param)
        task = self.service.create_task(body, key, sources, parent)
        if task is None:
            return self._send_json(429, {
                "code": 2000, "message": "concurrency limit",
                "suggestion": "wait for a queued or running task to finish, then try again"})
        self._send_json(200, {"code": 0, "data": {"task_id": task.task_id}})

    def _get(self, task_id: str) -> None:
        self.service.count_request("get")
        key = self._authenticate("get")
        if key is None:
            return
        task = self.service.get_task(task_id, key)
        if task is None:
            return self._send_json(404, {"code": 2001, "message": "task not found",
                                         "suggestion": "check the task id"})
        self._send_json(200, {"code": 0, "data": self.service.task_view(task, self._base_url())})

    def _upload(self, raw: bytes) -> None:
        """Upstream's image upload; a relay that passes only the task endpoints answers 404."""
        self.service.count_request("upload")
        if not self.service.settings["upload"]:
            return self._fail(404, f"no route for POST {UPLOAD_PATH}", code="not_found")
        key = self._authenticate("upload")
        if key is None:
            return
        try:
            data = parse_multipart(self.headers.get("Content-Type", ""), raw).get("file")
            if data is None:
                raise ValueError("the multipart field 'file' is required")
            assets.check_image(data)
        except ValueError as exc:
            return self._fail(400, f"'file': {exc}", param="file")
        token = self.service.add_upload(key, data)
        self._send_json(200, {"code": 0, "data": {"image_token": token}})

    def _file(self, path: str) -> None:
        """The unauthenticated file host; download faults hit deliverables, not previews."""
        self.service.count_request("file")
        match = _FILE.fullmatch(path)
        task = match and self.service.get_task(match.group(1))
        found = task and self.service.file_bytes(task, match.group(2))
        if not found:
            return self._send(404, b"Not Found", "text/plain")
        data, content_type = found
        deliverable = match.group(2) != "rendered_image.png"
        if deliverable and self.service.take_fault("expire_url"):
            return self._send(403, b"<Error><Code>AccessDenied</Code>"
                              b"<Message>Request has expired</Message></Error>",
                              "application/xml")
        if content_type == "model/gltf-binary" and self.service.take_fault("corrupt_glb"):
            data = corrupt_glb(data)
        if deliverable and self.service.take_fault("truncate_download"):
            self._send(200, data, content_type, limit=len(data) // 2)
            self.close_connection = True
            return
        self._send(200, data, content_type)

    def _control(self, method: str, path: str, raw: bytes | None) -> None:
        if not ipaddress.ip_address(self.client_address[0]).is_loopback:
            return self._fail(403, "control endpoints answer loopback clients only",
                              code="forbidden")
        if method == "GET" and path == "/_local/stats":
            return self._send_json(200, self.service.stats())
        if method == "POST" and path == "/_local/reset":
            self.service.reset()
            return self._send_json(200, {"ok": True})
        if method == "POST" and path == "/_local/faults":
            try:
                self.service.set_faults(json.loads(raw or b"null"))
            except ValueError as exc:
                return self._fail(400, f"body is not valid JSON: {exc}")
            except RequestError as exc:
                return self._fail(400, str(exc), param=exc.param)
            stats = self.service.stats()
            return self._send_json(200, {"ok": True, "delay": stats["delay"],
                                         "pending_faults": stats["pending_faults"],
                                         "settings": stats["settings"]})
        self._fail(404, f"no route for {method} {path}", code="not_found")

    # --- responses -------------------------------------------------------------------------

    def _base_url(self) -> str:
        """Absolute URLs use the name the client reached us by, as a real host would."""
        host = self.headers.get("Host", "")
        return f"http://{host}" if _HOST.fullmatch(host) else self.service.url

    def _drop(self) -> None:
        """Cut the connection without an answer; linger 0 turns close() into a TCP reset."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self._sent = True

    def _inject(self, fault: dict) -> None:
        if fault["status"] in RESETS:
            return self._drop()
        status = fault["status"]
        message = f"injected HTTP {status} (local fault)"
        if fault["code"] is not None:
            body = {"code": fault["code"], "message": message, "suggestion": "try again later"}
        else:
            kind, code = _GATEWAY_ERRORS.get(
                status, ("api_error" if status >= 500 else "invalid_request_error", "injected"))
            body = gateway_error(message, kind, code)
        headers = {}
        if fault["retry_after"] is not None:
            if fault["retry_after_format"] == "http-date":
                # Whole seconds only, so round up: the client must not come back early.
                when = math.ceil(time.time() + fault["retry_after"])
                headers["Retry-After"] = email.utils.formatdate(when, usegmt=True)
            else:
                headers["Retry-After"] = f"{fault['retry_after']:g}"
        self._send_json(status, body, headers)

    def _fail(self, status: int, message: str, param: str | None = None,
              code: str = "invalid_parameter", close: bool = False) -> None:
        if close:
            self.close_connection = True
        self._send_json(status, gateway_error(message, "invalid_request_error", code, param))

    def _send_json(self, status: int, body: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers=headers)

    def _send(self, status: int, data: bytes, content_type: str, headers: dict | None = None,
              limit: int | None = None) -> None:
        """Answer with an exact Content-Length; `limit` sends fewer bytes, as a cut download."""
        if self._drop_reply:
            return self._drop()
        self._sent = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Tripo-Trace-ID", uuid.uuid4().hex)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data if limit is None else data[:limit])
        self.wfile.flush()


def spawn(key: str, *args: str) -> tuple[subprocess.Popen, str]:
    """Start the service in a child process on a free loopback port: (process, URL).
    Used by the demo, the tests and the benchmarks."""
    folder = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.Popen([sys.executable, folder, "--port", "0", "--key", key, *args],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise RuntimeError(f"the local service did not start: {line!r}")
    return proc, line[line.index("http://"):].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument("--key", action="append",
                        help="expected API key; repeat for several accounts, each seeing only "
                             f"its own tasks (default: $MODELSTREAM_LOCAL_KEY, else {DEFAULT_KEY})")
    parser.add_argument("--latency", type=float, default=3.0,
                        help="seconds from task creation to success (default: 3)")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="extra seconds before every API reply (default: 0)")
    parser.add_argument("--no-upload", dest="upload", action="store_false",
                        help=f"answer 404 on {UPLOAD_PATH}, like a relay of the task API only")
    parser.add_argument("--no-data-urls", dest="data_urls", action="store_false",
                        help="refuse data: URLs in file.url with a 400")
    parser.add_argument("--max-in-flight", type=int, default=0, metavar="N",
                        help="refuse creates with 429 (code 2000) while a key has N tasks "
                             "queued or running (default: no limit)")
    parser.add_argument("--multiview-output", choices=MULTIVIEW_OUTPUTS, default="nested",
                        help="multiview image URLs nested under the task type (default) or "
                             "directly in output")
    parser.add_argument("--verbose", action="store_true", help="log one line per request")
    args = parser.parse_args(argv)

    service = LocalService(args.host, args.port, args.key, args.latency, args.delay,
                           args.verbose, upload=args.upload, data_urls=args.data_urls,
                           max_in_flight=args.max_in_flight,
                           multiview_output=args.multiview_output)
    try:
        service.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    if not ipaddress.ip_address(urlsplit(service.url).hostname).is_loopback:
        print("warning: listening beyond loopback; anyone who can reach this port can use it",
              file=sys.stderr)
    print(f"ModelStream local service: {service.url}", flush=True)

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    while not stopping.wait(0.2):
        pass
    service.stop()
    return 0
