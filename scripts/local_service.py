"""Local ModelStream-compatible service: try the add-on without a key, run demos and tests.

Speaks the relay's contract (POST / GET /tripo/v2/openapi/task), walks every task through
queued -> running -> success on a clock, and serves procedural GLB models from its own file
"CDN". Control endpoints under /_local/ inject the failures a real service shows (slow replies,
429 / 500, dropped connections, failed tasks, truncated or corrupt downloads, expired URLs).
Standard library only.

    python scripts/local_service.py [--host 127.0.0.1] [--port 0] [--key KEY]
                                    [--latency SECONDS] [--delay SECONDS] [--verbose]
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import math
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

if __package__:
    from . import local_assets
else:
    import local_assets

DEFAULT_KEY = "sk-local-modelstream"
TASK_PATH = "/tripo/v2/openapi/task"
TASK_TYPES = (
    "text_to_model", "image_to_model", "multiview_to_model", "refine_model", "text_to_image",
    "generate_image", "generate_multiview_image", "edit_multiview_image",
)
SUPPORTED_TYPES = ("text_to_model",)
MAX_BODY = 1024 * 1024
QUEUED_SHARE = 0.2  # of the latency, before the task starts running
COUNTED_FAULTS = ("fail_create", "fail_get", "truncate_download", "corrupt_glb", "expire_url")
_TASK_GET = re.compile(re.escape(TASK_PATH) + r"/([^/]+)")
_FILE = re.compile(r"/files/([^/]+)/([^/]+)")
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")

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


def validate_task(body) -> None:
    """Check a create-task body the way the relay does; extra fields pass through untouched."""
    if not isinstance(body, dict):
        raise RequestError("request body must be a JSON object", None)
    kind = body.get("type")
    if kind is None:
        raise RequestError("'type' is required", "type")
    if kind not in TASK_TYPES:
        raise RequestError(f"'type' must be one of: {', '.join(TASK_TYPES)}", "type")
    if kind not in SUPPORTED_TYPES:
        raise RequestError(f"the local service does not support type '{kind}' yet", "type")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise RequestError("'prompt' is required and must be a non-empty string", "prompt")
    if len(prompt) > 1024:
        raise RequestError("'prompt' must be at most 1024 characters", "prompt")
    negative = body.get("negative_prompt")
    if negative is not None and (not isinstance(negative, str) or len(negative) > 255):
        raise RequestError("'negative_prompt' must be a string of at most 255 characters",
                           "negative_prompt")
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


@dataclass
class Task:
    task_id: str
    input: dict
    created: float  # monotonic, drives the lifecycle
    create_time: int  # unix seconds, as reported
    final_status: str = "success"
    error: dict | None = None
    files: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pbr(self) -> bool:
        return self.input.get("pbr") is True

    @property
    def model_key(self) -> str:
        """Upstream names the output after the request: pbr_model when pbr was asked for."""
        return "pbr_model" if self.pbr else "model"

    def credits(self) -> int:
        textured = self.input.get("texture", True) or self.pbr
        detailed = self.input.get("texture_quality") == "detailed"
        return 10 + 10 * textured + 10 * detailed


def corrupt_glb(data: bytes) -> bytes:
    """Keep the GLB header and magic but spoil the JSON chunk, so only a real parse notices."""
    spoiled = bytearray(data)
    json_len = struct.unpack_from("<I", data, 12)[0]
    spoiled[20:20 + json_len] = b"#" * json_len
    return bytes(spoiled)


class LocalService:
    """The service state plus its HTTP server; start() serves from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, key: str | None = None,
                 latency: float = 3.0, delay: float = 0.0, verbose: bool = False):
        self.host, self.port = host, port
        self.key = key or os.environ.get("MODELSTREAM_LOCAL_KEY") or DEFAULT_KEY
        self.latency = max(0.0, latency)
        self.initial_delay = max(0.0, delay)
        self.verbose = verbose
        self._lock = threading.Lock()
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
        """Forget tasks, counters and faults; the start-up delay is configuration, kept."""
        self._tasks: dict[str, Task] = {}
        self._tasks_created = 0
        self._requests = {"create": 0, "get": 0, "file": 0}
        self._clear_faults()

    def _clear_faults(self) -> None:
        self.delay = self.initial_delay
        self._pending: dict = {}
        self._hits = dict.fromkeys(COUNTED_FAULTS + ("next_status",), 0)

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self.key.encode())

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

    def create_task(self, body: dict) -> Task:
        task = Task(str(uuid.uuid4()), body, time.monotonic(), int(time.time()))
        outcome = self.take_fault("next_status")
        if outcome:
            task.final_status = outcome["status"]
            if task.final_status == "failed":
                task.error = {"error_code": outcome["error_code"],
                              "error_msg": outcome["error_msg"]}
        with self._lock:
            self._tasks[task.task_id] = task
            self._tasks_created += 1
        return task

    def get_task(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def progress(self, task: Task) -> dict:
        """Status fields from the time since creation: queued, then running, then final."""
        elapsed = time.monotonic() - task.created
        queue_end = QUEUED_SHARE * self.latency
        if elapsed >= self.latency:
            done = task.final_status == "success"
            return {"status": task.final_status, "progress": 100 if done else 0,
                    "queuing_num": -1, "running_left_time": -1}
        if elapsed < queue_end:
            return {"status": "queued", "progress": 0,
                    "queuing_num": 1 if elapsed < queue_end / 2 else 0, "running_left_time": -1}
        share = (elapsed - queue_end) / (self.latency - queue_end)
        return {"status": "running", "progress": min(99, int(share * 100)), "queuing_num": -1,
                "running_left_time": math.ceil(self.latency - elapsed)}

    def task_view(self, task: Task, base_url: str) -> dict:
        """The task as Tripo's GET returns it."""
        state = self.progress(task)
        output = {}
        if state["status"] == "success":
            files = f"{base_url}/files/{task.task_id}"
            output = {task.model_key: f"{files}/{task.model_key}.glb",
                      "rendered_image": f"{files}/rendered_image.png"}
        view = {"task_id": task.task_id, "type": task.input["type"], "status": state["status"],
                "input": task.input, "output": output, "progress": state["progress"],
                "create_time": task.create_time, "queuing_num": state["queuing_num"],
                "running_left_time": state["running_left_time"],
                "consumed_credit": task.credits() if state["status"] == "success" else 0}
        if task.error and state["status"] == task.final_status:
            view.update(task.error)
        return view

    def file_bytes(self, task: Task, name: str) -> tuple[bytes, str] | None:
        """A finished task's model or preview, generated on first request and cached."""
        if self.progress(task)["status"] != "success" or name not in (
                f"{task.model_key}.glb", "rendered_image.png"):
            return None
        with task.lock:
            if name not in task.files:
                prompt = task.input["prompt"]
                if name == "rendered_image.png":
                    task.files[name] = local_assets.texture_png(prompt)
                else:
                    task.files[name] = local_assets.make_glb(
                        prompt, task.input.get("face_limit", local_assets.DEFAULT_FACES),
                        task.input.get("texture", True), task.pbr)
            data = task.files[name]
        return data, "image/png" if name.endswith(".png") else "model/gltf-binary"

    def stats(self) -> dict:
        with self._lock:
            tasks = list(self._tasks.values())
            snapshot = {"tasks_created": self._tasks_created, "requests": dict(self._requests),
                        "faults": dict(self._hits), "delay": self.delay,
                        "pending_faults": dict(self._pending)}
        snapshot["tasks"] = {t.task_id: self.progress(t)["status"] for t in tasks}
        return snapshot

    def set_faults(self, body) -> None:
        """Apply a /_local/faults body; all of it is checked before any of it takes effect."""
        if not isinstance(body, dict):
            raise RequestError("faults must be a JSON object", None)
        unknown = set(body) - {"reset", "delay", "next_status", "error_code", "error_msg",
                               *COUNTED_FAULTS}
        if unknown:
            name = sorted(unknown)[0]
            raise RequestError(f"unknown fault '{name}'", name)
        updates = {}
        if "delay" in body:
            delay = body["delay"]
            if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
                raise RequestError("'delay' must be a non-negative number of seconds", "delay")
        if "next_status" in body:
            status = body["next_status"]
            if not isinstance(status, str) or not status:
                raise RequestError("'next_status' must be a non-empty string", "next_status")
            updates["next_status"] = {
                "count": 1, "status": status, "error_code": body.get("error_code", 1000),
                "error_msg": body.get("error_msg", "generation failed (local fault injection)")}
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
        with self._lock:
            if body.get("reset"):
                self._clear_faults()
            if "delay" in body:
                self.delay = float(body["delay"])
            self._pending.update(updates)
            self._pending = {name: fault for name, fault in self._pending.items()
                             if fault["count"] > 0}


def _http_fault(name: str, spec) -> dict:
    """Validate {"status": 429 | 500 | ... | "reset", "count", "retry_after", "code"}."""
    if not isinstance(spec, dict):
        raise RequestError(f"'{name}' must be an object like {{\"status\": 429}}", name)
    status = spec.get("status")
    if status != "reset" and (not isinstance(status, int) or not 400 <= status <= 599):
        raise RequestError(f"'{name}.status' must be an HTTP error status or 'reset'", name)
    count = spec.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise RequestError(f"'{name}.count' must be a positive integer", name)
    retry_after = spec.get("retry_after")
    if retry_after is not None and (isinstance(retry_after, bool)
                                    or not isinstance(retry_after, (int, float))):
        raise RequestError(f"'{name}.retry_after' must be a number of seconds", name)
    code = spec.get("code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise RequestError(f"'{name}.code' must be a Tripo error code", name)
    return {"status": status, "count": count, "retry_after": retry_after, "code": code}


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
        try:
            path = urlsplit(self.path).path
            if path.startswith("/_local/"):
                self._control(method, path, raw)
            elif path.startswith("/files/") and method == "GET":
                self._file(path)
            elif method == "POST" and path == TASK_PATH:
                self._create(raw)
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

    def _api_preamble(self, kind: str) -> bool:
        """Count, delay and authenticate an API request; False when already answered."""
        self.service.count_request(kind)
        if self.service.delay > 0:
            time.sleep(self.service.delay)
        if not self.service.authorized(self.headers.get("Authorization")):
            self._send_json(401, gateway_error("Incorrect API key provided.",
                                               "authentication_error", "invalid_api_key"))
            return False
        fault = self.service.take_fault(f"fail_{kind}")
        if fault:
            self._inject(fault)
            return False
        return True

    def _create(self, raw: bytes) -> None:
        if not self._api_preamble("create"):
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return self._fail(400, "request body is not valid JSON")
        try:
            validate_task(body)
        except RequestError as exc:
            return self._fail(400, str(exc), param=exc.param)
        task = self.service.create_task(body)
        self._send_json(200, {"code": 0, "data": {"task_id": task.task_id}})

    def _get(self, task_id: str) -> None:
        if not self._api_preamble("get"):
            return
        task = self.service.get_task(task_id)
        if task is None:
            return self._send_json(404, {"code": 2001, "message": "task not found",
                                         "suggestion": "check the task id"})
        self._send_json(200, {"code": 0, "data": self.service.task_view(task, self._base_url())})

    def _file(self, path: str) -> None:
        """The unauthenticated file host; download faults hit model files only."""
        self.service.count_request("file")
        match = _FILE.fullmatch(path)
        task = match and self.service.get_task(match.group(1))
        found = task and self.service.file_bytes(task, match.group(2))
        if not found:
            return self._send(404, b"Not Found", "text/plain")
        data, content_type = found
        is_model = content_type == "model/gltf-binary"
        if is_model and self.service.take_fault("expire_url"):
            return self._send(403, b"<Error><Code>AccessDenied</Code>"
                              b"<Message>Request has expired</Message></Error>",
                              "application/xml")
        if is_model and self.service.take_fault("corrupt_glb"):
            data = corrupt_glb(data)
        if is_model and self.service.take_fault("truncate_download"):
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
                                         "pending_faults": stats["pending_faults"]})
        self._fail(404, f"no route for {method} {path}", code="not_found")

    # --- responses -------------------------------------------------------------------------

    def _base_url(self) -> str:
        """Absolute URLs use the name the client reached us by, as a real host would."""
        host = self.headers.get("Host", "")
        return f"http://{host}" if _HOST.fullmatch(host) else self.service.url

    def _inject(self, fault: dict) -> None:
        if fault["status"] == "reset":
            # Linger 0 turns close() into a TCP reset; nothing is answered.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self._sent = True
            return
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument("--key", help="expected API key (default: $MODELSTREAM_LOCAL_KEY, "
                                      f"else {DEFAULT_KEY})")
    parser.add_argument("--latency", type=float, default=3.0,
                        help="seconds from task creation to success (default: 3)")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="extra seconds before every API reply (default: 0)")
    parser.add_argument("--verbose", action="store_true", help="log one line per request")
    args = parser.parse_args(argv)

    service = LocalService(args.host, args.port, args.key, args.latency, args.delay,
                           args.verbose)
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


if __name__ == "__main__":
    sys.exit(main())
