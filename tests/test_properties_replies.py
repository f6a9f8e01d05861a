"""Property-based tests of what comes off the network (issue 11): any reply body, any task
data, any downloaded file either parses or is refused with the add-on's own error, never
anything else, and a refused file is removed only inside the download folder (no bpy)."""

import contextlib
import json
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelstream_addon.core import errors, formats, netguard, worker

FEW = settings(max_examples=80, deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@FEW
@given(st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()))
def test_any_reply_body_parses_or_is_a_value_error(raw):
    with contextlib.suppress(ValueError):
        netguard.parse_reply(raw)


@FEW
@given(JSON)
def test_any_output_gives_urls_or_nothing(output):
    for kind in ("model", "image", "multiview"):
        for _, url in formats.image_urls(output, kind):
            assert isinstance(url, str) and url.strip()
    url = formats.model_url(output)
    assert url is None or (isinstance(url, str) and url.strip())


@FEW
@given(st.dictionaries(st.sampled_from(["status", "progress", "error_code", "error_msg",
                                        "error_message", "running_left_time", "queuing_num"]),
                       JSON, max_size=7))
def test_any_task_fields_give_text_and_a_progress(data):
    assert 0 <= worker._progress(data.get("progress")) <= 100
    assert isinstance(worker._status_text(data), str)
    for status in worker.FAILED_STATUSES:
        assert isinstance(worker._failure_text(status, data), str)


@FEW
@given(st.binary(max_size=400), st.sampled_from(["glTF", "Kaydara FBX Binary  \x00\x1a\x00",
                                                  "\x89PNG\r\n\x1a\n", ""]))
def test_any_downloaded_file_is_accepted_or_refused_and_removed_in_place(junk, magic):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "job", "model.bin")
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(magic.encode("latin-1") + junk)
        for check in (formats.check_model_file, formats.check_image_file):
            if not os.path.exists(path):
                break
            try:
                check(path, folder=folder, task_id="t")
            except errors.DownloadError:
                assert not os.path.exists(path), "a refused file stays on disk"
        outside = tempfile.mkdtemp()
        try:
            kept = os.path.join(outside, "keep.bin")
            with open(kept, "wb") as f:
                f.write(magic.encode("latin-1") + junk)
            for check in (formats.check_model_file, formats.check_image_file):
                with contextlib.suppress(errors.DownloadError):
                    check(kept, folder=folder, task_id="t")
            assert os.path.exists(kept), "a file outside the download folder was deleted"
        finally:
            os.remove(kept)
            os.rmdir(outside)


@FEW
@given(st.dictionaries(st.sampled_from(["running_left_time", "queuing_num"]),
                       st.floats() | st.integers() | st.text(max_size=3), max_size=2))
def test_numbers_kept_from_a_task_are_finite(data):
    for name in ("running_left_time", "queuing_num"):
        value = worker._number(data.get(name))
        assert value == -1 or value == value and abs(value) != float("inf")
