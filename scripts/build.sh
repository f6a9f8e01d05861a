#!/usr/bin/env bash
# Build dist/modelstream_addon-<version>.zip with Blender's own extension tool.
source "$(dirname "$0")/venv.sh"
cd "$ROOT"
exec "$PY" scripts/dev/build_extension.py "$@"
