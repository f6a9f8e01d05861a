"""What a file is, from its first bytes, and the image checks the API needs. No bpy here.

One sniffer serves every file check: input images before they are sent and downloaded
images and models before they are imported. Sizes come from the headers, so a bad image is
refused before any request. Converting or downscaling is Blender's job (see inputs.py).
"""

from __future__ import annotations

import base64
import os
import struct

from .errors import ModelStreamError

MIN_SIDE = 20
MAX_SIDE = 6000
MAX_BYTES = 20 * 1024 * 1024
# Blender decodes a whole image (4 floats a pixel for some formats) on the main thread before
# it can scale one, so past this it is refused from its header: 20000 x 20000 px would hold
# Blender for seconds and take gigabytes, from a 400 KB PNG.
MAX_DECODE_PIXELS = 64_000_000
API_TYPES = {"png": "png", "jpeg": "jpg", "webp": "webp"}
MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
# A JPEG's size sits after its metadata segments (64 KiB each at most): read a few.
HEAD = 256 * 1024


class ImageError(ModelStreamError):
    """An input image the API would refuse, or one that is gone."""


def _jpeg_size(head):
    at = 2
    while at + 4 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if at + 9 > len(head):
                return None
            height, width = struct.unpack(">HH", head[at + 5:at + 9])
            return width, height
        at += 2 + int.from_bytes(head[at + 2:at + 4], "big")
    return None


def _webp_size(head):
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30:
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(head) >= 30:
        return (int.from_bytes(head[24:27], "little") + 1,
                int.from_bytes(head[27:30], "little") + 1)
    return None


def sniff_head(head):
    """(format, width, height) from a file's first bytes. The format is png, jpeg, webp,
    glb, fbx or None; the size is (0, 0) for models and for images whose header hides it."""
    size = None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        fmt = "png"
        if head[12:16] == b"IHDR" and len(head) >= 24:
            size = struct.unpack(">II", head[16:24])
    elif head.startswith(b"\xff\xd8"):
        fmt, size = "jpeg", _jpeg_size(head)
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        fmt, size = "webp", _webp_size(head)
    elif head[:4] == b"glTF":
        fmt = "glb"
    elif head.startswith(b"Kaydara FBX Binary"):
        fmt = "fbx"
    else:
        fmt = None
    return (fmt,) + (size or (0, 0))


def sniff(path):
    """sniff_head() of the file at `path`."""
    with open(path, "rb") as f:
        return sniff_head(f.read(HEAD))


def _accept(head, size, field, name):
    """The format of an image the API accepts, or ImageError naming why not."""
    fmt, width, height = sniff_head(head)
    if fmt not in MIME:
        raise ImageError(f"{field}: {name} is not a PNG, JPEG or WEBP image.")
    if not width:
        raise ImageError(f"{field}: the size of {name} cannot be read from its header.")
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE:
        raise ImageError(f"{field}: {width}x{height} px is outside {MIN_SIDE}-{MAX_SIDE} px.")
    if size > MAX_BYTES:
        raise ImageError(f"{field}: {size / 1e6:.1f} MB is over the 20 MB limit.")
    return fmt


def decode_problem(width, height):
    """Why an image of this size must not be decoded, or ''."""
    if width * height <= MAX_DECODE_PIXELS:
        return ""
    return (f"{width}x{height} px ({width * height / 1e6:.0f} MP), over the "
            f"{MAX_DECODE_PIXELS / 1e6:.0f} MP the add-on decodes")


def check_decodable(path, field="image"):
    """Refuse, from its header, an image too large to decode; a size the header hides is
    left to Blender (formats this sniffer does not read)."""
    _, width, height = sniff(path)
    problem = decode_problem(width, height)
    if problem:
        raise ImageError(f"{field}: {os.path.basename(path)} is {problem}; it was not read. "
                         f"Scale it below {MAX_SIDE} px a side first.")


def check(path, field="image"):
    """Return the format of an image the API accepts, or raise ImageError naming why."""
    if not path or not os.path.isfile(path):
        raise ImageError(f"{field}: no image file at {path!r}.")
    with open(path, "rb") as f:
        head = f.read(HEAD)
    return _accept(head, os.path.getsize(path), field, os.path.basename(path))


def load(path):
    """(format, bytes) of an image checked when its job started, read once so what is sent
    is what was checked. It may have gone since: that is the user's to know, by name."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ImageError(f"The image {path} no longer exists: it was moved or deleted "
                         "after the job started.") from None
    except OSError as e:
        raise ImageError(f"The image {path} cannot be read: {e.strerror}.") from None
    return _accept(data[:HEAD], len(data), "image", os.path.basename(path)), data


def data_url(data, fmt):
    return f"data:{MIME[fmt]};base64,{base64.b64encode(data).decode('ascii')}"
