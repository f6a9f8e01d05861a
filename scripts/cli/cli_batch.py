"""`batch`: one task per row of a JSON Lines or CSV file, resumable, never paying twice.

batch_state.json is replaced atomically at every step, one record per row (id, row, state:
new | submitting | created | done | failed, task_id, options, output, raw, library, error,
field, uncertain), so a rerun fetches instead of creating again; summary.json is written at
the end (id, row, status: done | failed, task_id, output, raw, library, error, field, times
in seconds from the start: started, ready, import, finished). Both are {"version": 1,
"jobs": [...]}. With --library DIR each model result is also an asset .blend in DIR
(`library`); a rerun fetches again, never creates again, a done row not yet in DIR.
"""

import csv
import io
import json
import os
import re
import sys
import time
from collections import deque

from cli_options import convert, resolve_paths, save_result
from cli_parser import STATE_FILE, SUMMARY_FILE, UsageError

EXIT_FAILED = 1
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class Row:
    """One line of the batch file and what became of it; `record` is its state entry."""

    def __init__(self, number, raw):
        self.number = number
        self.raw = raw
        self.id = str(number)
        self.options = {}
        self.record = {"id": self.id, "row": number, "state": "new", "task_id": ""}
        self.unreadable = ""
        self.claimed = False  # its id is its own: only then is it kept in the state file
        self.job = None
        self.prepared = None  # runtime.Prepared: a new task, checked and ready to send
        self.placement = None  # where an earlier run's task lands
        self.times = {}

    @property
    def label(self):
        return f"row {self.number}" + (f" (id {self.id})" if self.id != str(self.number)
                                       else "")

    def fail(self, error, field=None, uncertain=None):
        """`uncertain`: whether the row may exist at the service without a known task id;
        None keeps what an earlier run knew."""
        if uncertain is None:
            uncertain = (self.record["state"] == "submitting"
                         or bool(self.record.get("uncertain")))
        self.record.update(state="failed", error=error, field=field, uncertain=uncertain)


def read_rows(path):
    """Rows of a .jsonl or .csv file; an unreadable row becomes an error for that row."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except OSError as e:
        raise UsageError(f"Cannot read the batch file {path}: {e.strerror or e}") from None
    ext = os.path.splitext(path)[1].lower()
    is_csv = ext == ".csv" or (ext not in (".jsonl", ".ndjson", ".json")
                               and not text.lstrip().startswith("{"))
    rows = []
    if is_csv:
        reader = csv.DictReader(io.StringIO(text))
        for values in reader:
            if not any((v or "").strip() for k, v in values.items() if k is not None):
                continue
            row = Row(len(rows) + 1, {k.strip(): v for k, v in values.items()
                                      if k is not None})
            if None in values:
                row.unreadable = ("more cells than the header has columns "
                                  f"(line {reader.line_num})")
            rows.append(row)
    else:
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            row = Row(len(rows) + 1, None)
            try:
                row.raw = json.loads(line)
            except ValueError as e:
                row.unreadable = f"not valid JSON (line {line_no}): {e}"
            else:
                if not isinstance(row.raw, dict):
                    row.unreadable = f"not a JSON object (line {line_no})"
            rows.append(row)
    if not rows:
        raise UsageError(f"The batch file {path} has no rows.")
    return rows


def load_state(path):
    """The state of an earlier run. An unreadable one stops the batch: guessing could
    send rows again that were already paid for."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)["jobs"]
        return {str(r["id"]): r for r in records}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"Cannot read {path} ({e}): fix or remove it; removing it may "
                         "send rows again that an earlier run already paid for.") from None


class Progress:
    """A progress bar on stderr, redrawn in place on a terminal, else one line a change."""

    WIDTH = 24

    def __init__(self, total):
        self.total = total
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self.last = None
        self.drawn = 0.0

    def show(self, done, failed, running):
        finished = done + failed
        counts = (f"{finished}/{self.total} | done {done} | failed {failed} | running "
                  f"{running} | waiting {self.total - finished - running}")
        now = time.monotonic()
        if self.tty:
            if counts == self.last and now - self.drawn < 1.0:
                return
            filled = round(self.WIDTH * finished / self.total)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            sys.stderr.write(f"\r[{bar}] {counts} | {now - self.start:.0f}s\x1b[K")
        elif counts != self.last:
            sys.stderr.write(f"modelstream: {counts} | {now - self.start:.1f}s\n")
        sys.stderr.flush()
        self.last, self.drawn = counts, now

    def close(self):
        if self.tty and self.last is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()


class Batch:
    """Runs the rows `jobs` at a time and keeps DIR/batch_state.json current, so a run
    that stops at any point can be resumed without creating any task twice."""

    def __init__(self, addon, args, results):
        self.addon = addon
        self.results = results
        self.args = args
        self.bpy = addon.bpy
        self.runtime = addon.runtime
        self.out = os.path.abspath(args.out)
        self.state_path = os.path.join(self.out, STATE_FILE)
        self.base = os.path.dirname(os.path.abspath(args.file))
        self.library = os.path.abspath(args.library) if args.library else ""
        self.rows = read_rows(args.file)
        self.orphans = []
        self.start = time.monotonic()

    def run(self):
        os.makedirs(self.out, exist_ok=True)
        previous = load_state(self.state_path)
        self.bpy.ops.wm.read_homefile(use_empty=True)
        todo = self.plan(previous)
        self.save_state()
        prefs = self.addon.preferences.get()
        limits = prefs.max_concurrent
        prefs.max_concurrent = self.args.jobs  # reaches the engine at once
        progress = Progress(len(self.rows))
        try:
            self.loop(todo, progress)
        finally:
            progress.close()
            prefs.max_concurrent = limits
            for row in self.rows:
                if row.prepared is not None and row.job is None:
                    self.addon.inputs.discard(row.prepared.workdir)
            self.write_summary()
        failed = [r for r in self.rows if r.record["state"] != "done"]
        print(os.path.join(self.out, SUMMARY_FILE), file=self.results, flush=True)
        spent = [r.record["credits"] for r in self.rows if "credits" in r.record]
        print(f"modelstream: {len(self.rows) - len(failed)} done, {len(failed)} failed in "
              f"{time.monotonic() - self.start:.1f} s"
              + (f", {sum(spent):g} credits used" if spent else ""), file=sys.stderr)
        for row in failed:
            print(f"modelstream: {row.record.get('error')}", file=sys.stderr)
        return EXIT_FAILED if failed else 0

    # Planning: everything here happens before any request.

    def plan(self, previous):
        """Validate every row and decide what each needs: nothing, a fetch of the task it
        already has, or a new task. Returns the rows to run, in order."""
        seen = {}
        todo = []
        for row in self.rows:
            if row.unreadable:
                row.fail(f"{row.label}: {row.unreadable}")
                continue
            try:
                self.read_id(row, seen)
                earlier = previous.get(row.id)
                if earlier is not None:
                    # Kept even if the row is bad now: its task id must never be lost.
                    row.record.update(earlier, row=row.number, id=row.id)
                self.read_options(row)
                if earlier is not None and not self.resume(row, earlier):
                    continue
                row.record["options"] = row.options
                opts = resolve_paths(self.addon, {**self.addon.defaults(), **row.options},
                                     self.base)
                if row.record.get("task_id"):
                    row.placement = self.runtime.import_options(self.bpy.context, opts)
                else:
                    row.prepared = self.runtime.prepare(self.bpy.context, opts)
                todo.append(row)
            except self.addon.errors.ModelStreamError as e:
                row.fail(f"{row.label}: {e}", getattr(e, "field", None))
        # Records of rows that are gone or unreadable now stay: they may hold a task id.
        self.orphans = [record for row_id, record in previous.items() if row_id not in seen]
        for row in todo:
            if row.record.get("task_id"):
                for job in [j for j in self.runtime.jobs()
                            if j.task_id == row.record["task_id"]]:
                    # a copy resumed from the add-on's history
                    self.runtime.remove(self.bpy.context, job.id)
        return deque(todo)

    def read_id(self, row, seen):
        error = self.addon.tasks.ValidationError
        row_id = row.raw.get("id")
        if row_id not in (None, ""):
            row.id = str(row_id).strip()
            row.record["id"] = row.id
            if not ID_PATTERN.fullmatch(row.id):
                raise error("id", "use letters, digits, '.', '_' or '-' (it names the "
                            "output files), at most 100 characters.")
        if row.id in seen:
            raise error("id", f"the same as row {seen[row.id]}; ids name the outputs.")
        seen[row.id] = row.number
        row.claimed = True

    def read_options(self, row):
        error = self.addon.tasks.ValidationError
        raw = {key: value for key, value in row.raw.items() if key != "id"}
        if "type" in raw:
            if raw.get("task_type") not in (None, ""):
                raise error("type", "give task_type or type, not both.")
            raw["task_type"] = raw.pop("type")
        row.options = convert(self.addon, raw)
        if row.options.get("variations", 1) != 1:
            raise error("variations", "a row makes one result, saved under its id: give "
                        "each variation its own row, with a model_seed in extra_params.")
        for field, capture in (("image_source", 'FILE'), ("multiview_source", 'FILES')):
            if row.options.get(field, capture) != capture:
                raise error(field, "captures from a .blend are for `generate --blend`; "
                            "give image files or URLs in a batch.")

    def resume(self, row, earlier):
        """What an earlier run left for this row; False when nothing is left to do."""
        changed = earlier.get("options") not in (None, row.options)
        if (earlier.get("task_id") or earlier.get("state") == "done") and changed:
            row.fail(f"{row.label}: the row changed since task {earlier.get('task_id')} was "
                     "created for it; give it a new id to generate it again.", "id")
            return False
        if (earlier.get("state") == "done" and os.path.exists(earlier.get("output", ""))
                and self.in_library(row, earlier)):
            return False
        if earlier.get("task_id"):
            row.record.update(state="created", error="", field=None)
            return True
        uncertain = earlier.get("state") == "submitting" or earlier.get("uncertain")
        if uncertain and not self.args.resubmit_uncertain:
            row.fail(f"{row.label}: it was being sent when an earlier run stopped and may "
                     "have been created (and charged) already, so it was not sent again. "
                     "Check your ModelStream tasks, or rerun with --resubmit-uncertain to "
                     "send it anyway.", uncertain=True)
            return False
        row.record.update(state="new", error="", field=None, uncertain=False)
        return True

    def in_library(self, row, earlier):
        """Whether a done row needs nothing more for --library: no library asked, not a
        model, or its asset is in DIR."""
        task_type = {**self.addon.defaults(), **row.options}["task_type"]
        if not self.library or self.addon.tasks.output_kind(task_type) != "model":
            return True
        path = earlier.get("library") or ""
        return os.path.dirname(path) == self.library and os.path.exists(path)

    # Running.

    def loop(self, todo, progress):
        context = self.bpy.context
        active, ready = {}, deque()
        while todo or active or ready:
            while todo and len(active) < self.args.jobs:
                row = todo.popleft()
                row.times["started"] = self.elapsed()
                if row.prepared is None:
                    row.job = self.runtime.attach(context, row.record["task_id"],
                                                  row.placement)
                else:
                    # Recorded before the request: if we stop now, the rerun knows that
                    # this row may exist at the service and does not pay for it twice.
                    row.record.update(state="submitting", error="")
                    self.save_state()
                    row.job = self.runtime.submit(context, row.prepared)
                active[row.job.id] = row
            if ready:
                self.import_row(ready.popleft())
            elif active:
                self.runtime.wait(context, next(iter(active.values())).job, 0.05)
            self.runtime.tick(context.window_manager)
            if self.collect(active, ready):
                self.save_state()
            counts = [r.record["state"] for r in self.rows]
            progress.show(counts.count("done"), counts.count("failed"),
                          len(active) + len(ready))

    def collect(self, active, ready):
        """Note new task ids and finished jobs; True when the state file needs writing."""
        changed = False
        for job_id, row in list(active.items()):
            job = row.job
            if job.task_id and row.record.get("task_id") != job.task_id:
                row.record.update(state="created", task_id=job.task_id)
                changed = True
            if not job.done:
                continue
            del active[job_id]
            changed = True
            if job.state == self.addon.job.READY:
                row.times["ready"] = self.elapsed()
                ready.append(row)
                continue
            errors = self.addon.errors
            uncertain = not job.task_id and any(
                hint in job.error for hint in (errors.RequestUncertainError.hint,
                                               errors.ServiceError.hint))
            row.fail(f"{row.label}: {job.error or job.message}", uncertain=uncertain)
            self.runtime.remove(self.bpy.context, job_id)
        return changed

    def import_row(self, row):
        """Only this row's result in an empty scene, saved as DIR/<id>.blend."""
        job = row.job
        row.times["import"] = self.elapsed()
        try:
            self.bpy.ops.wm.read_homefile(use_empty=True)
            self.addon.check_enabled()
            problem = self.runtime.land(self.bpy.context, job)
            if problem:
                row.fail(f"{row.label}: {problem} (task {job.task_id})")
            else:
                paths = save_result(self.addon, [job], os.path.join(self.out, f"{row.id}.blend"),
                                    self.args.raw)
                asset = ""
                if self.library and self.addon.tasks.output_kind(job.body["type"]) == "model":
                    asset = self.addon.library.save_job(self.bpy.context, job, self.library)
                row.record.update(state="done", output=paths[0], raw=paths[1:],
                                  library=asset, error="")
        except (RuntimeError, OSError, self.addon.errors.ModelStreamError) as e:
            row.fail(f"{row.label}: saving the result failed: {e} (task {job.task_id})")
        row.times["finished"] = self.elapsed()
        if job.credits >= 0:
            row.record["credits"] = job.credits
        self.runtime.remove(self.bpy.context, job.id)
        self.save_state()

    # Files.

    def elapsed(self):
        return round(time.monotonic() - self.start, 3)

    def save_state(self):
        records = [r.record for r in self.rows if r.claimed] + self.orphans
        self.addon.history.write_atomic(self.state_path, records)

    def write_summary(self):
        entries = []
        for row in self.rows:
            record = row.record
            status = record["state"] if record["state"] in ("done", "failed") else "failed"
            error = record.get("error") or ("" if status == "done" else
                                            f"{row.label}: interrupted before it finished; "
                                            "rerun the batch to resume it.")
            entries.append({"id": row.id, "row": row.number, "status": status,
                            "task_id": record.get("task_id", ""),
                            "output": record.get("output", "") if status == "done" else "",
                            "raw": record.get("raw", []) if status == "done" else [],
                            "library": record.get("library", "") if status == "done" else "",
                            "error": error, "field": record.get("field"),
                            "credits": record.get("credits"),
                            "times": row.times})
        self.addon.history.write_atomic(os.path.join(self.out, SUMMARY_FILE), entries)


def cmd_batch(addon, args, results):
    return Batch(addon, args, results).run()
