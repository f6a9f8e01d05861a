#!/usr/bin/env bash
# All tests: ruff once, then pytest under each real bpy wheel against the local service.
# MODELSTREAM_BLENDERS picks the wheels (default "5.0 4.2", the newest and the oldest
# Blender the manifest promises; "5.0 4.2 4.5" adds 4.5 LTS). The wheels run side by side,
# each spread over MODELSTREAM_TEST_WORKERS processes (pytest-xdist, default 4; 0 runs in
# one process). Each worker is its own Blender with its own user folder and its own local
# service, so tests stay as isolated as in one process: the suite mostly waits on tasks and
# downloads, which overlap. Arguments reach pytest on every wheel. Prints each wheel's log
# in order, then the summary lines; exits with the first failing wheel's pytest status.
source "$(dirname "$0")/venv.sh"
cd "$ROOT"
read -r -a blenders <<< "${MODELSTREAM_BLENDERS:-5.0 4.2}"
workers="${MODELSTREAM_TEST_WORKERS:-4}"
for blender in "${blenders[@]}"; do check_blender "$blender"; done
for blender in "${blenders[@]}"; do use_venv "$blender"; done  # installs, one at a time
use_venv "${blenders[0]}"
# ruff.toml excludes .venv; the other wheels' venvs too, in or out of a git checkout.
"$VENV/bin/ruff" check --extend-exclude ".venv-bpy*" .

logs="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$logs"' EXIT
color=()
# pytest writes into a log file, so it colours only when asked.
[ -t 1 ] && color=(--color=yes)
parallel=()
[ "$workers" = 0 ] || parallel=(-n "$workers")
for blender in "${blenders[@]}"; do
    use_venv "$blender"
    skip=()
    # The local service's own tests need no Blender: they run with the first wheel only.
    if [ "$blender" != "${blenders[0]}" ] && [ -d tests/local_service ]; then
        skip=(--ignore=tests/local_service)
    fi
    # Importing bpy proves the real wheel (not the editor stubs) is the one tested.
    "$PY" -c 'import bpy; print(bpy.app.version_string)' | tail -n 1 > "$logs/$blender.version"
    (
        start=$SECONDS code=0
        "$PY" -m pytest "${color[@]}" "${parallel[@]}" "${skip[@]}" "$@" \
            > "$logs/$blender.log" 2>&1 || code=$?
        echo "$code $((SECONDS - start))" > "$logs/$blender.status"
    ) &
done
wait

status=0 summary=() failed=()
for blender in "${blenders[@]}"; do
    use_venv "$blender"
    version="$(cat "$logs/$blender.version")"
    read -r code took < "$logs/$blender.status"
    echo "=== Blender $version (bpy wheel in ${VENV#"$ROOT"/})"
    cat "$logs/$blender.log"
    line="$(sed 's/\x1b\[[0-9;]*m//g' "$logs/$blender.log" | grep -v '^\s*$' | tail -n 1)"
    summary+=("Blender $version: $line (exit $code, $took s)")
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
