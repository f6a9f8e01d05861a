"""Job history on disk, so a paid result is never lost. No bpy here.

One JSON file, replaced atomically (write a temp file, fsync, rename), so a crash or a kill
mid-write leaves the previous version intact. Writes happen on a writer thread: the main
thread only hands over a snapshot. Never holds the API key: records are built from the
request body and job state only.

The file is data, never trusted: each record is checked field by field on load, so one
damaged record can neither stop the add-on from enabling nor lose the other jobs, and a
task id once known is kept (a damaged record with a usable task id comes back as a FAILED
job saying how to import it).
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import tempfile
import threading
import time

from . import job as job_mod
from . import model_tasks, pacing
from .paths import JOB_ID

VERSION = 1
FIELDS = ("id", "task_id", "state", "status", "message", "error", "transport",
          "output_path", "output_format", "images", "created", "finished", "imported_as",
          "owned", "import_options", "service", "credits", "note", "then", "answer")


def record_of(job):
    """The plain dict kept for a job."""
    data = {name: getattr(job, name) for name in FIELDS}
    data["body"] = job.body
    data["images"] = [list(pair) for pair in job.images]
    return data


STATES = (job_mod.WAITING, job_mod.SUBMITTING, job_mod.QUEUED, job_mod.RUNNING,
          job_mod.DOWNLOADING, *job_mod.FINAL_STATES)
TEXT_FIELDS = ("task_id", "status", "message", "error", "transport", "output_path",
               "imported_as", "owned", "service", "note")
TIME_FIELDS = ("created", "finished")
OUTPUT_FORMATS = ("", "glb", "fbx")
MAX_DEPTH = 32
DAMAGED_NOTE = ("This job's record in the history was damaged and was set aside in {file}. "
                "Its task may still have a result: use Import Task by ID {task_id}.")


# A \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or the other way round.
_LONE_SURROGATE = re.compile(r"\\u[dD](?:[89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
                             r"|[c-fC-F](?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F]))")


def _lone_surrogate(text, pace):
    """Whether `text` has a lone surrogate escape: searched a slice at a time, paced (one
    search over a large history would hold the GIL for milliseconds). The slices overlap
    by more than a match and its look-around, so none is missed; one cut at a slice's end
    is reported, which only makes the load check every record."""
    if "\\u" not in text:
        return False
    for start in range(0, len(text), SLICE):
        if _LONE_SURROGATE.search(text, start, start + SLICE + 32):
            return True
        pace()
    return False


class BadRecord(ValueError):
    """Why a record from the file cannot become a job."""


def load(path):
    """The usable records from `path`; never raises. A missing file is an empty history;
    a file that is not a history is renamed aside; damaged records are moved to the side
    file (a task id salvaged as a FAILED job) and reported once, by a printed line."""
    return list(stream(path))


def stream(path, pace=None):
    """`load`'s records one at a time, paced (`pacing.Pacer`), holding no more than a
    slice of the file's at once when the file is as `write_atomic` writes it: thousands
    of records held whole while they load are tens of thousands of dicts and lists,
    enough to set off a full garbage collection, which stops every thread. Each record is
    checked once, as it is yielded; at the first damaged one (or any other file) the file
    is taken whole, as `load`, and only the records not yet yielded follow."""
    pace = pace or pacing.Pacer()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return
    except OSError as e:
        print(f"ModelStream: could not read the job history {path}: {e}")
        return
    constants = []

    def parse_constant(name):
        constants.append(name)
        return float(name)

    try:
        text = raw.decode("utf-8")
    except ValueError:
        text = None
    given = []  # the ids yielded so far (text only, nothing for the collector to walk)
    if text is not None and _sliced(text):
        # Text decoded from UTF-8 is valid: only an escape can bring a lone surrogate, and
        # only NaN or Infinity a number that is not finite. Without either, skip the checks.
        surrogate, seen = _lone_surrogate(text, pace), set()
        try:
            for entries in _slices(text, parse_constant, pace):
                for entry in entries:
                    record = _unique(check(entry, not constants and not surrogate), seen)
                    given.append(record["id"])
                    yield record
                    pace()
            return
        except (ValueError, RecursionError):  # BadRecord is a ValueError
            pass
    yield from _load_whole(path, raw, text, parse_constant, constants, given, pace)


def _unique(record, seen):
    """Two jobs, one id: both keep their task (the second gets a new id)."""
    if record["id"] in seen:
        record["id"] = job_mod.Job(body={}).id
    seen.add(record["id"])
    return record


def _load_whole(path, raw, text, parse_constant, constants, given, pace):
    """The records after the `given` ids already yielded; the file set right (damaged
    records aside, the good ones, `given` as they were yielded, written back)."""
    try:
        if text is None:
            raise ValueError("not UTF-8")
        data = _parse(text, parse_constant, pace)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        aside = _rename_aside(path)
        print(f"ModelStream: the job history {path} was not readable; it was kept as "
              f"{aside} and a new history was started.")
        return []
    good, bad, seen = [], [], set()
    side = rejected_path(path)
    encodes = not constants and not _lone_surrogate(text, pace)
    for entry in data["jobs"]:
        pace()
        try:
            record = check(entry, encodes)
        except BadRecord as e:
            bad.append({"reason": str(e), "record": entry})
            record = salvage(entry, side)
            if record is None:
                continue
        good.append(_unique(record, seen))
    # The first records were sound and yielded, in this order: they keep the ids given.
    for record, job_id in zip(good, given, strict=False):
        record["id"] = job_id
    if bad:
        _set_aside(path, raw, side, good, bad)
    return good[len(given):]


_HEAD, _TAIL, _NEXT = f'{{"version": {VERSION}, "jobs": [\n', "\n]}\n", "\n},\n{"
SLICE = 64 * 1024


def _sliced(text):
    """Whether `text` is laid out as `write_atomic` writes a history."""
    return text.startswith(_HEAD) and text.endswith(_TAIL)


def _slices(text, parse_constant, pace):
    """The records of a history laid out as `write_atomic` writes it, a list per slice of
    about SLICE characters, paced: the C parser holds the GIL for its whole
    input (0.1 s for 5,000 jobs), which would stall Blender's main thread while the
    history loads on a thread. A record's inner lines are indented and a string holds no
    raw line break, so "\n},\n{" only ever ends a record; a slice cut anywhere else does
    not parse (ValueError)."""
    body, start = text[len(_HEAD):-len(_TAIL)], 0
    while start < len(body):
        end = body.find(_NEXT, start + SLICE)
        end = len(body) if end < 0 else end + 2
        yield json.loads(f"[{body[start:end]}]", parse_constant=parse_constant)
        start = end + 2
        pace()


def _parse(text, parse_constant, pace):
    """json.loads(text), a slice at a time (`_slices`) when it can be; else at once."""
    if _sliced(text):
        try:
            return {"version": VERSION,
                    "jobs": [e for part in _slices(text, parse_constant, pace) for e in part]}
        except (ValueError, RecursionError):
            pass
    return json.loads(text, parse_constant=parse_constant)


def rejected_path(path):
    """Where damaged records go: history.rejected.json beside history.json."""
    return os.path.splitext(path)[0] + ".rejected.json"


def check(entry, encodes=False):
    """A clean copy of one record, or BadRecord saying which field is wrong. `encodes`:
    every string and number in it is known to be valid (the whole file was checked)."""
    if not isinstance(entry, dict):
        raise BadRecord(f"a record is a {type(entry).__name__}, not an object")
    if not encodes and not _encodes(entry):
        name = next((k for k, v in entry.items() if not _encodes(v)), "a key")
        raise BadRecord(f"{name!r} holds invalid text (a lone surrogate) or a number that "
                        "is not finite")
    if not isinstance(entry.get("id"), str) or not JOB_ID.fullmatch(entry["id"]):
        raise BadRecord("'id' is not a job id")
    record = {"id": entry["id"]}
    for name in TEXT_FIELDS:
        if name in entry:
            record[name] = _text(entry[name], name)
    if not task_id_ok(record.get("task_id", "")):
        raise BadRecord("'task_id' is not a task id")
    state = entry.get("state", job_mod.WAITING)
    if state not in STATES:
        raise BadRecord("'state' is not a job state")
    record["state"] = state
    output_format = entry.get("output_format", "")
    if output_format not in OUTPUT_FORMATS:
        raise BadRecord("'output_format' is not glb or fbx")
    record["output_format"] = output_format
    for name in TIME_FIELDS:
        if name in entry:
            record[name] = _time(entry[name], name)
    record["body"] = _body(entry.get("body", {}))
    record["images"] = _images(entry.get("images", []))
    record["import_options"] = _import_options(entry.get("import_options", {}))
    record["then"] = _then(entry.get("then", []))
    record["answer"] = _answer(entry.get("answer", []))
    if "credits" in entry:
        credits = _number(entry["credits"])
        if credits is None:
            raise BadRecord("'credits' is not a number")
        record["credits"] = credits
    return record


def salvage(entry, side):
    """A damaged record's task id as a FAILED job, so it is never lost; None without one."""
    task_id = entry.get("task_id") if isinstance(entry, dict) else None
    if not task_id or not task_id_ok(task_id):
        return None
    note = DAMAGED_NOTE.format(file=os.path.basename(side), task_id=task_id)
    job = job_mod.Job(body={"type": ""}, task_id=task_id, state=job_mod.FAILED,
                      error=note, message=note)
    if isinstance(entry.get("id"), str) and JOB_ID.fullmatch(entry["id"]):
        job.id = entry["id"]
    body = entry.get("body")
    kind = body.get("type") if isinstance(body, dict) else None
    if is_text(kind):
        job.body["type"] = kind
    return record_of(job)


def _encodes(data):
    """Whether every string in `data` is valid text and every number finite (one pass of
    the C encoder: JSON escapes can carry a lone surrogate, which Blender refuses)."""
    try:
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        return False
    return True


def is_text(value):
    """A str that encodes (JSON escapes can carry a lone surrogate, which Blender refuses)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value, name):
    """A str (whether it encodes, check() has seen to)."""
    if not isinstance(value, str):
        raise BadRecord(f"{name!r} is a {type(value).__name__}, not text")
    return value


def task_id_ok(task_id):
    """What the service calls a task: short printable text (empty before it is known)."""
    return (is_text(task_id) and len(task_id) <= 256 and task_id.isprintable()
            and task_id == task_id.strip())


def _number(value):
    """A finite float from a JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _time(value, name):
    value = _number(value)
    if value is None or value < 0:
        raise BadRecord(f"{name!r} is not a time")
    return value


def _shallow(value, name, depth=0):
    """At most MAX_DEPTH deep: the writer encodes records recursively."""
    if depth > MAX_DEPTH:
        raise BadRecord(f"{name!r} is nested too deeply")
    items = value.values() if isinstance(value, dict) else value
    for item in items:
        if isinstance(item, (dict, list)):
            _shallow(item, name, depth + 1)
    return value


def _body(body):
    if not isinstance(body, dict):
        raise BadRecord("'body' is not an object")
    for name in ("type", "prompt"):
        if name in body and not isinstance(body[name], str):
            raise BadRecord(f"'body.{name}' is not text")
    return _shallow(body, "body")


def _images(images):
    if not isinstance(images, list) or not all(
            isinstance(pair, list) and len(pair) == 2 for pair in images):
        raise BadRecord("'images' is not a list of [name, path] pairs")
    return [[_text(name, "images"), _text(path, "images")] for name, path in images]


def _then(steps):
    """A chain's steps still to send: task bodies on a model."""
    if not isinstance(steps, list) or not all(
            isinstance(step, dict) and step.get("type") in model_tasks.TYPES for step in steps):
        raise BadRecord("'then' is not a list of steps")
    return _shallow(steps, "then")


def _answer(answer):
    """A rig-check's [riggable, rig type], or []."""
    if answer == []:
        return []
    if not (isinstance(answer, list) and len(answer) == 2 and answer[0] in (True, False, None)
            and isinstance(answer[1], str)):
        raise BadRecord("'answer' is not a rig-check's answer")
    return answer


def _import_options(options):
    if not isinstance(options, dict):
        raise BadRecord("'import_options' is not an object")
    location = options.get("location", [0.0, 0.0, 0.0])
    if not (isinstance(location, list) and len(location) == 3
            and all(_number(v) is not None for v in location)):
        raise BadRecord("'import_options.location' is not three numbers")
    size = _number(options.get("target_size", 1.0))
    if size is None or not size > 0:
        raise BadRecord("'import_options.target_size' is not a size")
    for name in ("placement", "size_mode", "shading", "replace"):
        if name in options and not isinstance(options[name], str):
            raise BadRecord(f"'import_options.{name}' is not text")
    return _shallow(options, "import_options")


def _aside_name(path):
    """history.json.corrupt-<time>, a name not taken yet."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    n = 0
    while os.path.lexists(aside := f"{path}.corrupt-{stamp}" + (f"-{n}" if n else "")):
        n += 1
    return aside


def _rename_aside(path):
    """Keep a file that is not a history beside it; never overwrite it."""
    aside = _aside_name(path)
    try:
        os.rename(path, aside)
    except OSError as e:
        return f"{path} (it could not be renamed: {e})"
    return aside


def _set_aside(path, raw, side, good, bad):
    """Damaged records go to the side file first; only then does the history lose them."""
    try:
        with open(side, "rb") as f:
            kept = json.loads(f.read().decode("utf-8"))["rejected"]
        if not isinstance(kept, list):
            raise ValueError
    except FileNotFoundError:
        kept = []
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        _rename_aside(side)
        kept = []
    stamp = time.time()
    kept.extend({**item, "set_aside": stamp} for item in bad)
    try:
        try:
            text = json.dumps({"version": VERSION, "rejected": kept}, indent=1)
        except (ValueError, RecursionError):  # too deep to write back: keep the bytes
            side = _aside_name(path)
            with open(side, "xb") as f:
                f.write(raw)
        else:
            write_text_atomic(side, text)
        write_atomic(path, good)
    except OSError as e:
        print(f"ModelStream: could not set damaged history records aside: {e}")
        return
    print(f"ModelStream: {len(bad)} damaged job record(s) in the history were set aside in "
          f"{side} ({bad[0]['reason']}); the other jobs loaded.")


def write_text_atomic(path, text):
    """Replace `path` with `text`: temp file, fsync, rename."""
    _write_pieces(path, [text])


def _write_pieces(path, pieces):
    """Replace `path` with the pieces joined, each encoded and written on its own, paced:
    one join and encode of a whole history holds the GIL for several milliseconds."""
    pace = pacing.Pacer()
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".history-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            for piece in pieces:
                f.write(piece.encode("utf-8"))
                pace()
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


PIECE = 64  # records per piece of a history written


def _document(texts):
    """The history file's text in pieces (`_write_pieces`)."""
    yield _HEAD
    for start in range(0, len(texts), PIECE):
        yield (",\n" if start else "") + ",\n".join(texts[start:start + PIECE])
    yield _TAIL


def _record_text(record):
    """One record as "{", its fields on one line, "}" on lines of their own: the C
    encoder (indent takes the pure-Python one, several times slower on the loading
    thread), and "\n},\n{" still only ever ends a record (`_slices`)."""
    if not isinstance(record, dict):  # only a damaged history's (tests write them)
        return json.dumps(record, indent=1)
    return f"{{\n{json.dumps(record, separators=(', ', ': '))[1:-1]}\n}}"


def record_text(job):
    """A job's record as the history file holds it."""
    return _record_text(record_of(job))


def write_atomic(path, records):
    write_texts_atomic(path, [_record_text(r) for r in records])


def write_texts_atomic(path, texts):
    """Replace the history with records already encoded (`record_text`)."""
    _write_pieces(path, _document(texts))


class HistoryWriter:
    """Writes the newest snapshot on its own thread, at most every `interval` seconds. A
    snapshot is the records' JSON texts (`record_text`), encoded as each job changed, so
    a write only joins them."""

    def __init__(self, path, interval=0.5):
        self.path = path
        self.interval = interval
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="modelstream-history",
                                        daemon=True)
        self._thread.start()

    def save(self, texts):
        self._queue.put(texts)

    def _loop(self):
        stop = False
        while not stop:
            items = [self._queue.get()]
            while not self._queue.empty():
                items.append(self._queue.get_nowait())
            stop = None in items
            snapshots = [item for item in items if item is not None]
            if not snapshots:
                continue
            try:
                write_texts_atomic(self.path, snapshots[-1])
            except OSError as e:
                print(f"ModelStream: could not write the job history: {e}")
            if not stop:
                time.sleep(self.interval)

    def close(self):
        """Flush what is pending and stop."""
        self._queue.put(None)
        self._thread.join(10)
