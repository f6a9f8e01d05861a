"""The HTTP side: routes, authentication, injected faults on the wire, exact replies."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import struct
import sys
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from . import faults, hostile_net, uploads
from .api import (
    BALANCE_PATH,
    OWN_MESH_TYPES,
    POST_TYPES,
    TASK_PATH,
    UPLOAD_PATH,
    V3_BALANCE,
    V3_FILES,
    V3_GENERATION,
    V3_MAX_UPLOAD,
    V3_MESH_ROUTES,
    V3_POST_ROUTES,
    V3_PRESIGN,
    V3_ROUTES,
    V3_TASKS,
    Refused,
    RequestError,
    gateway_error,
    tripo_error,
)
from .faults import RESETS
from .images import MAX_IMAGE_BYTES, check_image
from .models import corrupt_glb
from .outputs import hostile
from .own_mesh import validate_own_mesh
from .post import validate_post
from .v3 import validate_v3
from .validation import parse_multipart, validate

if TYPE_CHECKING:
    from .server import LocalService

MAX_BODY = 52 * 1024 * 1024  # a 50 MB v3 upload still fits, with its multipart framing
# A task id may hold slashes (the evil_task_id fault names a task like a path).
_TASK_GET = re.compile(re.escape(TASK_PATH) + r"/(.+)")
_V3_TASK_GET = re.compile(re.escape(V3_TASKS) + r"/(.+)")
_FILE = re.compile(r"/files/(.+)/([^/]+)")
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    service: LocalService

    def handle_error(self, request, client_address):
        """A client that hangs up is normal here (tests cut connections on purpose)."""
        if self.service.verbose or not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ModelStreamLocal/1.0"
    timeout = 30  # idle keep-alive connections are dropped after this
    # Headers and body go out in two writes: with Nagle's algorithm on, the second waits for
    # the client's delayed ACK (about 40 ms) on a reused connection.
    disable_nagle_algorithm = True

    @property
    def service(self) -> LocalService:
        return self.server.service

    def log_message(self, format, *args):
        # Request lines only: never headers, so the Authorization header never reaches a log.
        if self.service.verbose:
            super().log_message(format, *args)

    def do_GET(self):
        self._begin()
        self._dispatch("GET", None)

    def do_POST(self):
        self._begin()
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or (length and not length.isdigit()):
            return self._fail(400, "send the body with a Content-Length", close=True)
        if int(length or 0) > MAX_BODY:
            return self._fail(413, "request body too large", close=True)
        self._dispatch("POST", self.rfile.read(int(length or 0)))

    def do_PUT(self):
        self._begin()
        self._dispatch("PUT", None)  # a presigned upload reads its own body

    # --- routing ---------------------------------------------------------------------------

    def _begin(self) -> None:
        """Per-request state; the API a path belongs to picks the error shape."""
        self._sent = False
        self._drop_reply = False
        self._api = "v3" if urlsplit(self.path).path.startswith("/v3/") else "v2"

    def _dispatch(self, method: str, raw: bytes | None) -> None:
        try:
            path = urlsplit(self.path).path
            if path.startswith("/_local/"):
                self._control(method, path, raw)
            elif path.startswith("/files/") and method == "GET":
                self._file(path)
            elif path.startswith(uploads.BUCKET) and method == "PUT":
                uploads.put(self)
            elif self.service.settings["api"] not in ("both", self._api):
                self._fail(404, f"no route for {method} {path}", code="not_found")
            elif self._api == "v3":
                self._route_v3(method, path, raw)
            elif method == "POST" and path == TASK_PATH:
                self._create(raw, None)
            elif method == "POST" and path == UPLOAD_PATH:
                self._upload(raw)
            elif method == "GET" and path == BALANCE_PATH:
                self._balance()
            elif method == "GET" and (match := _TASK_GET.fullmatch(path)):
                self._get(unquote(match.group(1)))
            else:
                self._fail(404, f"no route for {method} {path}", code="not_found")
        except Exception:
            traceback.print_exc()
            if self._sent:
                self.close_connection = True
            else:
                self._fail(500, "local service error", code="internal_error", type_="api_error")

    def _route_v3(self, method: str, path: str, raw: bytes | None) -> None:
        route = path[len(V3_GENERATION):] if path.startswith(V3_GENERATION) else None
        if method == "POST" and route in V3_ROUTES:
            self._create(raw, V3_ROUTES[route])
        elif method == "POST" and path in V3_MESH_ROUTES:
            self._create(raw, V3_MESH_ROUTES[path])
        elif method == "POST" and path in V3_POST_ROUTES:
            self._create(raw, V3_POST_ROUTES[path])
        elif method == "POST" and path == V3_FILES:
            self._upload(raw)
        elif method == "POST" and path == V3_PRESIGN:
            uploads.presign(self, raw)
        elif method == "GET" and path == V3_BALANCE:
            self._balance()
        elif method == "GET" and (match := _V3_TASK_GET.fullmatch(path)):
            self._get(unquote(match.group(1)))
        else:
            self._fail(404, f"no route for {method} {path}", code="not_found")

    def _authenticate(self, kind: str) -> str | None:
        """Delay and authenticate an API request, then apply a pending fail_<kind> fault.

        Returns the caller's key, or None when the request is already answered. A reset_after
        fault lets the request do its work and loses the reply instead.
        """
        extra = 0.0
        if kind == "get" and (slow := self.service.faults.take("slow_get")):
            extra = slow["seconds"]
        if self.service.delay + extra > 0:
            time.sleep(self.service.delay + extra)
        key = self.service.authorized(self.headers.get("Authorization"))
        if key is not None and self.service.faults.take("echo_key"):
            return self._fail(401, hostile_net.echoed_key_message(
                self.headers.get("Authorization", "")), type_="authentication_error",
                code="invalid_api_key")
        if key is None:
            self._fail(401, "Incorrect API key provided.", type_="authentication_error",
                       code="invalid_api_key")
            return None
        fault = self.service.faults.take(f"fail_{kind}") if kind != "upload" else None
        if fault and fault["status"] == "reset_after":
            self._drop_reply = True
        elif fault:
            self._inject(fault)
            return None
        return key

    def _create(self, raw: bytes, kind: str | None) -> None:
        """A create on v2's task path (`kind` None: the body's type names it) or a v3 route."""
        self.service.count_request("create", self._api)
        key = self._authenticate("create")
        if key is None:
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            return self._fail(400, "request body is not valid JSON")
        try:
            if kind is None:
                sources, parent = validate(self.service, body, key)
                kind = body["type"]
            else:
                check = (validate_own_mesh if kind in OWN_MESH_TYPES else validate_post
                         if kind in POST_TYPES else validate_v3)
                sources, parent = check(self.service, kind, body, key)
        except RequestError as exc:
            return self._fail(400, str(exc), param=exc.param)
        try:
            task = self.service.create_task(kind, body, key, sources, parent, self._api)
        except Refused as exc:
            return self._send_json(exc.status, tripo_error(exc.status, str(exc), code=exc.code))
        self._send_json(200, {"code": 0, "data": {"task_id": task.task_id}})

    def _get(self, task_id: str) -> None:
        self.service.count_request("get", self._api)
        key = self._authenticate("get")
        if key is None:
            return
        task = self.service.get_task(task_id, key, self._api)
        if task is None:
            return self._send_json(404, tripo_error(404, "task not found"))
        self.service.count_poll(task)
        view = self.service.task_view(task, self._base_url())
        faults = self.service.faults
        hostile = hostile_net.reply_body(faults, view)
        if hostile is not None:
            return self._send(200, hostile, "application/json")
        view = hostile_net.link_local(faults, hostile_net.odd_view(faults, view))
        self._send_json(200, {"code": 0, "data": view})

    def _upload(self, raw: bytes) -> None:
        """The upload: v2's takes an image (a relay that passes only the task endpoints
        answers 404) for an image_token, v3's /v3/files a picture or a model (GLB, FBX,
        OBJ; up to 50 MB) for a file_token."""
        self.service.count_request("upload", self._api)
        if self._api == "v2" and not self.service.settings["upload"]:
            return self._fail(404, f"no route for POST {UPLOAD_PATH}", code="not_found")
        key = self._authenticate("upload")
        if key is None:
            return
        limit = V3_MAX_UPLOAD if self._api == "v3" else MAX_IMAGE_BYTES
        try:
            data = parse_multipart(self.headers.get("Content-Type", ""), raw).get("file")
            if data is None:
                raise ValueError("the multipart field 'file' is required")
            (uploads.check_file if self._api == "v3" else check_image)(data, limit)
        except ValueError as exc:
            return self._fail(400, f"'file': {exc}", param="file")
        token = self.service.add_upload(self._api, key, data)
        name = "file_token" if self._api == "v3" else "image_token"
        self._send_json(200, {"code": 0, "data": {name: token}})

    def _balance(self) -> None:
        """{balance, frozen}, as the SDKs' get_balance reads it; 404 where switched off."""
        self.service.count_request("balance", self._api)
        if not self.service.settings["balance"]:
            return self._fail(404, f"no route for GET {urlsplit(self.path).path}",
                              code="not_found")
        key = self._authenticate("balance")
        if key is None:
            return
        self._send_json(200, {"code": 0, "data": self.service.balance(key)})

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
        if deliverable and self.service.faults.take("expire_url"):
            return self._send(403, b"<Error><Code>AccessDenied</Code>"
                              b"<Message>Request has expired</Message></Error>",
                              "application/xml")
        if content_type == "model/gltf-binary" and self.service.faults.take("corrupt_glb"):
            data = corrupt_glb(data)
        if deliverable:
            data = hostile(match.group(2), data, self.service.faults)
        if deliverable and self.service.faults.take("drip_download"):
            return hostile_net.drip(self, data, content_type)
        if deliverable and self.service.faults.take("gzip_download"):
            data, headers = hostile_net.gzipped(data)
            return self._send(200, data, content_type, headers=headers)
        if deliverable and self.service.faults.take("truncate_download"):
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
        self._send_json(*faults.reply(fault, self._api))

    def _fail(self, status: int, message: str, param: str | None = None,
              code: str = "invalid_parameter", close: bool = False,
              type_: str = "invalid_request_error") -> None:
        """An error in the caller's API's shape: Tripo's {code, message, suggestion} on v3
        (with `param` on a 400), the gateway's {error: {...}} on v2."""
        if close:
            self.close_connection = True
        if self._api == "v3":
            return self._send_json(status, tripo_error(status, message, param))
        self._send_json(status, gateway_error(message, type_, code, param))

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

