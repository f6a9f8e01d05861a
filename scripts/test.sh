#!/usr/bin/env bash
# All tests: ruff, then pytest under the real bpy wheel against the local service.
source "$(dirname "$0")/venv.sh"
cd "$ROOT"
"$VENV/bin/ruff" check .
exec "$PY" -m pytest "$@"
