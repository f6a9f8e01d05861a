"""A download streams to its file: a model many times the read size never sits in memory
whole. Against the real local service over loopback (no bpy)."""

import pytest

from modelstream_addon.core.client import ModelStreamClient
from tests.conftest import KEY, wait_until

FILE_MIB = 64
ALLOWED_MIB = 16  # a quarter of the file; a streamed download grows about 2 MiB


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"/proc/self/status has no {field}")


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("the peak RSS cannot be reset here (/proc/self/clear_refs)")


def test_a_big_download_never_holds_the_file_in_memory(service, tmp_path):
    client = ModelStreamClient(KEY, service.url)
    service.faults(pad_glb_mb=FILE_MIB)
    task_id = client.create_task({"type": "text_to_model", "prompt": "a big crate",
                                  "face_limit": 500})
    data = wait_until(lambda: (d := client.get_task(task_id))["status"] == "success" and d,
                      30, "the padded task never finished")
    url = data["output"]["model"]
    size = client.download(url, str(tmp_path / "first.glb"), max_bytes=2**31)
    assert size >= FILE_MIB * 2**20, "the service did not pad the model"
    baseline = status_kib("VmRSS")
    reset_peak_rss()
    assert client.download(url, str(tmp_path / "again.glb"), max_bytes=2**31) == size
    grown = (status_kib("VmHWM") - baseline) * 1024
    assert grown < ALLOWED_MIB * 2**20, (
        f"RSS grew {grown / 2**20:.1f} MiB downloading a {size / 2**20:.0f} MiB file: it was "
        f"not streamed (at most {ALLOWED_MIB} MiB)")
