"""Every command and snippet in the README and docs/ is run here, so a page cannot drift
from the code.

`python` blocks run inside this Blender (the add-on installed, the local service behind
it); `bash` blocks run in bash in a scratch folder that holds the files they read, with the
local service's key and address in the environment, the dev venv and scripts beside them,
and a `blender` command on PATH: the bpy wheel standing in for a Blender binary
(tests/docs_support/blender_stand_in.py), with the extension installed in its user folder.
`bash scripts/test.sh` is the one command not run here: it runs this file; the test checks
that CI runs exactly it. A block in any other language fails the suite.
"""

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import requests

from tests.conftest import ADDON, KEY, ROOT, USER_RESOURCES, wait_until, write_png

PAGES = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
STAND_IN = os.path.join(ROOT, "tests", "docs_support", "blender_stand_in.py")
TEST_COMMAND = "bash scripts/test.sh"
SERVICE_COMMAND = ".venv/bin/python scripts/local_service"


def blocks():
    """(page, language, code) of every fenced block of the docs."""
    found = []
    for page in PAGES:
        with open(page, encoding="utf-8") as f:
            text = f.read()
        found += [(os.path.relpath(page, ROOT), lang.strip(), code)
                  for lang, code in FENCE.findall(text)]
    return found


def _ids(kind):
    chosen = [b for b in blocks() if b[1] == kind]
    return chosen, [f"{page}:{n}" for n, (page, _, _) in enumerate(chosen)]


PYTHON, PYTHON_IDS = _ids("python")
BASH, BASH_IDS = _ids("bash")


def test_the_docs_have_snippets_and_every_one_is_run_here():
    found = blocks()
    assert len(found) >= 5 and PYTHON and BASH, found
    other = [(page, lang) for page, lang, _ in found if lang not in ("python", "bash")]
    assert not other, f"blocks no test runs (use python or bash): {other}"


def test_ci_runs_exactly_the_readme_test_command():
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert lines[-1] == TEST_COMMAND, lines
    readme = [code for page, lang, code in blocks() if page == "README.md" and lang == "bash"]
    assert any(line.split("#")[0].strip() == TEST_COMMAND
               for code in readme for line in code.splitlines())


@pytest.mark.parametrize("page, lang, code", PYTHON, ids=PYTHON_IDS)
def test_python_snippet_runs_in_blender(blender, service, tmp_path, monkeypatch, page, lang,
                                        code):
    bpy = blender
    monkeypatch.chdir(tmp_path)
    exec(compile(code, page, "exec"), {"__name__": "__main__"})
    assert service.stats()["tasks_created"] >= 1, "the snippet sent no task"
    assert [o for o in bpy.context.scene.objects if "modelstream_task_id" in o]


@pytest.fixture(scope="module")
def workdir(addon):
    """A scratch folder with what the commands read, and a Blender user folder with the
    extension installed, for the `blender` stand-in."""
    folder = tempfile.mkdtemp(prefix="modelstream-docs-")
    for name in (".venv", "scripts", "modelstream_addon", "blender_manifest.toml"):
        os.symlink(os.path.join(ROOT, name), os.path.join(folder, name))
    user = os.path.join(folder, "blender_user")
    installed = os.path.join(USER_RESOURCES, "extensions", "user_default", "modelstream_addon")
    shutil.copytree(installed, os.path.join(user, "extensions", "user_default",
                                            "modelstream_addon"))
    write_png(os.path.join(folder, "photo.png"), 256, 256)
    scene = ("import bpy, sys\n"
             "bpy.ops.wm.read_homefile(use_empty=True)\n"
             "bpy.ops.mesh.primitive_cube_add(size=0.6, location=(0, 0, 1.6))\n"
             "bpy.ops.mesh.primitive_cylinder_add(radius=0.3, depth=1.2, location=(0, 0, 0.6))\n"
             "bpy.ops.object.join()\n"
             "bpy.context.active_object.name = 'Body'\n"
             "bpy.ops.mesh.primitive_monkey_add(location=(3, 0, 1))\n"
             "bpy.context.active_object.name = 'Statue'\n"
             "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])\n")
    subprocess.run([sys.executable, "-c", scene, os.path.join(folder, "scene.blend")],
                   check=True, capture_output=True, timeout=120,
                   env={**os.environ, "BLENDER_USER_RESOURCES": user})
    with open(os.path.join(folder, "jobs.jsonl"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"id": "mug", "prompt": "a mug", "face_limit": 500}) + "\n")
        f.write(json.dumps({"id": "lamp", "prompt": "a lamp", "face_limit": 500}) + "\n")
    with open(os.path.join(folder, "prompts.csv"), "w", encoding="utf-8") as f:
        f.write("id,prompt,face_limit\nbarrel,an oak barrel,500\n")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _task_id(service):
    """A finished task of this key, for the commands that take TASK_ID."""
    headers = {"Authorization": f"Bearer {KEY}"}
    made = requests.post(f"{service.url}/tripo/v2/openapi/task", headers=headers, timeout=10,
                         json={"type": "text_to_model", "prompt": "a stool", "face_limit": 500})
    task_id = made.json()["data"]["task_id"]

    def done():
        return requests.get(f"{service.url}/tripo/v2/openapi/task/{task_id}", headers=headers,
                            timeout=10).json()["data"]["status"] == "success"

    wait_until(done, 60, "the task for TASK_ID never finished", interval=0.2)
    return task_id


def _environment(workdir, service, blender=True):
    """The commands' environment; `blender` puts the stand-in on PATH (only for blocks that
    call it: the build falls back to the wheel's own extension tool without a binary)."""
    bin_dir = os.path.join(workdir, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    with open(os.path.join(bin_dir, "blender"), "w", encoding="utf-8") as f:
        f.write(f'#!/bin/sh\nexec "{sys.executable}" "{STAND_IN}" "$@"\n')
    os.chmod(os.path.join(bin_dir, "blender"), 0o755)
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("MODELSTREAM_")}
    if blender:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env.update(HOME=workdir,
               BLENDER_USER_RESOURCES=os.path.join(workdir, "blender_user"),
               MODELSTREAM_API_KEY=KEY, MODELSTREAM_BASE_URL=service.url, TMPDIR=workdir)
    return env


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_service_line(line, env, cwd):
    """A command that starts the local service: it must come up and answer, then stop. Its
    port is swapped for a free one, so that runs side by side never collide."""
    port = str(_free_port())
    line = re.sub(r"--port \d+", f"--port {port}", line)
    proc = subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return requests.get(f"{url}/_local/stats", timeout=1).ok
            except requests.ConnectionError:
                return proc.poll() is not None and pytest.fail(proc.stdout.read())

        wait_until(up, 30, f"`{line}` never answered at {url}", interval=0.1)
        bad = requests.post(f"{url}/tripo/v2/openapi/task", json={"type": "text_to_model"},
                            headers={"Authorization": "Bearer sk-not-this"}, timeout=5)
        assert bad.status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("page, lang, code", BASH, ids=BASH_IDS)
def test_shell_commands_run(workdir, service, page, lang, code):
    env = _environment(workdir, service, re.search(r"^\s*blender ", code, re.M) is not None)
    script = []
    for line in code.splitlines():
        command = line.split("#")[0].strip()
        if command == TEST_COMMAND:
            continue  # CI runs it (test_ci_runs_exactly_the_readme_test_command)
        if command.startswith(SERVICE_COMMAND):
            _run_service_line(command, env, workdir)
            continue
        script.append(line)
    text = "\n".join(script).replace("sk-...", KEY)
    if "TASK_ID" in text:
        text = text.replace("TASK_ID", _task_id(service))
    if not text.strip():
        return
    cwd = ROOT if "scripts/demo.sh" in text else workdir
    before = service.stats()["tasks_created"]
    started = time.monotonic()
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (f"{page} block failed after {time.monotonic() - started:.0f}"
                                  f" s:\n{text}\n--- stdout\n{done.stdout[-3000:]}\n"
                                  f"--- stderr\n{done.stderr[-3000:]}")
    assert KEY not in done.stdout + done.stderr
    if "scripts/demo.sh" not in text:  # the demo brings its own service
        assert service.stats()["tasks_created"] > before, "the commands sent no task"


def test_the_stand_in_enables_the_installed_extension(workdir, service):
    """The `blender` the commands run is Blender with the extension its user installed."""
    env = _environment(workdir, service)
    code = ("import addon_utils, bpy; "
            f"print('ENABLED', addon_utils.check({ADDON!r})[1], bpy.app.online_access)")
    done = subprocess.run(["blender", "-b", "--online-mode", "--python-expr", code], env=env,
                          cwd=workdir, capture_output=True, text=True, timeout=120)
    assert "ENABLED True True" in done.stdout, done.stdout + done.stderr
