"""The files convert_model writes besides GLB and FBX: OBJ (text), binary STL, 3MF (a zip
of XML, geometry only) and USDZ (pxr's own writer and packager).

Each takes named parts whose polygons index their vertices, already in the file's frame:
OBJ and USDZ Y up (their importers turn Y up into Z up), STL and 3MF Z up (a print bed's).
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zipfile
from dataclasses import dataclass

import numpy as np
from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade, UsdUtils, Vt


@dataclass
class Part:
    """One named mesh of the file: vertices, polygons (3 or 4 corners), and per vertex an
    optional normal and UV."""
    name: str
    vertices: np.ndarray
    polygons: list
    normals: np.ndarray | None = None
    uvs: np.ndarray | None = None


def _triangles(polygons: list) -> np.ndarray:
    out = []
    for polygon in polygons:
        out += [(polygon[0], polygon[k], polygon[k + 1]) for k in range(1, len(polygon) - 1)]
    return np.array(out, np.int64).reshape(-1, 3)


def obj(parts: list[Part]) -> bytes:
    """Wavefront OBJ: one `o` per part, positions, UVs and normals; quads stay quads."""
    lines, base = ["# ModelStream local service"], 0
    for part in parts:
        lines.append(f"o {part.name}")
        lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in part.vertices]
        if part.uvs is not None:
            lines += [f"vt {u:.6f} {1 - v:.6f}" for u, v in part.uvs]  # OBJ's V runs up
        if part.normals is not None:
            lines += [f"vn {x:.6f} {y:.6f} {z:.6f}" for x, y, z in part.normals]
        uv, normal = part.uvs is not None, part.normals is not None
        for polygon in part.polygons:
            corners = []
            for k in polygon:
                index = base + k + 1
                corners.append(f"{index}/{index if uv else ''}/{index}" if normal
                               else f"{index}/{index}" if uv else f"{index}")
            lines.append("f " + " ".join(corners))
        base += len(part.vertices)
    return ("\n".join(lines) + "\n").encode()


def stl(parts: list[Part]) -> bytes:
    """Binary STL: every triangle with its facet normal; no names, colours or textures."""
    records = []
    for part in parts:
        corners = part.vertices[_triangles(part.polygons)]
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        records.append(np.concatenate([normals[:, None], corners], axis=1).reshape(-1, 12))
    facets = np.concatenate(records).astype("<f4") if records else np.zeros((0, 12), "<f4")
    body = b"".join(row.tobytes() + b"\0\0" for row in facets)
    return b"ModelStream local service".ljust(80, b" ") + struct.pack("<I", len(facets)) + body


_3MF_TYPES = ('<?xml version="1.0" encoding="UTF-8"?>\n<Types xmlns="http://schemas.openxmlformats'
              '.org/package/2006/content-types"><Default Extension="rels" ContentType="application/'
              'vnd.openxmlformats-package.relationships+xml"/><Default Extension="model" '
              'ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/></Types>')
_3MF_RELS = ('<?xml version="1.0" encoding="UTF-8"?>\n<Relationships xmlns="http://schemas.'
             'openxmlformats.org/package/2006/relationships"><Relationship Target="/3D/3dmodel'
             '.model" Id="rel0" Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/'
             '3dmodel"/></Relationships>')


def three_mf(parts: list[Part]) -> bytes:
    """3MF core: one object per part (named), triangles only, in metres."""
    objects, items = [], []
    for number, part in enumerate(parts, start=1):
        vertices = "".join(f'<vertex x="{x:.6f}" y="{y:.6f}" z="{z:.6f}"/>'
                           for x, y, z in part.vertices)
        triangles = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>'
                            for a, b, c in _triangles(part.polygons).tolist())
        name = part.name.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
        objects.append(f'<object id="{number}" name="{name}" type="model"><mesh><vertices>'
                       f'{vertices}</vertices><triangles>{triangles}</triangles></mesh></object>')
        items.append(f'<item objectid="{number}"/>')
    model = ('<?xml version="1.0" encoding="UTF-8"?>\n<model unit="meter" xml:lang="en-US" '
             'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02"><resources>'
             f'{"".join(objects)}</resources><build>{"".join(items)}</build></model>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", _3MF_TYPES)
        package.writestr("_rels/.rels", _3MF_RELS)
        package.writestr("3D/3dmodel.model", model)
    return out.getvalue()


def usdz(parts: list[Part], texture: tuple[bytes, str] | None, colour) -> bytes:
    """USDZ: a Y-up stage in metres, one Mesh prim per part under /Model, a
    UsdPreviewSurface wearing the texture (packed beside the layer) or the colour."""
    with tempfile.TemporaryDirectory(prefix="modelstream-usdz-") as folder:
        layer = os.path.join(folder, "model.usdc")
        stage = Usd.Stage.CreateNew(layer)
        UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
        UsdGeom.SetStageMetersPerUnit(stage, 1.0)
        root = UsdGeom.Xform.Define(stage, "/Model")
        stage.SetDefaultPrim(root.GetPrim())
        material = _usd_material(stage, folder, texture, colour)
        for part in parts:
            mesh = UsdGeom.Mesh.Define(stage, f"/Model/{_prim_name(part.name)}")
            mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(part.vertices.astype(np.float32)))
            mesh.CreateFaceVertexCountsAttr([len(polygon) for polygon in part.polygons])
            mesh.CreateFaceVertexIndicesAttr([k for polygon in part.polygons for k in polygon])
            mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
            if part.normals is not None:
                mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(part.normals.astype(np.float32)))
                mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
            if part.uvs is not None:
                st = UsdGeom.PrimvarsAPI(mesh).CreatePrimvar(
                    "st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex)
                flipped = part.uvs.astype(np.float32) * [1, -1] + [0, 1]  # USD's V runs up
                st.Set(Vt.Vec2fArray.FromNumpy(flipped.astype(np.float32)))
            UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(material)
        stage.GetRootLayer().Save()
        package = os.path.join(folder, "model.usdz")
        if not UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(layer), package):
            raise RuntimeError("pxr could not package the USDZ")
        with open(package, "rb") as file:
            return file.read()


def _usd_material(stage, folder: str, texture, colour) -> UsdShade.Material:
    material = UsdShade.Material.Define(stage, "/Model/Looks/material")
    surface = UsdShade.Shader.Define(stage, "/Model/Looks/material/surface")
    surface.CreateIdAttr("UsdPreviewSurface")
    surface.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(0.8)
    material.CreateSurfaceOutput().ConnectToSource(surface.ConnectableAPI(), "surface")
    if not texture:
        surface.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).Set(
            Gf.Vec3f(*(c / 255 for c in colour)))
        return material
    data, ext = texture
    with open(os.path.join(folder, f"base_color.{ext}"), "wb") as file:
        file.write(data)
    reader = UsdShade.Shader.Define(stage, "/Model/Looks/material/st")
    reader.CreateIdAttr("UsdPrimvarReader_float2")
    reader.CreateInput("varname", Sdf.ValueTypeNames.Token).Set("st")
    image = UsdShade.Shader.Define(stage, "/Model/Looks/material/base_color")
    image.CreateIdAttr("UsdUVTexture")
    image.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(f"base_color.{ext}")
    image.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(
        reader.ConnectableAPI(), "result")
    image.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
    surface.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(
        image.ConnectableAPI(), "rgb")
    return material


def _prim_name(name: str) -> str:
    """A USD prim name: letters, digits and underscores, not starting with a digit."""
    clean = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "part"
    return clean if not clean[0].isdigit() else f"_{clean}"
