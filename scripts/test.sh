#!/usr/bin/env bash
# All tests: ruff once, then pytest under each real bpy wheel against the local service.
# MODELSTREAM_BLENDERS picks the wheels, in order (default "5.0 4.2", the newest and the
# oldest Blender the manifest promises; "5.0 4.2 4.5" adds 4.5 LTS). Arguments reach pytest
# on every wheel. Exits with the first failing wheel's pytest status.
source "$(dirname "$0")/venv.sh"
cd "$ROOT"
read -r -a blenders <<< "${MODELSTREAM_BLENDERS:-5.0 4.2}"
for blender in "${blenders[@]}"; do check_blender "$blender"; done
# ruff.toml excludes .venv; the other wheels' venvs too, in or out of a git checkout.
"$VENV/bin/ruff" check --extend-exclude ".venv-bpy*" .

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
color=()
# pytest writes through tee below, so it colours only when asked.
[ -t 1 ] && color=(--color=yes)
status=0 summary=() failed=()
for blender in "${blenders[@]}"; do
    use_venv "$blender"
    skip=()
    # The local service's own tests need no Blender: they run with the first wheel only.
    if [ "$blender" != "${blenders[0]}" ] && [ -d tests/local_service ]; then
        skip=(--ignore=tests/local_service)
    fi
    # Importing bpy proves the real wheel (not the editor stubs) is the one tested.
    version="$("$PY" -c 'import bpy; print(bpy.app.version_string)' | tail -n 1)"
    echo "=== Blender $version (bpy wheel in ${VENV#"$ROOT"/})"
    start=$SECONDS
    set +e
    "$PY" -m pytest "${color[@]}" "${skip[@]}" "$@" | tee "$logs/$blender.log"
    code=${PIPESTATUS[0]}
    set -e
    line="$(sed 's/\x1b\[[0-9;]*m//g' "$logs/$blender.log" | grep -v '^\s*$' | tail -n 1)"
    summary+=("Blender $version: $line (exit $code, $((SECONDS - start)) s)")
    if [ "$code" -ne 0 ]; then
        failed+=("Blender $version")
        [ "$status" -ne 0 ] || status=$code
    fi
done

echo "=== Summary"
printf '%s\n' "${summary[@]}"
if [ "$status" -ne 0 ]; then
    printf -v names '%s, ' "${failed[@]}"
    echo "FAILED on ${names%, }" >&2
fi
exit "$status"
