# Sourced by the other scripts: `use_venv BLENDER` makes (once per change of its pins) and
# selects the venv of one bpy wheel: 5.0 in .venv, 4.2 in .venv-bpy4.2, 4.5 in
# .venv-bpy4.5, each from requirements-bpy-<BLENDER>.txt (which includes
# requirements-dev.txt). Sourcing selects .venv. Needs Python 3.11 (the bpy wheels' only Python).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The last v2 client of Tripo's official SDK. The venv has 1.0.0 (requirements-dev.txt), so
# this one goes apart, into $VENV/sdk-0.4.2: the local service's tests run it from there.
TRIPO_V2_SDK="tripo3d==0.4.2"

find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            echo "$candidate"
            return
        fi
    done
    echo "Python 3.11 is required (the bpy wheels support only 3.11); set PYTHON=/path/to/python3.11" >&2
    exit 1
}

check_blender() {
    if [ ! -f "$ROOT/requirements-bpy-$1.txt" ]; then
        echo "No requirements-bpy-$1.txt: Blender $1 is not one of the pinned wheels" \
            "($(cd "$ROOT" && ls requirements-bpy-*.txt | sed 's/requirements-bpy-//; s/\.txt//' | xargs))" >&2
        exit 2
    fi
}

use_venv() {
    local blender="$1" requirements="$ROOT/requirements-bpy-$1.txt"
    check_blender "$blender"
    VENV="$ROOT/.venv"
    [ "$blender" = 5.0 ] || VENV="$ROOT/.venv-bpy$blender"
    PY="$VENV/bin/python"
    if [ ! -x "$PY" ]; then
        "$(find_python)" -m venv "$VENV"
    fi
    local stamp="$VENV/.requirements.sha256" want
    want="$( (cat "$ROOT/requirements-dev.txt" "$requirements"; echo "$TRIPO_V2_SDK") |
        sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "Installing the pinned packages into ${VENV#"$ROOT"/} (bpy is about 1 GB, once)..." >&2
        "$PY" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
        rm -rf "$VENV/sdk-0.4.2"
        "$PY" -m pip install --quiet --disable-pip-version-check --no-deps \
            --target "$VENV/sdk-0.4.2" "$TRIPO_V2_SDK" >&2
        echo "$want" > "$stamp"
    fi
}

use_venv 5.0
