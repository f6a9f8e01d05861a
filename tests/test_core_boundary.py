"""The core imports no bpy: checked in a fresh interpreter where bpy cannot be imported,
so the rule cannot break silently (this test session has bpy loaded already)."""

import subprocess
import sys

from tests.conftest import ROOT

CORE = ("client", "tasks", "engine", "job", "worker", "history", "errors", "formats",
        "imagefile", "paths", "services")

PROBE = """
import importlib, sys
sys.modules["bpy"] = None  # any `import bpy` now raises ImportError
sys.path.insert(0, sys.argv[1])
for name in sys.argv[2:]:
    importlib.import_module("modelstream_addon." + name)
"""


def test_core_modules_import_without_bpy():
    done = subprocess.run([sys.executable, "-c", PROBE, ROOT, *CORE], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
