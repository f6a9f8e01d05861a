"""Downloaded files are checked before Blender's importers see them (no bpy): a GLB that
points outside itself, an FBX whose records claim more than the file holds, an image too
large to decode. What fails is the add-on's own error, naming the task; the file goes only
when it is inside the download folder."""

import json
import os
import random
import struct
import zlib

import pytest
from local_service.models import make_fbx, make_glb

from modelstream_addon.core import errors, formats, imagefile
from tests.conftest import write_png

MAGIC = b"Kaydara FBX Binary  \x00\x1a\x00"


def glb(doc, blob=b""):
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    blob += b"\0" * (-len(blob) % 4)
    bin_chunk = struct.pack("<I4s", len(blob), b"BIN\0") + blob if blob else b""
    return (struct.pack("<4sII", b"glTF", 2, 20 + len(text) + len(bin_chunk))
            + struct.pack("<I4s", len(text), b"JSON") + text + bin_chunk)


def record(name, props=b"", count=0, children=None, at=27):
    """One FBX 7.4 record at offset `at`; `children` is a list of callables taking an offset."""
    start = at + 13 + len(name) + len(props)
    body = b""
    for child in children or ():
        body += child(start + len(body))
    if children is not None:
        body += bytes(13)
    end = start + len(body)
    return struct.pack("<IIIB", end, count, len(props), len(name)) + name + props + body


def fbx(*records, version=7400):
    return MAGIC + struct.pack("<I", version) + b"".join(records) + bytes(13)


def check(path, folder, task_id="task-1"):
    return formats.check_model_file(str(path), folder=str(folder), task_id=task_id)


def refused(path, folder, words):
    with pytest.raises(formats.FileCheckError) as info:
        check(path, folder)
    assert words in str(info.value) and "task task-1" in str(info.value), str(info.value)
    return str(info.value)


@pytest.mark.parametrize("doc, words", [
    ({"asset": {"version": "2.0"}, "images": [{"uri": "../../home/user/secret.png"}]},
     "refers to a file outside it"),
    ({"asset": {"version": "2.0"}, "buffers": [{"uri": "/etc/passwd", "byteLength": 64}]},
     "refers to a file outside it"),
    ({"asset": {"version": "2.0"},
      "extensions": {"X_any": {"deep": [{"uri": "file:///etc/hosts"}]}}},
     "refers to a file outside it"),
    ({"asset": {"version": "2.0"}, "images": [{"uri": 7}]}, "refers to a file outside it"),
    ([1, 2, 3], "corrupt JSON chunk"),
])
def test_a_glb_that_points_outside_itself_is_refused_and_removed(tmp_path, doc, words):
    path = tmp_path / "m.glb"
    path.write_bytes(glb(doc))
    refused(path, tmp_path, words)
    assert not path.exists()


def test_a_glb_with_data_uris_and_embedded_buffers_passes(tmp_path):
    pixel = "data:image/png;base64,iVBORw0KGgo="
    path = tmp_path / "m.glb"
    path.write_bytes(glb({"asset": {"version": "2.0"}, "buffers": [{"byteLength": 4}],
                          "images": [{"uri": pixel}, {"bufferView": 0}]}, b"abcd"))
    assert check(path, tmp_path) == "glb"
    path.write_bytes(make_glb("a lamp", 500, texture=True, pbr=True))
    assert check(path, tmp_path) == "glb"


def test_a_glb_json_chunk_is_bounded_in_size_and_depth(tmp_path, monkeypatch):
    path = tmp_path / "m.glb"
    path.write_bytes(glb({"asset": {"version": "2.0"}, "pad": "x" * 2000}))
    monkeypatch.setattr(formats, "MAX_GLB_JSON", 1000)
    refused(path, tmp_path, "JSON chunk (at most")
    monkeypatch.undo()
    text = b"[" * 100_000 + b"]" * 100_000
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 20 + len(text))
                     + struct.pack("<I4s", len(text), b"JSON") + text)
    refused(path, tmp_path, "corrupt JSON chunk")


def test_the_forty_byte_fbx_that_asks_for_16_gb_is_refused(tmp_path):
    # One record claiming 2**31 - 1 properties: Blender's parser makes a list of that many
    # slots (16 GB) before it reads one.
    bomb = MAGIC + struct.pack("<I", 7400) + struct.pack("<IIIB", 40, 2**31 - 1, 0, 0)
    assert len(bomb) == 40
    path = tmp_path / "m.fbx"
    path.write_bytes(bomb)
    refused(path, tmp_path, "properties overrun")
    assert not path.exists()


def string_prop(value, claimed=None):
    return b"S" + struct.pack("<I", len(value) if claimed is None else claimed) + value


def array_prop(values, encoding=1, claimed=None):
    raw = struct.pack(f"<{len(values)}d", *values)
    data = zlib.compress(raw) if encoding else raw
    return b"d" + struct.pack("<III", len(values) if claimed is None else claimed,
                              encoding, len(data)) + data


def nested(depth):
    if depth == 0:
        return lambda at: record(b"Leaf", string_prop(b"x"), 1, at=at)
    return lambda at: record(b"N", children=[nested(depth - 1)], at=at)


@pytest.mark.parametrize("data, words", [
    (fbx(record(b"A", string_prop(b"abc"), 1), version=0), "FBX version 0"),
    (MAGIC + struct.pack("<I", 7400) + record(b"A", string_prop(b"abc"), 1),
     "ends before its last record"),
    (fbx(record(b"A", string_prop(b"abc", claimed=2**32 - 9), 1)), "properties overrun"),
    (fbx(record(b"A", array_prop([1.0, 2.0], encoding=0, claimed=2**31), 1)),
     "does not match its data"),
    (fbx(record(b"A", array_prop([0.0] * 64, claimed=2**31), 1)), "does not match its data"),
    (fbx(record(b"A", array_prop([1.0], encoding=7), 1)), "does not match its data"),
    (fbx(record(b"A", b"?" + bytes(8), 1)), "unknown type"),
    (MAGIC + struct.pack("<I", 7400) + struct.pack("<IIIB", 42, 1, 1, 1) + b"AS",
     "properties overrun"),
    (MAGIC + struct.pack("<I", 7400) + struct.pack("<IIIB", 46, 1, 5, 1) + b"Ad\0\0\0\0",
     "properties overrun"),
    (fbx(nested(40)(27)), "nests records over 32 deep"),
    (fbx(struct.pack("<IIIB", 0xFFFFFFF0, 0, 0, 1) + b"A"), "ends past its parent or the file"),
], ids=lambda value: value if isinstance(value, str) else "fbx")
def test_an_fbx_whose_records_do_not_add_up_is_refused(tmp_path, data, words):
    path = tmp_path / "m.fbx"
    path.write_bytes(data)
    refused(path, tmp_path, words)
    assert not path.exists()


def test_a_child_that_overruns_its_parent_is_refused(tmp_path):
    good = fbx(record(b"P", children=[lambda at: record(b"C", string_prop(b"abc"), 1, at=at)]))
    path = tmp_path / "m.fbx"
    path.write_bytes(good)
    assert check(path, tmp_path) == "fbx"
    child_end = 27 + 13 + 1 + 13 + 1 + 8
    assert struct.unpack_from("<I", good, 27 + 14)[0] == child_end
    path.write_bytes(good[:27 + 14] + struct.pack("<I", child_end + 20) + good[27 + 18:])
    refused(path, tmp_path, "ends past its parent")


def test_fbx_inflation_is_bounded_by_the_file_size(tmp_path, monkeypatch):
    path = tmp_path / "m.fbx"
    rng = random.Random(3)
    path.write_bytes(fbx(record(b"A", array_prop([rng.random() for _ in range(50_000)]), 1)))
    assert check(path, tmp_path) == "fbx"
    monkeypatch.setattr(formats, "FBX_MAX_EXPANSION", 1)
    monkeypatch.setattr(formats, "FBX_HEADROOM", 0)
    refused(path, tmp_path, "inflate to")


def test_real_fbx_models_pass(tmp_path):
    path = tmp_path / "m.fbx"
    for faces, texture in ((200, False), (5000, True)):
        path.write_bytes(make_fbx("a wooden crate", faces, texture))
        assert check(path, tmp_path) == "fbx"


def test_cut_or_flipped_fbx_either_passes_or_is_refused_never_crashes(tmp_path):
    """Every cut of a real file, and random byte flips: the check's own error or a pass."""
    good = make_fbx("a tiny cup", 100, False)
    path = tmp_path / "m.fbx"
    rng = random.Random(11)
    cases = [good[:n] for n in range(27, len(good), max(1, len(good) // 400))]
    for _ in range(400):
        spoiled = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            spoiled[rng.randrange(27, len(good))] = rng.randrange(256)
        cases.append(bytes(spoiled))
    outcomes = set()
    for data in cases:
        path.write_bytes(data)
        try:
            outcomes.add(check(path, tmp_path))
        except formats.FileCheckError:
            outcomes.add("refused")
    assert outcomes == {"fbx", "refused"}


def test_a_refused_file_outside_the_download_folder_is_kept(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    outside = tmp_path / "users_own.fbx"
    outside.write_bytes(fbx(record(b"A", string_prop(b"x", claimed=999), 1)))
    refused(outside, downloads, "properties overrun")
    assert outside.exists()
    escape = downloads / ".." / "users_own.fbx"
    refused(escape, downloads, "properties overrun")
    assert outside.exists()


def test_check_errors_are_download_errors():
    assert issubclass(formats.FileCheckError, errors.DownloadError)


def huge_png(path, side=20000):
    """A grey PNG of side x side px written row by row: ~400 KB for 400 MB of pixels."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I",
                                                                        zlib.crc32(kind + body))

    packer, row = zlib.compressobj(6), bytes(side + 1)
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8,
                                                                   0, 0, 0, 0))
                + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return str(path)


def test_a_huge_downloaded_image_is_refused_from_its_header(tmp_path):
    path = huge_png(tmp_path / "view.img")
    assert os.path.getsize(path) < 1_000_000
    with pytest.raises(formats.FileCheckError, match="20000x20000 px") as info:
        formats.check_image_file(path, folder=str(tmp_path), task_id="task-2")
    assert "task task-2" in str(info.value)
    assert not os.path.exists(path)
    fine = write_png(tmp_path / "fine.img", 2000, 1000)
    assert formats.check_image_file(fine, folder=str(tmp_path)) == "png"


def test_a_huge_input_image_is_refused_before_any_decoding(tmp_path):
    path = huge_png(tmp_path / "huge.png")
    with pytest.raises(imagefile.ImageError, match="20000x20000 px .400 MP.") as info:
        imagefile.check_decodable(path, "image_path")
    assert "huge.png" in str(info.value) and "6000 px" in str(info.value)
    big = tmp_path / "big.png"  # 49 MP: Blender may convert it (only the header is read)
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII", 13, b"IHDR", 7000, 7000))
    imagefile.check_decodable(str(big), "image_path")
