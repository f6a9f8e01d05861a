"""Procedural GLB and PNG assets for the local ModelStream service.

Standard library only, so the service runs wherever Python does. Everything is derived from a
hash of the prompt: the same prompt always gives the same model, different prompts give visibly
different ones, and the triangle count follows `face_limit` like the real service's does.
"""

from __future__ import annotations

import array
import colorsys
import hashlib
import json
import math
import random
import struct
import sys
import zlib

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

_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_FLOAT = 5126
_UNSIGNED_INT = 5125


def make_png(width: int, height: int, pixels) -> bytes:
    """Encode an 8-bit RGBA PNG.

    `pixels` is either a callable `(x, y) -> (r, g, b, a)` or a sequence of `height` rows, each
    bytes-like of length 4 * width or a sequence of RGBA tuples.
    """
    if width < 1 or height < 1:
        raise ValueError("PNG size must be positive")
    raw = bytearray()
    for y in range(height):
        if callable(pixels):
            row = bytearray()
            for x in range(width):
                row.extend(pixels(x, y))
        else:
            row = pixels[y]
            if not isinstance(row, (bytes, bytearray, memoryview)):
                row = bytes(v for px in row for v in px)
        if len(row) != 4 * width:
            raise ValueError(f"PNG row {y} has {len(row)} bytes, expected {4 * width}")
        raw.append(0)  # filter type: none
        raw.extend(row)

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + chunk(b"IEND", b""))


def _rng(prompt: str, salt: str) -> random.Random:
    """Deterministic generator per prompt; int seeds are stable across Python versions."""
    digest = hashlib.sha256(f"{salt}\0{prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _palette(prompt: str) -> list[tuple[int, int, int]]:
    """Three related colours: a base hue and two neighbours, saturated enough to read."""
    rng = _rng(prompt, "palette")
    hue = rng.random()
    colours = []
    for offset, sat, val in ((0.0, 0.65, 0.9), (rng.uniform(0.08, 0.2), 0.55, 0.75),
                             (rng.uniform(0.4, 0.6), 0.5, 0.95)):
        r, g, b = colorsys.hsv_to_rgb((hue + offset) % 1.0, sat, val)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


def texture_png(prompt: str, size: int = 256) -> bytes:
    """Base-colour texture: gradient bands along V (rings on the model) and thin stripes along U.

    The service also serves it as the task's preview image.
    """
    c1, c2, c3 = _palette(prompt)
    rng = _rng(prompt, "texture")
    bands = rng.randint(3, 9)
    period = rng.choice((16, 32, 64))
    line = max(2, period // 8)
    rows = []
    for y in range(size):
        t = y / max(1, size - 1)
        a, b = (c1, c2) if int(t * bands) % 2 == 0 else (c2, c3)
        colour = tuple(round(p + (q - p) * t) for p, q in zip(a, b, strict=True))
        dark = tuple(round(v * 0.7) for v in colour)
        segment = bytes((*colour, 255)) * (period - line) + bytes((*dark, 255)) * line
        rows.append((segment * (size // period + 1))[: 4 * size])
    return make_png(size, size, rows)


def _metal_rough_png(size: int = 16) -> bytes:
    """glTF metallic-roughness map: G = roughness, B = metallic, a soft checker of both."""
    def pixel(x, y):
        even = (x // 4 + y // 4) % 2 == 0
        return (255, 255 if even else 190, 255 if even else 200, 255)
    return make_png(size, size, pixel)


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


def _shape(prompt: str, faces: int):
    """Pick a family and its parameters from the prompt.

    Returns (family, position(u, v) with u an angle around +Y and v in [0, 1] bottom to top,
    whether v wraps around, preferred nu / nv aspect).  Positions are glTF Y-up, standing on
    y = 0, and x = r cos u, z = -r sin u, so d/du x d/dv points outwards.
    """
    rng = _rng(prompt, "shape")
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


def _grid(faces: int, aspect: float, cap_rows: int) -> tuple[int, int]:
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


def _normal(du, dv, fallback):
    """Unit cross product du x dv, or `fallback` where the surface is degenerate."""
    nx = du[1] * dv[2] - du[2] * dv[1]
    ny = du[2] * dv[0] - du[0] * dv[2]
    nz = du[0] * dv[1] - du[1] * dv[0]
    length = math.sqrt(nx * nx + ny * ny + nz * nz)
    if length < 1e-12:
        return fallback
    return (nx / length, ny / length, nz / length)


def _build_mesh(position, wraps_v: bool, nu: int, nv: int, textured: bool):
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
            row_normals.append(_normal(du, dv, (0.0, 1.0, 0.0)))
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


def _floats(items) -> array.array:
    """Flatten tuples into float32, the component type glTF wants."""
    return array.array("f", [c for item in items for c in item])


def _le_bytes(arr: array.array) -> bytes:
    """glTF buffers are little-endian whatever the host is."""
    if sys.byteorder != "little":
        arr = array.array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()


def _pad(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


def _slug(prompt: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in prompt).split()
    return "_".join(words)[:40] or "model"


def make_glb(prompt: str, face_limit: int = DEFAULT_FACES, texture: bool = True,
             pbr: bool = False) -> bytes:
    """A glTF 2.0 binary model for `prompt` with close to `face_limit` triangles.

    pbr=True implies a texture (as upstream does) and adds a metallic-roughness map.
    """
    faces = min(MAX_FACES, max(MIN_FACES, int(face_limit)))
    textured = texture or pbr
    family, position, wraps_v, aspect = _shape(prompt, faces)
    nu, nv = _grid(faces, aspect, 0 if wraps_v else 1)
    positions, normals, uvs, indices = _build_mesh(position, wraps_v, nu, nv, textured)

    blob = bytearray()
    views, accessors = [], []

    def add_view(data: bytes, target=None) -> int:
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)})
        if target:
            views[-1]["target"] = target
        blob.extend(_pad(data, b"\0"))
        return len(views) - 1

    def add_accessor(arr: array.array, kind: str, width: int, component: int,
                     target: int, bounds: bool = False) -> int:
        acc = {"bufferView": add_view(_le_bytes(arr), target), "componentType": component,
               "count": len(arr) // width, "type": kind}
        if bounds:
            acc["min"] = [min(arr[k::width]) for k in range(width)]
            acc["max"] = [max(arr[k::width]) for k in range(width)]
        accessors.append(acc)
        return len(accessors) - 1

    attributes = {
        "POSITION": add_accessor(_floats(positions), "VEC3", 3, _FLOAT, _ARRAY_BUFFER, True),
        "NORMAL": add_accessor(_floats(normals), "VEC3", 3, _FLOAT, _ARRAY_BUFFER),
    }
    if textured:
        attributes["TEXCOORD_0"] = add_accessor(_floats(uvs), "VEC2", 2, _FLOAT, _ARRAY_BUFFER)
    index_acc = add_accessor(array.array("I", indices), "SCALAR", 1, _UNSIGNED_INT,
                             _ELEMENT_ARRAY_BUFFER)

    colour = _palette(prompt)[0]
    pbr_block = {
        "baseColorFactor": [1.0, 1.0, 1.0, 1.0] if textured
        else [round(c / 255, 4) for c in colour] + [1.0],
        "metallicFactor": 0.6 if pbr else 0.0,
        "roughnessFactor": 0.35 if pbr else 0.8,
    }
    name = f"ModelStream_{_slug(prompt)}"
    doc = {
        "asset": {"version": "2.0", "generator": "ModelStream local service"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name,
                   "extras": {"modelstream_prompt": prompt, "modelstream_shape": family}}],
        "meshes": [{"name": name, "primitives": [
            {"attributes": attributes, "indices": index_acc, "material": 0, "mode": 4}]}],
        "materials": [{"name": f"{name}_material", "pbrMetallicRoughness": pbr_block}],
    }
    if textured:
        images = [("base_color", texture_png(prompt))]
        pbr_block["baseColorTexture"] = {"index": 0}
        if pbr:
            images.append(("metallic_roughness", _metal_rough_png()))
            pbr_block["metallicRoughnessTexture"] = {"index": 1}
        doc["images"] = [{"name": label, "mimeType": "image/png", "bufferView": add_view(png)}
                         for label, png in images]
        doc["samplers"] = [{"magFilter": 9729, "minFilter": 9987, "wrapS": 10497,
                            "wrapT": 10497}]
        doc["textures"] = [{"sampler": 0, "source": k} for k in range(len(images))]
    doc.update(accessors=accessors, bufferViews=views, buffers=[{"byteLength": len(blob)}])

    json_chunk = _pad(json.dumps(doc, separators=(",", ":")).encode(), b" ")
    bin_chunk = bytes(blob)
    total = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    return b"".join((
        struct.pack("<4sII", b"glTF", 2, total),
        struct.pack("<I4s", len(json_chunk), b"JSON"), json_chunk,
        struct.pack("<I4s", len(bin_chunk), b"BIN\0"), bin_chunk,
    ))
