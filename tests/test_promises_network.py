"""README promises about the network, each held by a test that fails when it breaks: Retry-After
is honoured, the download limit holds, polling is sparse, a create that never reached the
service is resent safely (no bpy)."""

import logging
import math
import os
import socket
import threading

import pytest

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import errors
from modelstream_addon.core.client import ModelStreamClient
from modelstream_addon.core.job import FAILED, READY
from tests.conftest import KEY, start_service, wait_until
from tests.relay import Relay

BODY = {"type": "text_to_model", "prompt": "a small kettle", "face_limit": 400}
LATENCY = 4.0
# The clocks' own granularity; the promise itself is a lower bound with no slack.
CLOCK_SLACK = 0.01


@pytest.fixture
def proxy(service):
    relay = Relay(service.url)
    yield relay
    relay.close()


@pytest.fixture(scope="module")
def timed_service():
    """A service whose tasks take a known LATENCY, so polls per task have a known bound."""
    with start_service("--latency", str(LATENCY)) as svc:
        yield svc


def creates(proxy):
    return [(t, status) for t, method, path, status in proxy.log if method == "POST"]


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_the_client_waits_as_long_as_retry_after_says(service, proxy, form):
    service.faults(fail_create={"status": 429, "count": 1, "retry_after": 1,
                                "retry_after_format": form})
    client = ModelStreamClient(KEY, proxy.url, backoff=0.001)
    assert client.create_task(BODY)
    (first, refused), (second, accepted) = creates(proxy)
    assert (refused, accepted) == (429, 200)
    assert second - first >= 1.0 - CLOCK_SLACK, f"resent after {second - first:.3f} s"
    assert service.stats()["tasks_created"] == 1


@pytest.mark.parametrize("poll_max", [30.0, 0.5])
@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_the_engine_waits_as_long_as_retry_after_says(service, proxy, tmp_path, form,
                                                      poll_max):
    """With no retries left in the client, the engine's own wait must honour the header,
    whatever its own back-off settings."""
    service.faults(fail_create={"status": 429, "count": 1, "retry_after": 1,
                                "retry_after_format": form})
    eng = engine_mod.Engine(str(tmp_path), poll_min=0.05, poll_max=poll_max)
    try:
        job = eng.submit(ModelStreamClient(KEY, proxy.url, max_retries=0), BODY)
        eng.wait(job.id, timeout=60)
        assert job.state == READY, job.error
    finally:
        eng.shutdown()
    (first, refused), (second, accepted) = creates(proxy)
    assert (refused, accepted) == (429, 200)
    assert second - first >= 1.0 - CLOCK_SLACK, f"resent after {second - first:.3f} s"
    assert service.stats()["tasks_created"] == 1


def test_a_model_over_the_download_limit_fails_and_leaves_no_file(service, tmp_path):
    downloads = tmp_path / "downloads"
    eng = engine_mod.Engine(str(downloads), poll_min=0.2, poll_max=0.5, max_download=2048)
    try:
        job = eng.submit(ModelStreamClient(KEY, service.url), BODY)
        eng.wait(job.id, timeout=60)
    finally:
        eng.shutdown()
    assert job.state == FAILED, job.state
    assert "2048-byte limit" in job.error
    assert not job.output_path
    left = os.listdir(downloads) if downloads.exists() else []
    assert left == [], f"left behind: {left}"
    assert service.stats()["tasks_created"] == 1


def test_polling_is_sparse_over_a_task_of_known_length(timed_service, tmp_path):
    timed_service.reset()
    poll_min = 1.0
    eng = engine_mod.Engine(str(tmp_path), poll_min=poll_min, poll_max=30.0)
    try:
        job = eng.submit(ModelStreamClient(KEY, timed_service.url), BODY)
        eng.wait(job.id, timeout=60)
        assert job.state == READY, job.error
    finally:
        eng.shutdown()
    gets = timed_service.stats()["requests"]["get"]
    # Polls at least poll_min apart fit ceil(LATENCY / poll_min) times before the task is
    # done, plus the one that sees it done.
    assert 1 <= gets <= math.ceil(LATENCY / poll_min) + 1, gets


def test_a_create_that_never_connected_is_resent_once_the_service_is_there(caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ModelStreamClient(KEY, f"http://127.0.0.1:{port}", max_retries=8, backoff=0.2)
    outcome = {}

    def create():
        try:
            outcome["task_id"] = client.create_task(BODY)
        except errors.ModelStreamError as e:
            outcome["error"] = e

    caplog.set_level(logging.INFO, logger="modelstream")
    sender = threading.Thread(target=create, daemon=True)
    sender.start()
    wait_until(lambda: any("ConnectionFailedError" in r.getMessage() for r in caplog.records),
               20, "the client never reported a refused connection before retrying")
    with start_service("--port", str(port)) as late:
        sender.join(60)
        assert not sender.is_alive(), "the create never finished"
        assert "task_id" in outcome, outcome.get("error")
        stats = late.stats()
        assert stats["tasks_created"] == 1 and stats["requests"]["create"] == 1


def test_create_get_and_download_deliver_a_model(service, tmp_path):
    client = ModelStreamClient(KEY, service.url)
    task_id = client.create_task(BODY)
    data = wait_until(lambda: (d := client.get_task(task_id))["status"] == "success" and d,
                      30, "the task never succeeded", interval=0.2)
    dest = tmp_path / "model.glb"
    size = client.download(data["output"]["model"], str(dest))
    assert size == dest.stat().st_size and dest.read_bytes()[:4] == b"glTF"
    assert service.stats()["tasks_created"] == 1
