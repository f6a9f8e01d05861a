"""Build dist/modelstream_addon-<version>.zip with Blender's own extension tool.

Blender's builder zips the folder that holds the manifest, so the manifest and the add-on
package are staged together first: the zip then holds exactly what Blender installs.
Uses `blender --command extension` when a `blender` binary is on PATH, else the
`blender_ext.py` that the bpy wheel ships.
"""

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "modelstream_addon")
MANIFEST = os.path.join(ROOT, "blender_manifest.toml")


def _wheel_tool():
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("No `blender` on PATH and no bpy module: run `bash scripts/test.sh` once "
                 "to make the venv, or put Blender on PATH.")
    bpy_dir = spec.submodule_search_locations[0]
    version = next(d for d in os.listdir(bpy_dir) if d[0].isdigit())
    scripts = os.path.join(bpy_dir, version, "scripts")
    tool = os.path.join(scripts, "addons_core", "bl_pkg", "cli", "blender_ext.py")
    tags = os.path.join(scripts, "modules", "_bpy_internal", "extensions", "tags.py")
    return [sys.executable, tool], tags


def _command():
    """The extension tool's command prefix and the tags file to validate against."""
    blender = shutil.which("blender")
    if blender:
        return [blender, "--factory-startup", "--command", "extension"], None
    return _wheel_tool()


def stage(dest):
    """Copy the manifest and the package contents into `dest` (no caches)."""
    shutil.copytree(PACKAGE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    dirs_exist_ok=True)
    shutil.copy2(MANIFEST, dest)


def build(output_dir):
    with open(MANIFEST, "rb") as f:
        manifest = tomllib.load(f)
    os.makedirs(output_dir, exist_ok=True)
    zip_path = os.path.join(output_dir, f"{manifest['id']}-{manifest['version']}.zip")
    cmd, tags = _command()
    tag_args = ["--valid-tags", tags] if tags else []
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, manifest["id"])
        stage(src)
        subprocess.run(cmd + ["validate", src] + tag_args, check=True)
        subprocess.run(cmd + ["build", "--source-dir", src, "--output-filepath", zip_path]
                       + tag_args, check=True)
    subprocess.run(cmd + ["validate", zip_path] + tag_args, check=True)
    return zip_path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=os.path.join(ROOT, "dist"))
    args = parser.parse_args()
    print(build(os.path.abspath(args.output_dir)))


if __name__ == "__main__":
    main()
