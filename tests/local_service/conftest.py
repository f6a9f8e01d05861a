"""One local service for this folder's tests, reset before each test so none depends on
what an earlier test left behind (a slow setting, a fault, a counter)."""

import pytest
import requests

from .support import KEY, LATENCY, SDK_KEY, launch


@pytest.fixture(scope="session")
def url():
    proc, base = launch("--latency", str(LATENCY), "--key", KEY, "--key", SDK_KEY)
    yield base
    proc.kill()
    proc.wait(timeout=5)


@pytest.fixture(autouse=True)
def fresh(request):
    """Module fixtures made their tasks and downloads first; the test itself starts clean."""
    if "url" in request.fixturenames:
        base = request.getfixturevalue("url")
        requests.post(f"{base}/_local/reset", timeout=5).raise_for_status()
