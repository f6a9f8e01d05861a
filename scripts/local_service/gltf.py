"""GLB read and written by hand (json, struct, numpy): trimesh cannot write skins or
animations, and its loader may merge vertices, where a retextured or rigged model must keep
the topology it was given.

`load` bakes every triangle primitive of the default scene into world space, one `Part`
each, and keeps the materials with their embedded images; `Builder` writes a new GLB.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"glTF"
# Geometry this reader cannot decode; a GLB that requires one is refused when imported.
UNREADABLE = ("KHR_draco_mesh_compression", "EXT_meshopt_compression", "KHR_mesh_quantization")
_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32,
           5126: np.float32}
_CODES = {np.dtype(dtype): code for code, dtype in _DTYPES.items()}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_TRIANGLES = 4
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963


@dataclass
class Part:
    """One triangle primitive in world space."""
    positions: np.ndarray  # (n, 3) float32
    indices: np.ndarray  # (m,) uint32, m a multiple of 3
    normals: np.ndarray | None = None  # (n, 3) float32
    uvs: np.ndarray | None = None  # (n, 2) float32
    material: int | None = None
    name: str | None = None  # the node's (else the mesh's) name: a part's name


@dataclass
class Model:
    parts: list[Part]
    materials: list = field(default_factory=list)  # glTF material objects, as they came
    textures: list = field(default_factory=list)
    samplers: list = field(default_factory=list)
    images: list = field(default_factory=list)  # (bytes, mime type)
    extensions: list = field(default_factory=list)  # extensionsUsed the materials may need

    @property
    def positions(self) -> np.ndarray:
        return np.concatenate([part.positions for part in self.parts])


def chunks(data: bytes) -> tuple[dict, bytes]:
    """(JSON document, BIN chunk or b"") of a GLB 2.0; ValueError says what is wrong."""
    if len(data) < 20 or data[:4] != MAGIC:
        raise ValueError("the file is not a GLB (no glTF magic)")
    version, total = struct.unpack_from("<II", data, 4)
    if version != 2 or total != len(data):
        raise ValueError(f"the GLB header says version {version}, {total} bytes; expected "
                         f"version 2, {len(data)} bytes")
    json_len, kind = struct.unpack_from("<I4s", data, 12)
    if kind != b"JSON" or 20 + json_len > len(data):
        raise ValueError("the GLB does not start with a whole JSON chunk")
    try:
        doc = json.loads(data[20:20 + json_len])
    except ValueError as exc:
        raise ValueError(f"the GLB's JSON chunk does not parse: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("asset"), dict):
        raise ValueError("the GLB's JSON is not a glTF document (no asset)")
    at = 20 + json_len
    if at + 8 > len(data):
        return doc, b""
    bin_len, kind = struct.unpack_from("<I4s", data, at)
    if kind != b"BIN\0" or at + 8 + bin_len > len(data):
        raise ValueError("the GLB's second chunk is not a whole BIN chunk")
    return doc, data[at + 8:at + 8 + bin_len]


def check_glb(data: bytes, limit: int) -> None:
    """ValueError unless `data` is a model the service can import: a GLB of at most `limit`
    bytes holding a triangle mesh it can read."""
    if len(data) > limit:
        raise ValueError(f"the model is larger than {limit // (1024 * 1024)} MB")
    load(data)


def load(data: bytes) -> Model:
    """The triangle meshes of a GLB's default scene, baked into world space; ValueError for
    a document that does not hold together (a dangling index, a missing field)."""
    doc, blob = chunks(data)
    try:
        return _model(doc, blob)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ValueError(f"the GLB's glTF document does not hold together ({exc!r})") from None


def _model(doc: dict, blob: bytes) -> Model:
    unreadable = sorted(set(doc.get("extensionsRequired") or ()) & set(UNREADABLE))
    if unreadable:
        raise ValueError(f"the GLB requires {', '.join(unreadable)}, which the local "
                         "service cannot decode")
    reader = _Reader(doc, blob)
    parts = []
    for node, world in reader.instances():
        mesh = doc["meshes"][node["mesh"]]
        name = node.get("name") or mesh.get("name")
        for primitive in mesh.get("primitives", ()):
            if primitive.get("mode", _TRIANGLES) == _TRIANGLES:
                parts.append(reader.part(primitive, world, name))
    if not parts:
        raise ValueError("the GLB holds no triangle mesh")
    images = [reader.image(image) for image in doc.get("images", ())]
    keep = all(image is not None for image in images)
    return Model(parts, doc.get("materials", []) if keep else [],
                 doc.get("textures", []) if keep else [], doc.get("samplers", []) if keep else [],
                 images if keep else [], doc.get("extensionsUsed", []) if keep else [])


class _Reader:
    def __init__(self, doc: dict, blob: bytes):
        self.doc, self.blob = doc, blob

    def instances(self):
        """(node, world matrix) of every node with a mesh, from the default scene's roots."""
        nodes = self.doc.get("nodes", [])
        scenes = self.doc.get("scenes")
        if scenes:
            roots = scenes[self.doc.get("scene", 0)].get("nodes", [])
        else:
            children = {c for node in nodes for c in node.get("children", ())}
            roots = [i for i in range(len(nodes)) if i not in children]
        # Depth first in document order, so parts come back in the order they were written.
        stack, seen = [(i, np.eye(4)) for i in reversed(roots)], set()
        while stack:
            index, parent = stack.pop()
            if index in seen:  # a node is visited once, even where children loop
                continue
            seen.add(index)
            node = nodes[index]
            world = parent @ _local(node)
            if "mesh" in node:
                yield node, world
            stack += [(child, world) for child in reversed(node.get("children", ()))]

    def accessor(self, index: int) -> np.ndarray:
        """An accessor as a (count, width) array; normalized integers scaled to [0, 1]."""
        acc = self.doc["accessors"][index]
        if "sparse" in acc:
            raise ValueError("sparse accessors are not supported by the local service")
        dtype, width = np.dtype(_DTYPES[acc["componentType"]]), _WIDTH[acc["type"]]
        count = acc["count"]
        if "bufferView" not in acc:
            return np.zeros((count, width), np.float32)
        view = self.doc["bufferViews"][acc["bufferView"]]
        if view.get("buffer", 0) != 0 or "uri" in self.doc["buffers"][0]:
            raise ValueError("the GLB keeps geometry outside its BIN chunk")
        size = dtype.itemsize * width
        stride = view.get("byteStride") or size
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        end = start + stride * (count - 1) + size if count else start
        if end > view.get("byteOffset", 0) + view["byteLength"] or end > len(self.blob):
            raise ValueError(f"accessor {index} runs past its buffer")
        out = np.ndarray((count, width), dtype, buffer=self.blob, offset=start,
                         strides=(stride, dtype.itemsize)).copy()
        if acc.get("normalized") and dtype.kind in "iu":
            return out.astype(np.float32) / np.iinfo(dtype).max
        return out

    def part(self, primitive: dict, world: np.ndarray, name: str | None = None) -> Part:
        attributes = primitive.get("attributes", {})
        if "POSITION" not in attributes:
            raise ValueError("a mesh primitive has no POSITION")
        local = self.accessor(attributes["POSITION"]).astype(np.float64)
        positions = local @ world[:3, :3].T + world[:3, 3]
        if "indices" in primitive:
            indices = self.accessor(primitive["indices"]).reshape(-1).astype(np.uint32)
        else:
            indices = np.arange(len(positions), dtype=np.uint32)
        if len(indices) % 3 or (len(indices) and indices.max() >= len(positions)):
            raise ValueError("a mesh primitive's indices do not make whole triangles")
        normals = uvs = None
        if "NORMAL" in attributes:
            normals = self.accessor(attributes["NORMAL"]) @ np.linalg.inv(world[:3, :3])
            normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
            normals = normals.astype(np.float32)
        if "TEXCOORD_0" in attributes:
            uvs = self.accessor(attributes["TEXCOORD_0"]).astype(np.float32)
        return Part(positions.astype(np.float32), indices, normals, uvs,
                    primitive.get("material"), name if isinstance(name, str) else None)

    def image(self, image: dict) -> tuple[bytes, str] | None:
        """An embedded image's (bytes, mime); None for one kept outside the file."""
        mime = image.get("mimeType", "image/png")
        if "bufferView" in image:
            view = self.doc["bufferViews"][image["bufferView"]]
            start = view.get("byteOffset", 0)
            return self.blob[start:start + view["byteLength"]], mime
        uri = image.get("uri", "")
        if uri.startswith("data:") and ";base64," in uri:
            header, payload = uri[5:].split(";base64,", 1)
            return base64.b64decode(payload), header or mime
        return None


def _local(node: dict) -> np.ndarray:
    """A node's local matrix, from `matrix` (column-major) or translation / rotation / scale."""
    if "matrix" in node:
        return np.array(node["matrix"], float).reshape(4, 4).T
    x, y, z, w = node.get("rotation", (0, 0, 0, 1))
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * np.array(node.get("scale", (1, 1, 1)), float)
    matrix[:3, 3] = node.get("translation", (0, 0, 0))
    return matrix


class Builder:
    """A GLB under construction: buffer views and accessors appended to one BIN chunk."""

    def __init__(self):
        self.doc: dict = {"asset": {"version": "2.0", "generator": "ModelStream local service"},
                          "bufferViews": [], "accessors": []}
        self.blob = bytearray()

    def view(self, data: bytes, target: int | None = None) -> int:
        self.blob += bytes(-len(self.blob) % 4)
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target:
            view["target"] = target
        self.blob += data
        self.doc["bufferViews"].append(view)
        return len(self.doc["bufferViews"]) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None,
                 bounds: bool = False) -> int:
        """An accessor over `array` ((count, width) or (count,)); `bounds` adds min / max,
        which POSITION and animation inputs must have."""
        array = np.ascontiguousarray(array)
        flat = array.reshape(len(array), -1)
        acc = {"bufferView": self.view(array.tobytes(), target),
               "componentType": _CODES[array.dtype], "count": len(array), "type": kind}
        if bounds:
            acc["min"], acc["max"] = flat.min(axis=0).tolist(), flat.max(axis=0).tolist()
        self.doc["accessors"].append(acc)
        return len(self.doc["accessors"]) - 1

    def add(self, name: str, item: dict) -> int:
        """Append to a top-level array of the document; its index."""
        self.doc.setdefault(name, []).append(item)
        return len(self.doc[name]) - 1

    def images(self, model: Model) -> None:
        """The model's materials, textures, samplers and embedded images, as they came."""
        for name in ("materials", "textures", "samplers"):
            if getattr(model, name):
                self.doc[name] = list(getattr(model, name))
        for data, mime in model.images:
            self.add("images", {"bufferView": self.view(data), "mimeType": mime})
        if model.extensions:
            self.doc["extensionsUsed"] = list(model.extensions)

    def primitives(self, model: Model, extra=None) -> list[dict]:
        """One glTF primitive per part; `extra(i)` gives more attributes for part i."""
        out = []
        for i, part in enumerate(model.parts):
            attributes = {"POSITION": self.accessor(part.positions, "VEC3", ARRAY_BUFFER, True)}
            if part.normals is not None:
                attributes["NORMAL"] = self.accessor(part.normals, "VEC3", ARRAY_BUFFER)
            if part.uvs is not None:
                attributes["TEXCOORD_0"] = self.accessor(part.uvs, "VEC2", ARRAY_BUFFER)
            attributes.update(extra(i) if extra else {})
            primitive = {"attributes": attributes, "mode": _TRIANGLES,
                         "indices": self.accessor(part.indices, "SCALAR", ELEMENT_ARRAY_BUFFER)}
            if part.material is not None and part.material < len(model.materials):
                primitive["material"] = part.material
            out.append(primitive)
        return out

    def glb(self) -> bytes:
        blob = bytes(self.blob) + bytes(-len(self.blob) % 4)
        self.doc["buffers"] = [{"byteLength": len(blob)}]
        text = json.dumps(self.doc, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 4)
        return b"".join((struct.pack("<4sII", MAGIC, 2, 28 + len(text) + len(blob)),
                         struct.pack("<I4s", len(text), b"JSON"), text,
                         struct.pack("<I4s", len(blob), b"BIN\0"), blob))
