"""One job's record and its states: what the engine, the history and the UI share. No bpy."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from dataclasses import dataclass, field

WAITING = "WAITING"
SUBMITTING = "SUBMITTING"
QUEUED = "QUEUED"
RUNNING = "RUNNING"
DOWNLOADING = "DOWNLOADING"
READY = "READY"
IMPORTED = "IMPORTED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
FINAL_STATES = (READY, IMPORTED, FAILED, CANCELLED)

CANCEL_NOTE = ("Stopped waiting. The service has no cancel endpoint: the task may still "
               "finish and be charged.")
LOST_NOTE = ("Blender stopped before the service confirmed this task, so it was not sent "
             "again (no double charge). It may exist: check your ModelStream task list and "
             "use Import Task by ID.")


@dataclass
class Job:
    """The main thread's view of one job; only `tick()`/`wait()` change it."""

    body: dict
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: str = WAITING
    task_id: str = ""
    status: str = ""
    progress: int = 0
    queuing_num: int = -1
    running_left_time: float = -1
    message: str = "Waiting for a free slot"
    error: str = ""
    transport: str = ""
    output_path: str = ""
    output_format: str = ""
    prebuilt: str = ""  # the import helper's .blend of the model; this session's only
    images: list = field(default_factory=list)
    created: float = field(default_factory=time.time)
    finished: float = 0.0
    imported_as: str = ""
    owned: str = ""
    import_options: dict = field(default_factory=dict)
    note: str = ""  # said with the job's details, e.g. what extra_params overrides
    service: str = ""  # services.py name; "" in records from before there were two
    credits: float = -1.0  # what the task says it consumed; -1 when it did not say
    then: list = field(default_factory=list)  # a chain's steps to send after this one
    answer: list = field(default_factory=list)  # a rig-check's [riggable, rig type]

    @property
    def done(self):
        return self.state in FINAL_STATES

    def files(self):
        """Everything on disk that belongs to this job alone."""
        return [p for p in [self.output_path, self.prebuilt, self.owned,
                            *(path for _, path in self.images)] if p]


_PACKED = ("body", "images", "import_options", "then", "answer")
_PLAIN = tuple(item.name for item in dataclasses.fields(Job) if item.name not in _PACKED)


def _packed(name):
    """A field of a StoredJob read from its record's text on first use."""
    slot = f"_{name}"

    def get(self):
        try:
            return getattr(self, slot)
        except AttributeError:
            self._unpack()
            return getattr(self, slot)

    def put(self, value):
        setattr(self, slot, value)

    return property(get, put)


class StoredJob(Job):
    """A job read back from the history: its dicts and lists (body, images, import
    options, chain steps, answer) stay in its record's JSON text until something reads
    them. Thousands of old jobs are then one object each for the garbage collector, whose
    full collection walks every container and stops every thread (90 ms for a history of
    5,000 with their dicts and lists). Reads and writes like any Job."""

    body = _packed("body")
    images = _packed("images")
    import_options = _packed("import_options")
    then = _packed("then")
    answer = _packed("answer")

    def __init__(self, job, text):
        """`job`'s plain fields; its packed ones from `text`, its record (record_text)."""
        fields = vars(job)
        vars(self).update({name: fields[name] for name in _PLAIN})
        self._text = text

    def _unpack(self):
        data = json.loads(self._text)
        values = {"body": data.get("body") or {},
                  "images": [tuple(pair) for pair in data.get("images", [])],
                  "import_options": data.get("import_options", {}),
                  "then": data.get("then", []), "answer": data.get("answer", [])}
        for name, value in values.items():
            if not hasattr(self, f"_{name}"):
                setattr(self, f"_{name}", value)
        self._text = ""
