"""A finished task's files, made on first request and kept: models, previews, pictures."""

from __future__ import annotations

import os

from .api import MULTIVIEW_IMAGE_TYPES
from .images import embeddable_texture, texture_png, tinted_png
from .models import make_fbx, make_glb, pad_glb
from .render import VIEWS, render_views
from .tasks import Task

CONTENT_TYPES = {".glb": "model/gltf-binary", ".fbx": "application/octet-stream",
                 ".png": "image/png"}


def content_type(name: str) -> str:
    return CONTENT_TYPES[os.path.splitext(name)[1]]


def make(task: Task, name: str) -> bytes:
    """The named output of `task`; the first request makes it (and its siblings), once."""
    with task.lock:
        if name not in task.files:
            task.files.update(_generate(task, name))
        return task.files[name]


def _generate(task: Task, name: str) -> dict[str, bytes]:
    seed = task.seed()
    if task.kind in MULTIVIEW_IMAGE_TYPES:
        colours = dict.fromkeys(VIEWS, seed)
        if task.kind == "edit_multiview_image":
            for entry in task.input.get("prompts") or []:
                colours[entry["view"]] = f"{seed}\n{entry['prompt']}"
        views = render_views(seed, colours)
        return {f"{view}_view.png": png for view, png in views.items()}
    if name == "generated_image.png":
        image = task.images[0] if task.images else None
        tinted = image and tinted_png(image, task.input.get("prompt") or seed)
        return {name: tinted or render_views(seed, {"front": seed})["front"]}
    if name == "rendered_image.png":
        return {name: texture_png(seed)}
    texture = task.option("texture", True) or task.pbr
    picture = texture and embeddable_texture(_front_image(task))
    if name.endswith(".fbx"):
        return {name: make_fbx(seed, task.faces, texture, picture or None)}
    glb = make_glb(seed, task.faces, texture, task.pbr, picture or None)
    return {name: pad_glb(glb, task.pad_to) if task.pad_to else glb}


def _front_image(task: Task) -> bytes | None:
    """The picture a model wears: its (front) input image, or its multiview's front view."""
    if task.kind == "refine_model":
        return _front_image(task.parent)
    if task.parent is not None:
        return make(task.parent, "front_view.png")
    return task.images[0] if task.images else None
