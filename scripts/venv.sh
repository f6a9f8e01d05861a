# Sourced by the other scripts: makes .venv with the pinned packages, once per change of
# requirements-dev.txt. Needs Python 3.11 (the bpy wheel's only Python).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            echo "$candidate"
            return
        fi
    done
    echo "Python 3.11 is required (bpy 5.0.1 supports only 3.11); set PYTHON=/path/to/python3.11" >&2
    exit 1
}

if [ ! -x "$PY" ]; then
    "$(find_python)" -m venv "$VENV"
fi
STAMP="$VENV/.requirements-dev.sha256"
WANT="$(sha256sum "$ROOT/requirements-dev.txt" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    echo "Installing the pinned dev packages into .venv (bpy is about 1 GB, once)..." >&2
    "$PY" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements-dev.txt" >&2
    echo "$WANT" > "$STAMP"
fi
