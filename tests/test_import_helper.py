"""The import helper (core/import_helper.py, blender/import_helper_main.py): a second,
background Blender imports each downloaded model into a .blend, and the landing appends it
instead of running Blender's importer on the main thread. Real processes: the helper is
this Python with the bpy module, as `importer.helper_command` starts it here."""

import os
import sys
import time

import pytest

from tests.conftest import KEY, start_service, wait_until


def counting(monkeypatch, importer):
    """[path] of each run of Blender's glTF importer in this process from now on."""
    runs = []
    gltf = importer._IMPORTERS["glb"]

    def counted(path):
        runs.append(path)
        return gltf(path)

    monkeypatch.setitem(importer._IMPORTERS, "glb", counted)
    return runs


def land(addon, bpy, path, prebuilt=""):
    """import_model of `path`, with the helper's .blend `prebuilt` opened when given."""
    opened = addon.importer.open_prebuilt(prebuilt) if prebuilt else None
    return addon.importer.import_model(
        bpy.context, path, "glb", name="landed", task_id="task-landed",
        task_type="text_to_model", prompt="landed", options={}, prebuilt=opened)


def summary(root):
    """What an artist sees of a landed result: its meshes' sizes, materials, images."""
    meshes = sorted((o.data.name.rsplit(".", 1)[0], len(o.data.vertices), len(o.data.polygons),
                     tuple(m.name.rsplit(".", 1)[0] for m in o.data.materials))
                    for o in root.children_recursive if o.type == 'MESH')
    images = sorted((i.size[0], i.size[1], i.packed_file is not None)
                    for m in {s.material for o in root.children_recursive
                              for s in o.material_slots if s.material}
                    for n in m.node_tree.nodes if n.type == 'TEX_IMAGE' for i in [n.image])
    kinds = sorted(o.type for o in root.children_recursive)
    return meshes, images, kinds


@pytest.fixture
def helper(addon):
    made = addon.importer.make_helper()
    yield made
    made.close()


def test_a_model_the_helper_imported_lands_as_the_file_imports(blender, addon, helper,
                                                               tmp_path, monkeypatch):
    from local_service.models import make_glb

    bpy = blender
    glb = tmp_path / "model.glb"
    glb.write_bytes(make_glb("a carved owl", 800, texture=True, pbr=True))
    blend = str(tmp_path / "model.blend")
    assert helper.convert(str(glb), "glb", blend)
    assert os.path.isfile(blend) and not os.path.exists(blend + ".part")

    runs = counting(monkeypatch, addon.importer)
    imported = land(addon, bpy, str(glb))
    assert len(runs) == 1
    libraries = set(bpy.data.libraries)
    appended = land(addon, bpy, str(glb), prebuilt=blend)
    assert len(runs) == 1, "the glTF importer ran although the helper's .blend was there"
    assert summary(appended) == summary(imported)
    assert summary(appended)[1], "the model has a texture: the test compares it"
    assert set(bpy.data.libraries) == libraries, "the append left its library behind"
    assert appended["modelstream_task_id"] == "task-landed"
    assert bpy.context.view_layer.objects.active == appended
    assert all(o.name in bpy.context.scene.objects for o in appended.children_recursive)


def test_a_rigged_model_appends_with_its_bone_shapes_out_of_view(blender, addon, helper,
                                                                 tmp_path):
    from local_service import mesh_tasks
    from local_service.models import make_glb

    bpy = blender
    glb = tmp_path / "rigged.glb"
    glb.write_bytes(mesh_tasks.rigged(make_glb("a standing robot", 400), "biped", "tripo",
                                      animations=["preset:walk"]))
    blend = str(tmp_path / "rigged.blend")
    assert helper.convert(str(glb), "glb", blend)
    imported = land(addon, bpy, str(glb))
    appended = land(addon, bpy, str(glb), prebuilt=blend)
    assert summary(appended) == summary(imported)
    [armature] = [o for o in appended.children_recursive if o.type == 'ARMATURE']
    shapes = {bone.custom_shape for bone in armature.pose.bones} - {None}
    assert shapes, "the glTF importer gives the bones a display shape"
    assert not shapes & set(appended.children_recursive)
    assert not any(shape.visible_get() for shape in shapes)
    assert armature.animation_data and armature.animation_data.action


def follow(bpy, runtime, prompt, on_call=None):
    """A job followed as the GUI does, the timer called until it lands: [(its state,
    whether its .blend waits opened)] after each call."""
    job, = runtime.start_jobs(bpy.context, {"task_type": "text_to_model", "prompt": prompt,
                                            "face_limit": 500})
    runtime._will_land(job.id, "")
    calls = []
    deadline = time.monotonic() + 120
    while job.state != "IMPORTED":
        assert time.monotonic() < deadline, f"never landed: {job.state} {job.error}"
        assert job.state != "FAILED", job.error
        interval = runtime._timer()
        calls.append((job.state, any(j is job for j, _ in runtime._opened)))
        if on_call:
            on_call(calls)
        time.sleep(interval)
    return job, calls


def previews_loaded(runtime):
    """The timer's next calls, until the landed models' previews are in."""
    for _ in range(5):
        if not runtime._previews_to_load:
            return
        runtime._timer()
    raise AssertionError("the previews never loaded")


@pytest.fixture
def gui_helper(addon, monkeypatch):
    """The GUI's choice: the import helper on (the bpy module is always background)."""
    runtime = addon.runtime
    monkeypatch.setattr(runtime, "_helper_wanted", lambda: True)
    runtime.apply_preferences()
    yield runtime
    monkeypatch.undo()
    runtime.apply_preferences()
    assert runtime._helper is None and runtime.engine().prebuild is None


def test_a_landing_appends_the_helpers_blend_and_deletes_it(blender, addon, gui_helper,
                                                            monkeypatch):
    """The GUI's road: the job's worker has the helper import the model; the timer opens
    its .blend in one call and appends it in the next; the glTF importer never runs on
    the main thread."""
    bpy = blender
    runs = counting(monkeypatch, addon.importer)
    read = []
    load = addon.importer.load_images
    monkeypatch.setattr(addon.importer, "load_images",
                        lambda images, **kw: read.extend(images) or load(images, **kw))
    job, calls = follow(bpy, gui_helper, "a brass lamp")
    assert gui_helper._helper_start is not None, "the timer never started the helper"
    assert runs == [], "the landing ran the glTF importer on the main thread"
    assert calls[-2:] == [("READY", True), ("IMPORTED", False)], calls
    previews_loaded(gui_helper)
    previews = [i for i in bpy.data.images if i.get("modelstream_task_id") == job.task_id]
    assert job.images and len(previews) == len(job.images), (job.images, previews)
    assert all(i.packed_file and not i.use_fake_user for i in previews)
    assert {i["modelstream_view"] for i in previews} == {view for view, _ in job.images}
    assert read == [], "the previews were read from their files on the main thread"
    root = bpy.data.objects[job.imported_as]
    assert [o for o in root.children_recursive if o.type == 'MESH']
    folder = os.path.dirname(job.output_path)
    assert not os.path.exists(os.path.join(folder, "model.blend")), "the .blend stayed"
    assert job.prebuilt == ""


@pytest.mark.parametrize("change", ["a file loaded", "an undo"])
def test_a_change_of_file_between_open_and_append_still_lands_the_model(blender, addon,
                                                                        gui_helper, change,
                                                                        monkeypatch):
    """Appending into the Blender data the .blend was opened for, once a load or an undo
    has replaced it, would crash Blender: it is closed before, and opened again after."""
    bpy = blender
    changed = []

    def change_the_file(calls):
        if calls[-1] == ("READY", True) and not changed:
            if change == "an undo":
                bpy.ops.ed.undo_push(message="before")
                bpy.ops.object.empty_add()
                bpy.ops.ed.undo_push(message="an empty")
                bpy.ops.ed.undo()
            else:
                bpy.ops.wm.read_homefile(use_empty=True)
            changed.append(True)

    runs = counting(monkeypatch, addon.importer)
    job, calls = follow(bpy, gui_helper, "a glass vase", change_the_file)
    previews_loaded(gui_helper)
    assert changed and calls[-2:] == [("READY", True), ("IMPORTED", False)], calls
    assert calls.count(("READY", True)) == 2, calls
    assert runs == [], "the model was imported from its file: the .blend was lost"
    root = bpy.context.scene.objects[job.imported_as]
    assert [o for o in root.children_recursive if o.type == 'MESH']
    assert not bpy.data.libraries


def test_resumed_tasks_start_the_helper_only_once_a_result_is_near(blender, addon, gui_helper,
                                                                   monkeypatch):
    """Tasks resumed at enable that only poll (minutes from done, perhaps) start no second
    Blender; one near its end does."""
    bpy = blender
    runtime = gui_helper
    with start_service("--latency", "60") as slow:
        monkeypatch.setenv("MODELSTREAM_BASE_URL", slow.url)
        job, = runtime.start_jobs(bpy.context, {"task_type": "text_to_model",
                                                "prompt": "a slow kite", "face_limit": 300})
        runtime._will_land(job.id, runtime.RESUMED_NOTE, resumed=True)
        try:
            wait_until(lambda: runtime._timer() and job.state == "RUNNING"
                       and job.running_left_time > 0, 30, "the task never ran")
            for _ in range(10):
                time.sleep(runtime._timer())
            assert runtime._helper_start is None and not runtime._helper.running
            job.running_left_time = 1.0  # what the service says near the end
            runtime._near_end.add(job.id)
            runtime._timer()
            assert runtime._helper_start is not None, "a result near its end started none"
        finally:
            runtime.cancel(bpy.context, job.id)
            runtime.remove(bpy.context, job.id)


def test_without_the_helper_a_result_imports_here_and_the_helper_is_stopped(blender, addon,
                                                                            monkeypatch):
    bpy = blender
    runtime = addon.runtime
    monkeypatch.setattr(runtime, "_helper_wanted", lambda: True)
    runtime.apply_preferences()
    helper = runtime._helper
    assert helper is not None and runtime.engine().prebuild == helper.convert
    assert helper.start() and helper.running
    prefs = addon.preferences.get()
    prefs.import_helper = False
    try:
        assert runtime._helper is None and runtime.engine().prebuild is None
        wait_until(lambda: not helper.running, 10, "the helper kept running")
        runs = counting(monkeypatch, addon.importer)
        assert bpy.ops.modelstream.generate(prompt="a tin cup", face_limit=300) == {'FINISHED'}
        assert len(runs) == 1
    finally:
        monkeypatch.undo()
        prefs.import_helper = True
    assert runtime._helper is None, "headless has no helper"


def test_a_damaged_blend_falls_back_to_the_file_and_leaves_nothing(blender, addon, helper,
                                                                   tmp_path, monkeypatch):
    from local_service.models import make_glb

    bpy = blender
    glb = tmp_path / "model.glb"
    glb.write_bytes(make_glb("a clay pot", 300))
    good = tmp_path / "good.blend"
    assert helper.convert(str(glb), "glb", str(good))
    cut = tmp_path / "cut.blend"
    cut.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    text = tmp_path / "text.blend"
    text.write_text("not a .blend")
    empty = tmp_path / "empty.blend"  # a .blend with no collection of the helper's
    lonely = bpy.data.meshes.new("lonely")
    bpy.data.libraries.write(str(empty), {lonely}, compress=False)
    bpy.data.meshes.remove(lonely)
    runs = counting(monkeypatch, addon.importer)
    for prebuilt in (cut, text, empty, tmp_path / "missing.blend"):
        before = {name: set(getattr(bpy.data, name)) for name in addon.importer._DATA}
        root = land(addon, bpy, str(glb), prebuilt=str(prebuilt))
        new = {name: set(getattr(bpy.data, name)) - before[name]
               for name in addon.importer._DATA}
        assert root in new["objects"]
        assert not new["libraries"], f"{prebuilt.name} left a library behind"
        assert not any(c.name.startswith("modelstream_import") for c in bpy.data.collections)
    assert len(runs) == 4


def test_a_blend_opened_for_data_since_replaced_is_never_appended(blender, addon, helper,
                                                                  tmp_path, monkeypatch):
    """Whoever opened it (the landing closes its own before a load or an undo), appending
    into data that is gone would crash Blender: the model file is imported instead. (The
    file's handle is lost: Blender closes it only against the old data. Its memory shows
    as "Not freed memory blocks" when this Python ends.)"""
    from local_service.models import make_glb

    bpy = blender
    glb = tmp_path / "model.glb"
    glb.write_bytes(make_glb("a clay pot", 300))
    blend = str(tmp_path / "model.blend")
    assert helper.convert(str(glb), "glb", blend)
    opened = addon.importer.open_prebuilt(blend)
    bpy.ops.wm.read_homefile(use_empty=True)
    runs = counting(monkeypatch, addon.importer)
    root = addon.importer.import_model(
        bpy.context, str(glb), "glb", name="landed", task_id="task-landed",
        task_type="text_to_model", prompt="landed", options={}, prebuilt=opened)
    assert runs == [str(glb)]
    assert root.name in bpy.context.scene.objects


def test_the_helper_never_gets_the_key_nor_the_users_folders(addon, monkeypatch):
    monkeypatch.setenv("MODELSTREAM_API_KEY", KEY)
    monkeypatch.setenv("BLENDER_USER_SCRIPTS", "/studio/pipeline/scripts")
    env = addon.importer.make_helper()._env
    assert not [k for k in env if k.startswith("MODELSTREAM_")]
    assert KEY not in repr(env)
    own = addon.user_files.user_folder()
    for name in ("BLENDER_USER_RESOURCES", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS",
                 "BLENDER_USER_EXTENSIONS", "BLENDER_USER_DATAFILES"):
        assert addon.paths.inside(own, env[name]), (name, env[name])
    assert env["PATH"] == os.environ["PATH"]


def test_the_helper_runs_below_blenders_priority(addon, helper):
    """Background work: on a busy machine the user's Blender wins the cores."""
    assert helper.start()
    nice = os.getpriority(os.PRIO_PROCESS, helper._proc.pid)
    assert nice >= min(19, os.getpriority(os.PRIO_PROCESS, 0) + addon.import_helper.NICE), nice


def test_the_helper_imports_no_add_on_of_the_users(addon, helper, tmp_path):
    """Its own empty user folders: this add-on, installed for the tests, is not in it."""
    from local_service.models import make_glb

    glb = tmp_path / "model.glb"
    glb.write_bytes(make_glb("a paper boat", 200))
    assert helper.convert(str(glb), "glb", str(tmp_path / "model.blend"))
    config = helper._env["BLENDER_USER_CONFIG"]
    assert not os.path.exists(os.path.join(config, "userpref.blend"))
    extensions = helper._env["BLENDER_USER_EXTENSIONS"]
    assert not any("modelstream" in name for _, _, names in os.walk(extensions)
                   for name in names)


STUCK = r"""
import sys, time
print(sys.argv[1] + '{"ready": true}', flush=True)
for line in sys.stdin:
    time.sleep(60)
"""


def test_a_helper_that_fails_or_hangs_answers_no_and_is_stopped(addon, tmp_path, monkeypatch):
    helper_mod = addon.import_helper
    script = tmp_path / "stuck.py"
    script.write_text(STUCK)
    model = tmp_path / "model.glb"
    model.write_bytes(b"glTF")
    out = str(tmp_path / "model.blend")

    gone = helper_mod.ImportHelper([sys.executable, "-c", "pass"])
    assert not gone.convert(str(model), "glb", out)
    assert not gone.running
    missing = helper_mod.ImportHelper([str(tmp_path / "no-such-blender")])
    assert not missing.convert(str(model), "glb", out)

    monkeypatch.setattr(helper_mod, "CONVERT_LIMIT", 0.5)
    stuck = helper_mod.ImportHelper([sys.executable, str(script), helper_mod.TAG])
    start = time.monotonic()
    assert stuck.start() and stuck.running
    assert not stuck.convert(str(model), "glb", out)
    assert time.monotonic() - start < 30
    assert not stuck.running, "a helper past its deadline was left running"
    assert not os.path.exists(out)
    stuck.close()
    assert not stuck.convert(str(model), "glb", out), "a closed helper started again"
