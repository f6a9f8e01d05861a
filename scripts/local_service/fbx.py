"""A minimal binary FBX 7.4 writer: meshes, one material, optionally one embedded texture.

Upstream answers quad=true with FBX, so the local service must too; the standard library has
no FBX support, hence this. The layout follows what Blender's and Autodesk's readers expect:
the header magic, a tree of records (FBXHeaderExtension, GlobalSettings, Definitions, Objects,
Connections), then the fixed footer.
"""

from __future__ import annotations

import array
import struct
import sys
import zlib
from dataclasses import dataclass

VERSION = 7400
HEADER = b"Kaydara FBX Binary  \x00\x1a\x00"
_NULL_RECORD = b"\0" * 13  # ends a record's children in 7.4 (32-bit offsets)
# Readers pair these three: the footer id is the one that goes with this file id and time.
_FILE_ID = b"\x28\xb3\x2a\xeb\xb6\x24\xcc\xc2\xbf\xc8\xb0\x2a\xa9\x2b\xfc\xf1"
_CREATION_TIME = "1970-01-01 10:00:00:000"
_FOOTER_ID = b"\xfa\xbc\xab\x09\xd0\xc8\xd4\x66\xb1\x76\xfb\x83\x1c\xf7\x26\x7e"
_FOOTER_MAGIC = b"\xf8\x5a\x8c\x6a\xde\xf5\xd9\x7e\xec\xe9\x0c\xe3\x75\x8f\x29\x0b"
_MATERIAL_ID, _TEXTURE_ID, _VIDEO_ID = range(1001, 1004)
_FIRST_MESH_ID = 2001  # geometry and model ids follow in pairs, one pair per mesh


class Id(int):
    """A 64-bit property (object ids); plain ints are written as 32-bit."""


def _prop(value) -> bytes:
    if isinstance(value, bool):
        return b"C" + bytes((value,))
    if isinstance(value, Id):
        return b"L" + struct.pack("<q", value)
    if isinstance(value, int):
        return b"I" + struct.pack("<i", value)
    if isinstance(value, float):
        return b"D" + struct.pack("<d", value)
    if isinstance(value, str):
        value = value.encode()
        return b"S" + struct.pack("<I", len(value)) + value
    if isinstance(value, bytes):
        return b"R" + struct.pack("<I", len(value)) + value
    if isinstance(value, array.array):
        if sys.byteorder != "little":
            value = array.array(value.typecode, value)
            value.byteswap()
        packed = zlib.compress(value.tobytes(), 1)  # speed over size: made while a client waits
        return value.typecode.encode() + struct.pack("<III", len(value), 1, len(packed)) + packed
    raise TypeError(f"no FBX property type for {type(value).__name__}")


class Node:
    """One FBX record: a name, typed properties and child records."""

    def __init__(self, name: str, *props, children=()):
        self.name, self.props, self.children = name.encode(), props, list(children)

    def encode(self, offset: int) -> bytes:
        """The record as it sits at `offset` in the file (end offsets are absolute)."""
        props = b"".join(_prop(p) for p in self.props)
        start = offset + 13 + len(self.name) + len(props)
        body = bytearray()
        for child in self.children:
            body += child.encode(start + len(body))
        if self.children or not self.props:
            body += _NULL_RECORD
        end = start + len(body)
        return (struct.pack("<IIIB", end, len(self.props), len(props), len(self.name))
                + self.name + props + bytes(body))


def _p(name: str, kind: str, label: str, flags: str, *values) -> Node:
    """A Properties70 entry."""
    return Node("P", name, kind, label, flags, *values)


def _layer_element(kind: str, mapping: str, reference: str, *data: Node, name: str = "") -> Node:
    return Node(kind, 0, children=[
        Node("Version", 101), Node("Name", name), Node("MappingInformationType", mapping),
        Node("ReferenceInformationType", reference), *data])


@dataclass
class Frame:
    """The coordinate system a file declares: (axis, sign) for up, front and coord (X), and
    how many centimetres one unit is. Blender's and Autodesk's readers convert from it."""
    up: tuple[int, int] = (1, 1)
    front: tuple[int, int] = (2, 1)
    coord: tuple[int, int] = (0, 1)
    unit_cm: float = 100.0


Y_UP_METRES = Frame()  # the glTF models' frame: Y up, front +Z, 1 unit = 1 m


@dataclass
class FbxMesh:
    """One mesh object: `polygons` index `vertices`; `normals` and `uvs` have one entry per
    polygon corner, in polygon order."""
    name: str
    vertices: list
    polygons: list
    normals: list
    uvs: list


def _header(frame: Frame) -> list[Node]:
    stamp = [Node(label, value) for label, value in (
        ("Version", 1000), ("Year", 1970), ("Month", 1), ("Day", 1), ("Hour", 10),
        ("Minute", 0), ("Second", 0), ("Millisecond", 0))]
    creator = "ModelStream local service"
    axes = []
    for label, (axis, sign) in (("Up", frame.up), ("Front", frame.front),
                                ("Coord", frame.coord)):
        axes += [_p(f"{label}Axis", "int", "Integer", "", axis),
                 _p(f"{label}AxisSign", "int", "Integer", "", sign)]
    return [
        Node("FBXHeaderExtension", children=[
            Node("FBXHeaderVersion", 1003), Node("FBXVersion", VERSION),
            Node("CreationTimeStamp", children=stamp), Node("Creator", creator)]),
        Node("FileId", _FILE_ID), Node("CreationTime", _CREATION_TIME), Node("Creator", creator),
        Node("GlobalSettings", children=[Node("Version", 1000), Node("Properties70", children=[
            *axes,
            _p("OriginalUpAxis", "int", "Integer", "", frame.up[0]),
            _p("OriginalUpAxisSign", "int", "Integer", "", frame.up[1]),
            _p("UnitScaleFactor", "double", "Number", "", frame.unit_cm),
            _p("OriginalUnitScaleFactor", "double", "Number", "", frame.unit_cm)])]),
        Node("Documents", children=[Node("Count", 1), Node("Document", Id(1), "", "Scene",
                                                             children=[Node("RootNode", Id(0))])]),
        Node("References"),
    ]


def mesh_fbx(name: str, vertices, polygons, normals, uvs, colour,
             texture: tuple[bytes, str] | None = None) -> bytes:
    """A binary FBX holding one mesh object, in the glTF models' frame."""
    return scene_fbx([FbxMesh(name, vertices, polygons, normals, uvs)], f"{name}_material",
                     colour, texture)


def _geometry(mesh: FbxMesh, geometry_id: int) -> Node:
    corners = array.array("i")
    for polygon in mesh.polygons:
        corners.extend(polygon[:-1])
        corners.append(~polygon[-1])  # a negative index closes the polygon
    return Node("Geometry", Id(geometry_id), f"{mesh.name}\x00\x01Geometry", "Mesh", children=[
        Node("Properties70"), Node("GeometryVersion", 124),
        Node("Vertices", array.array("d", [c for v in mesh.vertices for c in v])),
        Node("PolygonVertexIndex", corners),
        _layer_element("LayerElementNormal", "ByPolygonVertex", "Direct",
                       Node("Normals", array.array("d", [c for n in mesh.normals for c in n]))),
        _layer_element("LayerElementUV", "ByPolygonVertex", "IndexToDirect",
                       Node("UV", array.array("d", [c for uv in mesh.uvs for c in uv])),
                       Node("UVIndex", array.array("i", range(len(mesh.uvs)))), name="UVMap"),
        _layer_element("LayerElementMaterial", "AllSame", "IndexToDirect",
                       Node("Materials", array.array("i", [0]))),
        Node("Layer", 0, children=[Node("Version", 100), *(
            Node("LayerElement", children=[Node("Type", kind), Node("TypedIndex", 0)])
            for kind in ("LayerElementNormal", "LayerElementUV", "LayerElementMaterial"))]),
    ])


def scene_fbx(meshes: list[FbxMesh], material_name: str, colour,
              texture: tuple[bytes, str] | None = None, frame: Frame = Y_UP_METRES) -> bytes:
    """A binary FBX of one mesh object per FbxMesh, named after it, all wearing one material:
    `colour` its 0-255 RGB, `texture` (PNG or JPEG bytes, file extension) embedded and wired
    to its diffuse colour. `frame` is what GlobalSettings declares the vertices to be in."""
    objects, links = [], []
    for i, mesh in enumerate(meshes):
        geometry_id, model_id = _FIRST_MESH_ID + 2 * i, _FIRST_MESH_ID + 2 * i + 1
        objects += [_geometry(mesh, geometry_id), Node(
            "Model", Id(model_id), f"{mesh.name}\x00\x01Model", "Mesh", children=[
                Node("Version", 232), Node("Properties70"), Node("Shading", True),
                Node("Culling", "CullingOff")])]
        links += [("OO", model_id, 0), ("OO", geometry_id, model_id),
                  ("OO", _MATERIAL_ID, model_id)]
    rgb = [c / 255 for c in colour]
    objects.append(Node("Material", Id(_MATERIAL_ID), f"{material_name}\x00\x01Material", "",
                        children=[Node("Version", 102), Node("ShadingModel", "phong"),
                                  Node("MultiLayer", 0), Node("Properties70", children=[
                                      _p("DiffuseColor", "Color", "", "A", *rgb),
                                      _p("DiffuseFactor", "Number", "", "A", 1.0)])]))
    if texture:
        data, ext = texture
        filename = f"base_color.{ext}"
        objects += [
            Node("Video", Id(_VIDEO_ID), "base_color\x00\x01Video", "Clip", children=[
                Node("Type", "Clip"), Node("Properties70", children=[
                    _p("Path", "KString", "XRefUrl", "", filename)]),
                Node("UseMipMap", 0), Node("Filename", filename),
                Node("RelativeFilename", filename), Node("Content", data)]),
            Node("Texture", Id(_TEXTURE_ID), "base_color\x00\x01Texture", "", children=[
                Node("Type", "TextureVideoClip"), Node("Version", 202),
                Node("TextureName", "base_color\x00\x01Texture"),
                Node("Media", "base_color\x00\x01Video"), Node("FileName", filename),
                Node("RelativeFilename", filename)]),
        ]
        links += [("OP", _TEXTURE_ID, _MATERIAL_ID, "DiffuseColor"),
                  ("OO", _VIDEO_ID, _TEXTURE_ID)]
    counts = {"GlobalSettings": 1, "Model": len(meshes), "Geometry": len(meshes),
              "Material": 1}
    if texture:
        counts.update(Texture=1, Video=1)
    definitions = Node("Definitions", children=[
        Node("Version", 100), Node("Count", sum(counts.values())),
        *(Node("ObjectType", kind, children=[Node("Count", count)])
          for kind, count in counts.items())])
    connections = Node("Connections", children=[
        Node("C", kind, Id(src), Id(dst), *extra) for kind, src, dst, *extra in links])

    out = bytearray(HEADER + struct.pack("<I", VERSION))
    for node in (*_header(frame), definitions, Node("Objects", children=objects), connections):
        out += node.encode(len(out))
    out += _NULL_RECORD + _FOOTER_ID + b"\0" * 4
    out += b"\0" * (16 - len(out) % 16)  # a full 16 when already aligned, as the SDK writes
    out += struct.pack("<I", VERSION) + b"\0" * 120 + _FOOTER_MAGIC
    return bytes(out)
