"""Injected faults and the counters in /_local/stats."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests

from .support import AUTH, create, get, parse_glb, post, wait

pytestmark = pytest.mark.local_service


def test_next_status_failed_then_back_to_success(url):
    resp = requests.post(f"{url}/_local/faults", timeout=5,
                         json={"next_status": "failed", "error_code": 2008,
                               "error_msg": "content policy"})
    assert resp.status_code == 200
    failed_id, ok_id = create(url, prompt="a lamp"), create(url, prompt="a lamp")
    views = wait(url, [failed_id, ok_id])
    failed = views[failed_id]
    assert failed["status"] == "failed" and failed["output"] == {}
    assert (failed["error_code"], failed["error_msg"]) == (2008, "content policy")
    assert views[ok_id]["status"] == "success"
    assert requests.get(f"{url}/_local/stats", timeout=5).json()["faults"]["next_status"] == 1


def test_stats_count_requests(url):
    ids = [create(url, prompt="a chair"), create(url, prompt="a table")]
    get(url, ids[0])
    stats = requests.get(f"{url}/_local/stats", timeout=5).json()
    assert stats["tasks_created"] == 2
    assert stats["requests"] == {"create": 2, "get": 1, "file": 0, "upload": 0, "balance": 0}
    assert stats["requests_by_api"]["v2"] == stats["requests"]
    assert set(stats["requests_by_api"]["v3"].values()) == {0}
    assert set(stats["tasks"]) == set(ids)
    assert set(stats["tasks"].values()) <= {"queued", "running"}
    assert stats["task_types"] == dict.fromkeys(ids, "text_to_model")
    assert stats["uploads"] == 0 and stats["max_in_flight_seen"] == 2


def test_http_faults(url):
    faults = {"fail_create": {"status": 429, "retry_after": 2},
              "fail_get": {"status": 500, "count": 2, "code": 1000}}
    assert requests.post(f"{url}/_local/faults", json=faults, timeout=5).ok
    body = {"type": "text_to_model", "prompt": "a kettle"}
    resp = requests.post(f"{url}/tripo/v2/openapi/task", json=body, headers=AUTH, timeout=5)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "2"
    assert resp.json()["error"]["type"] == "rate_limit_error"
    task_id = create(url, prompt="a kettle")
    for _ in range(2):
        resp = requests.get(f"{url}/tripo/v2/openapi/task/{task_id}", headers=AUTH, timeout=5)
        assert resp.status_code == 500 and resp.json()["code"] == 1000
    assert get(url, task_id)["task_id"] == task_id
    stats = requests.get(f"{url}/_local/stats", timeout=5).json()
    assert stats["faults"]["fail_create"] == 1 and stats["faults"]["fail_get"] == 2
    assert stats["tasks_created"] == 1 and stats["requests"]["create"] == 2


def test_dropped_connection_on_create(url):
    assert requests.post(f"{url}/_local/faults", timeout=5,
                         json={"fail_create": {"status": "reset"}}).ok
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{url}/tripo/v2/openapi/task", headers=AUTH, timeout=5,
                      json={"type": "text_to_model", "prompt": "a bell"})
    assert create(url, prompt="a bell")


def test_download_faults(url):
    task_id = create(url, prompt="a vase", face_limit=200)
    model_url = wait(url, [task_id])[task_id]["output"]["model"]
    faults = f"{url}/_local/faults"
    assert requests.post(faults, json={"expire_url": 1, "corrupt_glb": 1}, timeout=5).ok
    assert requests.get(model_url, timeout=5).status_code == 403
    corrupt = requests.get(model_url, timeout=5)
    assert corrupt.status_code == 200 and corrupt.content.startswith(b"glTF")
    with pytest.raises(ValueError):
        parse_glb(corrupt.content)
    assert requests.post(faults, json={"truncate_download": 1}, timeout=5).ok
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(model_url, timeout=5)
    parse_glb(requests.get(model_url, timeout=5).content)
    stats = requests.get(f"{url}/_local/stats", timeout=5).json()
    assert {k: stats["faults"][k] for k in ("expire_url", "corrupt_glb", "truncate_download")} \
        == {"expire_url": 1, "corrupt_glb": 1, "truncate_download": 1}


def test_delay_and_fault_validation(url):
    bad = requests.post(f"{url}/_local/faults", json={"delay": -1}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "delay"
    bad = requests.post(f"{url}/_local/faults", json={"explode": 1}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "explode"
    assert requests.post(f"{url}/_local/faults", json={"delay": 0.3}, timeout=5).ok
    start = time.monotonic()
    requests.get(f"{url}/tripo/v2/openapi/task/x", headers=AUTH, timeout=5)
    assert time.monotonic() - start >= 0.3
    assert requests.post(f"{url}/_local/faults", json={"reset": True}, timeout=5).ok
    assert requests.get(f"{url}/_local/stats", timeout=5).json()["delay"] == 0


@pytest.mark.parametrize("status, created", [("reset_before", 0), ("reset", 0),
                                             ("reset_after", 1)])
def test_dropped_create_before_or_after_the_task_exists(url, status, created):
    faults = {"fail_create": {"status": status}}
    assert requests.post(f"{url}/_local/faults", json=faults, timeout=5).ok
    with pytest.raises(requests.ConnectionError):
        post(url, {"type": "text_to_model", "prompt": "a bell"})
    stats = requests.get(f"{url}/_local/stats", timeout=5).json()
    assert stats["requests"]["create"] == 1 and stats["tasks_created"] == created
    assert len(stats["tasks"]) == created and stats["faults"]["fail_create"] == 1


def test_retry_after_as_http_date(url):
    faults = {"fail_create": {"status": 429, "retry_after": 2, "retry_after_format": "http-date"},
              "fail_get": {"status": 503, "retry_after": 1, "retry_after_format": "http-date"}}
    assert requests.post(f"{url}/_local/faults", json=faults, timeout=5).ok
    resp = post(url, {"type": "text_to_model", "prompt": "a kettle"})
    assert resp.status_code == 429
    when = email.utils.parsedate_to_datetime(resp.headers["Retry-After"]).timestamp()
    assert 1 < when - time.time() <= 3
    get = requests.get(f"{url}/tripo/v2/openapi/task/x", headers=AUTH, timeout=5)
    assert get.status_code == 503 and get.headers["Retry-After"].endswith(" GMT")
    bad = requests.post(f"{url}/_local/faults", timeout=5, json={
        "fail_get": {"status": 429, "retry_after": 1, "retry_after_format": "weeks"}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "fail_get"


def test_unknown_for_then_success(url):
    assert requests.post(f"{url}/_local/faults", json={"unknown_for": 0.5}, timeout=5).ok
    odd, normal = create(url, prompt="a lamp"), create(url, prompt="a lamp")
    assert get(url, odd)["status"] == "unknown"
    assert get(url, normal)["status"] == "queued"
    seen = []
    deadline = time.monotonic() + 10
    while not seen or seen[-1] != "success":
        assert time.monotonic() < deadline
        seen.append(get(url, odd)["status"])
        time.sleep(0.05)
    first_known = next(i for i, status in enumerate(seen) if status != "unknown")
    assert "unknown" not in seen[first_known:] and "running" in seen[first_known:]
    assert requests.get(f"{url}/_local/stats", timeout=5).json()["faults"]["unknown_for"] == 1


def test_next_status_any_final_status(url):
    ids = {}
    for status in ("banned", "expired", "cancelled", "unknown", "melted"):
        assert requests.post(f"{url}/_local/faults", json={"next_status": status},
                             timeout=5).ok
        ids[status] = create(url, prompt="a cup")
    views = wait(url, ids.values())
    for status, task_id in ids.items():
        assert views[task_id]["status"] == status and views[task_id]["output"] == {}
        assert "error_msg" not in views[task_id]


def test_max_in_flight_refuses_with_2000(url):
    faults = f"{url}/_local/faults"
    assert requests.post(faults, json={"max_in_flight": 2}, timeout=5).ok
    ids = [create(url, prompt="a mug", face_limit=100) for _ in range(2)]
    refused = post(url, {"type": "text_to_model", "prompt": "a mug"})
    assert refused.status_code == 429
    assert refused.json()["code"] == 2000 and refused.json()["message"] == "concurrency limit"
    assert refused.json()["suggestion"]
    wait(url, ids)
    assert post(url, {"type": "text_to_model", "prompt": "a mug"}).status_code == 200
    stats = requests.get(f"{url}/_local/stats", timeout=5).json()
    assert stats["max_in_flight_seen"] == 2 and stats["tasks_created"] == 3
    assert stats["faults"]["max_in_flight"] == 1 and stats["settings"]["max_in_flight"] == 2
    assert requests.post(faults, json={"max_in_flight": None}, timeout=5).ok


def test_slow_get_and_slow(url):
    task_id = create(url, prompt="a bowl")
    faults = f"{url}/_local/faults"
    assert requests.post(faults, json={"slow_get": 0.4, "count": 1}, timeout=5).ok
    timings = []
    for _ in range(2):
        start = time.monotonic()
        get(url, task_id)
        timings.append(time.monotonic() - start)
    assert timings[0] >= 0.4 > timings[1]
    assert requests.post(faults, json={"slow": 0.2}, timeout=5).json()["delay"] == 0.2
    bad = requests.post(faults, json={"count": 2}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "count"
    stats = requests.get(f"{url}/_local/stats", timeout=5).json()
    assert stats["faults"]["slow_get"] == 1 and stats["delay"] == 0.2
