"""Checks on downloaded files before anything is imported. No bpy here."""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import struct
import urllib.parse
import zipfile

from . import imagefile
from .errors import DownloadError
from .tasks import VIEWS

# v2 names first, then the v3 names a gateway may pass through.
MODEL_OUTPUT_KEYS = ("pbr_model", "model", "base_model", "model_url", "pbr_model_url",
                     "base_model_url")
IMAGE_OUTPUT_KEYS = ("generated_image", "generated_image_url", "image", "image_url")
PREVIEW_OUTPUT_KEYS = ("rendered_image", "rendered_image_url")
_EXTENSIONS = {".glb": "glb", ".fbx": "fbx"}
# A model's JSON is kilobytes to a few MiB; parsing takes about 5x its size in memory.
MAX_GLB_JSON = 64 * 1024 * 1024
# Binary FBX, as Blender's parser reads it: the magic and a version, then records of
# (end offset, property count, property bytes, name length) in 32 bits before 7500, 64 after.
FBX_MAGIC = b"Kaydara FBX Binary  \x00\x1a\x00"
FBX_VERSIONS = range(7100, 8000)  # Blender refuses older ones; no newer one exists
FBX_MAX_DEPTH = 32  # real files nest about 6 deep; the parser recurses per level
# Arrays inflate by at most zlib's own 1032:1; all of a file's by at most this many times
# its size (models compress 2-5x), so a small file cannot make the importer ask for GBs.
FBX_MAX_EXPANSION = 32
FBX_HEADROOM = 2**20
_FBX_SCALARS = {ord(c): n for c, n in zip("ZYBCIFDL", (1, 2, 1, 1, 4, 4, 8, 8), strict=True)}
_FBX_ARRAYS = {ord(c): n for c, n in zip("bcilfd", (1, 1, 4, 8, 4, 8), strict=True)}


def output_url(value):
    """Tripo outputs are URL strings; accept {'url': ...} too."""
    if isinstance(value, dict):
        value = value.get("url")
    return value if isinstance(value, str) and value.strip() else None


def first_url(output, keys):
    """The first non-empty URL under `keys`, in their order."""
    output = output if isinstance(output, dict) else {}
    for key in keys:
        url = output_url(output.get(key))
        if url:
            return url
    return None


def model_url(output):
    return first_url(output, MODEL_OUTPUT_KEYS)


def image_urls(output, kind):
    """[(name, url)] of the images a task returned. The multiview shape is not documented
    (flat `*_view_url` keys or nested under a key), so URL fields are collected by name."""
    output = output if isinstance(output, dict) else {}
    if kind == "file":
        return []
    if kind == "image":
        url = first_url(output, IMAGE_OUTPUT_KEYS)
        return [("generated_image", url)] if url else []
    if kind == "model":
        url = first_url(output, PREVIEW_OUTPUT_KEYS)
        return [("preview", url)] if url else []
    found = {}

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                url = output_url(value) if isinstance(value, str) else None
                view = next((v for v in VIEWS if v in key.lower()), None)
                if url and view:
                    found.setdefault(view, url)
                elif isinstance(value, list) and len(value) == 4:
                    for v, item in zip(VIEWS, value, strict=True):
                        if output_url(item):
                            found.setdefault(v, output_url(item))
                else:
                    walk(value)

    walk(output)
    return [(view, found[view]) for view in VIEWS if view in found]


def format_from_url(url):
    path = urllib.parse.urlsplit(url).path.lower()
    return _EXTENSIONS.get(os.path.splitext(path)[1])


class FileCheckError(DownloadError):
    """A downloaded file that must not reach Blender: it was removed, nothing imported."""


def _refuse(path, folder, message, task_id):
    """Remove a refused download, but only inside the download folder, then raise."""
    folder = os.path.realpath(folder)
    if os.path.commonpath([os.path.realpath(path), folder]) == folder:
        with contextlib.suppress(OSError):
            os.remove(path)
    raise FileCheckError(message, task_id=task_id)


def check_image_file(path, *, folder, task_id=None):
    """Return 'png'/'jpeg'/'webp' of a downloaded image, or remove it and raise. Its size
    comes from the header, so a huge one is never decoded."""
    fmt, width, height = imagefile.sniff(path)
    if fmt not in imagefile.MIME:
        problem = "is not a PNG, JPEG or WEBP file"
    elif not width:
        problem = "hides its size in its header"
    else:
        problem = imagefile.decode_problem(width, height)
        problem = problem and f"is {problem}"
    if problem:
        _refuse(path, folder, f"The downloaded image {problem}; it was not loaded.", task_id)
    return fmt


def _external(doc):
    """The first `uri` in a glTF document that is not a data: URI (the importer would read
    that file from the user's disk), or None. Walked without recursion."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            uri = node.get("uri")
            if uri is not None and not (isinstance(uri, str)
                                        and uri[:5].lower() == "data:"):
                return uri
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def _glb_problem(path):
    """Why a GLB is unusable (header, declared length, JSON chunk, outside files), or None."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header = f.read(20)
        if len(header) < 20:
            return "is too short to be a GLB"
        _, version, length, chunk_len, chunk_type = struct.unpack("<4sIIII", header)
        if version != 2:
            return f"is glTF version {version}, not 2"
        if length != size:
            return f"declares {length} bytes but has {size}"
        if chunk_type != 0x4E4F534A or 20 + chunk_len > size:
            return "has no JSON chunk"
        if chunk_len > MAX_GLB_JSON:
            return f"has a {chunk_len / 2**20:.0f} MiB JSON chunk (at most " \
                   f"{MAX_GLB_JSON // 2**20} MiB)"
        try:
            doc = json.loads(f.read(chunk_len))
        except (ValueError, RecursionError):
            return "has a corrupt JSON chunk"
    if not isinstance(doc, dict):
        return "has a corrupt JSON chunk"
    uri = _external(doc)
    if uri is not None:
        return f"refers to a file outside it ({str(uri)[:80]!r})"
    return None


def _fbx_properties(data, at, count, end):
    """(where the properties end, bytes their arrays inflate to), or a str: the problem."""
    inflated = 0
    for _ in range(count):
        if at >= end:
            return "has a record whose properties overrun it"
        kind = data[at]
        at += 1
        if kind in _FBX_SCALARS:
            at += _FBX_SCALARS[kind]
        elif kind in (0x53, 0x52):  # S, R: a u32 length, then the bytes
            if at + 4 > end:
                return "has a record whose properties overrun it"
            at += 4 + struct.unpack_from("<I", data, at)[0]
        elif kind in _FBX_ARRAYS:
            if at + 12 > end:
                return "has a record whose properties overrun it"
            length, encoding, packed = struct.unpack_from("<III", data, at)
            at += 12 + packed
            wants = length * _FBX_ARRAYS[kind]
            if encoding not in (0, 1) or (encoding == 0 and wants != packed) \
                    or wants > packed * 1032 + 64:
                return "has an array whose length does not match its data"
            inflated += wants
        else:
            return f"has a property of unknown type {kind}"
    if at > end:
        return "has a record whose properties overrun it"
    return at, inflated


def _fbx_walk(data):
    """Walk every record as Blender's parser would, without reading the arrays."""
    size = len(data)
    version = struct.unpack_from("<I", data, len(FBX_MAGIC))[0]
    if version not in FBX_VERSIONS:
        return f"is FBX version {version}, not 7.1 to 7.x"
    head = struct.Struct("<QQQB" if version >= 7500 else "<IIIB")
    null = bytes(head.size)  # the empty record that closes a list of children
    at = len(FBX_MAGIC) + 4
    open_ends = []  # the end offsets of the records whose children are being walked
    inflated = 0
    while True:
        if open_ends and at >= open_ends[-1] - len(null):
            if at != open_ends[-1] - len(null) or data[at:at + len(null)] != null:
                return "has a record whose children overrun it"
            at = open_ends.pop()
            continue
        if at + head.size > size:
            return "ends before its last record"
        end, count, _, name_len = head.unpack_from(data, at)
        if end == 0 and not open_ends:
            break
        if not at + head.size + name_len <= end <= (open_ends[-1] if open_ends else size):
            return "has a record that ends past its parent or the file"
        found = _fbx_properties(data, at + head.size + name_len, count, end)
        if isinstance(found, str):
            return found
        props_end, grown = found
        inflated += grown
        if props_end == end:
            at = end
        elif len(open_ends) >= FBX_MAX_DEPTH:
            return f"nests records over {FBX_MAX_DEPTH} deep"
        else:
            open_ends.append(end)
            at = props_end
    if inflated > FBX_MAX_EXPANSION * size + FBX_HEADROOM:
        return f"has arrays that inflate to {inflated / 2**20:.0f} MiB"
    return None


def _fbx_problem(path):
    """Why a binary FBX would mislead Blender's importer (sizes past the file, runaway
    nesting or inflation: a 40-byte file can make it ask for 16 GB), or None."""
    with open(path, "rb") as f:
        if f.read(len(FBX_MAGIC) + 4)[:len(FBX_MAGIC)] != FBX_MAGIC \
                or os.path.getsize(path) < len(FBX_MAGIC) + 4:
            return "has no binary FBX header"
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _fbx_walk(data)


def check_model_file(path, *, folder, task_id=None):
    """Return the format of a downloaded model, or remove it and raise."""
    fmt = imagefile.sniff(path)[0]
    problem = None
    if fmt not in ("glb", "fbx"):
        problem = "is neither a GLB nor a binary FBX file"
    elif fmt == "glb":
        problem = _glb_problem(path)
    else:
        problem = _fbx_problem(path)
    if problem:
        _refuse(path, folder, f"The downloaded model {problem}; it was not imported.",
                task_id)
    return fmt


EXPORT_FORMATS = ("glb", "fbx", "obj", "stl", "usdz", "3mf")
MAX_ZIP_EXPANSION = 64  # a USDZ is stored uncompressed; a 3MF's XML deflates ~10x


def export_format_from_url(url):
    """The extension of a converted file's link, when it is one of EXPORT_FORMATS."""
    ext = os.path.splitext(urllib.parse.urlsplit(url).path.lower())[1][1:]
    return ext if ext in EXPORT_FORMATS else None


def _text_problem(path, wanted):
    """Why a text model file is not one (OBJ: vertex lines; ASCII STL: facets), or None."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if b"\0" in head:
        return "is not a text file"
    text = head.decode("utf-8", "replace")
    if wanted == "obj":
        return None if any(line.startswith("v ") for line in text.splitlines()) \
            else "has no vertices"
    return None if "facet" in text else "has no facets"


def _stl_problem(path):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(84)
    if head[:5].lower() == b"solid" and _text_problem(path, "stl") is None:
        return None  # ASCII STL
    if len(head) < 84:
        return "is too short to be an STL file"
    count = struct.unpack_from("<I", head, 80)[0]
    if size != 84 + 50 * count:
        return f"declares {count} triangles but holds {max(0, size - 84) // 50}"
    return None


def _zip_problem(path, fmt):
    """A USDZ or 3MF is a zip: its members must stay inside it, inflate to a sane size,
    and include what the format needs (a USD layer first; a 3D/*.model)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        return "is not a zip archive"
    names = [m.filename for m in members]
    if not names or any(n.startswith(("/", "\\")) or ".." in n.split("/") for n in names):
        return "has members outside the archive"
    if sum(m.file_size for m in members) > MAX_ZIP_EXPANSION * os.path.getsize(path) + 2**20:
        return "inflates to far more than its size"
    if fmt == "usdz" and not names[0].lower().endswith((".usd", ".usda", ".usdc")):
        return "does not start with a USD layer"
    if fmt == "3mf" and not any(n.lower().startswith("3d/") and n.lower().endswith(".model")
                                for n in names):
        return "holds no 3D model part"
    return None


def check_export_file(path, fmt, *, folder, task_id=None):
    """Return the format of a converted file (its link's), or remove it and raise. The
    content must be what the link says: a GLB or binary FBX walked as for an import, an
    OBJ or STL that holds geometry, a USDZ or 3MF archive that holds what its format does."""
    sniffed = imagefile.sniff(path)[0]
    if fmt not in EXPORT_FORMATS:
        problem = "is not one of the formats asked for"
    elif fmt in ("glb", "fbx"):
        problem = (f"is not a {fmt.upper()} file" if sniffed != fmt
                   else _glb_problem(path) if fmt == "glb" else _fbx_problem(path))
    elif fmt == "obj":
        problem = _text_problem(path, "obj")
    elif fmt == "stl":
        problem = _stl_problem(path)
    else:
        problem = _zip_problem(path, fmt)
    if problem:
        _refuse(path, folder, f"The converted file {problem}; it was not kept.", task_id)
    return fmt


def largest_texture(path):
    """The longest side, in pixels, of the largest image embedded in a GLB (read from the
    images' headers, none decoded), or 0 when it has none or cannot be read."""
    try:
        with open(path, "rb") as f:
            magic, _, _, chunk_len, chunk_type = struct.unpack("<4sIIII", f.read(20))
            if magic != b"glTF" or chunk_type != 0x4E4F534A or chunk_len > MAX_GLB_JSON:
                return 0
            doc = json.loads(f.read(chunk_len))
            base = 20 + chunk_len + (-chunk_len % 4) + 8  # the BIN chunk's data
            largest = 0
            for image in doc.get("images", []):
                view = doc["bufferViews"][image["bufferView"]]
                f.seek(base + view.get("byteOffset", 0))
                head = f.read(min(view["byteLength"], imagefile.HEAD))
                _, width, height = imagefile.sniff_head(head)
                largest = max(largest, width, height)
            return largest
    except (OSError, ValueError, KeyError, IndexError, TypeError, struct.error):
        return 0
