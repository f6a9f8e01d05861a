"""An independent client checks the double: Tripo's official SDK, 1.0.0 against the v3 paths
and 0.4.2 (the last v2 client) against ModelStream's v2 paths, every flow to its downloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from .support import PNG, SDK_KEY, box_glb, glb_parts, padded_glb, parse_glb, png
from .test_own_mesh import counts

pytestmark = pytest.mark.local_service

FLOWS = Path(__file__).with_name("sdk_flows.py")
V2_SDK = Path(sys.prefix) / "sdk-0.4.2"  # scripts/venv.sh installs it there
MAGIC = {".glb": b"glTF", ".png": b"\x89PNG\r\n\x1a\n"}
MODEL_FILES = {"model", "pbr_model", "rendered_image"}  # 1.0.0 aliases pbr_model to model_url
VIEW_FILES = {"front_view", "left_view", "back_view", "right_view"}
START = 1_000_000
# convert_model's formats and how each file starts.
CONVERTED = {"FBX": b"Kaydara FBX Binary", "OBJ": b"# ModelStream", "STL": b"ModelStream",
             "USDZ": b"PK", "3MF": b"PK", "GLTF": b"glTF"}


def triangles(glb: bytes) -> int:
    return sum(count for _, count in glb_parts(glb))


def run_sdk(flow: str, url: str, out: Path, pythonpath: str | None = None,
            files: dict | None = None) -> dict:
    """One sdk_flows.py run; `files` (name -> bytes) are written for it, by default the
    front, left and right pictures."""
    paths = []
    if files is None:
        files = {"front.png": PNG, "left.png": png(40, 40, 90), "right.png": png(40, 40, 200)}
    for name, data in files.items():
        paths.append(out / name)
        paths[-1].write_bytes(data)
    downloads = out / "downloads"
    downloads.mkdir()
    # No geolocation probe at import: the SDK talks to the local service and nothing else.
    env = dict(os.environ, TRIPO_DISABLE_GEO_DETECTION="1")
    env.pop("TRIPO_API_KEY", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    try:
        done = subprocess.run([sys.executable, str(FLOWS), flow, url, SDK_KEY,
                               str(downloads), *map(str, paths)],
                              capture_output=True, text=True, env=env, timeout=120)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"tripo3d {flow} did not finish in 120 s: {exc.stderr}")
    assert done.returncode == 0, f"tripo3d {flow} failed:\n{done.stderr}"
    return json.loads(done.stdout)


def check_files(run: dict, expected: set) -> None:
    """Every expected output downloaded by the SDK, each file what its name says."""
    assert run["status"] == "success", run
    assert set(run["files"]) == expected, run
    for name, path in run["files"].items():
        assert path, f"the SDK could not download {name}: {run}"
        data = Path(path).read_bytes()
        assert data.startswith(MAGIC[Path(path).suffix]), (name, path, data[:16])


def stats(url: str) -> dict:
    return requests.get(f"{url}/_local/stats", timeout=5).json()


def only_api(url: str, api: str) -> None:
    """Answer one API only, so a stray call to the other one fails the run."""
    assert requests.post(f"{url}/_local/faults", json={"api": api}, timeout=5).ok


def test_sdk_1_0_0_completes_every_flow_on_v3(url, tmp_path):
    only_api(url, "v3")
    result = run_sdk("1.0.0", url, tmp_path)
    runs = result["runs"]
    for name in ("text_to_model", "image_to_model", "multiview_to_model",
                 "image_to_model_from_task", "multiview_to_model_from_task"):
        check_files(runs[name], MODEL_FILES)
        assert runs[name]["rendered"], name
    check_files(runs["text_to_image"], {"image"})
    check_files(runs["generate_multiview_image"], VIEW_FILES)
    check_files(runs["edit_multiview_image"], VIEW_FILES)
    assert {run["type"] for run in runs.values()} == {
        "text_to_model", "image_to_model", "multiview_to_model", "text_to_image",
        "generate_multiview_image", "edit_multiview_image"}
    spent = sum(run["credits"] for run in runs.values())
    assert spent > 0 and all(run["credits"] > 0 for run in runs.values())
    assert result["balance"] == {"balance": START - spent, "frozen": 0}
    seen = stats(url)
    # image_to_model and generate_multiview_image upload front, multiview three pictures.
    assert seen["requests_by_api"]["v3"]["upload"] == 5
    assert set(seen["requests_by_api"]["v2"].values()) == {0}


def test_sdk_0_4_2_completes_every_flow_on_v2(url, tmp_path):
    assert (V2_SDK / "tripo3d" / "client.py").is_file(), (
        f"tripo3d 0.4.2 is missing from {V2_SDK}: scripts/test.sh (scripts/venv.sh) puts it there")
    only_api(url, "v2")
    result = run_sdk("0.4.2", url, tmp_path, pythonpath=str(V2_SDK))
    runs = result["runs"]
    for name in ("text_to_model", "image_to_model", "multiview_to_model"):
        check_files(runs[name], {"model", "rendered_image"})
        assert runs[name]["rendered"], name
    check_files(runs["text_to_image"], {"image"})
    check_files(runs["generate_multiview_image"], VIEW_FILES)
    check_files(runs["edit_multiview_image"], VIEW_FILES)
    seen = stats(url)
    spent = 3 * 20 + 5 + 2 * 10  # three textured models, an image, two multiview image sets
    assert result["balance"] == {"balance": START - spent, "frozen": 0}
    assert seen["requests_by_api"]["v2"]["upload"] == 5 and seen["requests"]["balance"] == 1
    assert set(seen["requests_by_api"]["v3"].values()) == {0}


def test_sdk_1_0_0_brings_your_own_mesh_in(url, tmp_path):
    """import_model (multipart, and presigned past 50 MB), texture_model, rig_check,
    rig_model, retarget_animation and retarget, each waited for and downloaded by the SDK."""
    only_api(url, "v3")
    small = box_glb(0.6, 1.8, 0.4, subdivisions=2)
    large = padded_glb(small, 51 * 1024 * 1024)
    result = run_sdk("own-mesh", url, tmp_path, files={"small.glb": small, "large.glb": large})
    runs = result["runs"]
    imported = {"model", "pbr_model"}  # no preview: 1.0.0 aliases pbr_model to model_url
    for name in ("import_model", "import_large", "texture_model", "rig", "retarget",
                 "retarget_one"):
        check_files(runs[name], imported)
    check_files(runs["rig_check"], set())
    files = {name: Path(runs[name]["files"]["model"]).read_bytes() for name in runs
             if runs[name]["files"]}
    assert files["import_model"] == small and files["import_large"] == large
    assert counts(parse_glb(files["texture_model"])[0]) == counts(parse_glb(small)[0])
    assert (runs["rig_check"]["riggable"], runs["rig_check"]["rig_type"]) == (True, "biped")
    rig, _ = parse_glb(files["rig"])
    assert all(rig["nodes"][j]["name"].startswith("mixamorig:") for j in rig["skins"][0]["joints"])
    moves, _ = parse_glb(files["retarget"])
    assert [a["name"] for a in moves["animations"]] == ["preset:walk", "preset:run", "preset:idle"]
    one, _ = parse_glb(files["retarget_one"])
    assert [a["name"] for a in one["animations"]] == ["preset:jump"]
    assert {name: run["credits"] for name, run in runs.items()} == {
        "import_model": 0, "import_large": 0, "texture_model": 10, "rig_check": 0, "rig": 25,
        "retarget": 30, "retarget_one": 10}
    assert {run["type"] for run in runs.values()} == {
        "import_model", "texture_model", "animate_prerigcheck", "animate_rig",
        "animate_retarget"}
    assert result["balance"] == {"balance": START - 75, "frozen": 0}
    seen = stats(url)
    # The small file by multipart, the large one's presign by API; its PUT went to the bucket.
    assert seen["requests_by_api"]["v3"]["upload"] == 2 and seen["requests"]["upload"] == 3


def test_sdk_1_0_0_completes_post_processing(url, tmp_path):
    """mesh_segmentation, mesh_completion, smart_lowpoly, convert_model to each format and a
    text_to_model with generate_parts / smart_low_poly / geometry_quality, each waited for
    and downloaded by the SDK."""
    only_api(url, "v3")
    result = run_sdk("post", url, tmp_path, files={})
    runs = result["runs"]
    robot_parts = ["head", "torso", "arm_left", "arm_right", "leg_left", "leg_right"]
    glb = {name: Path(runs[name]["files"]["model"]).read_bytes() for name in (
        "robot", "options", "mesh_segmentation", "mesh_completion", "smart_lowpoly")}
    for name in glb:
        check_files(runs[name], {"model", "pbr_model"} | ({"rendered_image"} if name in (
            "robot", "options") else set()))
    for name in ("options", "mesh_segmentation", "mesh_completion"):
        assert runs[name]["output_extra"]["part_names"] == robot_parts, runs[name]
        assert [part for part, _ in glb_parts(glb[name])] == robot_parts
    assert triangles(glb["mesh_segmentation"]) == triangles(glb["robot"])
    assert triangles(glb["mesh_completion"]) > triangles(glb["robot"])
    assert triangles(glb["smart_lowpoly"]) <= 500 and triangles(glb["options"]) <= 1000
    for kind, magic in CONVERTED.items():
        run = runs[f"convert_{kind}"]
        ext = kind.lower() if kind != "GLTF" else "glb"
        assert run["status"] == "success" and run["output_extra"] == {"format": ext}, run
        path = Path(run["files"]["model"])
        assert path.suffix == f".{ext}" and path.read_bytes().startswith(magic), (kind, path)
    assert {name: run["credits"] for name, run in runs.items()} == {
        "robot": 20, "options": 70, "mesh_segmentation": 40, "mesh_completion": 50,
        "smart_lowpoly": 30, **{f"convert_{kind}": 5 for kind in CONVERTED}}
    assert {run["type"] for run in runs.values()} == {
        "text_to_model", "mesh_segmentation", "mesh_completion", "highpoly_to_lowpoly",
        "convert_model"}
    spent = sum(run["credits"] for run in runs.values())
    assert result["balance"] == {"balance": START - spent, "frozen": 0}
    assert stats(url)["tasks_by_type"] == {"text_to_model": 2, "mesh_segmentation": 1,
                                           "mesh_completion": 1, "highpoly_to_lowpoly": 1,
                                           "convert_model": 6}


def test_sdk_0_4_2_stylizes_on_v2(url, tmp_path):
    only_api(url, "v2")
    result = run_sdk("stylize", url, tmp_path, pythonpath=str(V2_SDK), files={})
    runs = result["runs"]
    for name in ("voxel", "lego", "voronoi"):
        check_files(runs[name], {"model"})
        assert runs[name]["type"] == "stylize_model"
    sizes = {name: triangles(Path(runs[name]["files"]["model"]).read_bytes())
             for name in runs}
    # Voronoi tiles hold the robot's triangles; voxels are cubes; lego's block_size 40 makes
    # half as many blocks along a side as voxel's default 80.
    assert sizes["voronoi"] == sizes["robot"] and sizes["voxel"] % 12 == 0
    assert sizes["lego"] < sizes["voxel"]
    assert result["balance"] == {"balance": START - 20 - 3 * 20, "frozen": 0}
    assert stats(url)["tasks_by_type"] == {"text_to_model": 1, "stylize_model": 3}
