"""The robot a prompt with "robot" makes, and the real-world sizes auto_size gives models.

The robot is six separate closed-or-open boxes (head, torso, two arms, two legs), never
welded together, as a generated character made of parts is: segmentation finds them as
connected components and names them by where they sit. The arms and legs are open where
they meet the torso, as a cut-apart model is, so completion has holes to close.
"""

from __future__ import annotations

import math

import numpy as np

from .shapes import _spow, build_mesh, grid

# name: (centre x, bottom y, width, height, depth, share of the faces, open at the top)
# Glb frame: Y up, front +Z, the robot's left at +X (glTF's -X is right); 1 unit tall.
ROBOT_PARTS = {
    "head": (0.0, 0.80, 0.22, 0.20, 0.20, 0.20, False),
    "torso": (0.0, 0.44, 0.36, 0.34, 0.20, 0.30, False),
    "arm_left": (0.24, 0.46, 0.09, 0.30, 0.10, 0.125, True),
    "arm_right": (-0.24, 0.46, 0.09, 0.30, 0.10, 0.125, True),
    "leg_left": (0.09, 0.0, 0.12, 0.42, 0.14, 0.125, True),
    "leg_right": (-0.09, 0.0, 0.12, 0.42, 0.14, 0.125, True),
}
MIN_ROBOT_FACES = 100  # below this a "robot" prompt makes an ordinary shape
# auto_size: the height in metres a model is scaled to, by the first word of the prompt
# found here, else by its shape.
WORD_HEIGHTS = {
    1.8: ("robot", "person", "human", "man", "woman", "character", "knight", "soldier",
          "astronaut", "android", "zombie"),
    0.1: ("cup", "mug", "teapot", "donut", "doughnut", "apple", "gem", "ring"),
    0.4: ("vase", "bottle", "jar", "pot", "urn", "lamp", "crate", "box", "chest"),
    1.5: ("car", "horse", "statue"),
    6.0: ("house", "tower", "tree", "spire"),
}
FAMILY_HEIGHTS = {"robot": 1.8, "vase": 0.4, "torus": 0.15, "rounded_box": 0.5, "star": 0.3}


def is_robot(prompt: str) -> bool:
    words = "".join(c if c.isalnum() else " " for c in prompt.lower()).split()
    return any(word in ("robot", "robots") for word in words)


def real_height(prompt: str, family: str) -> float:
    """What auto_size makes the model's height (Y), in metres."""
    words = "".join(c if c.isalnum() else " " for c in prompt.lower()).split()
    for word in words:
        for height, names in WORD_HEIGHTS.items():
            if word in names or word.rstrip("s") in names:
                return height
    return FAMILY_HEIGHTS.get(family, 0.5)


def robot_mesh(faces: int, textured: bool):
    """(positions, normals, uvs, indices) of the robot in about `faces` triangles: each
    part a rounded box of its own vertices, limbs without their top cap."""
    positions, normals, uvs, indices = [], [], [], []
    for x, bottom, width, height, depth, share, open_top in ROBOT_PARTS.values():
        budget = max(12, int(faces * share))
        nu, nv = grid(budget, 1.5, 1)
        # Built about the Y axis (build_mesh puts cap centres there), then moved out.
        p, n, t, i = build_mesh(_box(bottom, width, height, depth), False, nu, nv, True)
        p = [(px + x, py, pz) for px, py, pz in p]
        if open_top:  # the top cap (its centre, nu ring vertices, nu triangles) comes last
            p, n, t, i = p[:-(nu + 1)], n[:-(nu + 1)], t[:-(nu + 1)], i[:-3 * nu]
        base = len(positions)
        positions += p
        normals += n
        uvs += t if textured else []
        indices += [base + k for k in i]
    return positions, normals, uvs, indices


def _box(bottom: float, width: float, height: float, depth: float):
    """A boxy superellipsoid with u around +Y and v bottom to top (shapes.build_mesh's)."""
    def position(u, v):
        theta = 0.02 + (math.pi - 0.04) * v
        rho = _spow(math.sin(theta), 0.3)
        return (width / 2 * rho * _spow(math.cos(u), 0.3),
                bottom + height / 2 * (1 - _spow(math.cos(theta), 0.3)),
                -depth / 2 * rho * _spow(math.sin(u), 0.3))
    return position


def sized(positions: np.ndarray, height: float) -> np.ndarray:
    """Positions scaled about the origin so the model is `height` tall."""
    extent = float(np.ptp(positions[:, 1])) if len(positions) else 0.0
    return positions * (height / extent) if extent > 0 else positions
