"""Hostile files served in place of a deliverable, once per arming, counted: a GLB that
points at the client's disk, an FBX whose record claims 4 GB, a 20000 x 20000 px PNG."""

from __future__ import annotations

import struct

import pytest
import requests

from .support import create, parse_glb, wait

pytestmark = pytest.mark.local_service


def test_each_hostile_file_fires_once_then_the_real_file_returns(url):
    glb_id, fbx_id = create(url, prompt="a vase"), create(url, prompt="a box", quad=True)
    image_id = create(url, type="text_to_image", prompt="a fox")
    done = wait(url, [glb_id, fbx_id, image_id])
    glb_url = done[glb_id]["output"]["model"]
    fbx_url = done[fbx_id]["output"]["model"]
    image_url = done[image_id]["output"]["generated_image"]
    faults = {"external_uri_glb": 1, "bogus_fbx": True, "huge_png": 1}
    assert requests.post(f"{url}/_local/faults", json=faults, timeout=5).ok

    doc, _ = parse_glb(requests.get(glb_url, timeout=5).content)
    assert doc["images"] == [{"uri": "../../../../../../../../etc/hosts"}]
    bogus = requests.get(fbx_url, timeout=5).content
    assert len(bogus) == 45 and struct.unpack_from("<I", bogus, 27)[0] > len(bogus)
    huge = requests.get(image_url, timeout=30).content
    assert struct.unpack(">II", huge[16:24]) == (20000, 20000) and len(huge) < 1_000_000

    assert "uri" not in str(parse_glb(requests.get(glb_url, timeout=5).content)[0])
    assert len(requests.get(fbx_url, timeout=5).content) > 1000
    assert requests.get(image_url, timeout=5).content[16:24] != huge[16:24]
    stats = requests.get(f"{url}/_local/stats", timeout=5).json()["faults"]
    assert {name: stats[name] for name in faults} == dict.fromkeys(faults, 1)


def test_a_hostile_file_needs_a_count(url):
    bad = requests.post(f"{url}/_local/faults", json={"bogus_fbx": "yes"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "bogus_fbx"
