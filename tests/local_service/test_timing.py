"""When a task turned success and how often it was read, in /_local/stats: what the latency
benchmark measures a client against."""

from __future__ import annotations

import time

import pytest
import requests

from .support import LATENCY, create, get, wait

pytestmark = pytest.mark.local_service


def stats(url):
    return requests.get(f"{url}/_local/stats", timeout=5).json()


def test_succeeded_at_is_when_the_task_turned_success(url):
    before = time.time()
    task_id = create(url, prompt="a stopwatch")
    assert get(url, task_id)["status"] in ("queued", "running")
    assert task_id not in stats(url)["succeeded_at"], "a running task has no success time"
    deadline = time.monotonic() + 10 * LATENCY + 5
    while get(url, task_id)["status"] != "success":
        assert time.monotonic() < deadline, "the task never succeeded"
        time.sleep(0.01)
    seen = time.time()
    at = stats(url)["succeeded_at"][task_id]
    # The lifecycle's clock: LATENCY after the create, and no later than a GET saw it.
    assert before + LATENCY <= at <= seen, (before, at, seen)


def test_a_failed_task_has_no_success_time(url):
    requests.post(f"{url}/_local/faults", json={"next_status": "failed"},
                  timeout=5).raise_for_status()
    task_id = create(url, prompt="a broken clock")
    assert wait(url, [task_id])[task_id]["status"] == "failed"
    assert task_id not in stats(url)["succeeded_at"]


def test_task_polls_counts_each_tasks_gets(url):
    first, second = create(url, prompt="a bell"), create(url, prompt="a gong")
    for _ in range(3):
        get(url, first)
    get(url, second)
    assert requests.get(f"{url}/tripo/v2/openapi/task/no-such-task",
                        headers={"Authorization": "Bearer sk-wrong"}, timeout=5).status_code == 401
    assert stats(url)["task_polls"] == {first: 3, second: 1}
