#!/usr/bin/env bash
# The README's first command: set up, then generate a model with the local service.
source "$(dirname "$0")/venv.sh"
cd "$ROOT"
exec "$PY" scripts/dev/demo.py "$@"
