"""Input images for a task: captured from the scene, taken from the .blend, or files made
acceptable to the API, all before anything is sent.

The API takes PNG/JPEG/WEBP, 20-6000 px, at most 20 MB. A file that already fits is sent
as it is; anything else Blender can read is converted to PNG and downscaled. Files made
here go into one folder per job under the extension's user folder, removed with the job.
Runs on the main thread: local file work only, no network.
"""

import os
import urllib.parse
import uuid

import bpy

from ..core import imagefile, paths
from ..core.tasks import ValidationError, image_fields
from . import capture
from .user_files import user_folder


def new_workdir(kind="inputs"):
    """A fresh folder for one job's captures and converted images: <kind>/<12 hex>, the
    shape the engine checks before it deletes a job's folder."""
    return user_folder(os.path.join(kind, uuid.uuid4().hex[:12]))


def inputs_dir():
    """Where the jobs' own input folders live."""
    return user_folder("inputs")


def _save_png(image, field, workdir):
    """Save a loaded/created image as a PNG that fits the API's limits."""
    width, height = image.size
    if min(width, height) < imagefile.MIN_SIDE:
        raise ValidationError(field, f"{width}x{height} px is below the "
                              f"{imagefile.MIN_SIDE} px minimum.")
    out = os.path.join(workdir, f"{field}.png")
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


def prepare_file(value, field, workdir):
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
        imagefile.check_decodable(path, field)
    image = bpy.data.images.load(path, check_existing=False)
    try:
        if not image.size[0]:
            raise ValidationError(field, f"{os.path.basename(path)} is not an image Blender "
                                  "can read.")
        return _save_png(image, field, workdir)
    finally:
        bpy.data.images.remove(image)


def prepare_datablock(name, workdir, field="image_name"):
    """Write an image already in the .blend (packed, generated or loaded) to a file."""
    source = bpy.data.images.get(name or "")
    if source is None:
        raise ValidationError(field, f"there is no image named {name!r} in this file.")
    image = source.copy()
    try:
        if not image.size[0]:
            raise ValidationError(field, f"image {name!r} has no pixels.")
        return _save_png(image, "image_path", workdir)
    finally:
        bpy.data.images.remove(image)


def capture_sources(context, opts, workdir, fields):
    """Fill the image `fields` (image_path / view_*) from the scene when the options ask
    for a capture."""
    opts = dict(opts)
    kind = opts.get("task_type")
    size = opts.get("capture_resolution", 1024)
    alpha = opts.get("capture_transparent", False)
    try:
        if "image_path" in fields:
            source = opts.get("image_source", 'FILE')
            path = os.path.join(workdir, "capture.png")
            if source == 'VIEWPORT':
                opts["image_path"] = capture.capture_viewport(
                    context, path, resolution=size, transparent=alpha,
                    only_selected=opts.get("only_selected", False))
            elif source == 'RENDER':
                opts["image_path"] = capture.capture_render(
                    context, path, resolution=size, transparent=alpha,
                    engine=opts.get("render_engine", 'WORKBENCH'),
                    only_selected=opts.get("only_selected", False))
            elif source == 'IMAGE':
                opts["image_path"] = prepare_datablock(opts.get("image_name"), workdir)
        elif "view_front" in fields and opts.get("multiview_source") == 'ORBIT':
            views = capture.capture_orbit(
                context, workdir, resolution=min(size, 2048), transparent=alpha,
                ortho=opts.get("orbit_ortho", True), front=opts.get("orbit_front", 'NEG_Y'))
            opts.update({f"view_{name}": path for name, path in views.items()})
    except capture.CaptureError as e:
        raise ValidationError("image_source" if kind != "multiview_to_model"
                              else "multiview_source", str(e)) from None
    return opts


def capture_wanted(settings):
    """Whether the settings ask for a scene capture (for the Capture button)."""
    if settings.task_type == "multiview_to_model":
        return settings.multiview_source == 'ORBIT' and not settings.original_task_id
    return ("image_path" in image_fields({"task_type": settings.task_type})
            and settings.image_source in ('VIEWPORT', 'RENDER'))


def keep_only(workdir):
    """Captures made for review: only the newest set is kept."""
    parent = os.path.dirname(workdir)
    for name in os.listdir(parent):
        if os.path.join(parent, name) != workdir:
            paths.remove(parent, os.path.join(parent, name))


def gather(context, opts, fields, workdir):
    """The options with every image in `fields` captured or converted into a file in
    `workdir` (the job's own folder, deleted with the job)."""
    opts = capture_sources(context, opts, workdir, fields)
    return {key: prepare_file(value, key, workdir) if key in fields else value
            for key, value in opts.items()}


def kept(workdir):
    """`workdir` when something was written into it, else '' (and it is gone)."""
    if os.listdir(workdir):
        return workdir
    discard(workdir)
    return ""


def discard(workdir):
    """Delete a folder new_workdir made; nothing outside the extension's folder."""
    paths.remove(user_folder(), workdir)
