"""The job list the panels draw: one row per engine job, in the engine's order.

A row stores only its job id; every other column (state, progress, message...) is a
read-only property whose getter reads the engine's job, so nothing is copied on a change and
a file load with thousands of jobs only re-adds the ids. Only the main thread calls in here.
"""

from . import tasks
from .job import FINAL_STATES, WAITING

_listed = (None, [], set())  # (list owner, job ids in row order, the same as a set)
_positions = {}  # job id -> place in the local line, for waiting jobs
_active = set()  # unfinished jobs: the panel keeps redrawing while there are any
_engine = None  # set by bind(); the getters read it


def bind(engine):
    """The engine the rows describe (None when the add-on stops)."""
    global _engine, _listed
    _engine = engine
    _listed = (None, [], set())
    _positions.clear()
    _active.clear()
    if engine is not None:
        _active.update(j.id for j in engine.live() if not j.done)
        _positions.update(engine.queue_positions())


def value(job_id, name):
    """A column of the row for `job_id`, read from the engine's job."""
    job = _engine.jobs.get(job_id) if _engine is not None else None
    if job is None:
        return _DEFAULTS[name]
    if name == "task_type":
        return str(job.body.get("type", ""))
    if name == "label":
        return str(job.body.get("prompt") or job.body.get("type", "").replace("_", " "))[:200]
    if name == "object_name":
        return job.imported_as
    if name == "progress":
        return max(0.0, min(1.0, job.progress / 100.0))
    if name == "queue_position":
        return _positions.get(job_id, 0)
    return getattr(job, name)


_DEFAULTS = {"task_type": "", "label": "", "task_id": "", "transport": "", "state": "",
             "message": "", "error": "", "object_name": "", "created": 0.0, "finished": 0.0,
             "progress": 0.0, "queue_position": 0}


def jobs():
    """The bound engine's jobs as they are now: what has loaded of the history (the prompt
    drop-down never waits for the rest)."""
    return list(_engine.jobs.values()) if _engine is not None else []


def recent_prompts(jobs, limit=20):
    """The last `limit` distinct prompts of `jobs`, newest first: the prompt field's
    drop-down. History text is data: anything but text is skipped; control characters and
    lone surrogates become spaces (Blender's search list takes UTF-8 text)."""
    found = {}
    for job in sorted(jobs, key=lambda j: j.created, reverse=True):
        prompt = job.body.get("prompt")
        text = tasks.safe_name(prompt, tasks.MAX_PROMPT) if isinstance(prompt, str) else ""
        if text:
            found[text] = None
            if len(found) == limit:
                break
    return list(found)


def _ids(wm):
    """The job ids in `wm`'s rows, read again only when the list is not the one known."""
    global _listed
    owner, ids, known = _listed
    if owner != wm.as_pointer() or len(ids) != len(wm.modelstream_jobs):
        ids = [row.job_id for row in wm.modelstream_jobs]
        _listed = (wm.as_pointer(), ids, set(ids))
    return _listed[1]


def sync(wm, limit=None):
    """Make the rows match the engine (start, file load, submit, remove, clear): one walk,
    gone rows removed, new ones appended; many changes at once rebuild the list. With
    `limit`, at most that many rows are added: the rest come with the next calls of
    `update` (in the GUI a history of thousands fills over a few timer calls, each well
    inside a frame)."""
    global _listed
    jobs = _engine.jobs
    if not jobs:  # (the history still loading): rows left from before go unread
        wm.modelstream_jobs.clear()
    ids = _ids(wm)
    order = list(jobs)
    if ids != order:
        items = wm.modelstream_jobs
        gone = [n for n, job_id in enumerate(ids) if job_id not in jobs]
        kept = [job_id for job_id in ids if job_id in jobs] if gone else ids
        if len(gone) > 32 or kept != order[:len(kept)]:
            items.clear()  # each removal shifts the rows after it: many are cheaper at once
            kept = []
        else:
            for n in reversed(gone):
                items.remove(n)
        end = len(order) if limit is None else min(len(order), len(kept) + limit)
        for job_id in order[len(kept):end]:
            items.add().job_id = job_id
        order = order[:end]
        _listed = (wm.as_pointer(), order, set(order))
    _active.clear()
    _active.update(j.id for j in _engine.live() if not j.done)
    _positions.clear()
    _positions.update(_engine.queue_positions())


FILL = 400  # rows a call of `fill` adds to a list still filling: about 1.4 ms


def filling(wm):
    """Whether `wm`'s rows are still fewer than the engine's jobs (a chunked fill)."""
    return _listed[0] == wm.as_pointer() and len(_listed[1]) < len(_engine.jobs)


def fill(wm):
    """The next rows of a list still filling (the timer calls it); True while it is."""
    if filling(wm):
        sync(wm, FILL)
    return filling(wm)


def update(wm, changed):
    """Jobs that changed: rows for new ones (a list still filling lists them when it
    reaches them), places in line when the line moved. Returns True while anything is
    unfinished (the panel should redraw)."""
    if changed and not filling(wm) and (_listed[0] != wm.as_pointer()
                                        or any(j.id not in _listed[2] for j in changed)):
        sync(wm)
    if changed:
        if any(j.state == WAITING or j.id in _positions for j in changed):
            _positions.clear()
            _positions.update(_engine.queue_positions())
        for job in changed:
            (_active.add if job.state not in FINAL_STATES else _active.discard)(job.id)
    return bool(_active)
