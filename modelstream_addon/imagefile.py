"""Image input checks and encodings the API accepts. No bpy here.

Sizes come from the file headers, so a bad image is refused before any request. Converting
or downscaling is Blender's job (see inputs.py); this module only checks and encodes.
"""

from __future__ import annotations

import base64
import os
import struct

MIN_SIDE = 20
MAX_SIDE = 6000
MAX_BYTES = 20 * 1024 * 1024
API_TYPES = {"png": "png", "jpeg": "jpg", "webp": "webp"}
MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class ImageError(ValueError):
    pass


def _jpeg_size(f):
    f.seek(2)
    while True:
        marker = f.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:
            continue
        length = struct.unpack(">H", f.read(2))[0]
        if 0xC0 <= marker[1] <= 0xCF and marker[1] not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">xHH", f.read(5))
            return width, height
        f.seek(length - 2, os.SEEK_CUR)


def _webp_size(head):
    chunk = head[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return (int.from_bytes(head[24:27], "little") + 1,
                int.from_bytes(head[27:30], "little") + 1)
    return None


def sniff(path):
    """(format, width, height) from the header; format in png/jpeg/webp, else None."""
    with open(path, "rb") as f:
        head = f.read(32)
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            return ("png",) + struct.unpack(">II", head[16:24])
        if head.startswith(b"\xff\xd8"):
            size = _jpeg_size(f)
            return ("jpeg",) + size if size else (None, 0, 0)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            size = _webp_size(head)
            return ("webp",) + size if size else (None, 0, 0)
    return None, 0, 0


def check(path, field="image"):
    """Return the format of an image the API accepts, or raise ImageError naming why."""
    if not path or not os.path.isfile(path):
        raise ImageError(f"{field}: no image file at {path!r}.")
    fmt, width, height = sniff(path)
    if fmt is None:
        raise ImageError(f"{field}: {os.path.basename(path)} is not a PNG, JPEG or WEBP image.")
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE:
        raise ImageError(f"{field}: {width}x{height} px is outside {MIN_SIDE}-{MAX_SIDE} px.")
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        raise ImageError(f"{field}: {size / 1e6:.1f} MB is over the 20 MB limit.")
    return fmt


def data_url(path, fmt):
    with open(path, "rb") as f:
        return f"data:{MIME[fmt]};base64,{base64.b64encode(f.read()).decode('ascii')}"
