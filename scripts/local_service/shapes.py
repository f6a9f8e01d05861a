"""The procedural shapes every model and picture is made from, derived from a prompt's hash.

The same prompt always gives the same shape, different prompts give visibly different ones,
and the triangle (or quad) count follows `face_limit` as the real service's does. No library
makes these, so they are written here; meshes come out as plain lists for the writers.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import random

MIN_FACES = 12
MAX_FACES = 2_000_000
DEFAULT_FACES = 10_000
FAMILIES = ("vase", "torus", "rounded_box", "star")
# A few words steer the family so demos look plausible; any other prompt is hashed.
_HINTS = {
    "vase": ("vase", "bottle", "cup", "jar", "pot", "lamp", "urn"),
    "torus": ("donut", "doughnut", "ring", "torus", "tyre", "tire", "wheel"),
    "rounded_box": ("box", "cube", "crate", "chest", "house", "block", "brick"),
    "star": ("star", "crystal", "gem", "flower", "tower", "spire"),
}
_MIN_TORUS_FACES = 18  # a 3 x 3 torus; fewer would be flat

def seeded(prompt: str, salt: str) -> random.Random:
    """Deterministic generator per prompt; int seeds are stable across Python versions."""
    digest = hashlib.sha256(f"{salt}\0{prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))

def palette(prompt: str) -> list[tuple[int, int, int]]:
    """Three related colours: a base hue and two neighbours, saturated enough to read."""
    rng = seeded(prompt, "palette")
    hue = rng.random()
    colours = []
    for offset, sat, val in ((0.0, 0.65, 0.9), (rng.uniform(0.08, 0.2), 0.55, 0.75),
                             (rng.uniform(0.4, 0.6), 0.5, 0.95)):
        r, g, b = colorsys.hsv_to_rgb((hue + offset) % 1.0, sat, val)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours

def _spow(value: float, exponent: float) -> float:
    """Signed power, the building block of superellipsoids."""
    return math.copysign(abs(value) ** exponent, value)

def _family(prompt: str, faces: int, rng: random.Random) -> str:
    words = set("".join(c if c.isalnum() else " " for c in prompt.lower()).split())
    allowed = [f for f in FAMILIES if f != "torus" or faces >= _MIN_TORUS_FACES]
    for family in allowed:
        if words.intersection(_HINTS[family]):
            return family
    return allowed[rng.randrange(len(allowed))]

def shape(prompt: str, faces: int):
    """Pick a family and its parameters from the prompt.

    Returns (family, position(u, v) with u an angle around +Y and v in [0, 1] bottom to top,
    whether v wraps around, preferred nu / nv aspect).  Positions are glTF Y-up, standing on
    y = 0, and x = r cos u, z = -r sin u, so d/du x d/dv points outwards.
    """
    rng = seeded(prompt, "shape")
    family = _family(prompt, faces, rng)
    if family == "vase":
        height = rng.uniform(1.2, 2.0)
        base = rng.uniform(0.3, 0.55)
        amp, waves, phase = rng.uniform(0.08, 0.3), rng.uniform(1.0, 3.0), rng.uniform(0, 6.3)
        lobes, lobe_amp = rng.randint(3, 8), rng.uniform(0.0, 0.08)
        neck = rng.uniform(0.1, 0.45)

        def position(u, v):
            r = base * (1 + amp * math.sin(waves * math.pi * v + phase)) * (1 - neck * v * v)
            r *= 1 + lobe_amp * math.cos(lobes * u)
            return (r * math.cos(u), height * v, -r * math.sin(u))
        return family, position, False, 1.5

    if family == "torus":
        major, minor = rng.uniform(0.5, 0.8), rng.uniform(0.15, 0.3)
        bumps, bump_amp = rng.randint(2, 7), rng.uniform(0.0, 0.35)
        sway, sway_amp = rng.randint(1, 4), rng.uniform(0.0, 0.12)
        lift = minor * (1 + bump_amp) + sway_amp

        def position(u, v):
            r = minor * (1 + bump_amp * math.sin(bumps * u))
            ring = major + r * math.cos(2 * math.pi * v)
            y = lift + r * math.sin(2 * math.pi * v) + sway_amp * math.sin(sway * u)
            return (ring * math.cos(u), y, -ring * math.sin(u))
        return family, position, True, 2.5

    if family == "rounded_box":
        ax, az, half = rng.uniform(0.4, 0.8), rng.uniform(0.4, 0.8), rng.uniform(0.4, 0.9)
        e_vert, e_horiz = rng.uniform(0.15, 0.7), rng.uniform(0.15, 1.0)
        margin = 0.02

        def position(u, v):
            theta = margin + (math.pi - 2 * margin) * v
            rho = _spow(math.sin(theta), e_vert)
            return (ax * rho * _spow(math.cos(u), e_horiz),
                    half * (1 - _spow(math.cos(theta), e_vert)),
                    -az * rho * _spow(math.sin(u), e_horiz))
        return family, position, False, 1.5

    points, depth = rng.randint(4, 8), rng.uniform(0.15, 0.35)
    radius, height = rng.uniform(0.5, 0.8), rng.uniform(0.8, 1.8)
    twist, taper = rng.choice((-1, 1)) * rng.uniform(0.3, 2.0), rng.uniform(0.0, 0.5)

    def position(u, v):
        r = radius * (1 - taper * v) * (1 + depth * math.cos(points * u)) / (1 + depth)
        angle = u + twist * v
        return (r * math.cos(angle), height * v, -r * math.sin(angle))
    return family, position, False, 2.0

def grid(faces: int, aspect: float, cap_rows: int) -> tuple[int, int]:
    """Choose (nu, nv) with 2 * nu * (nv + cap_rows) <= faces, as close to it as possible.

    cap_rows is 1 when both ends are closed by fans (nu triangles each), else 0.
    """
    ideal = math.sqrt(faces / 2 * aspect)
    best, best_score = (3, 1), math.inf
    for nu in range(max(3, int(ideal * 0.7)), max(4, int(ideal * 1.4) + 2)):
        rows = faces // (2 * nu)
        nv = rows - cap_rows
        if nv < (1 if cap_rows else 3):
            continue
        score = (faces - 2 * nu * rows) / faces + 0.02 * abs(math.log(nu / nv / aspect))
        if score < best_score:
            best, best_score = (nu, nv), score
    return best

def unit_normal(du, dv, fallback):
    """Unit cross product du x dv, or `fallback` where the surface is degenerate."""
    nx = du[1] * dv[2] - du[2] * dv[1]
    ny = du[2] * dv[0] - du[0] * dv[2]
    nz = du[0] * dv[1] - du[1] * dv[0]
    length = math.sqrt(nx * nx + ny * ny + nz * nz)
    if length < 1e-12:
        return fallback
    return (nx / length, ny / length, nz / length)

def build_mesh(position, wraps_v: bool, nu: int, nv: int, textured: bool):
    """Vertices, normals, UVs and triangle indices for the (nu x nv) grid plus end caps."""
    rows = [[position(2 * math.pi * i / nu, j / nv) for i in range(nu)]
            for j in range(nv if wraps_v else nv + 1)]
    if wraps_v:
        rows.append(rows[0])
    unique_rows = nv if wraps_v else nv + 1

    positions, normals, uvs = [], [], []
    for j in range(nv + 1):
        row = rows[j]
        if wraps_v:
            below, above = rows[(j - 1) % nv], rows[(j + 1) % nv]
        else:
            below, above = rows[max(j - 1, 0)], rows[min(j + 1, unique_rows - 1)]
        row_normals = []
        for i in range(nu):
            left, right = row[i - 1], row[(i + 1) % nu]
            du = (right[0] - left[0], right[1] - left[1], right[2] - left[2])
            dv = (above[i][0] - below[i][0], above[i][1] - below[i][1],
                  above[i][2] - below[i][2])
            row_normals.append(unit_normal(du, dv, (0.0, 1.0, 0.0)))
        # The seam column repeats column 0 so the texture can wrap from u = 1 back to 0.
        positions.extend(row)
        positions.append(row[0])
        normals.extend(row_normals)
        normals.append(row_normals[0])
        if textured:
            t = 1.0 - j / nv
            uvs.extend((i / nu, t) for i in range(nu + 1))

    cols = nu + 1
    indices = []
    for j in range(nv):
        for i in range(nu):
            a = j * cols + i
            indices += (a, a + 1, a + cols + 1, a, a + cols + 1, a + cols)

    if not wraps_v:
        extent = max(math.hypot(p[0], p[2]) for p in positions) or 1.0
        for ring, up in ((rows[0], False), (rows[nv], True)):
            centre = len(positions)
            y = sum(p[1] for p in ring) / nu
            positions.append((0.0, y, 0.0))
            positions.extend(ring)
            normal = (0.0, 1.0 if up else -1.0, 0.0)
            normals.extend([normal] * (nu + 1))
            if textured:
                uvs.append((0.5, 0.5))
                uvs.extend((0.5 + 0.5 * p[0] / extent, 0.5 + 0.5 * p[2] / extent) for p in ring)
            for i in range(nu):
                a, b = centre + 1 + i, centre + 1 + (i + 1) % nu
                indices += (centre, a, b) if up else (centre, b, a)
    return positions, normals, uvs, indices

def model_name(prompt: str) -> str:
    """The object's name in the model file, readable in Blender's outliner."""
    words = "".join(c if c.isalnum() else " " for c in prompt).split()
    return "ModelStream_" + ("_".join(words)[:40] or "model")

def quad_mesh(prompt: str, face_limit: int):
    """The prompt's shape as close to `face_limit` quads, with shared vertices.

    Returns (name, vertices, polygons, corner normals, corner UVs); ends are closed by fans of
    quads, so every polygon has four corners.
    """
    quads = min(MAX_FACES, max(MIN_FACES, int(face_limit)))
    _, position, wraps_v, aspect = shape(prompt, 2 * quads)
    capped = not wraps_v
    nu, nv = grid(2 * quads, aspect, int(capped))
    if capped and nu % 2:
        nu -= 1  # a quad fan takes the ring's vertices two at a time
    ring_count = nv if wraps_v else nv + 1
    rows = [[position(2 * math.pi * i / nu, j / nv) for i in range(nu)]
            for j in range(ring_count)]

    vertex_normals = []
    for j in range(ring_count):
        below = rows[(j - 1) % ring_count] if wraps_v else rows[max(j - 1, 0)]
        above = rows[(j + 1) % ring_count] if wraps_v else rows[min(j + 1, ring_count - 1)]
        for i in range(nu):
            left, right = rows[j][i - 1], rows[j][(i + 1) % nu]
            du = tuple(q - p for p, q in zip(left, right, strict=True))
            dv = tuple(q - p for p, q in zip(below[i], above[i], strict=True))
            vertex_normals.append(unit_normal(du, dv, (0.0, 1.0, 0.0)))
    vertices = [p for row in rows for p in row]
    polygons, normals, uvs = [], [], []
    for j in range(nv):
        low, high = j * nu, (j + 1) % ring_count * nu
        v_low, v_high = 1 - j / nv, 1 - (j + 1) / nv
        for i in range(nu):
            step = (i + 1) % nu
            quad = (low + i, low + step, high + step, high + i)
            polygons.append(quad)
            normals += [vertex_normals[k] for k in quad]
            uvs += ((i / nu, v_low), ((i + 1) / nu, v_low), ((i + 1) / nu, v_high),
                    (i / nu, v_high))
    if capped:
        extent = max(math.hypot(p[0], p[2]) for p in vertices) or 1.0
        for j, up in ((0, False), (nv, True)):
            centre = len(vertices)
            vertices.append((0.0, sum(p[1] for p in rows[j]) / nu, 0.0))
            for i in range(0, nu, 2):
                ring = [j * nu + (i + k) % nu for k in range(3)]
                polygon = (centre, *ring) if up else (centre, *ring[::-1])
                polygons.append(polygon)
                normals.extend([(0.0, 1.0 if up else -1.0, 0.0)] * 4)
                uvs.extend((0.5 + 0.5 * vertices[v][0] / extent,
                            0.5 + 0.5 * vertices[v][2] / extent) for v in polygon)
    return model_name(prompt), vertices, polygons, normals, uvs

