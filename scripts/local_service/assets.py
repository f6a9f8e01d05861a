"""Procedural assets for the local ModelStream service: GLB and FBX models, PNG pictures.

Standard library only, so the service runs wherever Python does. Everything is derived from a
hash of the prompt: the same prompt always gives the same model, different prompts give visibly
different ones, and the triangle (or quad) count follows `face_limit` like the real service's
does. Generated and multiview images are pictures of the same shapes. Input images are checked
the way upstream checks them, and a sound PNG or JPEG input becomes the model's texture.
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

from . import fbx

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
             pbr: bool = False, texture_image: bytes | None = None) -> bytes:
    """A glTF 2.0 binary model for `prompt` with close to `face_limit` triangles.

    pbr=True implies a texture (as upstream does) and adds a metallic-roughness map.
    `texture_image` (PNG or JPEG, see embeddable_texture) replaces the generated base colour,
    as an image-to-model result wears its input picture.
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
        images = [("base_color", texture_image or texture_png(prompt))]
        pbr_block["baseColorTexture"] = {"index": 0}
        if pbr:
            images.append(("metallic_roughness", _metal_rough_png()))
            pbr_block["metallicRoughnessTexture"] = {"index": 1}
        doc["images"] = [{"name": label, "mimeType": IMAGE_MIME[image_info(data)[0]],
                          "bufferView": add_view(data)} for label, data in images]
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


def pad_glb(data: bytes, size: int) -> bytes:
    """The same GLB grown to at least `size` bytes, for download tests: zeros appended to its
    BIN chunk and counted in buffers[0].byteLength (no view uses them), so it stays a valid
    glTF that any importer reads. A GLB already that large comes back unchanged."""
    magic, version, _ = struct.unpack_from("<4sII", data)
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    if magic != b"glTF" or version != 2 or json_type != b"JSON":
        raise ValueError("not a GLB 2.0 with its JSON chunk first")
    doc = json.loads(data[20:20 + json_len])
    bin_at = 20 + json_len
    bin_len, bin_type = struct.unpack_from("<I4s", data, bin_at)
    if bin_type != b"BIN\0" or doc.get("buffers", [{}])[0].get("uri") is not None:
        raise ValueError("the GLB has no BIN chunk for buffer 0")
    extra = size - len(data)
    if extra <= 0:
        return data
    extra += -extra % 4
    doc["buffers"][0]["byteLength"] = bin_len + extra
    json_chunk = _pad(json.dumps(doc, separators=(",", ":")).encode(), b" ")
    bin_chunk = data[bin_at + 8:bin_at + 8 + bin_len]
    total = 12 + 8 + len(json_chunk) + 8 + bin_len + extra
    return b"".join((
        struct.pack("<4sII", b"glTF", 2, total),
        struct.pack("<I4s", len(json_chunk), b"JSON"), json_chunk,
        struct.pack("<I4s", bin_len + extra, b"BIN\0"), bin_chunk, bytes(extra),
    ))


# --- input images: what the relay accepts, and what can be reused as a texture ---------------

IMAGE_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 20, 6000
MAX_DECODE_PIXELS = 1_000_000  # pure-Python unfiltering is slow; bigger inputs fall back
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def image_info(data: bytes) -> tuple[str, int | None, int | None]:
    """(kind, width, height) from the magic bytes; sizes are None when the header hides them.

    Raises ValueError for anything but PNG, JPEG or WEBP, the three types upstream takes.
    """
    if data.startswith(_PNG_MAGIC):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ValueError("the PNG has no IHDR header")
        return "png", *struct.unpack_from(">II", data, 16)
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg", *_jpeg_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", *_webp_size(data)
    raise ValueError("the file is not a PNG, JPEG or WEBP image")


def _jpeg_size(data: bytes) -> tuple[int | None, int | None]:
    """Walk the JPEG segments up to the first start-of-frame, which holds the size."""
    pos = 2
    while pos + 9 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        if marker == 0xDA:
            break
        pos += 2 + struct.unpack_from(">H", data, pos + 2)[0]
    return None, None


def _webp_size(data: bytes) -> tuple[int | None, int | None]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return (int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1)
    return None, None


def check_image(data: bytes) -> str:
    """The image kind if upstream would take the file, else ValueError saying why."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError("the image is larger than 20 MB")
    kind, width, height = image_info(data)
    for side in (width, height):
        if side is not None and not MIN_SIDE <= side <= MAX_SIDE:
            raise ValueError(f"the image is {width} x {height} px; each side must be "
                             f"{MIN_SIDE} to {MAX_SIDE} px")
    return kind


def _png_raw(data: bytes, max_pixels: int):
    """(width, height, colour type, bit depth, palette, inflated scanlines), or None.

    None covers what this small reader leaves alone (interlacing, sub-byte depths, huge
    images) as well as broken files: chunk CRCs, the inflated size and the filter bytes are
    all checked, so a file that passes is one any PNG reader decodes.
    """
    try:
        kind, width, height = image_info(data)
    except ValueError:
        return None
    if kind != "png" or not 0 < width * height <= max_pixels:
        return None
    depth, ctype, _, _, interlace = data[24:29]
    if ctype not in _PNG_CHANNELS or depth not in (8, 16) or (ctype == 3 and depth != 8) \
            or interlace:
        return None
    pos, idat, palette = 8, bytearray(), None
    while pos + 12 <= len(data):
        length, tag = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc) != 4 or \
                zlib.crc32(tag + body) & 0xFFFFFFFF != int.from_bytes(crc, "big"):
            return None
        if tag == b"IDAT":
            idat += body
        elif tag == b"PLTE":
            palette = [bytes(body[i:i + 3]) + b"\xff" for i in range(0, length - 2, 3)]
        elif tag == b"IEND":
            break
        pos += 12 + length
    stride = width * _PNG_CHANNELS[ctype] * depth // 8
    expected = height * (stride + 1)
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(bytes(idat), expected + 1)
    except zlib.error:
        return None
    if len(raw) != expected or max(raw[::stride + 1]) > 4 or (ctype == 3 and not palette):
        return None
    return width, height, ctype, depth, palette, raw


def embeddable_texture(data: bytes | None) -> bytes | None:
    """`data` when a model can wear it as its base colour: a sound PNG, or a sized JPEG."""
    if not data:
        return None
    if _png_raw(data, 4 * MAX_DECODE_PIXELS):  # inflated only, not unfiltered: cheaper
        return data
    try:
        kind, width, _ = image_info(data)
    except ValueError:
        return None
    return data if kind == "jpeg" and width else None


def _unfilter(kind: int, line: bytearray, prev: bytes, bpp: int) -> bytearray:
    if kind == 1:
        for i in range(bpp, len(line)):
            line[i] = (line[i] + line[i - bpp]) & 255
    elif kind == 2:
        line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
    elif kind == 3:
        for i in range(len(line)):
            left = line[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
    elif kind == 4:
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            line[i] = (line[i] + pred) & 255
    return line


def decode_png(data: bytes, max_pixels: int = MAX_DECODE_PIXELS):
    """(width, height, RGBA rows) of a PNG this reader handles, else None (see _png_raw)."""
    found = _png_raw(data, max_pixels)
    if found is None:
        return None
    width, height, ctype, depth, palette, raw = found
    channels = _PNG_CHANNELS[ctype]
    bpp = channels * depth // 8
    stride = width * bpp
    rows, prev = [], bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(raw[start], bytearray(raw[start + 1:start + 1 + stride]), prev, bpp)
        prev = line
        samples = line[::2] if depth == 16 else line
        if ctype == 3:
            black = b"\0\0\0\xff"
            rows.append(b"".join(palette[i] if i < len(palette) else black for i in samples))
            continue
        rgba = bytearray(b"\xff" * 4 * width)
        grey = ctype in (0, 4)
        for k in range(3):
            rgba[k::4] = samples[0 if grey else k::channels]
        if ctype in (4, 6):
            rgba[3::4] = samples[channels - 1::channels]
        rows.append(bytes(rgba))
    return width, height, rows


def tinted_png(data: bytes, prompt: str, size: int = 512) -> bytes | None:
    """The input picture scaled to fit `size` and washed with the prompt's colour, or None
    when the input is not a PNG this reader decodes."""
    decoded = decode_png(data)
    if decoded is None:
        return None
    width, height, rows = decoded
    scale = size / max(width, height)
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    columns = [min(width - 1, int(x / scale)) * 4 for x in range(out_w)]
    colour = _palette(prompt)[0]
    tables = [bytes(round(v * 0.65 + c * 0.35) for v in range(256)) for c in colour]
    out_rows = []
    for y in range(out_h):
        src = rows[min(height - 1, int(y / scale))]
        row = bytearray(b"".join(src[x:x + 4] for x in columns))
        for k in range(3):
            row[k::4] = bytes(row[k::4]).translate(tables[k])
        out_rows.append(bytes(row))
    return make_png(out_w, out_h, out_rows)


# --- pictures of the procedural shapes: generated images and multiview sheets ---------------

VIEWS = ("front", "left", "back", "right")
RENDER_FACES = 1500
# Orthographic cameras around +Y (glTF axes, the subject faces +Z): screen-right and toward-the-
# camera as (x, z) weights. "left" is the subject's left, seen from +X.
_CAMERAS = {"front": ((1, 0), (0, 1)), "left": ((0, -1), (1, 0)),
            "back": ((-1, 0), (0, -1)), "right": ((0, 1), (-1, 0))}
# Key and fill lights fixed in the world, so each side of the subject is lit its own way.
_KEY_LIGHT, _FILL_LIGHT = (0.48, 0.72, 0.5), (-0.6, 0.35, -0.72)


def render_views(shape_seed: str, colour_seeds: dict[str, str], size: int = 512) -> dict:
    """PNG pictures of the shape `shape_seed` makes, one per view named in `colour_seeds`,
    each painted in the palette of its colour seed (an edit prompt can recolour one view)."""
    _, position, wraps_v, aspect = _shape(shape_seed, RENDER_FACES)
    nu, nv = _grid(RENDER_FACES, aspect, 0 if wraps_v else 1)
    positions, _, _, indices = _build_mesh(position, wraps_v, nu, nv, False)
    ys = [p[1] for p in positions]
    y_low, y_high = min(ys), max(ys)
    reach = max(max(math.hypot(p[0], p[2]) for p in positions), (y_high - y_low) / 2)
    scale = 0.4 * size / reach
    triangles = []
    for k in range(0, len(indices), 3):
        a, b, c = (positions[i] for i in indices[k:k + 3])
        normal = _normal(tuple(q - p for p, q in zip(a, b, strict=True)),
                         tuple(q - p for p, q in zip(a, c, strict=True)), None)
        if normal:
            height = ((a[1] + b[1] + c[1]) / 3 - y_low) / ((y_high - y_low) or 1.0)
            key, fill = (max(0.0, sum(n * w for n, w in zip(normal, light, strict=True)))
                         for light in (_KEY_LIGHT, _FILL_LIGHT))
            triangles.append(((a, b, c), normal, height, 0.3 + 0.6 * key + 0.3 * fill))
    return {view: _render(triangles, view, _palette(seed), scale, (y_low + y_high) / 2, size)
            for view, seed in colour_seeds.items()}


def _render(triangles, view: str, palette, scale: float, y_mid: float, size: int) -> bytes:
    (rx, rz), (dx, dz) = _CAMERAS[view]
    base, top, back = palette
    light_bg = [round(255 - (255 - v) * 0.25) for v in back]
    buf = bytearray()
    for y in range(size):
        fade = 1 - 0.15 * y / size
        buf += bytes((*(round(v * fade) for v in light_bg), 255)) * size
    depth = [-math.inf] * (size * size)
    half = size / 2
    for corners, normal, height, shade in triangles:
        if normal[0] * dx + normal[2] * dz <= 0:
            continue  # faces away from this camera
        colour = bytes((*(min(255, round((p + (q - p) * height) * shade))
                          for p, q in zip(base, top, strict=True)), 255))
        screen = [(half + scale * (x * rx + z * rz), half - scale * (y - y_mid), x * dx + z * dz)
                  for x, y, z in corners]
        _fill(buf, depth, size, screen, colour)
    return make_png(size, size, [buf[y * 4 * size:(y + 1) * 4 * size] for y in range(size)])


def _fill(buf: bytearray, depth: list, size: int, screen, colour: bytes) -> None:
    """Scan-convert one triangle with a depth test, a row span at a time."""
    (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = screen
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    if abs(area) < 1e-9:
        return
    if area < 0:
        (x1, y1, z1), (x2, y2, z2), area = (x2, y2, z2), (x1, y1, z1), -area
    dz_dx = ((z1 - z0) * (y2 - y0) - (z2 - z0) * (y1 - y0)) / area
    dz_dy = ((x1 - x0) * (z2 - z0) - (x2 - x0) * (z1 - z0)) / area
    edges = ((x0, y0, x1, y1), (x1, y1, x2, y2), (x2, y2, x0, y0))
    top = max(0, math.ceil(min(y0, y1, y2) - 0.5))
    bottom = min(size - 1, math.floor(max(y0, y1, y2) - 0.5))
    for py in range(top, bottom + 1):
        cy = py + 0.5
        low, high = -math.inf, math.inf
        for ax, ay, bx, by in edges:
            slope = ay - by  # the edge function is slope * x + offset, >= 0 inside
            offset = (bx - ax) * (cy - ay) - slope * ax
            if slope > 0:
                low = max(low, -offset / slope)
            elif slope < 0:
                high = min(high, -offset / slope)
            elif offset < 0:
                high = -math.inf
        first, last = max(0, math.ceil(low - 0.5)), min(size - 1, math.floor(high - 0.5))
        row = py * size
        z = z0 + dz_dx * (first + 0.5 - x0) + dz_dy * (cy - y0)
        for px in range(first, last + 1):
            if z > depth[row + px]:
                depth[row + px] = z
                buf[4 * (row + px):4 * (row + px) + 4] = colour
            z += dz_dx


# --- quad meshes, for quad=true (delivered as FBX) ------------------------------------------

def quad_mesh(prompt: str, face_limit: int):
    """The prompt's shape as close to `face_limit` quads, with shared vertices.

    Returns (name, vertices, polygons, corner normals, corner UVs); ends are closed by fans of
    quads, so every polygon has four corners.
    """
    quads = min(MAX_FACES, max(MIN_FACES, int(face_limit)))
    _, position, wraps_v, aspect = _shape(prompt, 2 * quads)
    capped = not wraps_v
    nu, nv = _grid(2 * quads, aspect, int(capped))
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
            vertex_normals.append(_normal(du, dv, (0.0, 1.0, 0.0)))
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
    return f"ModelStream_{_slug(prompt)}", vertices, polygons, normals, uvs


def make_fbx(prompt: str, face_limit: int = DEFAULT_FACES, texture: bool = True,
             texture_image: bytes | None = None) -> bytes:
    """A binary FBX quad model, what upstream returns for quad=true."""
    name, vertices, polygons, normals, uvs = quad_mesh(prompt, face_limit)
    image = (texture_image or texture_png(prompt)) if texture else None
    return fbx.mesh_fbx(name, vertices, polygons, normals, uvs, _palette(prompt)[0],
                              image and (image, "jpg" if image_info(image)[0] == "jpeg" else "png"))
