"""Input images made acceptable to the API before anything is sent.

The API takes PNG/JPEG/WEBP, 20-6000 px, at most 20 MB. A file that already fits is sent
as it is; anything else Blender can read is converted to PNG and downscaled, into the
extension's user folder. Runs on the main thread: local file work only, no network.
"""

import os
import urllib.parse
import uuid

import bpy

from . import imagefile
from .tasks import ValidationError, image_fields


def _workdir():
    return bpy.utils.extension_path_user(__package__, path="inputs", create=True)


def _save_png(image, field):
    """Save a loaded/created image as a PNG that fits the API's limits."""
    width, height = image.size
    if min(width, height) < imagefile.MIN_SIDE:
        raise ValidationError(field, f"{width}x{height} px is below the "
                              f"{imagefile.MIN_SIDE} px minimum.")
    out = os.path.join(_workdir(), f"{uuid.uuid4().hex[:12]}.png")
    scale = min(1.0, imagefile.MAX_SIDE / max(width, height))
    while True:
        if scale < 1.0:
            image.scale(max(imagefile.MIN_SIDE, int(width * scale)),
                        max(imagefile.MIN_SIDE, int(height * scale)))
        image.file_format = 'PNG'
        image.save(filepath=out)
        if os.path.getsize(out) <= imagefile.MAX_BYTES:
            return out
        scale *= 0.75


def prepare_file(value, field):
    """A path the API will accept for `value` (a file path or an http(s) URL)."""
    value = (value or "").strip()
    if not value or urllib.parse.urlsplit(value).scheme.lower() in ("http", "https"):
        return value
    path = bpy.path.abspath(value)
    if not os.path.isfile(path):
        raise ValidationError(field, f"no image file at {value!r}.")
    try:
        imagefile.check(path, field)
        return path
    except imagefile.ImageError:
        pass
    image = bpy.data.images.load(path, check_existing=False)
    try:
        if not image.size[0]:
            raise ValidationError(field, f"{os.path.basename(path)} is not an image Blender "
                                  "can read.")
        return _save_png(image, field)
    finally:
        bpy.data.images.remove(image)


def prepare_datablock(name, field="image_name"):
    """Write an image already in the .blend (packed, generated or a render) to a file."""
    source = bpy.data.images.get(name)
    if source is None:
        raise ValidationError(field, f"there is no image named {name!r} in this file.")
    image = source.copy()
    try:
        if not image.size[0]:
            raise ValidationError(field, f"image {name!r} has no pixels.")
        return _save_png(image, field)
    finally:
        bpy.data.images.remove(image)


def prepare_options(opts):
    """Replace the task's local image options by files the API accepts."""
    fields = image_fields(opts)
    return {key: prepare_file(value, key) if key in fields else value
            for key, value in opts.items()}
