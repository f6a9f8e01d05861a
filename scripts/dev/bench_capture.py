"""Time capture_orbit: four 512 px Workbench views, headless, against the 2 s goal.

Run with `.venv/bin/python scripts/dev/bench_capture.py`. A warm-up run first (it pays for
starting the renderer), then the median of three.
"""

import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import bpy  # noqa: E402

from modelstream_addon.blender import capture  # noqa: E402

GOAL = 2.0
RESOLUTION = 512


def build_scene():
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_cube_add(size=2)
    bpy.ops.mesh.primitive_cone_add(radius1=0.8, depth=1.6, location=(2.5, 0, 0))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.6, location=(0, 2.5, 0))
    bpy.ops.mesh.primitive_monkey_add(location=(-2.5, 0, 0.5))
    bpy.ops.object.select_all(action='DESELECT')


def main():
    build_scene()
    with tempfile.TemporaryDirectory() as folder:
        capture.capture_orbit(bpy.context, folder, resolution=RESOLUTION)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            capture.capture_orbit(bpy.context, folder, resolution=RESOLUTION)
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    print(f"four-view {RESOLUTION}px: {seconds:.2f} s (goal {GOAL} s, "
          f"ratio {seconds / GOAL:.2f})")


if __name__ == "__main__":
    main()
