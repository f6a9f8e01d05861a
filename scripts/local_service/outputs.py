"""A finished task's files, made on first request and kept: models, previews, pictures."""

from __future__ import annotations

import functools
import json
import os
import struct
import zlib

from . import convert, decimate, mesh_tasks, meshops, segment, stylize
from .api import MODEL_TYPES, MULTIVIEW_IMAGE_TYPES, OWN_MESH_TYPES, POST_TYPES
from .images import embeddable_texture, texture_png, tinted_png
from .models import make_fbx, make_glb, pad_glb
from .render import VIEWS, render_views
from .tasks import Task

CONTENT_TYPES = {".glb": "model/gltf-binary", ".fbx": "application/octet-stream",
                 ".png": "image/png", ".usdz": "model/vnd.usdz+zip", ".obj": "model/obj",
                 ".stl": "model/stl", ".3mf": "model/3mf"}
VERDICT = "rig_check.json"  # a model's rig-check verdict: kept with its files, never served


def content_type(name: str) -> str:
    return CONTENT_TYPES[os.path.splitext(name)[1]]


def make(task: Task, name: str) -> bytes:
    """The named output of `task`; the first request makes it (and its siblings), once."""
    with task.lock:
        if name not in task.files:
            task.files.update(_generate(task, name))
        return task.files[name]


def verdict(model: Task) -> dict:
    """{riggable, topology} of a model task's mesh (see mesh_tasks.verdict), worked out once."""
    return json.loads(make(model, VERDICT))


def model_glb(task: Task) -> bytes:
    """The GLB a model task delivers."""
    return make(task, _glb_name(task))


def parted(task: Task) -> bool:
    """Whether a model task's GLB holds named parts: a segmentation or completion, a
    generation with generate_parts, and a low poly of one of those."""
    if task.kind in ("mesh_segmentation", "mesh_completion"):
        return True
    if task.kind == "highpoly_to_lowpoly":
        return parted(task.parent)
    return task.kind in MODEL_TYPES and task.option("generate_parts") is True


def part_names(task: Task) -> list[str] | None:
    """The part names of a model task's GLB, in order; None for a model without parts."""
    return meshops.read(model_glb(task)).names if parted(task) else None


def _glb_name(task: Task) -> str:
    """A quad model delivers FBX; its GLB twin (the same shape) is made on demand, unserved."""
    return next((name for name in task.outputs().values() if name.endswith(".glb")),
                "model.glb")


def _generate(task: Task, name: str) -> dict[str, bytes]:
    if name == VERDICT:
        glb_name = _glb_name(task)
        glb = task.files.get(glb_name) or _generate(task, glb_name)[glb_name]
        return {VERDICT: json.dumps(mesh_tasks.verdict(glb)).encode(), glb_name: glb}
    if task.kind in OWN_MESH_TYPES:
        glb = _own_mesh(task)
        return {name: pad_glb(glb, task.pad_to) if task.pad_to else glb}
    if task.kind in POST_TYPES:
        return _post(task, name)
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
    auto_size = task.option("auto_size") is True
    if name.endswith(".fbx"):
        return {name: make_fbx(seed, task.faces, texture, picture or None, auto_size)}
    glb = _generated(task, seed, texture, picture or None, auto_size)
    return {name: pad_glb(glb, task.pad_to) if task.pad_to else glb}


def _generated(task: Task, seed: str, texture: bool, picture, auto_size: bool) -> bytes:
    """The generated GLB: smart_low_poly made at twice the faces and decimated to them;
    generate_parts split into named parts."""
    smart = task.option("smart_low_poly") is True
    glb = make_glb(seed, task.faces * (2 if smart else 1), texture, task.pbr, picture,
                   auto_size)
    if not smart and task.option("generate_parts") is not True:
        return glb
    scene = meshops.read(glb)
    if task.option("generate_parts") is True:  # before decimating, which opens UV seams
        scene = segment.segmented(scene)
    if smart:
        scene = decimate.decimated(scene, task.faces)
    return meshops.write(scene)


def _post(task: Task, name: str) -> dict[str, bytes]:
    """Post-processing: the source model's GLB remade (README.md says how)."""
    body = task.input
    scene = meshops.read(model_glb(task.parent))
    if task.kind == "stylize_model":
        return {name: stylize.stylized(scene.merged(), scene.model, body["style"],
                                       body.get("block_size", 80))}
    if task.kind == "convert_model":
        return {name: convert.converted(scene, body)}
    if task.kind == "mesh_segmentation":
        scene = segment.segmented(scene, body.get("segmentation_granularity", "balanced"),
                                  body.get("split_by_connectivity", True))
    elif task.kind == "mesh_completion":
        scene = segment.completed(scene, body.get("part_names"))
    else:
        limit = body.get("face_limit", decimate.DEFAULT_FACE_LIMIT)
        if body.get("quad") is True:
            scene, polygons = decimate.quad_decimated(scene, limit, body.get("part_names"))
            return {"model.fbx": convert.write_file(scene, polygons, {"format": "FBX"}),
                    "model.glb": meshops.write(scene)}
        scene = decimate.decimated(scene, limit, body.get("part_names"))
    return {"model.glb": meshops.write(scene)}


def _own_mesh(task: Task) -> bytes:
    """An import delivers its file as it came; texture, rig and retarget rework the mesh
    they were given (a retarget: its rig's), keeping its topology."""
    if task.kind == "import_model":
        return task.images[0]
    if task.kind == "texture_model":
        text = (task.input.get("texture_prompt") or {}).get("text") or f"{task.seed()}\nretexture"
        if "texture_seed" in task.input:
            text += f"\n{task.input['texture_seed']}"
        picture = next((image for image in task.images if image), None)
        return mesh_tasks.textured(model_glb(task.parent),
                                   (picture and tinted_png(picture, text)) or texture_png(text),
                                   task.input.get("pbr", True))
    rig = task.parent if task.kind == "animate_retarget" else task
    options = (rig.input.get("rig_type", "biped"), rig.input.get("spec"))
    if task.kind == "animate_rig":
        return mesh_tasks.rigged(model_glb(rig.parent), *options)
    return mesh_tasks.rigged(model_glb(rig.parent), *options,
                             task.input.get("animations") or [task.input["animation"]],
                             task.input.get("animate_in_place", False),
                             task.input.get("export_with_geometry", True))


def _front_image(task: Task) -> bytes | None:
    """The picture a model wears: its (front) input image, or its multiview's front view."""
    if task.kind == "refine_model":
        return _front_image(task.parent)
    if task.parent is not None:
        return make(task.parent, "front_view.png")
    return task.images[0] if task.images else None


def hostile(name: str, data: bytes, faults) -> bytes:
    """A deliverable swapped for a hostile file when one is armed: a GLB whose image points
    at a file on the client's disk, a 45-byte FBX whose record claims 4 GB, a 400 KB PNG
    of 20000 x 20000 px."""
    ext = os.path.splitext(name)[1]
    if ext == ".glb" and faults.take("external_uri_glb"):
        json_len = struct.unpack_from("<I", data, 12)[0]
        doc = json.loads(data[20:20 + json_len])
        doc["images"] = [{"uri": "../../../../../../../../etc/hosts"}]
        text = json.dumps(doc).encode()
        text += b" " * (-len(text) % 4)
        rest = data[20 + json_len:]  # the BIN chunk, as it was
        return b"".join((struct.pack("<4sII", b"glTF", 2, 20 + len(text) + len(rest)),
                         struct.pack("<I4s", len(text), b"JSON"), text, rest))
    if ext == ".fbx" and faults.take("bogus_fbx"):
        return (b"Kaydara FBX Binary  \x00\x1a\x00" + struct.pack("<I", 7400)
                + struct.pack("<IIIB", 0xFFFFFFF0, 1, 5, 0) + b"S" + struct.pack("<I", 2**32 - 9))
    if ext == ".png" and faults.take("huge_png"):
        return _huge_png()
    return data


@functools.cache
def _huge_png(side: int = 20000) -> bytes:
    """A grey PNG of side x side px: 400 MB of pixels in about 400 KB."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    packer, row = zlib.compressobj(9), bytes(side + 1)
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))
