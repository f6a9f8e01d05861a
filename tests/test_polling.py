"""The polling schedule (core/polling.py): it polls on what the service says, quickly near the
end, backs off when queued, and never more than once a second per job on average. Driven on
a simulated clock against the local service's lifecycle (no bpy, no network); the engine's
polls of a real task are counted over HTTP at the end."""

import math
import time

import pytest

from modelstream_addon.core import engine as engine_mod
from modelstream_addon.core import polling
from modelstream_addon.core.client import ModelStreamClient
from modelstream_addon.core.job import READY
from tests.conftest import KEY, start_service

POLL_MIN, POLL_MAX = 2.0, 30.0  # the engine's defaults
RTT = 0.005  # seconds a simulated GET takes
BODY = {"type": "text_to_model", "prompt": "a metronome", "face_limit": 400}


def lifecycle(latency, elapsed, with_left=True, with_progress=True):
    """(status, progress, left, position) as the local service answers (tasks.py): queued a
    fifth of the latency, then running with progress and whole seconds left rounded up."""
    queued = 0.2 * latency
    if elapsed >= latency:
        return "success", 100, -1, -1
    if elapsed < queued:
        return "queued", 0, -1, 1 if elapsed < queued / 2 else 0
    share = (elapsed - queued) / (latency - queued)
    return ("running", min(99, int(share * 100)) if with_progress else 0,
            max(1, math.ceil(latency - elapsed)) if with_left else -1, -1)


def follow(answer, poll_min=POLL_MIN, poll_max=POLL_MAX, fresh=True, until=600.0):
    """Poll a task on a simulated clock from its creation at 0 until `answer(t)` says
    success; returns the times of the polls."""
    schedule = polling.Schedule(0.0, fresh)
    t = schedule.first(0.0, poll_min)
    times = []
    while t < until:
        times.append(t)
        status, progress, left, position = answer(t)
        if status == "success":
            return times
        t += RTT
        t += schedule.after(t, status, progress, left, position, poll_min, poll_max)
    return times


def assert_within_budget(times, spacing, free=0):
    """By the time of its n-th poll a task has had at most one poll per `spacing` seconds."""
    for n, t in enumerate(times[free:], 1):
        assert t >= n * spacing - 1e-9, f"poll {n + free} at {t:.3f} s: over one per {spacing} s"


@pytest.mark.parametrize("latency", [15.0, 60.0, 300.0])
@pytest.mark.parametrize("offset", [0.0, 0.013, 0.37, 0.71])
def test_the_poll_that_sees_success_comes_right_after_it(latency, offset):
    """`offset`: how long before our clock started the service created the task."""
    times = follow(lambda t: lifecycle(latency, t + offset))
    late = times[-1] + offset - latency
    assert 0 <= late <= polling.FAST + RTT, f"saw success {late:.3f} s after it"
    assert_within_budget(times, 1.0)


@pytest.mark.parametrize("offset", [0.0, 0.013, 0.37, 0.71])
def test_a_short_task_is_seen_within_a_second_the_budget_holding(offset):
    """Four seconds buy four polls: the budget, not the estimate, says when the last is."""
    times = follow(lambda t: lifecycle(4.0, t + offset))
    late = times[-1] + offset - 4.0
    assert 0 <= late <= 1.0 + RTT, f"saw success {late:.3f} s after it"
    assert_within_budget(times, 1.0)


@pytest.mark.parametrize("with_left, with_progress", [(True, False), (False, True)])
def test_either_the_time_left_or_the_progress_alone_brings_the_poll_close(with_left,
                                                                          with_progress):
    latency = 30.0
    times = follow(lambda t: lifecycle(latency, t + 0.29, with_left, with_progress))
    late = times[-1] + 0.29 - latency
    # Whole seconds left leave a second to search, polled every FAST.
    assert 0 <= late <= polling.FAST + RTT, f"saw success {late:.3f} s after it"
    assert_within_budget(times, 1.0)


def test_far_from_the_end_it_polls_sparsely():
    latency = 300.0
    times = follow(lambda t: lifecycle(latency, t))
    gaps = [b - a for a, b in zip(times, times[1:], strict=False) if a < latency - 2 * POLL_MIN]
    assert gaps and min(gaps) >= POLL_MIN, gaps
    assert max(gaps) <= POLL_MAX + RTT + 1e-9, gaps
    # Queued a minute (half of it next in line, polled every poll_min), then running.
    assert len(times) <= latency / 8, f"{len(times)} polls for a task of {latency} s"


@pytest.mark.parametrize("poll_min, spacing", [(2.0, 1.0), (1.0, 1.0), (0.2, 0.2)])
def test_an_end_that_never_comes_spends_no_more_than_the_budget(poll_min, spacing):
    """The service says a second left (or 99 %) for ever: the schedule wants to poll every
    FAST, the budget holds it to one poll a second (once per poll_min when shorter)."""
    times = follow(lambda t: ("running", 99, 1, -1), poll_min=poll_min, until=120.0)
    assert_within_budget(times, spacing)
    assert len(times) >= 120.0 / spacing - 2, "it stopped polling"


def test_what_a_long_task_saved_is_spent_a_burst_at_a_time():
    """Two minutes far from the end save a hundred polls; then 99 % for a minute: the
    schedule polls quickly for BURST polls at most, then once a second."""
    times = follow(lambda t: ("running", 50, 200, -1) if t < 120 else ("running", 99, 1, -1),
                   until=180.0)
    late = [t for t in times if t >= 120]
    for first, last in zip(late, late[polling.BURST + 5:], strict=False):
        assert last - first >= 5 - 1e-9, f"{polling.BURST + 6} polls in {last - first:.2f} s"
    assert len(late) >= 55, "it stopped polling"


def test_an_attached_task_is_polled_at_once_then_within_the_budget():
    times = follow(lambda t: ("running", 99, 1, -1), fresh=False, until=60.0)
    assert times[0] == 0.0
    assert_within_budget(times, 1.0, free=1)


def test_a_new_task_is_first_polled_after_poll_min():
    assert follow(lambda t: ("success", 100, -1, -1)) == [POLL_MIN]


def test_queued_it_backs_off_up_to_poll_max_unless_next_in_line():
    schedule = polling.Schedule(0.0)
    t, waits = 0.0, []
    for _ in range(12):
        t += schedule.first(t, POLL_MIN) if not waits else waits[-1]
        waits.append(schedule.after(t, "queued", 0, -1, 7, POLL_MIN, POLL_MAX))
    assert waits == sorted(waits) and waits[0] == POLL_MIN and waits[-1] == POLL_MAX, waits
    assert schedule.after(t, "queued", 0, -1, 0, POLL_MIN, POLL_MAX) == POLL_MIN
    unknown = polling.Schedule(0.0)
    assert unknown.after(5.0, "queued", 0, -1, -1, POLL_MIN, POLL_MAX) == POLL_MIN
    assert unknown.after(8.0, "queued", 0, -1, -1, POLL_MIN, POLL_MAX) > POLL_MIN


def test_with_nothing_to_go_by_it_backs_off_from_poll_min_to_poll_max():
    schedule = polling.Schedule(0.0)
    t, waits = 0.0, []
    for _ in range(12):
        t += waits[-1] if waits else POLL_MIN
        waits.append(schedule.after(t, "unknown", 0, -1, -1, POLL_MIN, POLL_MAX))
    assert waits[0] == POLL_MIN and waits[-1] == POLL_MAX and waits == sorted(waits), waits


def test_progress_that_falls_starts_the_estimate_again():
    """A task that restarts its progress (a retry at the service) must not be taken for
    one about to finish by the old rate."""
    schedule = polling.Schedule(0.0)
    schedule.after(10.0, "running", 10, -1, -1, POLL_MIN, POLL_MAX)
    schedule.after(20.0, "running", 90, -1, -1, POLL_MIN, POLL_MAX)
    assert schedule.after(21.0, "running", 50, -1, -1, POLL_MIN, POLL_MAX) == POLL_MIN
    # From 50 % to 70 % in 20 s (up to 21 % with whole percents): 29 % to go at the
    # fastest, and half of that is waited.
    wait = schedule.after(41.0, "running", 70, -1, -1, POLL_MIN, POLL_MAX)
    assert wait == pytest.approx(29 / (21 / 20) / 2, rel=1e-6)


@pytest.fixture(scope="module")
def timed_service():
    with start_service("--latency", "4") as svc:
        yield svc


def test_the_engine_polls_a_real_task_by_get_at_most_once_a_second(timed_service, tmp_path):
    """At the default poll settings, over HTTP: by the time the job is READY its task was
    read no more often than once a second since it was sent, by GETs only."""
    eng = engine_mod.Engine(str(tmp_path))
    try:
        sent = time.monotonic()
        job = eng.submit(ModelStreamClient(KEY, timed_service.url), BODY)
        eng.wait(job.id, timeout=60)
        elapsed = time.monotonic() - sent
        assert job.state == READY, job.error
    finally:
        eng.shutdown()
    stats = timed_service.stats()
    polls = stats["task_polls"][job.task_id]
    assert 1 <= polls <= elapsed, f"{polls} polls in {elapsed:.2f} s"
    assert stats["requests"]["create"] == 1
    assert stats["requests"]["get"] == polls, stats["requests"]
