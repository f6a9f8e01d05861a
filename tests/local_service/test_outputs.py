"""What tasks deliver: GLB and FBX models, previews, generated and multiview pictures."""

from __future__ import annotations

import io
import socket

import pytest
import requests
from PIL import Image

from .support import (
    PNG,
    PNG_FILE,
    SIDE_FILE,
    base_colour,
    create,
    data_url,
    fbx_polygon_sizes,
    filtered_png,
    parse_glb,
    pixels,
    png,
    png_raw_rgb,
    png_size,
    positions,
    views,
    wait,
)

pytestmark = pytest.mark.local_service


MODEL_CASES = {
    "plain": {"prompt": "a ceramic vase", "face_limit": 500, "texture": False},
    "other": {"prompt": "a crystal spire", "face_limit": 500, "texture": False},
    "textured": {"prompt": "a glazed donut", "face_limit": 20000, "texture": True},
    "pbr": {"prompt": "a metal crate", "face_limit": 2000, "texture": True, "pbr": True},
}


@pytest.fixture(scope="module")
def models(url):
    """Every case generated in parallel once: case -> (task view, GLB response)."""
    ids = {case: create(url, **fields) for case, fields in MODEL_CASES.items()}
    views = wait(url, ids.values())
    out = {}
    for case, task_id in ids.items():
        view = views[task_id]
        assert view["status"] == "success", view
        model_url = view["output"].get("pbr_model") or view["output"]["model"]
        out[case] = (view, requests.get(model_url, timeout=10))
    return out


def test_glb_download_framing(models):
    for _, resp in models.values():
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "model/gltf-binary"
        assert int(resp.headers["Content-Length"]) == len(resp.content)
        assert resp.content.startswith(b"glTF")
        doc, _ = parse_glb(resp.content)
        assert doc["asset"]["version"] == "2.0"
        for view_def in doc["bufferViews"]:
            assert view_def["byteOffset"] % 4 == 0


@pytest.mark.parametrize("case", MODEL_CASES)
def test_triangle_count_follows_face_limit(models, case):
    doc, _ = parse_glb(models[case][1].content)
    primitive = doc["meshes"][0]["primitives"][0]
    indices = doc["accessors"][primitive["indices"]]
    assert indices["componentType"] == 5125  # UNSIGNED_INT
    limit = MODEL_CASES[case]["face_limit"]
    assert abs(indices["count"] // 3 - limit) <= 0.1 * limit
    position = doc["accessors"][primitive["attributes"]["POSITION"]]
    assert len(position["min"]) == len(position["max"]) == 3
    assert "NORMAL" in primitive["attributes"]


def test_texture_only_when_asked(models):
    for case in ("textured", "pbr"):
        doc, _ = parse_glb(models[case][1].content)
        pbr = doc["materials"][0]["pbrMetallicRoughness"]
        assert doc["images"][pbr["baseColorTexture"]["index"]]["mimeType"] == "image/png"
        assert "TEXCOORD_0" in doc["meshes"][0]["primitives"][0]["attributes"]
    doc, _ = parse_glb(models["plain"][1].content)
    assert "images" not in doc and "textures" not in doc
    pbr = doc["materials"][0]["pbrMetallicRoughness"]
    assert "baseColorTexture" not in pbr and len(pbr["baseColorFactor"]) == 4
    assert pbr["metallicFactor"] == 0.0


def test_pbr_model(models):
    view, resp = models["pbr"]
    assert set(view["output"]) == {"pbr_model", "rendered_image"}
    assert view["output"]["pbr_model"].endswith(".glb")
    doc, _ = parse_glb(resp.content)
    pbr = doc["materials"][0]["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] > 0 and "metallicRoughnessTexture" in pbr


def test_prompts_give_different_shapes(models):
    plain = positions(*parse_glb(models["plain"][1].content))
    other = positions(*parse_glb(models["other"][1].content))
    assert plain != other


@pytest.fixture(scope="module")
def outputs(url):
    """Every task type generated once, two waves (the second builds on the first):
    name -> (task view, {output key: response})."""
    first = {
        "text_to_image": {"type": "text_to_image", "prompt": "a paper crane"},
        "generate_image": {"type": "generate_image", "prompt": "a paper crane", "file": PNG_FILE},
        "multiview_image": {"type": "generate_multiview_image", "prompt": "a tin robot",
                            "file": PNG_FILE, "negative_prompt": "blurry"},
        "image_to_model": {"type": "image_to_model", "file": PNG_FILE, "face_limit": 600},
        "multiview_to_model": {"type": "multiview_to_model", "face_limit": 600,
                               "files": [PNG_FILE, {}, SIDE_FILE, {}]},
        "quad": {"type": "text_to_model", "prompt": "a ceramic vase", "face_limit": 900,
                 "quad": True, "model_seed": 7},
        "draft": {"type": "text_to_model", "prompt": "a ceramic vase", "face_limit": 400},
    }
    ids = {name: create(url, **body) for name, body in first.items()}
    views = {name: wait(url, [task_id])[task_id] for name, task_id in ids.items()}
    original = ids["multiview_image"]
    second = {
        "refine": {"type": "refine_model", "draft_model_task_id": ids["draft"]},
        "edit": {"type": "edit_multiview_image", "original_task_id": original,
                 "prompts": [{"view": view, "prompt": f"make the {view} gold"}
                             for view in ("front", "left", "back", "right")]},
        "from_views": {"type": "multiview_to_model", "original_task_id": original,
                       "face_limit": 500},
    }
    ids = {name: create(url, **body) for name, body in second.items()}
    views.update({name: wait(url, [task_id])[task_id] for name, task_id in ids.items()})
    out = {}
    for name, view in views.items():
        assert view["status"] == "success", view
        urls = view["output"].get("generate_multiview_image", view["output"])
        out[name] = (view, {key: requests.get(link, timeout=10) for key, link in urls.items()})
    return out


def test_every_output_is_served_with_its_length(outputs):
    for view, files in outputs.values():
        for key, resp in files.items():
            assert resp.status_code == 200, (view["type"], key)
            assert int(resp.headers["Content-Length"]) == len(resp.content) > 0
            link = view["output"].get("generate_multiview_image", view["output"])[key]
            assert link.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("name", ["text_to_image", "generate_image"])
def test_generated_images_are_pngs(outputs, name):
    view, files = outputs[name]
    assert set(view["output"]) == {"generated_image"}
    assert view["output"]["generated_image"].endswith(".png")
    resp = files["generated_image"]
    assert resp.headers["Content-Type"] == "image/png"
    assert max(png_size(resp.content)) == 512


def test_generate_image_works_from_its_input(outputs):
    plain = outputs["text_to_image"][1]["generated_image"].content
    tinted = outputs["generate_image"][1]["generated_image"].content
    assert plain != tinted
    assert png_size(tinted) == (512, 427)  # the 48 x 40 input, scaled to fit


@pytest.mark.parametrize("name", ["multiview_image", "edit"])
def test_multiview_images_are_four_distinct_views(outputs, name):
    view, files = outputs[name]
    urls = views(view["output"])
    assert [urls[f"{side}_view_url"].rsplit("/", 1)[1] for side in ("front", "left")] == \
        ["front_view.png", "left_view.png"]
    pictures = [resp.content for resp in files.values()]
    assert all(png_size(picture) == (512, 512) for picture in pictures)
    assert len(set(pictures)) == 4


def test_edit_changes_the_views(outputs):
    original, edited = (outputs[name][1] for name in ("multiview_image", "edit"))
    for side in ("front", "left", "back", "right"):
        assert original[f"{side}_view_url"].content != edited[f"{side}_view_url"].content


def test_quad_is_a_binary_fbx_of_quads(outputs):
    view, files = outputs["quad"]
    assert set(view["output"]) == {"model", "rendered_image"}
    assert view["output"]["model"].endswith(".fbx")
    assert view["input"]["model_seed"] == 7  # unknown fields pass through
    resp = files["model"]
    assert resp.headers["Content-Type"] == "application/octet-stream"
    sizes = fbx_polygon_sizes(resp.content)
    assert set(sizes) == {4} and 0.9 * 900 <= len(sizes) <= 900


@pytest.mark.parametrize("name", ["image_to_model", "multiview_to_model"])
def test_image_models_wear_the_front_image(outputs, name):
    view, files = outputs[name]
    assert set(view["output"]) == {"model", "rendered_image"}
    doc, _ = parse_glb(files["model"].content)
    mime, worn = base_colour(files["model"].content)
    assert mime == "image/png" and pixels(worn) == pixels(PNG)
    assert abs(doc["accessors"][doc["meshes"][0]["primitives"][0]["indices"]]["count"] // 3
               - 600) <= 60


def test_refine_has_more_faces_than_its_draft(outputs):
    def triangles(name):
        doc, _ = parse_glb(outputs[name][1]["model"].content)
        return doc["accessors"][doc["meshes"][0]["primitives"][0]["indices"]]["count"] // 3
    assert triangles("refine") > triangles("draft")
    assert outputs["refine"][0]["type"] == "refine_model"


def test_model_from_multiview_task_wears_its_front_view(outputs):
    _, worn = base_colour(outputs["from_views"][1]["model"].content)
    front = outputs["multiview_image"][1]["front_view_url"].content
    assert pixels(worn) == pixels(front)


def test_http_image_urls_are_fetched_and_bad_ones_fail_the_task(url):
    image_id = create(url, type="text_to_image", prompt="a paper crane")
    picture = wait(url, [image_id])[image_id]["output"]["generated_image"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/gone.png"
    good = create(url, type="image_to_model", file={"type": "png", "url": picture},
                   face_limit=300)
    bad = create(url, type="image_to_model", file={"type": "png", "url": closed})
    views = wait(url, [good, bad])
    assert views[good]["status"] == "success"
    assert views[bad]["status"] == "failed" and views[bad]["output"] == {}
    assert "file.url" in views[bad]["error_msg"] and views[bad]["error_code"]
    doc, _ = parse_glb(requests.get(views[good]["output"]["model"], timeout=5).content)
    assert doc["images"][0]["mimeType"] == "image/png"


def _rgba_rows(width: int, height: int) -> list[bytes]:
    return [bytes((x * 37 + y * 11) % 256 for x in range(4 * width)) for y in range(height)]


def _encoded(kind: str) -> bytes:
    """A 25 x 23 picture as `kind`: Pillow writes the JPEG and the WEBP, this file the PNGs."""
    if kind == "png-filtered-rgba":
        return filtered_png(_rgba_rows(25, 23), 4, 6)
    if kind == "png-filtered-grey":
        return filtered_png([bytes((x * 13 + y * 29) % 256 for x in range(25))
                             for y in range(23)], 1, 0)
    picture = Image.frombytes("RGB", (25, 23), png_raw_rgb(25, 23))
    out = io.BytesIO()
    picture.save(out, format=kind.upper(), **({"lossless": True} if kind == "webp" else {}))
    return out.getvalue()


@pytest.mark.parametrize("kind", ["png-filtered-rgba", "png-filtered-grey", "jpeg", "webp"])
def test_input_images_become_textures(url, kind):
    """Every PNG filter type, JPEG and WEBP: the model wears the picture it was given."""
    data = _encoded(kind)
    file_type = {"jpeg": "jpg", "webp": "webp"}.get(kind, "png")
    task_id = create(url, type="image_to_model", face_limit=200,
                     file={"type": file_type, "url": data_url(data, f"image/{kind[:4]}")})
    model = wait(url, [task_id])[task_id]["output"]["model"]
    mime, worn = base_colour(requests.get(model, timeout=10).content)
    (size, got), (_, want) = pixels(worn), pixels(data)
    assert size == (25, 23)
    if kind == "jpeg":
        assert mime == "image/jpeg"
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 48
    else:
        assert mime == "image/png" and got == want


def test_broken_input_image_is_not_worn(url):
    """A PNG cut short passes the header check but does not decode: the model wears its own
    texture rather than a broken one."""
    broken = png(40, 40)[:-30]
    task_id = create(url, type="image_to_model", face_limit=200,
                     file={"type": "png", "url": data_url(broken)})
    view = wait(url, [task_id])[task_id]
    assert view["status"] == "success"
    _, worn = base_colour(requests.get(view["output"]["model"], timeout=10).content)
    size, _ = pixels(worn)
    assert size != (40, 40)
