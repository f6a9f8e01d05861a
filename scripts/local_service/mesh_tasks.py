"""What the own-mesh tasks make of the GLB they are given: a rig-check verdict, a retextured
model with the same topology, a rigged (and animated) model. Pure functions, bytes to bytes.
"""

from __future__ import annotations

import numpy as np

from . import gltf, skin
from .images import metal_rough_image, png_bytes

# The verdict comes from the proportions, so a test picks it with the mesh it imports: a
# model at least as tall as it is wide is a biped, one at least a quarter as tall as wide a
# quadruped, and anything flatter (a slab, a rug) is not riggable.
NOT_RIGGABLE = {"riggable": False, "topology": "others"}
# Which axes a vertex is projected on, by the axis its normal points along most.
_BOX_AXES = np.array([[2, 1], [0, 2], [0, 1]])


def verdict(glb: bytes) -> dict:
    """The rig check's output for a model: {riggable, topology}, as apiv3 words it (the SDK
    reads `topology` as `rig_type`)."""
    positions = gltf.load(glb).positions
    extent = np.ptp(positions, axis=0)
    height, width = extent[1], max(extent[0], extent[2])
    if height >= width:
        return {"riggable": True, "topology": skin.BIPED}
    if 4 * height >= width:
        return {"riggable": True, "topology": "quadruped"}
    return dict(NOT_RIGGABLE)


def textured(glb: bytes, picture: bytes, pbr: bool) -> bytes:
    """The same triangles wearing `picture` (PNG) as base colour, plus a metallic-roughness
    map with pbr; a part without UVs gets a box projection. Vertex and index counts are
    those of the source, part by part."""
    model = gltf.load(glb)
    out = gltf.Builder()
    sampler = out.add("samplers", {"magFilter": 9729, "minFilter": 9987,
                                   "wrapS": 10497, "wrapT": 10497})
    maps = [picture] + ([png_bytes(metal_rough_image())] if pbr else [])
    for data in maps:
        image = out.add("images", {"bufferView": out.view(data), "mimeType": "image/png"})
        out.add("textures", {"sampler": sampler, "source": image})
    material = {"name": "retextured", "pbrMetallicRoughness": {
        "baseColorTexture": {"index": 0}, "metallicFactor": 1.0 if pbr else 0.0,
        "roughnessFactor": 1.0 if pbr else 0.8}}
    if pbr:
        material["pbrMetallicRoughness"]["metallicRoughnessTexture"] = {"index": 1}
    out.add("materials", material)
    for part in model.parts:
        part.material = 0
        if part.uvs is None:
            part.uvs = box_uvs(part)
    model.materials = [material]
    mesh = out.add("meshes", {"name": "mesh", "primitives": out.primitives(model)})
    out.doc["scene"] = out.add("scenes", {"nodes": [out.add("nodes", {"name": "mesh",
                                                                       "mesh": mesh})]})
    return out.glb()


def box_uvs(part: gltf.Part) -> np.ndarray:
    """UVs by box projection: each vertex onto the two axes across its normal, scaled to
    the part's bounds. Seams stay where they fall; no vertex is split."""
    normals = part.normals if part.normals is not None else vertex_normals(part)
    low = part.positions.min(axis=0)
    scaled = (part.positions - low) / np.maximum(np.ptp(part.positions, axis=0), 1e-9)
    uv = np.take_along_axis(scaled, _BOX_AXES[np.abs(normals).argmax(axis=1)], axis=1)
    uv[:, 1] = 1 - uv[:, 1]  # glTF's V runs down the image
    return uv.astype(np.float32)


def vertex_normals(part: gltf.Part) -> np.ndarray:
    """Area-weighted normals from the triangles, for a part that came without them."""
    corners = part.positions[part.indices.reshape(-1, 3)]
    faces = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(part.positions)
    for k in range(3):
        np.add.at(normals, part.indices[k::3], faces)
    return normals


def rigged(glb: bytes, rig_type: str, spec: str, animations=(), in_place: bool = False,
           geometry: bool = True) -> bytes:
    """The model skinned to a skeleton of `rig_type`, with one animation per preset."""
    model = gltf.load(glb)
    joints = skin.skeleton(model.positions, rig_type, spec)
    return skin.rigged_glb(model, joints, animations, in_place, geometry)
