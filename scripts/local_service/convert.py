"""convert_model: a model task's GLB as another format, reduced, flattened, turned, scaled
and moved as the body asks.

Every step works in the GLB's frame (Y up, front +Z, metres); the writer then puts the
vertices in the file's own frame: FBX by preset, OBJ / USDZ Y up, STL / 3MF Z up.
`export_orientation` names the axis the model's front faces once the file is imported the
standard way into a Z-up world (Blender's, 3ds Max's): see ORIENTATIONS.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from . import fbx, formats, meshops
from .api import CONVERT_DEFAULTS as DEFAULTS
from .decimate import decimated, quad_decimated
from .meshops import Mesh, Scene

QUAD_FORMATS = ("FBX", "OBJ", "USDZ")  # the others store quads as two triangles
# The FBX presets' frames: blender Y up in metres, mixamo Y up in centimetres, 3dsmax
# Z up (front -Y) in centimetres. Blender's FBX importer lands all three the same.
FBX_PRESETS = {
    "blender": fbx.Y_UP_METRES,
    "mixamo": fbx.Frame(unit_cm=1.0),
    "3dsmax": fbx.Frame(up=(2, 1), front=(1, -1), coord=(0, 1), unit_cm=1.0),
}
# export_orientation -> the turn about the up axis (degrees, counter-clockwise seen from
# above) taking the model's front from glTF's +Z (Blender's -Y) to that axis of the Z-up
# world: +x faces +X, -x faces -X, +y faces +Y (away from Blender's front view), -y faces -Y
# (towards it: the source's own facing, unturned).
ORIENTATIONS = {"+x": 90.0, "-x": -90.0, "+y": 180.0, "-y": 0.0}
TEXTURE_FORMATS = ("JPEG", "PNG", "BMP", "DPX", "HDR", "OPEN_EXR", "TARGA", "TIFF", "WEBP")
_TO_Z_UP = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], float)  # glTF's (x, y, z) -> (x, -z, y)


def option(body: dict, name: str):
    value = body.get(name)
    return DEFAULTS[name] if value is None else value


def converted(scene: Scene, body: dict) -> bytes:
    """The file `body` asks for (see README.md, convert_model)."""
    names = option(body, "part_names")
    if names:
        scene = Scene([(n, mesh) for n, mesh in scene.parts if n in names], scene.model)
    quad = option(body, "quad") and body["format"] in QUAD_FORMATS
    limit, polygons = option(body, "face_limit"), None
    if limit and quad:
        scene, polygons = quad_decimated(scene, limit)
    elif limit:
        scene = decimated(scene, limit)
    if polygons is None:
        polygons = {name: meshops.quads(mesh.faces, mesh.positions) if quad
                    else [tuple(face) for face in mesh.faces.tolist()]
                    for name, mesh in scene.parts}
    placement = _placement(scene, body)
    scene = Scene([(name, meshops.transformed(mesh, placement)) for name, mesh in scene.parts],
                  _textures(scene.model, body))
    if option(body, "flatten_bottom"):
        scene = _flattened(scene, float(option(body, "flatten_bottom_threshold")))
    return write_file(scene, polygons, body)


def _placement(scene: Scene, body: dict) -> np.ndarray:
    """Turn to the orientation, scale, then (pivot_to_center_bottom) put the bounding box's
    bottom centre at the origin."""
    angle = math.radians(ORIENTATIONS[option(body, "export_orientation")])
    c, s = math.cos(angle), math.sin(angle)
    matrix = np.eye(4)
    matrix[:3, :3] = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) * float(
        option(body, "scale_factor"))
    if option(body, "pivot_to_center_bottom"):
        moved = scene.merged().positions @ matrix[:3, :3].T
        low, high = moved.min(axis=0), moved.max(axis=0)
        matrix[:3, 3] = -np.array([(low[0] + high[0]) / 2, low[1], (low[2] + high[2]) / 2])
    return matrix


def _flattened(scene: Scene, threshold: float) -> Scene:
    """Vertices within `threshold` (metres) of the lowest point brought down onto it."""
    bottom = scene.merged().positions[:, 1].min()
    parts = []
    for name, mesh in scene.parts:
        positions = mesh.positions.copy()
        positions[positions[:, 1] < bottom + threshold, 1] = bottom
        parts.append((name, Mesh(positions, mesh.faces, mesh.normals, mesh.uvs,
                                 mesh.materials)))
    return Scene(parts, scene.model)


def base_image(model) -> bytes | None:
    """The picture the first textured material wears as its base colour."""
    for material in model.materials:
        texture = (material.get("pbrMetallicRoughness") or {}).get("baseColorTexture")
        if texture is not None and texture.get("index", -1) < len(model.textures):
            source = model.textures[texture["index"]].get("source")
            if source is not None and source < len(model.images):
                return model.images[source][0]
    return None


def texture_side(model) -> int | None:
    """The longer side of the base colour picture, in pixels; None without one."""
    data = base_image(model)
    if data is None:
        return None
    with Image.open(io.BytesIO(data)) as image:
        return max(image.size)


def _encoding(body: dict) -> str:
    """JPEG or PNG: JPEG when asked for (the default, but FBX's is PNG), else PNG; the
    double writes BMP, TIFF, EXR and the rest as PNG."""
    asked = body.get("texture_format") or ("PNG" if body["format"] == "FBX" else "JPEG")
    return "JPEG" if asked == "JPEG" else "PNG"


def _textures(model, body: dict):
    """The model's pictures at most texture_size on their longer side, in the encoding."""
    side, kind = int(option(body, "texture_size")), _encoding(body)
    images = []
    for data, _ in model.images:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            picture = image.convert("RGB") if kind == "JPEG" else image.convert("RGBA")
        picture.thumbnail((side, side))
        out = io.BytesIO()
        picture.save(out, format=kind, quality=90)
        images.append((out.getvalue(), f"image/{kind.lower()}"))
    return type(model)(model.parts, model.materials, model.textures, model.samplers, images,
                       model.extensions)


def _colour(model) -> tuple[int, int, int]:
    for material in model.materials:
        factor = (material.get("pbrMetallicRoughness") or {}).get("baseColorFactor")
        if factor:
            return tuple(round(255 * c) for c in factor[:3])
    return (200, 200, 200)


def write_file(scene: Scene, polygons: dict, body: dict) -> bytes:
    """The file of `body["format"]` (the vertices still in the GLB's frame), as is."""
    kind = body["format"]
    if kind == "GLTF":
        return meshops.write(scene)
    picture = base_image(scene.model)
    texture = picture and (picture, "jpg" if picture[:3] == b"\xff\xd8\xff" else "png")
    z_up = kind in ("STL", "3MF") or (kind == "FBX" and option(body, "fbx_preset") == "3dsmax")
    scale = 100.0 if kind == "FBX" and option(body, "fbx_preset") != "blender" else 1.0
    parts = []
    for name, mesh in scene.parts:
        vertices, normals = mesh.positions * scale, mesh.normals
        if z_up:
            vertices = vertices @ _TO_Z_UP.T
            normals = None if normals is None else normals @ _TO_Z_UP.T
        parts.append(formats.Part(name, vertices, polygons[name], normals, mesh.uvs))
    if kind == "FBX":
        return fbx.scene_fbx([_fbx_mesh(part) for part in parts], "material",
                             _colour(scene.model), texture, FBX_PRESETS[option(body, "fbx_preset")])
    if kind == "USDZ":
        return formats.usdz(parts, texture, _colour(scene.model))
    return {"OBJ": formats.obj, "STL": formats.stl, "3MF": formats.three_mf}[kind](parts)


def _fbx_mesh(part: formats.Part) -> fbx.FbxMesh:
    """Corner normals and UVs, as the FBX writer takes them (a part without: +Y and 0, 0)."""
    corners = [k for polygon in part.polygons for k in polygon]
    normals = part.normals[corners] if part.normals is not None else np.tile(
        [0.0, 1.0, 0.0], (len(corners), 1))
    uvs = part.uvs[corners] * [1, -1] + [0, 1] if part.uvs is not None else np.zeros(
        (len(corners), 2))
    return fbx.FbxMesh(part.name, part.vertices.tolist(), [list(p) for p in part.polygons],
                       normals.tolist(), uvs.tolist())
