"""stylize_model: a model remade as voxels, as LEGO-like bricks, or as Voronoi tiles.

voxel: trimesh voxelizes the surface; every surface voxel becomes an axis-aligned cube of
its own (eight vertices, twelve triangles). lego: the same cubes, each with a stud on top
where no cube sits above it. voronoi: the surface split into cells around seed points
(each triangle goes to its nearest seed), each cell shrunk towards its centre so the
cells stand apart as tiles; together they hold every source triangle.
"""

from __future__ import annotations

import io
import math

import numpy as np
import trimesh
from PIL import Image

from . import gltf
from .convert import base_image
from .meshops import Mesh, face_centroids, kmeans

STYLES = ("lego", "voxel", "voronoi")  # minecraft (a .schem world) is not offered
BLOCKS_PER_SIZE = 4  # blocks along the model's longest side = block_size / 4 (80 -> 20)
STUD_SIDES = 8
VORONOI_CELLS = 24
GAP = 0.12  # how far each Voronoi tile shrinks towards its centre
_CUBE = trimesh.creation.box(extents=(1, 1, 1))


def stylized(mesh: Mesh, model: gltf.Model, style: str, block_size: int) -> bytes:
    """The styled model as a GLB, in the source's average colour."""
    colour = _average_colour(model)
    if style == "voronoi":
        return _glb(_voronoi(mesh), colour, "voronoi")
    centres, pitch = voxels(mesh, max(2, block_size // BLOCKS_PER_SIZE))
    positions, faces = _cubes(centres, pitch)
    if style == "lego":
        studs = _studs(centres, pitch)
        faces = np.concatenate([faces, studs[1] + len(positions)])
        positions = np.concatenate([positions, studs[0]])
    return _glb(Mesh(positions, faces), colour, style)


def voxels(mesh: Mesh, blocks: int) -> tuple[np.ndarray, float]:
    """The centres of the surface voxels, `blocks` of them along the longest side."""
    pitch = float(np.ptp(mesh.positions, axis=0).max()) / blocks
    grid = trimesh.Trimesh(mesh.positions, mesh.faces, process=False).voxelized(pitch)
    return np.asarray(grid.points, float), pitch


def _cubes(centres: np.ndarray, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    corners = np.asarray(_CUBE.vertices) * pitch
    positions = (centres[:, None, :] + corners[None]).reshape(-1, 3)
    faces = (np.asarray(_CUBE.faces)[None] + 8 * np.arange(len(centres))[:, None, None])
    return positions, faces.reshape(-1, 3)


def _studs(centres: np.ndarray, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """A short cylinder on every cube with nothing above it."""
    keys = np.round(centres / pitch).astype(int)
    cells = set(map(tuple, keys.tolist()))
    tops = [centre for centre, (i, j, k) in zip(centres, keys.tolist(), strict=True)
            if (i, j + 1, k) not in cells]
    stud = trimesh.creation.cylinder(radius=0.3 * pitch, height=0.2 * pitch,
                                     sections=STUD_SIDES)
    stud.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, [1, 0, 0]))
    lift = np.array([0.0, 0.6 * pitch, 0.0])  # on the cube's top face (half a pitch up)
    count = len(stud.vertices)
    positions = np.concatenate([stud.vertices + top + lift for top in tops]) if tops else \
        np.zeros((0, 3))
    faces = np.concatenate([stud.faces + i * count for i in range(len(tops))]) if tops else \
        np.zeros((0, 3), np.int64)
    return positions, faces


def _voronoi(mesh: Mesh) -> Mesh:
    """Triangles grouped by their nearest seed (seeds spread by farthest-point sampling),
    each cell a tile of its own vertices pulled towards the cell's centre."""
    centroids = face_centroids(mesh)
    cells = kmeans(centroids, min(VORONOI_CELLS, len(centroids)), rounds=1)
    positions, faces = [], []
    for cell in range(int(cells.max()) + 1):
        tile = mesh.subset(cells == cell)
        centre = tile.positions.mean(axis=0)
        faces.append(tile.faces + sum(len(p) for p in positions))
        positions.append(centre + (tile.positions - centre) * (1 - GAP))
    return Mesh(np.concatenate(positions), np.concatenate(faces))


def _average_colour(model: gltf.Model) -> list[float]:
    picture = base_image(model)
    if picture is not None:
        with Image.open(io.BytesIO(picture)) as image:
            mean = np.asarray(image.convert("RGB"), float).reshape(-1, 3).mean(axis=0) / 255
        return [*mean.round(4).tolist(), 1.0]
    for material in model.materials:
        factor = (material.get("pbrMetallicRoughness") or {}).get("baseColorFactor")
        if factor:
            return list(factor)
    return [0.8, 0.8, 0.8, 1.0]


def _glb(mesh: Mesh, colour: list[float], name: str) -> bytes:
    out = gltf.Builder()
    material = {"name": f"{name}_material",
                "pbrMetallicRoughness": {"baseColorFactor": colour, "metallicFactor": 0.0,
                                         "roughnessFactor": 0.7}}
    out.add("materials", material)
    part = gltf.Part(mesh.positions.astype(np.float32), mesh.faces.reshape(-1).astype(
        np.uint32), material=0)
    primitives = out.primitives(gltf.Model([part], [material]))
    index = out.add("meshes", {"name": name, "primitives": primitives})
    out.doc["scene"] = out.add("scenes", {"nodes": [out.add("nodes", {"name": name,
                                                                       "mesh": index})]})
    return out.glb()
