"""History on disk and the engine's many-jobs behaviour, against the local service
(no bpy)."""

import itertools
import json
import os

import pytest

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import history, journal
from modelstream_addon.core import job as job_mod
from modelstream_addon.core.client import ModelStreamClient
from tests.conftest import KEY, SlowHistory, needs_fifo, wait_until

BODY = {"type": "text_to_model", "prompt": "a small crate", "face_limit": 400}


def client(service):
    return ModelStreamClient(KEY, service.url, backoff=0.01)


def make_engine(tmp_path, **kw):
    return engine_mod.Engine(str(tmp_path / "downloads"), poll_min=0.2, poll_max=0.5,
                             history_path=str(tmp_path / "history.json"), **kw)


def taken_in(eng):
    """Wait until tick() has taken in the history its thread read."""
    wait_until(lambda: eng.tick() is not None and not eng.loading, 30,
               "the history read on a thread was never taken in")
    return eng


def loaded(tmp_path, load_async, **kw):
    """An engine with its history in: read at once (headless) or on a thread (the GUI)."""
    return taken_in(make_engine(tmp_path, load_async=load_async, **kw))


BOTH_WAYS = pytest.mark.parametrize("load_async", [False, True], ids=["at-once", "on-a-thread"])


def test_every_job_is_recorded_without_the_key(service, tmp_path):
    eng = make_engine(tmp_path)
    job = eng.submit(client(service), BODY)
    eng.wait(job.id, timeout=30)
    eng.shutdown()
    text = (tmp_path / "history.json").read_text()
    assert KEY not in text
    record = history.load(str(tmp_path / "history.json"))[0]
    assert record["task_id"] == job.task_id and record["state"] == "READY"
    assert record["body"]["prompt"] == "a small crate"
    assert record["output_path"] == job.output_path


def test_resume_after_a_restart_finishes_the_task(service, tmp_path):
    first = make_engine(tmp_path)
    job = first.submit(client(service), BODY)
    wait_until(lambda: first.wait(job.id, timeout=0.1).task_id, 30,
               "the task was never created")
    first.shutdown()
    assert not job.done
    second = make_engine(tmp_path)
    restored = second.jobs[job.id]
    assert restored.task_id == job.task_id and not restored.done
    assert second.resume(client(service)) == [restored]
    second.wait(job.id, timeout=30)
    assert restored.state == job_mod.READY, restored.error
    assert service.stats()["tasks_created"] == 1
    second.shutdown()


def test_tasks_resumed_together_poll_first_a_moment_apart(tmp_path):
    """At enable, eight resumed tasks polling at once took both cores from Blender."""
    from tests.conftest import start_service
    from tests.relay import Relay

    with start_service("--latency", "60") as slow:
        first = make_engine(tmp_path, max_concurrent=4)
        jobs = [first.submit(client(slow), {**BODY, "prompt": f"crate {n}"}) for n in range(4)]
        wait_until(lambda: all(first.wait(j.id, timeout=0.05).task_id for j in jobs), 30,
                   "the tasks were never created")
        first.shutdown()
        relay = Relay(slow.url)
        try:
            second = make_engine(tmp_path, max_concurrent=4)
            assert len(second.resume(ModelStreamClient(KEY, relay.url))) == 4
            ids = {j.task_id for j in jobs}

            def first_polls():
                found = {}
                for at, method, path, _ in list(relay.log):
                    task = path.rsplit("/", 1)[-1]
                    if method == "GET" and task in ids:
                        found.setdefault(task, at)
                return sorted(found.values())

            wait_until(lambda: len(first_polls()) == 4, 30, "not every task was polled")
            polls = first_polls()
            second.shutdown()
        finally:
            relay.close()
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert min(gaps) >= 0.8 * engine_mod.RESUME_SPREAD, gaps


def test_a_job_lost_before_its_task_id_is_never_resent(tmp_path):
    history.write_atomic(str(tmp_path / "history.json"), [
        {"id": "0123456789ab", "state": "SUBMITTING", "task_id": "", "body": BODY,
         "images": []}])
    eng = make_engine(tmp_path)
    job = eng.jobs["0123456789ab"]
    assert job.state == job_mod.FAILED and "not sent again" in job.error
    assert eng.resume(None) == []
    eng.shutdown()


def test_at_most_n_tasks_at_the_service(service, tmp_path):
    eng = make_engine(tmp_path, max_concurrent=2)
    jobs = [eng.submit(client(service), {**BODY, "prompt": f"crate {i}"}) for i in range(6)]
    for job in jobs:
        eng.wait(job.id, timeout=60)
    eng.shutdown()
    assert all(j.state == job_mod.READY for j in jobs), [j.error for j in jobs]
    stats = service.stats()
    assert stats["max_in_flight_seen"] <= 2
    assert stats["tasks_created"] == 6


def test_a_concurrency_429_waits_locally_instead_of_failing(service, tmp_path):
    service.faults(max_in_flight=1)
    eng = make_engine(tmp_path, max_concurrent=4)
    jobs = [eng.submit(client(service), {**BODY, "prompt": f"box {i}"}) for i in range(3)]
    for job in jobs:
        eng.wait(job.id, timeout=90)
    eng.shutdown()
    assert all(j.state == job_mod.READY for j in jobs), [j.error for j in jobs]
    assert service.stats()["tasks_created"] == 3


def test_history_is_bounded_and_files_go_with_entries(service, tmp_path):
    eng = make_engine(tmp_path, max_history=2)
    jobs = []
    for i in range(3):
        job = eng.submit(client(service), {**BODY, "prompt": f"cup {i}"})
        eng.wait(job.id, timeout=30)
        jobs.append(job)
    eng.submit(client(service), {**BODY, "prompt": "one more"})
    assert jobs[0].id not in eng.jobs
    assert not os.path.exists(jobs[0].output_path)
    eng.clear_finished()
    assert all(not os.path.exists(j.output_path) for j in jobs)
    eng.shutdown()


def test_attach_follows_a_task_created_elsewhere(service, tmp_path):
    c = client(service)
    task_id = c.create_task({**BODY, "prompt": "a kettle"})
    eng = make_engine(tmp_path)
    job = eng.attach(c, task_id)
    eng.wait(job.id, timeout=30)
    eng.shutdown()
    assert job.state == job_mod.READY, job.error
    assert job.body == {"type": "text_to_model", "prompt": "a kettle"}


def test_refetch_downloads_again_when_the_cache_is_gone(service, tmp_path):
    eng = make_engine(tmp_path)
    job = eng.submit(client(service), BODY)
    eng.wait(job.id, timeout=30)
    os.remove(job.output_path)
    eng.refetch(client(service), job.id)
    eng.wait(job.id, timeout=30)
    eng.shutdown()
    assert job.state == job_mod.READY and os.path.exists(job.output_path)


@BOTH_WAYS
@pytest.mark.parametrize("bad", [b"{not json", b"[]", json.dumps({"jobs": "x"}).encode(),
                                 b"\xff\xfe not utf-8", b"[" * 100_000, b""])
def test_a_file_that_is_not_a_history_is_renamed_aside_never_overwritten(
        tmp_path, bad, capsys, load_async):
    (tmp_path / "history.json").write_bytes(bad)
    eng = loaded(tmp_path, load_async)
    assert eng.jobs == {}
    eng.shutdown()
    (aside,) = tmp_path.glob("history.json.corrupt-*")
    assert aside.read_bytes() == bad, "the unreadable history was not kept as it was"
    assert "was not readable" in capsys.readouterr().out
    assert history.load(str(tmp_path / "history.json")) == []


def good_record(n, **fields):
    return {"id": f"{n:012x}", "task_id": f"task-{n}", "state": "IMPORTED", "body": BODY,
            "images": [], "created": 1000.0 + n, **fields}


DAMAGED = [
    ["not", "an", "object"],
    {**good_record(11), "id": ["a", "list"]},
    {**good_record(12), "created": "yesterday"},
    {**good_record(13), "body": "a string body"},
    {**good_record(14), "state": "EXPLODED"},
    {**good_record(15), "images": [["preview"]]},
    {**good_record(16), "message": "\ud800 lone surrogate"},
    {**good_record(17), "import_options": {"location": [0, 0]}},
    {**good_record(18), "task_id": 42},
]


@BOTH_WAYS
def test_damaged_records_are_set_aside_once_and_the_rest_loads(tmp_path, capsys, load_async):
    path = tmp_path / "history.json"
    history.write_atomic(str(path), [good_record(1), *DAMAGED, good_record(2)])
    eng = loaded(tmp_path, load_async)
    report = capsys.readouterr().out
    assert report.count("damaged job record") == 1, report
    assert f"{len(DAMAGED)} damaged" in report
    # The good jobs load as they were; a damaged record with a usable task id comes back
    # as a FAILED job naming it, so the paid task is never lost.
    assert eng.jobs[f"{1:012x}"].state == "IMPORTED"
    assert eng.jobs[f"{2:012x}"].task_id == "task-2"
    salvaged = {j.task_id: j for j in eng.jobs.values() if j.state == "FAILED"}
    assert sorted(salvaged) == [f"task-{n}" for n in range(11, 18)]
    assert "Import Task by ID task-12" in salvaged["task-12"].error
    assert salvaged["task-12"].id == f"{12:012x}"
    assert len(eng.jobs) == 2 + 7
    eng.shutdown()
    rejected = json.loads((tmp_path / "history.rejected.json").read_text())["rejected"]
    assert [r["record"] for r in rejected] == json.loads(
        json.dumps(DAMAGED)), "the side file must hold every damaged record as it was"
    assert "'id'" in rejected[1]["reason"] and "'created'" in rejected[2]["reason"]
    again = loaded(tmp_path, load_async)
    assert "damaged" not in capsys.readouterr().out, "reported once, not at every start"
    assert set(again.jobs) == set(eng.jobs)
    again.shutdown()


def test_a_damaged_record_after_many_sound_ones_loses_and_repeats_none(
        tmp_path, monkeypatch, capsys):
    """Records are checked once, as they load: a damaged one deep in the file (after slices
    of sound ones, one of those a second record with a taken id) sets the file right
    without loading any record twice, and the renamed one keeps on disk the id it loaded
    with."""
    monkeypatch.setattr(history, "SLICE", 200)
    sound = [good_record(n) for n in range(1, 60)]
    twin = {**good_record(5), "task_id": "twin-task"}
    damaged = {**good_record(80), "created": "yesterday"}
    path = str(tmp_path / "history.json")
    history.write_atomic(path, [*sound[:30], twin, *sound[30:], damaged, good_record(70)])
    loaded_records = history.load(path)
    assert "1 damaged job record" in capsys.readouterr().out
    assert sorted(r["task_id"] for r in loaded_records) == sorted(
        [*(f"task-{n}" for n in [*range(1, 60), 80, 70]), "twin-task"])
    ids = [r["id"] for r in loaded_records]
    assert len(set(ids)) == len(ids) and f"{5:012x}" in ids
    assert history.load(path) == loaded_records, "the file set right is not what loaded"


def test_the_table_is_oldest_first_so_a_prune_takes_the_oldest(tmp_path):
    """A history written out of order (by hand, or by an older version) loads oldest
    first: pruning takes the first finished jobs of the table."""
    records = [good_record(n, created=1000.0 + (n * 7) % 10) for n in range(1, 11)]
    history.write_atomic(str(tmp_path / "history.json"), records)
    eng = make_engine(tmp_path)
    created = [j.created for j in eng.jobs.values()]
    assert created == sorted(created)
    eng.configure(max_history=3)
    assert sorted(j.created for j in eng.jobs.values()) == [1007.0, 1008.0, 1009.0]
    eng.shutdown()


def test_a_history_written_in_pieces_is_one_document(tmp_path, monkeypatch):
    """The writer encodes and writes a few records at a time: the file is the same text,
    in the layout the loader reads in slices."""
    records = [good_record(n) for n in range(1, 8)]
    texts = [history._record_text(r) for r in records]
    for piece in (1, 2, 3, 64):
        monkeypatch.setattr(history, "PIECE", piece)
        history.write_atomic(str(tmp_path / "history.json"), records)
        text = (tmp_path / "history.json").read_bytes().decode("utf-8")
        assert text == '{"version": 1, "jobs": [\n' + ",\n".join(texts) + "\n]}\n"
        assert json.loads(text)["jobs"] == records
    history.write_atomic(str(tmp_path / "history.json"), [])
    assert history.load(str(tmp_path / "history.json")) == []


def test_two_records_with_one_id_both_keep_their_task(tmp_path):
    history.write_atomic(str(tmp_path / "history.json"),
                         [good_record(1), {**good_record(1), "task_id": "other-task"}])
    eng = make_engine(tmp_path)
    eng.shutdown()
    assert sorted(j.task_id for j in eng.jobs.values()) == ["other-task", "task-1"]


def outside_files(tmp_path):
    """A user's files outside the add-on's folders, that a history record names."""
    outside = tmp_path / "user"
    (outside / "project").mkdir(parents=True)
    for name in ("model.glb", "preview.png", "project/scene.blend"):
        (outside / name).write_bytes(b"the user's own file")
    return outside


def test_paths_in_the_history_outside_the_folders_are_never_touched(tmp_path):
    outside = outside_files(tmp_path)
    inputs = tmp_path / "inputs"
    records = [good_record(1, output_path=str(outside / "model.glb"),
                           images=[["preview", str(outside / "preview.png")]],
                           owned=str(outside / "project")),
               good_record(2, output_path=str(tmp_path / "downloads" / ".." / "user"),
                           owned=str(inputs / ".." / "user"))]
    history.write_atomic(str(tmp_path / "history.json"), records)
    eng = make_engine(tmp_path, inputs_dir=str(inputs))
    job = eng.jobs[f"{1:012x}"]
    own = tmp_path / "downloads" / job.id
    assert (job.output_path, job.images, job.owned) == (
        str(own / "model.glb"), [("preview", str(own / "preview.png"))], ""), \
        "a path from the history outside the add-on's folders was kept, not re-derived"
    eng.remove(job.id)
    eng.clear_finished()
    eng.configure(max_history=0)
    eng.shutdown()
    assert not eng.jobs
    assert sorted(p.name for p in outside.rglob("*")) == [
        "model.glb", "preview.png", "project", "scene.blend"]


def test_an_old_file_two_jobs_share_goes_with_the_last_of_them(tmp_path):
    """Histories from before per-job folders named the file after the task."""
    (tmp_path / "downloads").mkdir()
    shared = tmp_path / "downloads" / "task-1.glb"
    shared.write_bytes(b"glTF")
    history.write_atomic(str(tmp_path / "history.json"), [
        good_record(1, output_path=str(shared)), good_record(2, output_path=str(shared))])
    eng = make_engine(tmp_path)
    eng.remove(f"{1:012x}")
    assert shared.exists(), "removing one job deleted the file another job still uses"
    eng.remove(f"{2:012x}")
    eng.shutdown()
    assert not shared.exists()


def test_the_same_task_twice_keeps_two_sets_of_files(service, tmp_path):
    c = client(service)
    task_id = c.create_task({**BODY, "prompt": "a twin"})
    eng = make_engine(tmp_path)
    first, second = eng.attach(c, task_id), eng.attach(c, task_id)
    for job in (first, second):
        eng.wait(job.id, timeout=30)
        assert job.state == job_mod.READY, job.error
    assert first.output_path != second.output_path
    eng.remove(first.id)
    assert not os.path.exists(first.output_path)
    assert os.path.getsize(second.output_path) > 1000, "removing one job took the other's"
    assert [n for n, p in second.images if os.path.exists(p)] == ["preview"]
    eng.shutdown()
    assert service.stats()["tasks_created"] == 1


def test_an_input_folder_outside_the_inputs_is_never_deleted_with_its_job(service, tmp_path):
    """A script can hand submit any folder as the job's own: only inputs/<id> is deleted."""
    outside = outside_files(tmp_path)
    inputs = tmp_path / "inputs"
    (inputs / "0123456789ab").mkdir(parents=True)
    eng = make_engine(tmp_path, inputs_dir=str(inputs))
    theirs = eng.submit(client(service), BODY, owned=str(outside / "project"))
    ours = eng.submit(client(service), BODY, owned=str(inputs / "0123456789ab"))
    for job in (theirs, ours):
        eng.wait(job.id, timeout=30)
        eng.remove(job.id)
    eng.shutdown()
    assert (outside / "project" / "scene.blend").exists(), "a job deleted a user's folder"
    assert not (inputs / "0123456789ab").exists()


def test_a_history_read_in_slices_is_the_whole_file(tmp_path, monkeypatch):
    """The file is parsed a slice of records at a time (the parser holds the GIL for its
    whole input); a cut after every record, or one inside a record laid out by hand, gives
    the same records as parsing it whole."""
    monkeypatch.setattr(history, "SLICE", 1)
    trap = {**BODY, "nested": [{"a": 1}, {"b": [{}, {"c": "},\n{"}]}]}
    records = [good_record(n, body=trap) for n in range(1, 30)]
    path = tmp_path / "history.json"
    history.write_atomic(str(path), records)
    assert history.load(str(path)) == [history.check(r) for r in records]
    head, tail = '{"version": 1, "jobs": [\n', "\n]}\n"
    by_hand = ('{"id": "00000000000a", "body": {"type": "text_to_model", "v": [{"a": 1\n},\n'
               '{"b": 2}]}\n},\n{"id": "00000000000b", "body": {}\n}')
    path.write_text(head + by_hand + tail)
    assert [r["body"] for r in history.load(str(path))] == [
        {"type": "text_to_model", "v": [{"a": 1}, {"b": 2}]}, {}], \
        "a cut inside a record lost or changed jobs"
    assert not list(tmp_path.glob("history.json.corrupt-*"))


@needs_fifo
def test_a_history_slow_to_read_never_holds_up_the_engine(tmp_path):
    """In the GUI the engine reads its history on a thread: enabling the add-on never waits
    for thousands of records (a named pipe stands in for a slow disk)."""
    records = [good_record(n) for n in range(1, 6)]
    slow = SlowHistory(tmp_path / "history.json", records)
    eng = make_engine(tmp_path, load_async=True)
    try:
        assert not slow.fed.is_set(), "the engine waited for its history to be read"
        assert eng.loading and eng.jobs == {}
        eng.tick()
        assert eng.loading, "tick() took in a history nobody had read yet"
        slow.feed()
        taken_in(eng)
        assert list(eng.jobs) == [r["id"] for r in records]
        assert eng.jobs[f"{3:012x}"].task_id == "task-3"
    finally:
        slow.feed()
        eng.shutdown()


@needs_fifo
def test_a_job_submitted_while_the_history_loads_is_kept_and_saved_with_it(service, tmp_path):
    records = [good_record(n) for n in range(1, 4)]
    slow = SlowHistory(tmp_path / "history.json", records)
    eng = make_engine(tmp_path, load_async=True)
    try:
        job = eng.submit(client(service), BODY)
        eng.wait(job.id, timeout=30)
        assert job.state == job_mod.READY, job.error
        # Each step of the job asked for a save: one now would replace the old jobs.
        assert not slow.replaced(), "the history was written before it was loaded"
        slow.feed()
        taken_in(eng)
        assert list(eng.jobs) == [r["id"] for r in records] + [job.id]
    finally:
        slow.feed()
        eng.shutdown()
    on_disk = history.load(str(tmp_path / "history.json"))
    assert [r["id"] for r in on_disk] == [r["id"] for r in records] + [job.id]
    assert (on_disk[-1]["task_id"], on_disk[-1]["state"]) == (job.task_id, "READY")


@needs_fifo
def test_a_task_id_noted_while_the_history_loads_stays_in_the_journal(service, tmp_path):
    """The history takes in what earlier runs' journal holds, and the journal keeps what
    this run's jobs note meanwhile: a paid task id is on disk at every moment."""
    path = tmp_path / "history.json"
    crashed = {**good_record(1), "state": "SUBMITTING", "task_id": ""}
    journal.TaskJournal(str(path)).note(crashed["id"], "task-from-a-crash", "text_to_model")
    slow = SlowHistory(path, [crashed])
    eng = make_engine(tmp_path, load_async=True)
    try:
        job = eng.submit(client(service), BODY)
        wait_until(lambda: eng.wait(job.id, timeout=0.1).task_id, 30,
                   "the task was never created")
        slow.feed()
        taken_in(eng)
        assert eng.jobs[crashed["id"]].task_id == "task-from-a-crash"
        assert on_disk(path, crashed["id"])["task_id"] == "task-from-a-crash"
        noted = journal.TaskJournal(str(path)).read()
        assert noted.get(job.id, ("",))[0] == job.task_id, \
            "the journal dropped a task id noted while the history loaded"
        assert crashed["id"] not in noted, "what earlier runs noted was not folded in"
    finally:
        slow.feed()
        eng.shutdown()


def on_disk(path, job_id):
    return next((r for r in history.load(str(path)) if r["id"] == job_id), {})
