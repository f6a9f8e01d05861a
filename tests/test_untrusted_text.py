"""Text from scripts and from the service is data: it is checked before any request, and
never becomes a path or a datablock name as it is (issue 11). No bpy here."""

import importlib.util
import os

import pytest

from modelstream_addon.core import tasks
from tests.conftest import ROOT


@pytest.mark.parametrize("field", ["prompt", "extra_params", "model_version", "style"])
def test_a_lone_surrogate_is_refused_before_any_request(field):
    opts = {"task_type": "text_to_model", "prompt": "a cup", field: "bad \ud800 text"}
    with pytest.raises(tasks.ValidationError, match="invalid Unicode") as info:
        tasks.build_task(opts)
    assert info.value.field == field


@pytest.mark.parametrize("text, expected", [
    ("a\x00chair\x1b[31m", "a chair [31m"),
    ("line one\nline two\t!", "line one line two !"),
    ("bad \udcff half", "bad half"),
    ("x" * 80, "x" * 48),
])
def test_names_drop_control_characters_and_stay_short(text, expected):
    assert tasks.safe_name(text) == expected
    assert tasks.describe({"type": "text_to_model", "prompt": text}) == expected


def _cli_options():
    path = os.path.join(ROOT, "scripts", "cli", "cli_options.py")
    spec = importlib.util.spec_from_file_location("cli_options_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("task_id", ["../../x", "/etc/passwd", "..", "a/b\\c", "\x00"])
def test_the_cli_never_writes_a_blend_outside_out(tmp_path, task_id):
    out = tmp_path / "results"
    path = _cli_options().out_path(str(out), task_id)
    assert os.path.dirname(path) == str(out) and path.endswith(".blend")
    assert not os.path.exists(path)
