"""Triangle meshes as arrays, for the post-processing tasks: a model's parts read from a GLB
(named by their nodes), welded, split into connected components, clustered, capped, paired
into quads, moved, and written back as a GLB with one named node per part.

numpy only: every step here is small and exact, where a library would bring scipy or
networkx into the service for one call each.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import gltf


@dataclass
class Mesh:
    """One part: vertices with optional normals and UVs, triangles, a material per triangle
    (-1: none)."""
    positions: np.ndarray  # (n, 3) float64
    faces: np.ndarray  # (m, 3) int64
    normals: np.ndarray | None = None  # (n, 3)
    uvs: np.ndarray | None = None  # (n, 2)
    materials: np.ndarray | None = None  # (m,) int64

    def __post_init__(self):
        if self.materials is None:
            self.materials = np.full(len(self.faces), -1, np.int64)

    @property
    def triangles(self) -> int:
        return len(self.faces)

    def subset(self, face_mask: np.ndarray) -> Mesh:
        """The faces selected, with only the vertices they use (renumbered)."""
        faces = self.faces[face_mask]
        used, inverse = np.unique(faces, return_inverse=True)
        return Mesh(self.positions[used], inverse.reshape(-1, 3),
                    None if self.normals is None else self.normals[used],
                    None if self.uvs is None else self.uvs[used], self.materials[face_mask])


@dataclass
class Scene:
    """A model as named parts, with the glTF materials and images they refer to."""
    parts: list[tuple[str, Mesh]]
    model: gltf.Model  # materials, textures, samplers, images of the source

    @property
    def triangles(self) -> int:
        return sum(mesh.triangles for _, mesh in self.parts)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.parts]

    def merged(self) -> Mesh:
        return concatenate([mesh for _, mesh in self.parts])


def concatenate(meshes: list[Mesh]) -> Mesh:
    offsets = np.cumsum([0] + [len(m.positions) for m in meshes[:-1]])
    faces = np.concatenate([m.faces + o for m, o in zip(meshes, offsets, strict=True)])
    out = Mesh(np.concatenate([m.positions for m in meshes]), faces,
               materials=np.concatenate([m.materials for m in meshes]))
    if all(m.normals is not None for m in meshes):
        out.normals = np.concatenate([m.normals for m in meshes])
    if any(m.uvs is not None for m in meshes):
        out.uvs = np.concatenate([m.uvs if m.uvs is not None else
                                  np.zeros((len(m.positions), 2)) for m in meshes])
    return out


def read(glb: bytes) -> Scene:
    """A GLB's triangle primitives in world space, grouped by the node that holds them; a
    node's name names its part (unnamed nodes are part_1, part_2, ...)."""
    model = gltf.load(glb)
    groups: dict[str, list[Mesh]] = {}
    for index, part in enumerate(model.parts):
        mesh = Mesh(part.positions.astype(np.float64), part.indices.reshape(-1, 3).astype(
            np.int64), None if part.normals is None else part.normals.astype(np.float64),
            None if part.uvs is None else part.uvs.astype(np.float64))
        mesh.materials[:] = -1 if part.material is None else part.material
        groups.setdefault(part.name or f"part_{index + 1}", []).append(mesh)
    return Scene([(name, concatenate(meshes)) for name, meshes in groups.items()], model)


def write(scene: Scene) -> bytes:
    """A GLB with one node (and mesh) per part, named after it; a part's triangles are one
    primitive per material they wear."""
    out = gltf.Builder()
    out.images(scene.model)
    nodes = []
    for name, mesh in scene.parts:
        primitives = []
        for material in np.unique(mesh.materials):
            piece = mesh.subset(mesh.materials == material)
            part = gltf.Part(piece.positions.astype(np.float32),
                             piece.faces.reshape(-1).astype(np.uint32),
                             None if piece.normals is None else piece.normals.astype(np.float32),
                             None if piece.uvs is None else piece.uvs.astype(np.float32),
                             None if material < 0 else int(material))
            primitives += out.primitives(gltf.Model([part], scene.model.materials))
        mesh_index = out.add("meshes", {"name": name, "primitives": primitives})
        nodes.append(out.add("nodes", {"name": name, "mesh": mesh_index}))
    out.doc["scene"] = out.add("scenes", {"nodes": nodes})
    return out.glb()


def welded(mesh: Mesh) -> np.ndarray:
    """Per vertex, the index of the first vertex at the same place: seams and caps that
    repeat a vertex for its UV are one surface."""
    scale = max(float(np.ptp(mesh.positions, axis=0).max()), 1e-9)
    keys = np.round(mesh.positions / (scale * 1e-6)).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)]


def components(mesh: Mesh) -> np.ndarray:
    """A label per face: faces that share a welded vertex have the same label (0, 1, ...,
    in order of first appearance)."""
    vertex = welded(mesh)
    faces = vertex[mesh.faces]
    parent = np.arange(len(mesh.positions))
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    while True:  # label propagation: every vertex takes the smallest label it touches
        low = np.minimum(parent[edges[:, 0]], parent[edges[:, 1]])
        changed = parent.copy()
        np.minimum.at(changed, edges[:, 0], low)
        np.minimum.at(changed, edges[:, 1], low)
        changed = changed[changed]
        if np.array_equal(changed, parent):
            break
        parent = changed
    roots = parent[faces[:, 0]]
    _, first, labels = np.unique(roots, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # number the components by their first face
    return order[labels.reshape(-1)]


def kmeans(points: np.ndarray, k: int, rounds: int = 30) -> np.ndarray:
    """Deterministic k-means: seeds by farthest-point sampling from the first point."""
    k = max(1, min(k, len(points)))
    centres = [points[0]]
    distance = np.linalg.norm(points - points[0], axis=1)
    for _ in range(1, k):
        centres.append(points[int(distance.argmax())])
        distance = np.minimum(distance, np.linalg.norm(points - centres[-1], axis=1))
    centres = np.array(centres)
    labels = np.zeros(len(points), np.int64)
    for _ in range(rounds):
        labels = np.linalg.norm(points[:, None] - centres[None], axis=2).argmin(axis=1)
        moved = np.array([points[labels == i].mean(axis=0) if np.any(labels == i)
                          else centres[i] for i in range(k)])
        if np.allclose(moved, centres):
            break
        centres = moved
    _, labels = np.unique(labels, return_inverse=True)  # no empty cluster keeps a number
    return labels.reshape(-1)


def face_centroids(mesh: Mesh) -> np.ndarray:
    return mesh.positions[mesh.faces].mean(axis=1)


def face_normals(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    corners = positions[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def capped(mesh: Mesh) -> Mesh:
    """The part closed: every hole (a loop of edges one triangle uses) filled by a fan
    around the loop's centre, wound against the edges it closes, so each edge ends up
    between exactly two triangles."""
    vertex = welded(mesh)
    faces = vertex[mesh.faces]
    half = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = np.sort(half, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    border = half[counts[inverse.reshape(-1)] == 1]
    if not len(border):
        return mesh
    outgoing: dict[int, list[int]] = {}
    for a, b in border.tolist():
        outgoing.setdefault(a, []).append(b)
    positions, normals, uvs = [mesh.positions], [mesh.normals], [mesh.uvs]
    new_faces, count = [], len(mesh.positions)
    while outgoing:
        start = next(iter(outgoing))
        loop, at = [start], start
        while True:
            step = outgoing[at].pop()
            if not outgoing[at]:
                del outgoing[at]
            if step == start or step not in outgoing:
                break
            loop.append(step)
            at = step
        if len(loop) < 3:
            continue
        centre = mesh.positions[loop].mean(axis=0)
        positions.append(centre[None])
        if mesh.normals is not None:
            normal = -face_normals(np.array([centre, *mesh.positions[loop[:2]]]),
                                   np.array([[0, 1, 2]]))
            normals.append(normal)
        if mesh.uvs is not None:
            uvs.append(mesh.uvs[loop].mean(axis=0)[None])
        ring = np.array(loop)
        new_faces.append(np.stack([np.full(len(ring), count), np.roll(ring, -1), ring], axis=1))
        count += 1
    if not new_faces:
        return mesh
    added = np.concatenate(new_faces)
    material = mesh.materials[0] if len(mesh.materials) else -1
    return Mesh(np.concatenate(positions), np.concatenate([mesh.faces, added]),
                None if mesh.normals is None else np.concatenate(normals),
                None if mesh.uvs is None else np.concatenate(uvs),
                np.concatenate([mesh.materials, np.full(len(added), material)]))


def quads(faces: np.ndarray, positions: np.ndarray) -> list[tuple[int, ...]]:
    """Triangles paired into quads across their shared edges, flattest pairs first; a
    triangle left without a partner stays a triangle."""
    normals = face_normals(positions, faces)
    half = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    owner = np.tile(np.arange(len(faces)), 3)
    key = np.sort(half, axis=1)
    order = np.lexsort((key[:, 1], key[:, 0]))
    same = np.all(key[order[1:]] == key[order[:-1]], axis=1)
    first, second = owner[order[:-1][same]], owner[order[1:][same]]
    pairs = [(float(normals[a] @ normals[b]), int(a), int(b))
             for a, b in zip(first, second, strict=True) if a != b]
    pairs.sort(key=lambda pair: -pair[0])
    taken = np.zeros(len(faces), bool)
    out = []
    for _, a, b in pairs:
        if taken[a] or taken[b]:
            continue
        quad = _join(faces[a].tolist(), faces[b].tolist())
        if quad:
            taken[a] = taken[b] = True
            out.append(quad)
    out += [tuple(face) for face in faces[~taken].tolist()]
    return out


def _join(a: list[int], b: list[int]) -> tuple[int, ...] | None:
    """The quad of two triangles wound alike that share one edge, in their winding."""
    for i in range(3):
        p, q, r = a[i], a[(i + 1) % 3], a[(i + 2) % 3]
        for j in range(3):
            if b[j] == q and b[(j + 1) % 3] == p:
                return (p, b[(j + 2) % 3], q, r)
    return None


def transformed(mesh: Mesh, matrix: np.ndarray) -> Mesh:
    """The mesh moved by a 4x4 matrix (normals by its rotation part)."""
    positions = mesh.positions @ matrix[:3, :3].T + matrix[:3, 3]
    normals = None
    if mesh.normals is not None:
        normals = mesh.normals @ np.linalg.inv(matrix[:3, :3])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return replace(mesh, positions=positions, normals=normals)
