"""Checks on downloaded files before anything is imported. No bpy here."""

from __future__ import annotations

import json
import os
import struct
import urllib.parse

from . import imagefile
from .errors import DownloadError
from .tasks import VIEWS

# v2 names first, then the v3 names a gateway may pass through.
MODEL_OUTPUT_KEYS = ("pbr_model", "model", "base_model", "model_url", "pbr_model_url",
                     "base_model_url")
IMAGE_OUTPUT_KEYS = ("generated_image", "generated_image_url", "image", "image_url")
PREVIEW_OUTPUT_KEYS = ("rendered_image", "rendered_image_url")
_EXTENSIONS = {".glb": "glb", ".fbx": "fbx"}


def output_url(value):
    """Tripo outputs are URL strings; accept {'url': ...} too."""
    if isinstance(value, dict):
        value = value.get("url")
    return value if isinstance(value, str) and value.strip() else None


def first_url(output, keys):
    """The first non-empty URL under `keys`, in their order."""
    output = output if isinstance(output, dict) else {}
    for key in keys:
        url = output_url(output.get(key))
        if url:
            return url
    return None


def model_url(output):
    return first_url(output, MODEL_OUTPUT_KEYS)


def image_urls(output, kind):
    """[(name, url)] of the images a task returned. The multiview shape is not documented
    (flat `*_view_url` keys or nested under a key), so URL fields are collected by name."""
    output = output if isinstance(output, dict) else {}
    if kind == "image":
        url = first_url(output, IMAGE_OUTPUT_KEYS)
        return [("generated_image", url)] if url else []
    if kind == "model":
        url = first_url(output, PREVIEW_OUTPUT_KEYS)
        return [("preview", url)] if url else []
    found = {}

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                url = output_url(value) if isinstance(value, str) else None
                view = next((v for v in VIEWS if v in key.lower()), None)
                if url and view:
                    found.setdefault(view, url)
                elif isinstance(value, list) and len(value) == 4:
                    for v, item in zip(VIEWS, value, strict=True):
                        if output_url(item):
                            found.setdefault(v, output_url(item))
                else:
                    walk(value)

    walk(output)
    return [(view, found[view]) for view in VIEWS if view in found]


def format_from_url(url):
    path = urllib.parse.urlsplit(url).path.lower()
    return _EXTENSIONS.get(os.path.splitext(path)[1])


def check_image_file(path, task_id=None):
    """Return 'png'/'jpeg'/'webp' of a downloaded image, or delete it and raise."""
    fmt = imagefile.sniff(path)[0]
    if fmt in imagefile.MIME:
        return fmt
    os.remove(path)
    raise DownloadError("The downloaded image is not a PNG, JPEG or WEBP file.",
                        task_id=task_id)


def _glb_problem(path):
    """Why a GLB is unusable (header, declared length, JSON chunk), or None."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header = f.read(20)
        if len(header) < 20:
            return "is too short to be a GLB"
        _, version, length, chunk_len, chunk_type = struct.unpack("<4sIIII", header)
        if version != 2:
            return f"is glTF version {version}, not 2"
        if length != size:
            return f"declares {length} bytes but has {size}"
        if chunk_type != 0x4E4F534A or 20 + chunk_len > size:
            return "has no JSON chunk"
        try:
            json.loads(f.read(chunk_len))
        except ValueError:
            return "has a corrupt JSON chunk"
    return None


def check_model_file(path, task_id=None):
    """Return the format of a downloaded model, or delete it and raise."""
    fmt = imagefile.sniff(path)[0]
    problem = None
    if fmt not in ("glb", "fbx"):
        problem = "is neither a GLB nor a binary FBX file"
    elif fmt == "glb":
        problem = _glb_problem(path)
    if problem:
        os.remove(path)
        raise DownloadError(f"The downloaded model {problem}; it was not imported.",
                            task_id=task_id)
    return fmt
