"""Pictures of the procedural shapes: generated images and multiview sheets.

numpy shades the triangles and Pillow fills them, far to near (painter's order), so a
nearer face covers a farther one as a depth test would on these simple shapes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .images import png_bytes
from .shapes import build_mesh, grid, palette, shape

VIEWS = ("front", "left", "back", "right")
RENDER_FACES = 1500
# Orthographic cameras around +Y (glTF axes, the subject faces +Z): screen-right and toward-the-
# camera as (x, z) weights. "left" is the subject's left, seen from +X.
_CAMERAS = {"front": ((1, 0), (0, 1)), "left": ((0, -1), (1, 0)),
            "back": ((-1, 0), (0, -1)), "right": ((0, 1), (-1, 0))}
# Key and fill lights fixed in the world, so each side of the subject is lit its own way.
_KEY_LIGHT, _FILL_LIGHT = np.array((0.48, 0.72, 0.5)), np.array((-0.6, 0.35, -0.72))


def render_views(shape_seed: str, colour_seeds: dict[str, str], size: int = 512) -> dict:
    """PNG pictures of the shape `shape_seed` makes, one per view named in `colour_seeds`,
    each painted in the palette of its colour seed (an edit prompt can recolour one view)."""
    _, position, wraps_v, aspect = shape(shape_seed, RENDER_FACES)
    nu, nv = grid(RENDER_FACES, aspect, 0 if wraps_v else 1)
    positions, _, _, indices = build_mesh(position, wraps_v, nu, nv, False)
    points = np.array(positions)
    triangles = points[np.array(indices).reshape(-1, 3)]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    solid = lengths > 1e-12
    triangles, normals = triangles[solid], normals[solid] / lengths[solid, None]
    y_low, y_high = points[:, 1].min(), points[:, 1].max()
    reach = max(np.hypot(points[:, 0], points[:, 2]).max(), (y_high - y_low) / 2)
    height = (triangles[:, :, 1].mean(axis=1) - y_low) / ((y_high - y_low) or 1.0)
    shade = (0.3 + 0.6 * np.clip(normals @ _KEY_LIGHT, 0, None)
             + 0.3 * np.clip(normals @ _FILL_LIGHT, 0, None))
    lit = (triangles, normals, height, shade)
    frame = (0.4 * size / reach, (y_low + y_high) / 2, size)
    return {view: _render(lit, view, palette(seed), frame) for view, seed in colour_seeds.items()}


def _render(lit, view: str, colours, frame) -> bytes:
    triangles, normals, height, shade = lit
    scale, y_mid, size = frame
    (rx, rz), (dx, dz) = _CAMERAS[view]
    base, top, back = (np.array(c, dtype=float) for c in colours)
    fade = 1 - 0.15 * np.arange(size) / size
    background = np.round((255 - (255 - back) * 0.25) * fade[:, None])
    pixels = np.full((size, size, 4), 255, dtype=np.uint8)
    pixels[..., :3] = background[:, None, :]
    picture = Image.fromarray(pixels)
    draw = ImageDraw.Draw(picture)
    fills = np.minimum(255, np.round((base + (top - base) * height[:, None]) * shade[:, None]))
    xs = size / 2 + scale * (triangles[..., 0] * rx + triangles[..., 2] * rz)
    ys = size / 2 - scale * (triangles[..., 1] - y_mid)
    depth = (triangles[..., 0] * dx + triangles[..., 2] * dz).mean(axis=1)
    facing = normals[:, 0] * dx + normals[:, 2] * dz > 0
    for k in np.argsort(depth):
        if facing[k]:
            draw.polygon(list(zip(xs[k], ys[k], strict=True)),
                         fill=(*(int(c) for c in fills[k]), 255))
    return png_bytes(picture)
