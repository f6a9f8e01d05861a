"""The models a task delivers: GLB written by trimesh, binary FBX for quad=true.

Both wear the prompt's texture, or the task's input picture, when texture is on.
"""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import trimesh
from PIL import Image
from trimesh.visual.material import PBRMaterial

from . import fbx, meshops
from .images import MAX_TEXTURE_SIDE, image_info, metal_rough_image, texture_image, texture_png
from .robot import MIN_ROBOT_FACES, is_robot, real_height, robot_mesh, sized
from .shapes import (
    DEFAULT_FACES,
    MAX_FACES,
    MIN_FACES,
    build_mesh,
    grid,
    model_name,
    palette,
    quad_mesh,
    shape,
)


def triangles(prompt: str, face_limit: int, textured: bool, auto_size: bool = False):
    """(family, positions, normals, uvs, indices) of the prompt's model: a robot for a
    robot prompt (given faces enough for its six parts), else its procedural shape;
    auto_size scales it to its real-world height in metres (robot.real_height)."""
    faces = min(MAX_FACES, max(MIN_FACES, int(face_limit)))
    if is_robot(prompt) and faces >= MIN_ROBOT_FACES:
        family = "robot"
        positions, normals, uvs, indices = robot_mesh(faces, textured)
    else:
        family, position, wraps_v, aspect = shape(prompt, faces)
        nu, nv = grid(faces, aspect, 0 if wraps_v else 1)
        positions, normals, uvs, indices = build_mesh(position, wraps_v, nu, nv, textured)
    positions = np.array(positions, dtype=np.float64)
    if auto_size:
        positions = sized(positions, real_height(prompt, family))
    return family, positions, np.array(normals), np.array(uvs), np.array(indices)


def make_glb(prompt: str, face_limit: int = DEFAULT_FACES, texture: bool = True,
             pbr: bool = False, picture: bytes | None = None, auto_size: bool = False) -> bytes:
    """A glTF 2.0 binary model for `prompt` with close to `face_limit` triangles.

    pbr=True implies a texture (as upstream does) and adds a metallic-roughness map.
    `picture` (see images.embeddable_texture) replaces the generated base colour, as an
    image-to-model result wears its input picture.
    """
    textured = texture or pbr
    family, positions, normals, uvs, indices = triangles(prompt, face_limit, textured,
                                                         auto_size)
    name = model_name(prompt)
    material = PBRMaterial(name=f"{name}_material", metallicFactor=0.6 if pbr else 0.0,
                           roughnessFactor=0.35 if pbr else 0.8)
    if textured:
        material.baseColorTexture = _wearable(picture) or texture_image(prompt)
        if pbr:
            material.metallicRoughnessTexture = metal_rough_image()
    else:
        material.baseColorFactor = [c / 255 for c in palette(prompt)[0]] + [1.0]
    mesh = trimesh.Trimesh(
        vertices=positions, faces=indices.reshape(-1, 3),
        vertex_normals=normals, process=False,
        visual=trimesh.visual.TextureVisuals(uv=uvs if textured else None,
                                             material=material),
        metadata={"modelstream_prompt": prompt, "modelstream_shape": family})
    scene = trimesh.Scene()
    scene.add_geometry(mesh, node_name=name, geom_name=name)
    return scene.export(file_type="glb")


def _wearable(picture: bytes | None) -> Image.Image | None:
    """The picture loaded as it is (so trimesh keeps a JPEG a JPEG), no larger than a
    texture needs to be."""
    if not picture:
        return None
    image = Image.open(io.BytesIO(picture))
    image.load()
    if max(image.size) > MAX_TEXTURE_SIDE:
        image.thumbnail((MAX_TEXTURE_SIDE, MAX_TEXTURE_SIDE))
    return image


def _chunks(data: bytes) -> tuple[dict, bytes]:
    """(JSON document, BIN chunk) of a GLB 2.0 with its JSON chunk first."""
    magic, version, _ = struct.unpack_from("<4sII", data)
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    if magic != b"glTF" or version != 2 or json_type != b"JSON":
        raise ValueError("not a GLB 2.0 with its JSON chunk first")
    doc = json.loads(data[20:20 + json_len])
    bin_at = 20 + json_len
    bin_len, bin_type = struct.unpack_from("<I4s", data, bin_at)
    if bin_type != b"BIN\0" or doc.get("buffers", [{}])[0].get("uri") is not None:
        raise ValueError("the GLB has no BIN chunk for buffer 0")
    return doc, data[bin_at + 8:bin_at + 8 + bin_len]


def pad_glb(data: bytes, size: int) -> bytes:
    """The same GLB grown to at least `size` bytes, for download tests: zeros appended to its
    BIN chunk and counted in buffers[0].byteLength (no view uses them), so it stays a valid
    glTF that any importer reads. A GLB already that large comes back unchanged."""
    doc, blob = _chunks(data)
    extra = size - len(data)
    if extra <= 0:
        return data
    blob += bytes(extra + -extra % 4)
    doc["buffers"][0]["byteLength"] = len(blob)
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    return b"".join((
        struct.pack("<4sII", b"glTF", 2, 28 + len(text) + len(blob)),
        struct.pack("<I4s", len(text), b"JSON"), text,
        struct.pack("<I4s", len(blob), b"BIN\0"), blob,
    ))


def corrupt_glb(data: bytes) -> bytes:
    """Keep the GLB header and magic but spoil the JSON chunk, so only a real parse notices."""
    spoiled = bytearray(data)
    json_len = struct.unpack_from("<I", data, 12)[0]
    spoiled[20:20 + json_len] = b"#" * json_len
    return bytes(spoiled)


def make_fbx(prompt: str, face_limit: int = DEFAULT_FACES, texture: bool = True,
             picture: bytes | None = None, auto_size: bool = False) -> bytes:
    """A binary FBX quad model, what upstream returns for quad=true (a robot: its
    triangles paired into quads)."""
    if is_robot(prompt) and face_limit >= MIN_ROBOT_FACES:
        _, positions, normals, uvs, indices = triangles(prompt, 2 * face_limit, True)
        polygons = meshops.quads(indices.reshape(-1, 3), positions)
        name, vertices = model_name(prompt), positions.tolist()
        normals = [normals[k].tolist() for polygon in polygons for k in polygon]
        uvs = [uvs[k].tolist() for polygon in polygons for k in polygon]
    else:
        name, vertices, polygons, normals, uvs = quad_mesh(prompt, face_limit)
    if auto_size:
        family = "robot" if is_robot(prompt) else shape(prompt, face_limit)[0]
        vertices = sized(np.array(vertices, float), real_height(prompt, family)).tolist()
    image = (picture or texture_png(prompt)) if texture else None
    return fbx.mesh_fbx(name, vertices, polygons, normals, uvs, palette(prompt)[0],
                        image and (image, "jpg" if image_info(image)[0] == "jpeg" else "png"))
