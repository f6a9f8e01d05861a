"""scripts/cli/modelstream_cli.py as a pipeline runs it: a subprocess with its own bpy and its
own Blender user folder, against the local service over loopback."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import requests

from tests.conftest import KEY, ROOT, start_service, write_png

CLI = os.path.join(ROOT, "scripts", "cli", "modelstream_cli.py")
FAST = ["--poll-min", "1"]  # the dev flag's floor: quicker tests, still one poll a second

INSPECT = """
import json, sys, bpy
found = {}
for path in sys.argv[1:]:
    bpy.ops.wm.open_mainfile(filepath=path)
    found[path] = {
        "objects": {o.name: {"type": o.type, **{
            k: o[k].to_list() if hasattr(o[k], "to_list") else o[k] for k in o.keys()
            if k.startswith("modelstream_")}}
                    for o in bpy.data.objects},
        "images": {i.name: {"packed": i.packed_file is not None,
                            "task_id": i.get("modelstream_task_id", "")}
                   for i in bpy.data.images}}
print("FOUND " + json.dumps(found))
"""

SCENE = """
import sys, bpy
bpy.ops.wm.read_homefile(use_empty=True)
bpy.ops.mesh.primitive_cube_add(size=2)
bpy.ops.mesh.primitive_cone_add(radius1=0.8, depth=1.6, location=(2.5, 0, 0))
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[1])
"""


def child_env(tmp_path, url=None):
    env = {**os.environ, "BLENDER_USER_RESOURCES": tempfile.mkdtemp(prefix="user-",
                                                                     dir=tmp_path),
           "TMPDIR": str(tmp_path)}
    if url:
        env.update(MODELSTREAM_API_KEY=KEY, MODELSTREAM_BASE_URL=url)
    return env


def cli_command(*args):
    return [sys.executable, CLI, *args]


def run_cli(tmp_path, url, *args, timeout=120):
    return subprocess.run(cli_command(*args), env=child_env(tmp_path, url), cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout)


def python(tmp_path, code, *args):
    proc = subprocess.run([sys.executable, "-c", code, *args], env=child_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def inspect(tmp_path, *paths):
    """What .blend files hold, read by a fresh Blender."""
    out = python(tmp_path, INSPECT, *map(str, paths))
    line = next(line for line in out.splitlines() if line.startswith("FOUND "))
    return json.loads(line[len("FOUND "):])


def empties(found):
    return [o for o in found["objects"].values() if o["type"] == 'EMPTY']


def summary(folder):
    with open(os.path.join(folder, "summary.json"), encoding="utf-8") as f:
        return {row["id"]: row for row in json.load(f)["jobs"]}


def state(folder):
    with open(os.path.join(folder, "batch_state.json"), encoding="utf-8") as f:
        return json.load(f)["jobs"]


def create_task(url, **body):
    resp = requests.post(f"{url}/tripo/v2/openapi/task", json=body, timeout=5,
                         headers={"Authorization": f"Bearer {KEY}"})
    resp.raise_for_status()
    return resp.json()["data"]["task_id"]


def test_help_lists_the_commands_and_every_option(addon):
    proc = subprocess.run(cli_command("--help"), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    for command in ("generate", "batch", "import-task", "status"):
        assert command in proc.stdout
    generate = subprocess.run(cli_command("generate", "--help"), capture_output=True,
                              text=True, timeout=30).stdout
    for name in addon.properties.OPTION_NAMES:
        flag = "--image" if name == "image_path" else "--" + name.replace("_", "-")
        assert flag in generate, name
    for flag in ("--blend", "--out", "--raw", "--api-key-env", "--base-url", "--timeout"):
        assert flag in generate
    batch = subprocess.run(cli_command("batch", "--help"), capture_output=True, text=True,
                           timeout=30).stdout
    for flag in ("--jobs", "--out", "--raw", "--resubmit-uncertain", "--library"):
        assert flag in batch
    assert "--poll-min" not in generate + batch


def test_a_key_on_the_command_line_is_refused_and_never_echoed(tmp_path):
    for args in (["--api-key-env", "sk-secret-123"], ["--api-key", "sk-secret-123"]):
        proc = run_cli(tmp_path, None, "generate", "--prompt", "a cup", *args)
        assert proc.returncode == 2
        assert "sk-secret-123" not in proc.stdout + proc.stderr


def test_generate_text_to_model(tmp_path, service):
    out = tmp_path / "chair.blend"
    proc = run_cli(tmp_path, service.url, "generate", "--prompt", "a wooden chair",
                   "--face-limit", "800", "--no-texture", "--placement", "ORIGIN",
                   "--out", str(out), "--raw", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(out), str(tmp_path / "chair.glb")]
    assert (tmp_path / "chair.glb").read_bytes()[:4] == b"glTF"
    [empty] = empties(inspect(tmp_path, out)[str(out)])
    assert empty["modelstream_type"] == "text_to_model"
    assert empty["modelstream_prompt"] == "a wooden chair"
    assert empty["modelstream_task_id"] in service.stats()["tasks"]
    assert service.stats()["tasks_created"] == 1


def test_generate_image_to_model_from_a_file(tmp_path, service):
    write_png(tmp_path / "photo.png", 128, 96)
    proc = run_cli(tmp_path, service.url, "generate", "--task-type", "image_to_model",
                   "--image", "photo.png", "--face-limit", "600", "--out", "results", *FAST)
    assert proc.returncode == 0, proc.stderr
    [path] = proc.stdout.split()
    stats = service.stats()
    [task_id] = stats["tasks"]
    assert path == str(tmp_path / "results" / f"{task_id}.blend")
    assert stats["task_types"][task_id] == "image_to_model" and stats["uploads"] == 1
    [empty] = empties(inspect(tmp_path, path)[path])
    assert empty["modelstream_task_id"] == task_id


def test_generate_an_image_task_packs_the_images(tmp_path, service):
    out = tmp_path / "fox.blend"
    proc = run_cli(tmp_path, service.url, "generate", "--task-type", "text_to_image",
                   "--prompt", "a red fox", "--out", str(out), "--raw", *FAST)
    assert proc.returncode == 0, proc.stderr
    blend, picture = proc.stdout.split()
    assert picture.startswith(str(tmp_path / "fox_")) and os.path.getsize(picture) > 0
    images = inspect(tmp_path, blend)[blend]["images"]
    assert images and all(i["packed"] and i["task_id"] for i in images.values())


def test_generate_multiview_from_an_orbit_capture_of_a_blend(tmp_path, service):
    scene = tmp_path / "scene.blend"
    python(tmp_path, SCENE, str(scene))
    out = tmp_path / "with_model.blend"
    proc = run_cli(tmp_path, service.url, "generate", "--blend", str(scene),
                   "--task-type", "multiview_to_model", "--multiview-source", "ORBIT",
                   "--capture-resolution", "128", "--face-limit", "600", "--out", str(out),
                   *FAST)
    assert proc.returncode == 0, proc.stderr
    found = inspect(tmp_path, scene, out)
    assert {"Cube", "Cone"} <= set(found[str(out)]["objects"])
    [empty] = empties(found[str(out)])
    assert empty["modelstream_type"] == "multiview_to_model"
    assert not empties(found[str(scene)])  # the input file is left as it was
    assert service.stats()["uploads"] == 4  # front, left, back, right


def test_generate_image_to_model_from_a_viewport_capture_of_a_blend(tmp_path, service):
    scene = tmp_path / "scene.blend"
    python(tmp_path, SCENE, str(scene))
    out = tmp_path / "from_view.blend"
    proc = run_cli(tmp_path, service.url, "generate", "--blend", str(scene),
                   "--task-type", "image_to_model", "--image-source", "VIEWPORT",
                   "--capture-resolution", "128", "--face-limit", "400", "--out", str(out),
                   *FAST)
    assert proc.returncode == 0, proc.stderr
    [empty] = empties(inspect(tmp_path, out)[str(out)])
    assert empty["modelstream_type"] == "image_to_model"


def test_batch_runs_the_good_rows_and_names_the_bad_row_and_field(tmp_path, service):
    (tmp_path / "jobs.csv").write_text(
        "id,prompt,face_limit,texture\n"
        "chair,a chair,600,true\n"
        ",a lamp,700,\n"
        "bad,a vase,lots,\n"
        "stool,a stool,500,no\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = run_cli(tmp_path, service.url, "batch", "jobs.csv", "--out", str(out),
                   "--jobs", "2", "--raw", *FAST)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.split() == [str(out / "summary.json")]
    rows = summary(out)
    assert {i: r["status"] for i, r in rows.items()} == {
        "chair": "done", "2": "done", "bad": "failed", "stool": "done"}
    assert rows["bad"]["field"] == "face_limit" and not rows["bad"]["task_id"]
    assert rows["bad"]["error"].startswith("row 3 (id bad): face_limit:")
    assert "row 3 (id bad): face_limit" in proc.stderr
    for row_id in ("chair", "2", "stool"):
        assert rows[row_id]["output"] == str(out / f"{row_id}.blend")
        assert rows[row_id]["raw"] == [str(out / f"{row_id}.glb")]
    assert service.stats()["tasks_created"] == 3
    spent = [rows[row_id]["credits"] for row_id in ("chair", "2", "stool")]
    assert all(c > 0 for c in spent) and rows["bad"]["credits"] is None
    assert f", {sum(spent):g} credits used" in proc.stderr  # the summary adds them up
    found = inspect(tmp_path, out / "chair.blend", out / "stool.blend")
    for row_id in ("chair", "stool"):
        [empty] = empties(found[str(out / f"{row_id}.blend")])  # only that row's model
        assert empty["modelstream_task_id"] == rows[row_id]["task_id"]


@pytest.fixture
def slow_service():
    with start_service("--latency", "4") as svc:
        yield svc


def test_an_interrupted_batch_resumes_without_paying_twice(tmp_path, slow_service):
    rows = [{"id": f"r{i}", "prompt": f"a crate, number {i}", "face_limit": 400}
            for i in range(4)]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    args = ["batch", "jobs.jsonl", "--out", str(out), "--jobs", "2", *FAST]
    proc = subprocess.Popen(cli_command(*args), env=child_env(tmp_path, slow_service.url),
                            cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while True:
            assert proc.poll() is None, "the batch ended before it was interrupted"
            assert time.monotonic() < deadline, "after 60 s: two tasks never got their ids"
            records = state(out) if (out / "batch_state.json").exists() else []
            created = [r for r in records if r.get("task_id")]
            if len(created) == 2 and all(r["state"] != "submitting" for r in records):
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert slow_service.stats()["tasks_created"] == 2
    assert not (out / "summary.json").exists()

    rerun = run_cli(tmp_path, slow_service.url, *args)
    assert rerun.returncode == 0, rerun.stderr
    done = summary(out)
    assert all(r["status"] == "done" and os.path.exists(r["output"]) for r in done.values())
    assert {r["id"]: r["task_id"] for r in created} == {
        i: r["task_id"] for i, r in done.items() if i in ("r0", "r1")}
    assert slow_service.stats()["tasks_created"] == len(rows)


def test_a_row_that_may_have_been_sent_is_not_sent_again(tmp_path, service):
    (tmp_path / "jobs.jsonl").write_text('{"id": "a", "prompt": "a cup", "face_limit": 300}\n'
                                         '{"id": "b", "prompt": "a jug", "face_limit": 300}\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "batch_state.json").write_text(json.dumps({"version": 1, "jobs": [
        {"id": "b", "row": 2, "state": "submitting", "task_id": ""}]}))
    args = ["batch", "jobs.jsonl", "--out", str(out), *FAST]
    proc = run_cli(tmp_path, service.url, *args)
    assert proc.returncode == 1
    rows = summary(out)
    assert rows["a"]["status"] == "done" and rows["b"]["status"] == "failed"
    assert "may have been created" in rows["b"]["error"]
    assert "--resubmit-uncertain" in rows["b"]["error"]
    assert service.stats()["tasks_created"] == 1

    proc = run_cli(tmp_path, service.url, *args, "--resubmit-uncertain")
    assert proc.returncode == 0, proc.stderr
    rows = summary(out)
    assert rows["a"]["status"] == rows["b"]["status"] == "done"
    assert service.stats()["tasks_created"] == 2  # row a was done: skipped, not sent again

    (tmp_path / "jobs.jsonl").write_text('{"id": "a", "prompt": "a mug", "face_limit": 300}\n')
    proc = run_cli(tmp_path, service.url, *args)
    assert proc.returncode == 1
    assert "row changed since task" in summary(out)["a"]["error"]
    assert service.stats()["tasks_created"] == 2
    kept = {r["id"]: r["task_id"] for r in state(out)}
    assert kept == {"a": rows["a"]["task_id"], "b": rows["b"]["task_id"]}


def test_status_prints_the_task_state_as_json(tmp_path, service):
    task_id = create_task(service.url, type="text_to_model", prompt="a bell", face_limit=300)
    proc = run_cli(tmp_path, service.url, "status", task_id, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["task_id"] == task_id and data["status"] in ("queued", "running", "success")
    missing = run_cli(tmp_path, service.url, "status", "no-such-task")
    assert missing.returncode == 1 and "no-such-task" in missing.stderr


def test_import_task_saves_a_task_started_elsewhere(tmp_path, service):
    task_id = create_task(service.url, type="text_to_model", prompt="a drum", face_limit=300)
    out = tmp_path / "drum.blend"
    proc = run_cli(tmp_path, service.url, "import-task", task_id, "--out", str(out), *FAST)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(out)]
    [empty] = empties(inspect(tmp_path, out)[str(out)])
    assert empty["modelstream_task_id"] == task_id
    assert service.stats()["tasks_created"] == 1


def test_blender_style_arguments_after_the_double_dash(monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("modelstream_cli_under_test", CLI)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    monkeypatch.setattr(cli.cli_addon, "EMBEDDED", True)
    monkeypatch.setattr(sys, "argv", ["blender", "-b", "--online-mode", "-P", CLI, "--",
                                      "status", "T1", "--json"])
    assert cli.cli_argv() == ["status", "T1", "--json"]
    args = cli.build_parser({}).parse_args(cli.cli_argv())
    assert args.task_id == "T1" and args.json
    monkeypatch.setattr(sys, "argv", ["blender", "-b", "-P", CLI])
    assert cli.cli_argv() == []


def test_the_service_flag_reaches_the_add_on(tmp_path, service):
    proc = run_cli(tmp_path, service.url, "generate", "--service", "tripo-v3",
                   "--task-type", "refine_model", "--draft-model-task-id", "draft-1",
                   "--out", str(tmp_path / "refined.blend"), *FAST)
    assert proc.returncode != 0 and "no refine_model" in proc.stderr, proc.stderr
    assert service.stats()["tasks_created"] == 0


LIBRARY = """
import json, os, sys, bpy
found = {}
for name in sorted(os.listdir(sys.argv[1])):
    if not name.endswith(".blend"):
        continue
    with bpy.data.libraries.load(os.path.join(sys.argv[1], name), assets_only=True) as (s, d):
        d.collections = list(s.collections)
    [coll] = d.collections
    data, preview = coll.asset_data, coll.preview
    found[name] = {"task_id": data.get("modelstream_task_id"), "catalog": data.catalog_id,
                   "tags": [t.name for t in data.tags], "description": data.description,
                   "preview": sum(preview.image_size) and sum(preview.image_pixels_float)
                   if preview is not None else 0,
                   "meshes": sum(o.type == 'MESH' for o in coll.all_objects)}
print("FOUND " + json.dumps(found))
"""


def library(tmp_path, folder):
    """The assets in an asset library folder, as a fresh Blender lists and appends them."""
    out = python(tmp_path, LIBRARY, str(folder))
    line = next(line for line in out.splitlines() if line.startswith("FOUND "))
    return {found["task_id"]: found for found in json.loads(line[len("FOUND "):]).values()}


def test_batch_with_library_makes_a_browsable_asset_library(tmp_path, service, addon):
    (tmp_path / "jobs.jsonl").write_text(
        '{"id": "chair", "prompt": "a wooden chair", "face_limit": 300}\n'
        '{"id": "lamp", "prompt": "a desk lamp", "face_limit": 300, "texture": false}\n'
        '{"id": "poster", "type": "text_to_image", "prompt": "a lamp poster"}\n')
    out, shelf = tmp_path / "out", tmp_path / "shelf"
    args = ["batch", "jobs.jsonl", "--out", str(out), "--jobs", "3", *FAST]
    proc = run_cli(tmp_path, service.url, *args, "--library", str(shelf))
    assert proc.returncode == 0, proc.stderr
    rows = summary(out)
    assert shelf.is_dir(), "--library saved nothing"
    assets = library(tmp_path, shelf)
    assert set(assets) == {rows["chair"]["task_id"], rows["lamp"]["task_id"]}  # models only
    catalog = addon.library.catalog_id("text_to_model")
    for row_id, words in (("chair", {"wooden", "chair"}), ("lamp", {"desk", "lamp"})):
        asset = assets[rows[row_id]["task_id"]]
        assert os.path.dirname(rows[row_id]["library"]) == str(shelf)
        assert asset["catalog"] == catalog and asset["meshes"] >= 1
        assert words | {"text_to_model"} <= set(asset["tags"])
        assert asset["preview"] > 0, f"{row_id}: no preview"
    assert rows["poster"]["status"] == "done" and rows["poster"]["library"] == ""
    assert catalog in (shelf / "blender_assets.cats.txt").read_text()

    # The same batch into another library: fetched again, never created again.
    again = tmp_path / "again"
    proc = run_cli(tmp_path, service.url, *args, "--library", str(again))
    assert proc.returncode == 0, proc.stderr
    assert again.is_dir(), "the rerun added the done rows to no library"
    assert set(library(tmp_path, again)) == set(assets)
    assert service.stats()["tasks_created"] == 3

