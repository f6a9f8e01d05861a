"""stylize_model on the v2 paths: voxels are axis-aligned cubes, lego bricks carry studs,
voronoi tiles split the surface; refusals are 400s naming the field; v3 has no route."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
import trimesh

from .support import AUTH, create, post, wait
from .test_post import stats

pytestmark = pytest.mark.local_service


def styled(url, source: str, **body) -> tuple[dict, trimesh.Trimesh]:
    task_id = create(url, type="stylize_model", original_model_task_id=source, **body)
    view = wait(url, [task_id])[task_id]
    assert (view["status"], view["type"], view["consumed_credit"]) == (
        "success", "stylize_model", 20), view
    assert set(view["output"]) == {"model"}
    data = requests.get(view["output"]["model"], timeout=10).content
    return view, trimesh.load(io.BytesIO(data), file_type="glb", force="mesh", process=False)


def pieces(mesh: trimesh.Trimesh, weld: bool = False) -> list[trimesh.Trimesh]:
    """The connected pieces; `weld` joins vertices at one place first (UV seams)."""
    mesh = mesh.copy()
    if weld:
        mesh.merge_vertices(merge_tex=True, merge_norm=True)
    return mesh.split(only_watertight=False)


def is_cube(piece: trimesh.Trimesh, pitch: float) -> bool:
    axis_aligned = np.allclose(np.abs(piece.face_normals).max(axis=1), 1, atol=1e-6)
    return len(piece.faces) == 12 and axis_aligned and np.allclose(piece.extents, pitch,
                                                                   rtol=1e-4)


@pytest.fixture
def source(url):
    task_id = create(url, prompt="a robot", face_limit=600)
    assert wait(url, [task_id])[task_id]["status"] == "success"
    return task_id


def test_voxel_is_made_of_axis_aligned_cubes(url, source):
    _, voxel = styled(url, source, style="voxel", block_size=32)
    cubes = pieces(voxel)
    pitch = cubes[0].extents[0]
    assert len(cubes) > 20 and all(is_cube(cube, pitch) for cube in cubes)
    assert abs(pitch - 1.0 / 8) < 1e-3  # block_size 32: 8 blocks along the 1 m height
    # On a grid: every cube's corner a whole number of pitches from the first one.
    steps = (np.array([cube.bounds[0] for cube in cubes]) - cubes[0].bounds[0]) / pitch
    assert np.allclose(steps, np.round(steps), atol=1e-3)
    _, finer = styled(url, source, style="voxel")  # block_size 80: 20 blocks
    assert len(pieces(finer)) > 2 * len(cubes)


def test_lego_bricks_carry_studs_on_top(url, source):
    _, lego = styled(url, source, style="lego", block_size=32)
    parts = pieces(lego)
    pitch = max(part.extents.max() for part in parts)
    cubes = [part for part in parts if is_cube(part, pitch)]
    studs = [part for part in parts if not is_cube(part, pitch)]
    assert cubes and studs and len(studs) <= len(cubes)
    tops = np.array([[*(c.bounds[1][[0, 2]] - pitch / 2), c.bounds[1][1]] for c in cubes])
    for stud in studs:
        assert stud.extents[1] < pitch / 2 and stud.extents[0] < pitch
        # Centred on a cube, its base within a fifth of a block above that cube's top.
        under = np.linalg.norm(tops[:, :2] - stud.centroid[[0, 2]], axis=1) < 1e-4
        lift = stud.bounds[0][1] - tops[under, 2]
        assert np.any((lift >= 0) & (lift < 0.2 * pitch)), stud.centroid


def test_voronoi_tiles_hold_every_triangle(url, source):
    task = requests.get(f"{url}/tripo/v2/openapi/task/{source}", headers=AUTH,
                        timeout=5).json()["data"]
    model = trimesh.load(io.BytesIO(requests.get(task["output"]["model"], timeout=10).content),
                         file_type="glb", force="mesh", process=False)
    _, voronoi = styled(url, source, style="voronoi")
    tiles = pieces(voronoi, weld=True)
    assert len(voronoi.faces) == len(model.faces)
    assert len(tiles) >= 8  # 24 cells; one that spans two robot parts is two tiles
    # Each tile is its cell shrunk by 12 % towards its centre, so tiles stand apart: the
    # area is 0.88 squared of the source's, and the points on cell borders are doubled.
    assert abs(voronoi.area / model.area - 0.88 ** 2) < 1e-3
    points = {tuple(p) for p in np.round(voronoi.vertices, 6).tolist()}
    assert len(points) > len({tuple(p) for p in np.round(model.vertices, 6).tolist()})


def test_stylize_refusals_and_no_v3_route(url, source):
    image = create(url, type="text_to_image", prompt="a kite")
    wait(url, [image])
    requests.post(f"{url}/_local/faults", json={"unknown_for": 30}, timeout=5)
    running = create(url, prompt="a cup")
    v3 = requests.post(f"{url}/v3/generation/text-to-model", json={"prompt": "a cup"},
                       headers=AUTH, timeout=5).json()["data"]["task_id"]
    created = stats(url)["tasks_created"]
    cases = [
        ({"style": "minecraft"}, "style"), ({"style": "pixel"}, "style"), ({}, "style"),
        ({"style": "voxel", "block_size": 31}, "block_size"),
        ({"style": "voxel", "block_size": 129}, "block_size"),
        ({"style": "voxel", "block_size": "80"}, "block_size"),
    ]
    bodies = [({"original_model_task_id": source, **body}, param) for body, param in cases]
    bodies += [({"original_model_task_id": task, "style": "voxel"}, "original_model_task_id")
               for task in (image, running, v3, "no-such-task")]
    bodies.append(({"style": "voxel"}, "original_model_task_id"))
    for body, param in bodies:
        resp = post(url, {"type": "stylize_model", **body})
        assert resp.status_code == 400, (body, resp.text)
        assert resp.json()["error"]["param"] == param, (body, resp.json())
    refused = post(url, {"type": "stylize_model", "style": "minecraft",
                         "original_model_task_id": source}).json()["error"]["message"]
    assert "not offered by this service" in refused
    assert stats(url)["tasks_created"] == created
    for path in ("/v3/models/stylize", "/v3/mesh/stylize", "/v3/generation/stylize"):
        resp = requests.post(f"{url}{path}", json={"input": v3, "style": "voxel"},
                             headers=AUTH, timeout=5)
        assert resp.status_code == 404, path
