"""Property-based tests: whatever the history file holds and whatever names the service
sends, the loader and the path checks either accept them or refuse them with the add-on's
own error, and nothing is ever written or deleted outside the add-on's folder (no bpy)."""

import json
import math
import os
import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import history, paths

# Modest counts: the suite stays fast; CI runs them on every wheel anyway.
FEW = settings(max_examples=60, deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow])

# Any text, lone surrogates included (a JSON escape can carry one).
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
# Every path a record names points into this sandbox: a broken check must never reach a
# real file of the machine's.
SANDBOX = tempfile.mkdtemp(prefix="modelstream-properties-")
FOLDER = os.path.join(SANDBOX, "ext")
OUTSIDE = os.path.join(SANDBOX, "user")
HOSTILE_PATHS = [OUTSIDE, f"{OUTSIDE}/keep.glb", f"{FOLDER}/downloads/../../user/keep.glb",
                 f"{FOLDER}/inputs/../../user", f"{FOLDER}/downloads", f"{FOLDER}/inputs",
                 f"{FOLDER}/history.json", "../user/keep.glb", "keep.glb"]
SCALARS = (st.none() | st.booleans() | st.integers() | st.just(10**400) | st.floats() | TEXT
           | st.sampled_from(["", "..", "../../x", "C:\\x", "READY", *HOSTILE_PATHS]))
JSONISH = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
JOB_IDS = st.text("0123456789abcdef", min_size=12, max_size=12)
PLAUSIBLE = {
    "id": st.text("0123456789abcdef", min_size=11, max_size=13) | JSONISH,
    "task_id": st.sampled_from(["", "t-1", "../../x", "/abs/task", "a\nb"]) | JSONISH,
    "state": st.sampled_from(history.STATES) | JSONISH,
    "body": st.fixed_dictionaries({"type": TEXT}, optional={"prompt": JSONISH}) | JSONISH,
    "images": st.lists(st.lists(TEXT | JSONISH, min_size=2, max_size=2), max_size=3)
    | JSONISH,
    "output_path": st.sampled_from(HOSTILE_PATHS) | JSONISH,
    "owned": st.sampled_from(HOSTILE_PATHS) | JSONISH,
    "created": st.floats() | JSONISH,
    "import_options": st.fixed_dictionaries({}, optional={
        "location": st.lists(st.floats(), min_size=3, max_size=3),
        "target_size": st.floats()}) | JSONISH,
    "output_format": st.sampled_from(["glb", "fbx", "obj"]) | JSONISH,
}
# Mostly sound records with a few fields hostile, so the checks after loading are reached.
SOUND = st.fixed_dictionaries({"id": JOB_IDS, "state": st.sampled_from(history.STATES),
                               "task_id": st.sampled_from(["", "t-1", "t-2"]),
                               "body": st.just({"type": "text_to_model"})})
PATHS = st.sampled_from(HOSTILE_PATHS)
NAMED_PATHS = st.fixed_dictionaries({}, optional={
    "output_path": PATHS, "owned": PATHS,
    "images": st.lists(st.lists(st.just("preview") | PATHS, min_size=2, max_size=2))})
ONE_FIELD = st.one_of(*(st.fixed_dictionaries({k: v}) for k, v in PLAUSIBLE.items()))
RECORDS = st.lists(st.builds(lambda sound, hostile: {**sound, **hostile}, SOUND,
                             NAMED_PATHS | ONE_FIELD)
                   | st.fixed_dictionaries({}, optional=PLAUSIBLE) | JSONISH, max_size=6)


@pytest.fixture(scope="module", autouse=True)
def _sandbox():
    yield
    shutil.rmtree(SANDBOX, ignore_errors=True)


def listing(folder):
    return {os.path.join(d, n) for d, dirs, files in os.walk(folder) for n in dirs + files}


def usable(task_id):
    return isinstance(task_id, str) and bool(task_id) and history.task_id_ok(task_id)


@FEW
@given(RECORDS)
def test_any_history_loads_or_is_set_aside_and_no_task_id_is_lost(records):
    folder, outside = FOLDER, OUTSIDE
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(outside, exist_ok=True)
    with open(os.path.join(outside, "keep.glb"), "w") as f:
        f.write("mine")
    before = listing(outside)
    path = os.path.join(folder, "history.json")
    history.write_atomic(path, records)
    eng = engine_mod.Engine(os.path.join(folder, "downloads"), history_path=path,
                            inputs_dir=os.path.join(folder, "inputs"))
    try:
        loaded = {j.task_id for j in eng.jobs.values()}
        salvaged = sum(history.DAMAGED_NOTE[:40] in j.error for j in eng.jobs.values())
        count = len(eng.jobs)
        for job in eng.jobs.values():
            assert paths.JOB_ID.fullmatch(job.id)
            assert all(isinstance(getattr(job, n), str) for n in history.TEXT_FIELDS)
            assert isinstance(job.body, dict) and math.isfinite(job.created)
            assert history._encodes(history.record_of(job)), "text Blender would refuse"
            for p in [job.output_path, job.owned, *(p for _, p in job.images)]:
                assert not p or paths.under(folder, p), p
        for record in records:
            if isinstance(record, dict) and usable(record.get("task_id")):
                assert record["task_id"] in loaded, "a known task id was lost"
        for job in list(eng.jobs.values()):
            eng.remove(job.id)
    finally:
        eng.shutdown()
    assert listing(outside) == before
    assert listing(SANDBOX) - before - {outside, folder} <= listing(folder), \
        "something was written outside the add-on's folder"
    kept = []
    if os.path.exists(os.path.join(folder, "history.rejected.json")):
        with open(os.path.join(folder, "history.rejected.json")) as f:
            kept = [item["record"] for item in json.load(f)["rejected"]]
    assert len(kept) == len(records) - count + salvaged, \
        "a record was neither loaded nor set aside"


VALID = json.dumps({"version": 1, "jobs": [{"id": "0123456789ab", "task_id": "t",
                                            "state": "READY", "body": {}}]}).encode()


@FEW
@given(st.binary(max_size=200) | st.builds(
    lambda cut, junk: VALID[:cut] + junk + VALID[cut:],
    st.integers(0, len(VALID)), st.binary(max_size=3)))
def test_any_bytes_load_or_are_kept_aside_untouched(raw):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "history.json")
        with open(path, "wb") as f:
            f.write(raw)
        records = history.load(path)
        names = set(os.listdir(folder))
        if not records and not os.path.exists(path):
            (aside,) = [n for n in names if n.startswith("history.json.corrupt-")]
            with open(os.path.join(folder, aside), "rb") as f:
                assert f.read() == raw
        assert all(history.check(r) == r for r in records)
        assert names <= {"history.json", "history.rejected.json",
                         *(n for n in names if n.startswith("history.json.corrupt-"))}


PARTS = TEXT | st.sampled_from(["..", ".", "", "/", "/etc", "a/../../b", "\0", "~", "C:", "link"])


@FEW
@given(st.lists(PARTS, min_size=1, max_size=3))
def test_a_safe_path_never_leaves_its_root(parts):
    with tempfile.TemporaryDirectory() as top:
        root = os.path.join(top, "downloads")
        os.makedirs(root)
        os.symlink(top, os.path.join(root, "link"))
        try:
            path = paths.safe_path(root, *parts)
        except paths.UnsafePathError:
            return
        real = os.path.realpath(path)
        assert real.startswith(os.path.realpath(root) + os.sep), (parts, real)


@FEW
@given(TEXT | st.sampled_from(["0123456789ab", "../../../x", "/tmp", "0123456789AB"]))
def test_a_job_folder_is_named_only_by_a_job_id(job_id):
    try:
        folder = paths.job_folder("/ext/downloads", job_id)
    except paths.UnsafePathError:
        assert not paths.JOB_ID.fullmatch(job_id)
        return
    assert folder == os.path.join("/ext/downloads", job_id)


def test_a_link_out_of_the_folder_is_refused_for_writes_and_deletes(tmp_path):
    root = tmp_path / "downloads"
    root.mkdir()
    (tmp_path / "mine.glb").write_bytes(b"mine")
    (root / "model.glb").symlink_to(tmp_path / "mine.glb")
    (root / "folder").symlink_to(tmp_path, target_is_directory=True)
    (root / "0123456789ab").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(paths.UnsafePathError):
        paths.job_folder(str(root), "0123456789ab", "mine.glb")
    with pytest.raises(paths.UnsafePathError):
        paths.safe_path(str(root), "model.glb")
    with pytest.raises(paths.UnsafePathError):
        paths.safe_path(str(root), "folder", "mine.glb")
    paths.remove(str(root), str(root / "folder"))
    paths.remove(str(root), str(root / "model.glb"))
    paths.remove(str(root), str(root))
    assert (tmp_path / "mine.glb").read_bytes() == b"mine" and root.is_dir()


@FEW
@given(st.lists(TEXT, max_size=4))
def test_the_fast_text_check_misses_no_lone_surrogate(texts):
    """load() skips the per-record text checks when no escape in the file can be a lone
    surrogate: that scan may flag too much, never too little."""
    def invalid(text):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False

    if any(invalid(t) for t in texts):
        assert history._LONE_SURROGATE.search(json.dumps(texts))
