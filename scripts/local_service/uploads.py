"""v3 uploads: what /v3/files and a presigned PUT take (pictures and 3D models), and the
presigned URLs, which the service hosts as a storage bucket would: no API key, a signature
in the URL, S3's XML errors.

The SDK uploads a file of up to 50 MB to /v3/files, a larger one (up to 150 MB) through
POST /v3/files/presign {format} -> {file_token, presigned_url, expires_in} and a PUT of
the bytes; either way the file_token is what a task's `input` names.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

from .api import V3_MAX_PRESIGNED
from .gltf import chunks
from .images import check_image, image_info

if TYPE_CHECKING:
    from .handler import Handler

BUCKET = "/bucket/"  # where presigned URLs point: /bucket/<file_token>?signature=...
PRESIGN_SECONDS = 900
# presign's `format` (the file's extension, as the SDK sends it) -> the kind of file it is.
FORMATS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "webp": "webp", "glb": "glb",
           "fbx": "fbx", "obj": "obj"}
_OBJ_VERTEX = re.compile(rb"(?m)^v[ \t]+[-+.\d]")


def file_kind(data: bytes) -> str:
    """png, jpeg, webp, glb, fbx or obj, by content; ValueError for anything else."""
    if data[:4] == b"glTF":
        return "glb"
    if data.startswith(b"Kaydara FBX Binary") or data.lstrip()[:5] == b"; FBX":
        return "fbx"
    head = data[:1 << 16]
    if b"\0" not in head and _OBJ_VERTEX.search(head):
        return "obj"
    try:
        return image_info(data)[0]
    except ValueError:
        raise ValueError("the file is neither a picture (PNG, JPEG, WEBP) nor a model "
                         "(GLB, FBX, OBJ)") from None


def check_file(data: bytes, limit: int) -> str:
    """The kind of an upload v3 takes, else ValueError saying why: at most `limit` bytes,
    a picture upstream would take, or a model (a GLB must frame and parse)."""
    if len(data) > limit:
        raise ValueError(f"the file is larger than {limit // (1024 * 1024)} MB")
    kind = file_kind(data)
    if kind == "glb":
        chunks(data)
    elif kind not in ("fbx", "obj"):
        check_image(data, limit)
    return kind


class Presigned:
    """Presigned PUT URLs issued and not expired: token -> (key, format, signature, deadline)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._issued: dict[str, tuple[str, str, str, float]] = {}

    def issue(self, key: str, fmt: str) -> tuple[str, str]:
        """A new (file_token, signature) for one file of `fmt`, for `key`."""
        token, signature = f"file_{uuid.uuid4()}", secrets.token_hex(16)
        with self._lock:
            self._issued[token] = (key, fmt, signature, time.monotonic() + PRESIGN_SECONDS)
        return token, signature

    def redeem(self, token: str, signature: str) -> tuple[str, str] | None:
        """(key, format) when the URL's signature holds and has not expired; a URL may be
        PUT again until then, the last file wins (S3's rule)."""
        with self._lock:
            grant = self._issued.get(token)
        if grant is None or not secrets.compare_digest(grant[2], signature) \
                or time.monotonic() > grant[3]:
            return None
        return grant[0], grant[1]

    def waiting(self, key: str, token: str) -> bool:
        """Whether `token` was presigned for `key` (and may still be waiting for its PUT)."""
        with self._lock:
            return self._issued.get(token, ("",))[0] == key


def presign(handler: Handler, raw: bytes | None) -> None:
    """POST /v3/files/presign {format}: {file_token, presigned_url, expires_in}."""
    handler.service.count_request("upload", "v3")
    key = handler._authenticate("upload")
    if key is None:
        return
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return handler._fail(400, "request body is not valid JSON")
    fmt = body.get("format") if isinstance(body, dict) else None
    if fmt not in FORMATS:
        return handler._fail(400, f"'format' must be one of: {', '.join(FORMATS)}",
                             param="format")
    token, signature = handler.service.presigned.issue(key, fmt)
    url = f"{handler._base_url()}{BUCKET}{quote(token)}?signature={signature}"
    handler._send_json(200, {"code": 0, "data": {"file_token": token, "presigned_url": url,
                                                 "expires_in": PRESIGN_SECONDS}})


def put(handler: Handler) -> None:
    """PUT <presigned_url>: the file, stored for the key that presigned it."""
    handler.service.count_request("upload")
    parts = urlsplit(handler.path)
    token = unquote(parts.path[len(BUCKET):])
    grant = handler.service.presigned.redeem(token, parse_qs(parts.query).get(
        "signature", [""])[0])
    length = handler.headers.get("Content-Length") or ""
    if grant is None:
        return _s3_error(handler, 403, "AccessDenied",
                         "Request has expired or its signature does not match")
    if handler.headers.get("Transfer-Encoding") or not length.isdigit():
        return _s3_error(handler, 411, "MissingContentLength", "send a Content-Length")
    if int(length) > V3_MAX_PRESIGNED:
        return _s3_error(handler, 400, "EntityTooLarge",
                         f"the file is larger than {V3_MAX_PRESIGNED // (1024 * 1024)} MB")
    data = handler.rfile.read(int(length))
    key, fmt = grant
    try:
        kind = check_file(data, V3_MAX_PRESIGNED)
        if kind != FORMATS[fmt]:
            raise ValueError(f"the file is {kind}; the URL was presigned for {fmt}")
    except ValueError as exc:
        return _s3_error(handler, 400, "InvalidArgument", str(exc), read=True)
    handler.service.add_upload("v3", key, data, token)
    handler._send(200, b"", "text/plain",
                  headers={"ETag": f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'})


def _s3_error(handler: Handler, status: int, code: str, message: str,
              read: bool = False) -> None:
    """S3's error body; a body left unread ends the connection with the reply."""
    if not read:
        handler.close_connection = True
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error>")
    handler._send(status, body.encode(), "application/xml")
