"""One sniffer for every file the add-on checks: input images and downloads (no bpy)."""

import struct

import pytest

from modelstream_addon.core import errors, formats, imagefile
from tests.conftest import write_png


def jpeg(width, height, exif=4000):
    """A JPEG's header: SOI, a large APP1 (as cameras write), then the frame (SOF0)."""
    app1 = b"\xff\xe1" + struct.pack(">H", exif + 2) + b"\0" * exif
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app1 + b"\xff\xff" + sof + b"\xff\xda"


def webp(chunk, payload):
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(payload)) + b"WEBP" + chunk \
        + struct.pack("<I", len(payload)) + payload


VP8 = b"\0\0\0\x9d\x01\x2a" + struct.pack("<HH", 640, 480)
VP8L = b"\x2f" + (299 | (199 << 14)).to_bytes(4, "little")
VP8X = b"\0\0\0\0" + (1023).to_bytes(3, "little") + (767).to_bytes(3, "little")
GLB = b"glTF" + struct.pack("<III", 2, 20, 0) + b"JSON"


@pytest.mark.parametrize("head, expected", [
    (jpeg(800, 600), ("jpeg", 800, 600)),
    (jpeg(800, 600)[:100], ("jpeg", 0, 0)),
    (webp(b"VP8 ", VP8), ("webp", 640, 480)),
    (webp(b"VP8L", VP8L), ("webp", 300, 200)),
    (webp(b"VP8X", VP8X), ("webp", 1024, 768)),
    (GLB, ("glb", 0, 0)),
    (b"Kaydara FBX Binary  \0\x1a\0", ("fbx", 0, 0)),
    (b"GIF89a", (None, 0, 0)),
    (b"", (None, 0, 0)),
])
def test_sniff_reads_the_format_and_the_size_from_the_head(head, expected):
    assert imagefile.sniff_head(head) == expected


def test_sniff_reads_a_png_file(tmp_path):
    assert imagefile.sniff(write_png(tmp_path / "a.png", 70, 30)) == ("png", 70, 30)


def test_an_image_whose_size_is_hidden_is_refused_by_name(tmp_path):
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpeg(800, 600)[:100])
    with pytest.raises(imagefile.ImageError, match="size of cut.jpg cannot be read"):
        imagefile.check(str(path), "image_path")


def test_image_errors_are_the_addons_own():
    assert issubclass(imagefile.ImageError, errors.ModelStreamError)


def test_downloads_are_checked_by_the_same_sniffer(tmp_path):
    picture = tmp_path / "preview.img"
    picture.write_bytes(jpeg(64, 64))
    folder = str(tmp_path)
    assert formats.check_image_file(str(picture), folder=folder) == "jpeg"
    model = tmp_path / "model.glb"
    model.write_bytes(GLB)
    with pytest.raises(errors.DownloadError, match="not a PNG, JPEG or WEBP"):
        formats.check_image_file(str(model), folder=folder, task_id="t1")
    assert not model.exists()
    png = write_png(tmp_path / "model.fbx")
    with pytest.raises(errors.DownloadError, match="neither a GLB nor a binary FBX"):
        formats.check_model_file(png, folder=folder)
    fbx = tmp_path / "quad.fbx"
    fbx.write_bytes(b"Kaydara FBX Binary  \0\x1a\0" + struct.pack("<I", 7400) + b"\0" * 13)
    assert formats.check_model_file(str(fbx), folder=folder) == "fbx"
