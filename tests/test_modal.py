"""Generate's modal handler cannot run in the bpy module (no window, no events): its
decisions live in `operators.modal_step`, tested here with real jobs; the handler routes."""

import pytest


@pytest.fixture
def step(addon):
    return addon.operators.modal_step


def job(addon, state):
    return addon.job.Job(body={"type": "text_to_model"}, state=state)


def test_escape_stops_waiting_whatever_the_job(addon, step):
    assert step('ESC', 'PRESS', False, job(addon, "RUNNING")) == 'CANCEL'
    assert step('ESC', 'RELEASE', False, job(addon, "RUNNING")) == 'WAIT'


def test_other_events_and_other_timers_pass_through(addon, step):
    finished = job(addon, "READY")
    assert step('MOUSEMOVE', 'NOTHING', False, finished) == 'WAIT'
    assert step('TIMER', 'NOTHING', False, finished) == 'WAIT'


@pytest.mark.parametrize("state, expected", [
    ("WAITING", 'WAIT'), ("SUBMITTING", 'WAIT'), ("QUEUED", 'WAIT'), ("RUNNING", 'WAIT'),
    ("DOWNLOADING", 'WAIT'), ("READY", 'FINISH'), ("IMPORTED", 'FINISH'),
    ("FAILED", 'FINISH'), ("CANCELLED", 'FINISH')])
def test_our_timer_finishes_a_final_job_only(addon, step, state, expected):
    assert step('TIMER', 'NOTHING', True, job(addon, state)) == expected


def test_a_job_removed_from_the_list_ends_the_handler(step):
    assert step('TIMER', 'NOTHING', True, None) == 'GONE'
