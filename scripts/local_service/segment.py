"""Segmentation and completion: a model split into named parts that together hold all its
triangles, and chosen parts closed.

A mesh of several connected components is split along them; one piece is clustered by
k-means on its face centroids and normals. Parts arranged like a figure (a head over a
torso, arms beside it, legs below) are named so; any other part is part_1, part_2, ...
"""

from __future__ import annotations

import numpy as np

from .meshops import Mesh, Scene, capped, components, face_centroids, face_normals, kmeans

GRANULARITY = {"simple": 2, "balanced": 4, "detailed": 6}  # clusters for a one-piece mesh
MAX_PARTS = 16  # more components than this are grouped by k-means on their centres
NORMAL_WEIGHT = 0.25  # of the model's size: how much a face's direction counts


def segmented(scene: Scene, granularity: str = "balanced",
              by_connectivity: bool = True) -> Scene:
    """The model as named parts; every triangle of the source in exactly one."""
    mesh = scene.merged()
    labels = components(mesh) if by_connectivity else np.zeros(mesh.triangles, np.int64)
    count = int(labels.max()) + 1 if len(labels) else 0
    if count > MAX_PARTS:
        centres = np.array([face_centroids(mesh)[labels == i].mean(axis=0)
                            for i in range(count)])
        labels = kmeans(centres, GRANULARITY["detailed"])[labels]
    elif count <= 1:
        labels = _clusters(mesh, GRANULARITY[granularity])
    pieces = [mesh.subset(labels == i) for i in range(int(labels.max()) + 1)]
    pieces = [piece for piece in pieces if piece.triangles]
    return Scene(list(zip(_names(pieces), pieces, strict=True)), scene.model)


def _clusters(mesh: Mesh, k: int) -> np.ndarray:
    size = max(float(np.ptp(mesh.positions, axis=0).max()), 1e-9)
    features = np.concatenate([face_centroids(mesh), NORMAL_WEIGHT * size * face_normals(
        mesh.positions, mesh.faces)], axis=1)
    return kmeans(features, k)


def _names(pieces: list[Mesh]) -> list[str]:
    """A figure's parts by where they sit (glTF's frame: Y up, front +Z, the figure's left
    at +X); every other part, and any role found twice, by its number."""
    low = np.array([piece.positions.min(axis=0) for piece in pieces])
    high = np.array([piece.positions.max(axis=0) for piece in pieces])
    centre, volume = (low + high) / 2, np.prod(high - low, axis=1)
    roles: dict[int, str] = {}
    if len(pieces) >= 6:
        torso = int(volume.argmax())
        half = (high[torso, 0] - low[torso, 0]) / 2
        beside = np.abs(centre[:, 0] - centre[torso, 0]) > half
        within = (centre[:, 1] > low[torso, 1]) & (centre[:, 1] < high[torso, 1])
        candidates = {
            "head": (low[:, 1] >= high[torso, 1] - 1e-6) & ~beside,
            "arm_left": within & beside & (centre[:, 0] > centre[torso, 0]),
            "arm_right": within & beside & (centre[:, 0] < centre[torso, 0]),
            "leg_left": (high[:, 1] <= low[torso, 1] + 1e-6) & (centre[:, 0] > centre[torso, 0]),
            "leg_right": (high[:, 1] <= low[torso, 1] + 1e-6) & (centre[:, 0] < centre[torso, 0]),
        }
        found = {role: np.flatnonzero(mask) for role, mask in candidates.items()}
        if all(len(indices) == 1 for indices in found.values()):
            roles = {int(indices[0]): role for role, indices in found.items()}
            roles[torso] = "torso"
    names, number = [], 0
    for i in range(len(pieces)):
        if i in roles:
            names.append(roles[i])
        else:
            number += 1
            names.append(f"part_{number}")
    return names


def completed(scene: Scene, names: list[str] | None) -> Scene:
    """The same parts, the chosen ones (all when `names` is None) with their holes capped."""
    return Scene([(name, capped(mesh) if names is None or name in names else mesh)
                  for name, mesh in scene.parts], scene.model)
