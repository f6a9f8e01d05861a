"""The service as a process and a library: its command line, signals, the Python API."""

from __future__ import annotations

import ast
import signal
import sys
import time

import pytest
import requests

from .support import PNG, PNG_FILE, ROOT, launch, post, upload

pytestmark = pytest.mark.local_service


def test_sigterm_exits_cleanly_without_logging_the_key():
    proc, base = launch("--key", "sk-secret-123", "--latency", "0", "--verbose")
    try:
        headers = {"Authorization": "Bearer sk-secret-123"}
        resp = requests.post(f"{base}/tripo/v2/openapi/task", headers=headers, timeout=5,
                             json={"type": "text_to_model", "prompt": "a cup"})
        assert resp.status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "/tripo/v2/openapi/task" in err  # verbose logs the request line ...
    assert "sk-secret-123" not in out + err  # ... but never the key


def test_python_api_in_process():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from local_service.server import LocalService
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    with LocalService(key="sk-in-process", latency=0) as service:
        headers = {"Authorization": "Bearer sk-in-process"}
        resp = requests.post(f"{service.url}/tripo/v2/openapi/task", headers=headers,
                             json={"type": "text_to_model", "prompt": "a cup"}, timeout=5)
        task_id = resp.json()["data"]["task_id"]
        resp = requests.get(f"{service.url}/tripo/v2/openapi/task/{task_id}", headers=headers,
                            timeout=5)
        assert resp.json()["data"]["status"] == "success"


def test_cli_options_keys_limits_and_flat_multiview():
    proc, base = launch("--key", "sk-one", "--key", "sk-two", "--latency", "0.5",
                         "--no-upload", "--no-data-urls", "--max-in-flight", "1",
                         "--multiview-output", "flat", "--api", "v2", "--outputs", "v3",
                         "--partial-edit", "--no-balance", "--credits", "500")
    try:
        assert upload(base, PNG, key="sk-one").status_code == 404
        refused = post(base, {"type": "image_to_model", "file": PNG_FILE}, key="sk-one")
        assert refused.json()["error"]["param"] == "file.url"
        first = post(base, {"type": "text_to_image", "prompt": "a fox"}, key="sk-one")
        assert post(base, {"type": "text_to_image", "prompt": "a fox"},
                     key="sk-one").status_code == 429
        other = post(base, {"type": "text_to_image", "prompt": "a fox"}, key="sk-two")
        assert other.status_code == 200  # the limit is per key
        task_id = first.json()["data"]["task_id"]
        stranger = requests.get(f"{base}/tripo/v2/openapi/task/{task_id}", timeout=5,
                                headers={"Authorization": "Bearer sk-two"})
        assert stranger.status_code == 404 and stranger.json()["code"] == 2001
        time.sleep(0.6)
        resp = requests.get(f"{base}/tripo/v2/openapi/task/{task_id}", timeout=5,
                            headers={"Authorization": "Bearer sk-one"})
        assert resp.json()["data"]["status"] == "success"
        stats = requests.get(f"{base}/_local/stats", timeout=5).json()
        assert stats["settings"] == {"delay": 0.0, "upload": False, "data_urls": False,
                                     "max_in_flight": 1, "multiview_output": "flat",
                                     "api": "v2", "outputs": "v3", "partial_edit": True,
                                     "balance": False, "credits": 500}
        assert "generated_image_url" in resp.json()["data"]["output"]  # --outputs v3
        for path in ("/tripo/v2/openapi/user/balance", f"/v3/tasks/{task_id}"):
            assert requests.get(f"{base}{path}", timeout=5, headers={
                "Authorization": "Bearer sk-one"}).status_code == 404, path
        assert stats["max_in_flight_seen"] == 1
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_flat_multiview_output():
    proc, base = launch("--latency", "0.2", "--multiview-output", "flat")
    try:
        task_id = post(base, {"type": "generate_multiview_image", "prompt": "a fox",
                              "file": PNG_FILE}).json()["data"]["task_id"]
        deadline = time.monotonic() + 10
        while True:
            data = requests.get(f"{base}/tripo/v2/openapi/task/{task_id}", timeout=5,
                                headers={"Authorization": "Bearer sk-local-modelstream"}
                                ).json()["data"]
            if data["status"] == "success":
                break
            assert time.monotonic() < deadline, f"the task never finished: {data}"
            time.sleep(0.1)
        assert set(data["output"]) == {"front_view_url", "left_view_url", "back_view_url",
                                       "right_view_url"}
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_the_service_never_imports_the_addon():
    """The double keeps its own copy of the API on purpose: importing the add-on would let a
    mistake there be mirrored here, and the tests would agree with the bug."""
    offenders = []
    for path in sorted((ROOT / "scripts" / "local_service").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value]  # importlib.import_module("modelstream_addon...")
            else:
                continue
            offenders += [f"{path.name}:{node.lineno}" for name in names
                          if name.split(".")[0] == "modelstream_addon"]
    assert not offenders, f"scripts/local_service imports the add-on: {offenders}"
