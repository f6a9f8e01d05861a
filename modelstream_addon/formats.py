"""Checks on downloaded files before anything is imported. No bpy here."""

from __future__ import annotations

import os
import struct
import urllib.parse

from .errors import DownloadError

MODEL_OUTPUT_KEYS = ("pbr_model", "model", "base_model")
_EXTENSIONS = {".glb": "glb", ".fbx": "fbx"}


def output_url(value):
    """Tripo outputs are URL strings; accept {'url': ...} too."""
    if isinstance(value, dict):
        value = value.get("url")
    return value if isinstance(value, str) and value.strip() else None


def model_url(output):
    """The first non-empty model URL, in the order the API documents."""
    for key in MODEL_OUTPUT_KEYS:
        url = output_url((output or {}).get(key))
        if url:
            return url
    return None


def format_from_url(url):
    path = urllib.parse.urlsplit(url).path.lower()
    return _EXTENSIONS.get(os.path.splitext(path)[1])


def detect_format(path):
    """'glb' or 'fbx' from the file's magic bytes, else None."""
    with open(path, "rb") as f:
        head = f.read(32)
    if head[:4] == b"glTF":
        return "glb"
    if head.startswith(b"Kaydara FBX Binary"):
        return "fbx"
    return None


def check_model_file(path, task_id=None):
    """Return the format of a downloaded model, or delete it and raise."""
    fmt = detect_format(path)
    problem = None
    if fmt is None:
        problem = "is neither a GLB nor a binary FBX file"
    elif fmt == "glb":
        with open(path, "rb") as f:
            _, version, length = struct.unpack("<4sII", f.read(12))
        if version != 2:
            problem = f"is glTF version {version}, not 2"
        elif length != os.path.getsize(path):
            problem = f"declares {length} bytes but has {os.path.getsize(path)}"
    if problem:
        os.remove(path)
        raise DownloadError(f"The downloaded model {problem}; it was not imported.",
                            task_id=task_id)
    return fmt
