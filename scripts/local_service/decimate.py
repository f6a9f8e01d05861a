"""Smart low poly: a model reduced to at most `face_limit` triangles by a quadric decimator
(fast-simplification), each part and material on its own, UVs, normals and materials kept;
with quad, the triangles paired into quads for an FBX of at most `face_limit` faces.
"""

from __future__ import annotations

import threading

import fast_simplification
import numpy as np

from .meshops import Mesh, Scene, concatenate, quads

DEFAULT_FACE_LIMIT = 10000  # a low poly without a face_limit
MIN_TRIANGLES = 4  # a piece this small is kept as it is
QUAD_TRIES = 4


def decimated(scene: Scene, face_limit: int, names: list[str] | None = None) -> Scene:
    """The scene with at most `face_limit` triangles in the chosen parts (all when `names`
    is None) together; the other parts unchanged."""
    chosen = [name for name in scene.names if names is None or name in names]
    total = sum(mesh.triangles for name, mesh in scene.parts if name in chosen)
    target = face_limit
    for _ in range(QUAD_TRIES + 2):
        out = Scene([(name, _reduced(mesh, face_limit, total) if name in chosen else mesh)
                     for name, mesh in scene.parts], scene.model)
        reached = sum(mesh.triangles for name, mesh in out.parts if name in chosen)
        if reached <= target:
            return out
        face_limit = max(1, int(face_limit * target / reached) - 1)
    return out


def _reduced(mesh: Mesh, face_limit: int, total: int) -> Mesh:
    """The part at its share of the limit, one material at a time."""
    if total <= face_limit:
        return mesh
    pieces = []
    for material in np.unique(mesh.materials):
        piece = mesh.subset(mesh.materials == material)
        share = max(MIN_TRIANGLES, piece.triangles * face_limit // total)
        pieces.append(simplified(piece, share) if piece.triangles > share else piece)
    return concatenate(pieces)


# fast-simplification keeps its mesh in one global C++ object: two threads at once swap
# each other's results, so the service's task threads take turns.
_DECIMATOR = threading.Lock()


def simplified(mesh: Mesh, target: int) -> Mesh:
    """The quadric decimator's result; each new vertex takes the normal and UV of the first
    source vertex that collapsed into it."""
    with _DECIMATOR:
        positions, faces, collapses = fast_simplification.simplify(
            mesh.positions, mesh.faces, target_count=target, return_collapses=True)
        _, _, mapping = fast_simplification.replay_simplification(mesh.positions, mesh.faces,
                                                                  collapses)
    source = np.zeros(len(positions), np.int64)
    kept, first = np.unique(mapping, return_index=True)
    source[kept] = first
    return Mesh(np.asarray(positions, np.float64), np.asarray(faces, np.int64),
                None if mesh.normals is None else mesh.normals[source],
                None if mesh.uvs is None else mesh.uvs[source],
                np.full(len(faces), mesh.materials[0] if len(mesh.materials) else -1))


def quad_decimated(scene: Scene, face_limit: int, names: list[str] | None = None
                   ) -> tuple[Scene, dict[str, list]]:
    """The scene decimated so its chosen parts, paired into quads, have at most
    `face_limit` polygons; also each part's polygons."""
    triangles = 2 * face_limit
    for _ in range(QUAD_TRIES):
        out = decimated(scene, triangles, names)
        polygons = {name: quads(mesh.faces, mesh.positions) for name, mesh in out.parts}
        count = sum(len(polygons[name]) for name in out.names if names is None or name in names)
        if count <= face_limit:
            return out, polygons
        triangles = int(triangles * face_limit / count) - 1
    out = decimated(scene, face_limit, names)  # each polygon at most a triangle: within it
    return out, {name: quads(mesh.faces, mesh.positions) for name, mesh in out.parts}
