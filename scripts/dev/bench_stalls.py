"""Benchmark "no stall over one frame": the longest the main thread is held, with 5,000 jobs
in the history and 8 polling, for each thing an artist does; and the add-on's whole timer
callback. Goals: every scenario's longest gap under 16 ms (one frame at 60 fps), p99 and
max over the rounds; the timer callback p99 < 1 ms, max < 16 ms.

Run with `.venv/bin/python scripts/dev/bench_stalls.py` (about two minutes; `--rounds`).

The add-on is built and installed from its zip into a throw-away Blender user folder (as
bench_jobs.py does), History Size 5,000, its history filled with 5,000 finished jobs. Two
local services: a slow one (tasks take 10 minutes) that the 8 background jobs poll, the
add-on's own service, so they resume there after each enable; and a fast one (1 s) for the
variation rows that land. The GUI's paths are chosen (the history loads on a thread,
Save to Library's preview is made on a thread), as Blender's bpy module is always
background.

How a stall is measured, whatever the switch interval: between and after the operations
the main thread runs a heartbeat, a 1 ms sleep in a loop, calling the add-on's timer
(runtime._timer) every 10 ms as Blender would; each operation runs between two beats. A gap
is the time between two beats less the 1 ms sleep: whatever held the main thread, our
code on it or another thread holding the GIL (a garbage collection on the history's
loading thread stops every thread; a full one walks every object of the process, about
50 ms for the bpy module's own 107,000 here, and comes once the objects that lived on
since the last one pass a quarter of those; rounds add theirs, as a long session does).
Each scenario's gap is the longest of its round,
heartbeat included until it has settled. Garbage-collection pauses of every thread are
recorded through gc.callbacks and the longest is printed with the scenario, naming its
thread; so is, for the longest gap, the main thread's time on a core and its time waiting
for one (Linux's schedstat): the rest of the gap it waited for the GIL. Each round also
says how much CPU time the host took from this virtual machine meanwhile (/proc/stat's
steal): a round that lost some ran slower in everything. Each round, in order:
- enable: register() (the add-on's preferences kept: unregister runs untimed before, then
  a second's pause: it stops the import helper the previous round started, a Blender
  whose exit frees hundreds of MB; a session enables the add-on once, at start-up),
  then the heartbeat until the history is in, the list filled and its tasks resumed, and
  0.3 s more;
- timer: 1 s of heartbeat with 8 jobs polling (every call of runtime._timer is also
  timed on its own: the timer callback's p99 and max over every round);
- submit: runtime.submit of a prepared text_to_model task (the history full: one old job
  pruned with its files), then 0.3 s of heartbeat; the job is removed untimed;
- land row: a row of 4 variations sent (untimed) to the fast service, then the heartbeat
  while they land (each one's import in the timer, one undo step each) and 0.3 s more.
  The import helper is on, as in the GUI (`--no-helper`: off): sending the row starts it
  (each round, since each round enables the add-on anew), and each landing opens the
  helper's .blend in one timer call and appends it in the next;
- keep: Keep This One (modelstream.keep_variation) on one of the row, then 0.3 s;
- save: Save to Library (modelstream.save_to_library) of the kept one, then 0.3 s;
- load: a .blend file opened (wm.open_mainfile): Blender's own reading is not ours, so the
  gap counted is the add-on's load_post handler's own time, then the heartbeat for 0.5 s
  (the whole open is printed for scale).
"(landing)": each landing's runtime.land and, inside it, Blender's glTF operator (none with
the import helper: the landing appends its .blend).
After the rounds, "(plain)": Blender's glTF operator alone (bpy.ops.import_scene.gltf) on a
model of the last row, as many times, timed the same way with the same jobs polling: what
one landing costs without the import helper.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import shutil
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "scripts", "dev"))

import bench_jobs  # noqa: E402

FRAME_MS = 16.0
TIMER_P99_MS = 1.0
TIMER_MAX_MS = 16.0
KEY = bench_jobs.KEY
BEAT = 0.001
TIMER_EVERY = 0.010
SETTLE = 0.3
AFTER_DISABLE = 1.0  # seconds after each round's disable, before its enable is timed
SCENARIOS = ("enable", "timer", "submit", "land row", "keep", "save", "load")


def pct(values, q):
    """Nearest-rank percentile."""
    values = sorted(values)
    return values[max(0, min(len(values) - 1, math.ceil(q / 100 * len(values)) - 1))]


class Pauses:
    """Every thread's garbage-collection pauses, from gc.callbacks: (start, seconds,
    generation, thread name)."""

    def __init__(self):
        self.spans = []
        self._started = {}

    def __call__(self, phase, info):
        me = threading.get_ident()
        if phase == "start":
            self._started[me] = time.perf_counter()
        elif me in self._started:
            start = self._started.pop(me)
            self.spans.append((start, time.perf_counter() - start, info["generation"],
                               threading.current_thread().name))

    def longest(self, start, end):
        inside = [s for s in self.spans if start <= s[0] <= end]
        return max(inside, key=lambda s: s[1], default=None)

    def overlapping(self, start, end):
        """The longest pause overlapping [start, end]."""
        inside = [s for s in self.spans if s[0] <= end and s[0] + s[1] >= start]
        return max(inside, key=lambda s: s[1], default=None)


def _steal():
    """Seconds of CPU time the host took from this (virtual) machine so far, all CPUs
    (Linux's /proc/stat); 0 elsewhere. A round that lost some ran slower for it."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _schedstat():
    """A reader of the calling thread's (cpu, waiting for a core) seconds so far, from
    Linux's /proc/thread-self/schedstat; elsewhere cpu from time.thread_time, wait 0. Read
    around a gap, it tells the main thread's own work from its wait for a core; the rest
    of the gap it waited for the GIL (or slept)."""
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return lambda: (time.thread_time(), 0.0)

    def read():
        cpu, wait = os.pread(fd, 100, 0).split()[:2]
        return int(cpu) / 1e9, int(wait) / 1e9

    return read


class Heart:
    """The main thread's heartbeat: the longest gap between two beats, less the sleep."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.timer_calls = []
        self.sched = _schedstat()
        self.longest = 0.0
        self.worst_at = 0.0
        self.next_timer = 0.0
        self.record_timer = False
        self.worst_what = ""
        self._mark()

    def _mark(self):
        self.last, self.sched_last = time.perf_counter(), self.sched()

    def beat(self, slept=0.0, busy=0.0, what="waiting"):
        """`busy` seconds of the gap were spent in `what` (ours, on the main thread)."""
        now = time.perf_counter()
        gap = now - self.last - slept
        if gap > self.longest:
            (cpu, wait), (cpu0, wait0) = self.sched(), self.sched_last
            self.longest, self.worst_at = gap, self.last
            self.worst_what = (f"{what} {busy * 1000:.1f} ms" if busy else what) + (
                f"; main thread on a core {(cpu - cpu0) * 1000:.1f} ms, waiting for one "
                f"{(wait - wait0) * 1000:.1f} ms")
        self._mark()

    def start(self):
        self.longest, self.worst_what = 0.0, ""
        self._mark()

    def run(self, fn):
        """`fn` between two beats: its time counts as a gap."""
        self.beat()
        start = time.perf_counter()
        result = fn()
        self.beat(busy=time.perf_counter() - start, what="the operation")
        return result

    def skip(self, fn):
        """`fn` untimed (setting a scenario up)."""
        result = fn()
        self._mark()
        return result

    def count(self, seconds):
        """A gap the caller measured itself (the add-on's part of a file load)."""
        if seconds > self.longest:
            self.longest, self.worst_at = seconds, self.last
            self.worst_what = "the handler"
        self._mark()

    def idle(self, seconds=0.0, until=None, timeout=60.0):
        """Beat, with the add-on's timer every 10 ms, until `until()` holds (if given), then
        `seconds` more."""
        deadline = time.perf_counter() + timeout
        settle_end = None if until else time.perf_counter() + seconds
        slept = 0.0
        while True:
            now = time.perf_counter()
            took = 0.0
            if now >= self.next_timer:
                start = time.perf_counter()
                self.runtime._timer()
                took = time.perf_counter() - start
                if self.record_timer:
                    self.timer_calls.append(took)
                self.next_timer = start + TIMER_EVERY
            self.beat(slept, took, "a timer call")
            if settle_end is None and until():
                settle_end = time.perf_counter() + seconds
            if settle_end is not None and time.perf_counter() >= settle_end:
                return
            if time.perf_counter() > deadline:
                raise RuntimeError("timed out waiting in the heartbeat")
            time.sleep(BEAT)  # waking late (the GIL held elsewhere) counts as a gap
            slept = BEAT


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=5000,
                        help="finished jobs in the history (default: 5000, the maximum)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds (default: 20)")
    parser.add_argument("--polling", type=int, default=8,
                        help="jobs polling throughout (default: 8)")
    parser.add_argument("--poll-min", type=float, default=0.5,
                        help="the engine's poll floor; the add-on's default is 2.0, lower "
                             "makes more events (default: 0.5)")
    parser.add_argument("--only", default="", help="comma-separated scenarios to time")
    parser.add_argument("--no-helper", dest="helper", action="store_false",
                        help="land each model with Blender's importer on the main thread, as "
                             "with the import helper turned off")
    args = parser.parse_args(argv)
    only = set(filter(None, args.only.split(","))) or set(SCENARIOS)

    workdir = tempfile.mkdtemp(prefix="modelstream-bench-stalls-")
    from local_service.server import spawn

    slow, slow_url = spawn(KEY, "--latency", "600")
    fast, fast_url = spawn(KEY, "--latency", "1")
    os.environ.update(MODELSTREAM_API_KEY=KEY, MODELSTREAM_BASE_URL=slow_url)
    pauses = Pauses()
    try:
        package = bench_jobs.install_addon(workdir)
        import bpy

        bpy.context.preferences.system.use_online_access = True
        prefs = bpy.context.preferences.addons[bench_jobs.PACKAGE].preferences
        prefs.max_concurrent = 10
        bench_jobs.fill_history(package, args.history)
        runtime = bench_jobs.importlib_module("blender.runtime")
        library = bench_jobs.importlib_module("blender.library")
        runtime._gui = lambda: True
        runtime._helper_wanted = lambda: args.helper  # the GUI's default: on
        importer = bench_jobs.importlib_module("blender.importer")
        landings = []  # (runtime.land's seconds, the glTF operator's inside it)

        def timed_operator(path, operator=importer._IMPORTERS["glb"]):
            start = time.perf_counter()
            try:
                return operator(path)
            finally:
                landings[-1][1] += time.perf_counter() - start

        def timed_land(*a, land=runtime.land, **kw):
            landings.append([0.0, 0.0])
            start = time.perf_counter()
            try:
                return land(*a, **kw)
            finally:
                landings[-1][0] = time.perf_counter() - start

        importer._IMPORTERS["glb"] = timed_operator
        runtime.land = timed_land
        library._in_background = lambda: False
        blend = os.path.join(workdir, "scene.blend")
        bpy.ops.wm.read_homefile(use_empty=True)
        bpy.ops.wm.save_as_mainfile(filepath=blend)
        heart = Heart(runtime)
        gaps = {name: [] for name in SCENARIOS}
        worst_gc = {name: None for name in SCENARIOS}
        causes = {}
        whole_load = []
        gc.callbacks.append(pauses)

        def polling():
            return [j for j in runtime.engine().jobs.values() if not j.done]

        def loaded():
            wm = bpy.context.window_manager
            return (not runtime.history_loading() and not runtime._resume_pending
                    and len(wm.modelstream_jobs) == len(runtime.engine().jobs))

        def scenario(name, fn):
            if name not in only:
                heart.skip(fn)
                return
            begin = time.perf_counter()
            heart.start()
            fn()
            gaps[name].append(heart.longest)
            during = pauses.overlapping(heart.worst_at, heart.worst_at + heart.longest)
            causes[name] = f" ({heart.worst_what}" + (
                f"; GC gen{during[2]} {during[1] * 1000:.0f} ms on {during[3]})"
                if during else ")")
            found = pauses.longest(begin, time.perf_counter())
            if found and (worst_gc[name] is None or found[1] > worst_gc[name][1]):
                worst_gc[name] = found

        def opts(**more):
            return {"task_type": "text_to_model", "prompt": "a wooden chair",
                    "face_limit": 1000, **more}

        def enable():
            heart.run(package.register)
            heart.idle(SETTLE, until=loaded)

        def timer():
            heart.record_timer = True
            heart.idle(1.0)
            heart.record_timer = False

        def submit():
            prepared = heart.skip(lambda: runtime.prepare(bpy.context, opts()))
            job = heart.run(lambda: runtime.submit(bpy.context, prepared))
            heart.idle(SETTLE)
            heart.skip(lambda: runtime.remove(bpy.context, job.id))

        row = []

        def land_row():
            def send():
                os.environ["MODELSTREAM_BASE_URL"] = fast_url
                try:
                    prepared = runtime.prepare(bpy.context, opts(variations=4))
                finally:
                    os.environ["MODELSTREAM_BASE_URL"] = slow_url
                row[:] = [runtime.submit(bpy.context, each) for each in prepared.each()]
                for job in row:
                    runtime._will_land(job.id, "")  # what runtime.follow does in the GUI

            heart.skip(send)
            heart.idle(SETTLE, until=lambda: all(j.done for j in row))
            failed = [(j.state, j.error) for j in row if j.state != "IMPORTED"]
            if failed:
                raise RuntimeError(f"the row did not land: {failed}")

        def keep():
            def select():
                root = bpy.context.scene.objects[row[1].imported_as]
                for obj in bpy.context.view_layer.objects:
                    obj.select_set(False)
                root.select_set(True)
                bpy.context.view_layer.objects.active = root

            heart.skip(select)
            result = heart.run(bpy.ops.modelstream.keep_variation)
            assert result == {'FINISHED'}, result
            heart.idle(SETTLE)

        def save():
            result = heart.run(lambda: bpy.ops.modelstream.save_to_library(
                task_id=row[1].task_id))
            assert result == {'FINISHED'}, result
            heart.idle(SETTLE)

        def load():
            handler = next(h for h in bpy.app.handlers.load_post
                           if getattr(h, "__module__", "").endswith(".runtime"))
            took = []

            @bpy.app.handlers.persistent
            def timed_handler(filepath):
                start = time.perf_counter()
                handler(filepath)
                took.append(time.perf_counter() - start)

            index = bpy.app.handlers.load_post.index(handler)
            bpy.app.handlers.load_post[index] = timed_handler
            start = time.perf_counter()
            try:
                bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)
            finally:
                bpy.app.handlers.load_post[:] = [handler if h is timed_handler else h
                                                 for h in bpy.app.handlers.load_post]
            whole_load.append(time.perf_counter() - start)
            heart.count(took[0])
            heart.idle(0.5)

        package.register()
        heart.idle(SETTLE, until=loaded)
        runtime.set_poll_floor(args.poll_min)
        while len(polling()) < args.polling:
            runtime.submit(bpy.context, runtime.prepare(bpy.context, opts()))
        print(f"{len(runtime.engine().jobs):,} jobs, {len(polling())} polling; "
              f"{args.rounds} rounds of {', '.join(SCENARIOS)}", flush=True)
        stolen = []
        for n in range(args.rounds):
            steal_start = _steal()
            heart.skip(package.unregister)
            time.sleep(AFTER_DISABLE)  # the import helper it stopped ends, its memory freed
            scenario("enable", enable)
            runtime.set_poll_floor(args.poll_min)
            assert len(polling()) == args.polling, len(polling())
            scenario("timer", timer)
            scenario("submit", submit)
            scenario("land row", land_row)
            scenario("keep", keep)
            scenario("save", save)
            scenario("load", load)
            stolen.append(_steal() - steal_start)
            print(f"round {n + 1}: " + ", ".join(
                f"{name} {gaps[name][-1] * 1000:.1f}{causes[name]}" for name in SCENARIOS
                if gaps[name])
                + f" ms; the machine's CPUs stolen by its host {stolen[-1] * 1000:.0f} ms",
                flush=True)
        jobs_now = len(runtime.engine().jobs)
        plain = []
        if "land row" in only:
            # Blender's glTF operator alone on a model of the row, the same 8 polling: what
            # one landing cannot be shorter than.
            for _ in range(args.rounds):
                before = set(bpy.data.objects)
                heart.start()
                heart.run(lambda: bpy.ops.import_scene.gltf(filepath=row[0].output_path))
                plain.append(heart.longest)
                heart.skip(lambda kept=before: bpy.data.batch_remove(
                    [o for o in bpy.data.objects if o not in kept]))
                heart.idle(SETTLE)
        package.unregister()
    finally:
        if pauses in gc.callbacks:
            gc.callbacks.remove(pauses)
        for proc in (slow, fast):
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n== Longest main-thread gap per round, {args.rounds} rounds, {jobs_now:,} jobs "
          f"in the history, {args.polling} polling (goal < {FRAME_MS:g} ms) ==")
    for name in SCENARIOS:
        if not gaps[name]:
            continue
        ms = [g * 1000 for g in gaps[name]]
        p99, peak = pct(ms, 99), max(ms)
        found = worst_gc[name]
        gc_note = (f"; longest GC {found[1] * 1000:.1f} ms (gen{found[2]}, {found[3]})"
                   if found else "")
        extra = (f"; the whole open_mainfile median {pct(whole_load, 50) * 1000:.1f} ms"
                 if name == "load" and whole_load else "")
        print(f"{name:<9} p50 {pct(ms, 50):7.2f} | p99 {p99:7.2f} ms (ratio "
              f"{p99 / FRAME_MS:5.2f}) | max {peak:7.2f} ms (ratio {peak / FRAME_MS:5.2f})"
              f"{gc_note}{extra}")
    if landings:
        whole = [w * 1000 for w, _ in landings]
        operator = [o * 1000 for _, o in landings]
        ours = [(w - o) * 1000 for w, o in landings]
        print(f"{'(landing)':<9} p50 {pct(whole, 50):7.2f} | p99 {pct(whole, 99):7.2f} ms | max "
              f"{max(whole):7.2f} ms: runtime.land, {len(landings)} landings; the glTF "
              f"operator inside it p50 {pct(operator, 50):.2f}, max {max(operator):.2f} ms; "
              f"ours around it p50 {pct(ours, 50):.2f}, max {max(ours):.2f} ms")
    if plain:
        ms = [g * 1000 for g in plain]
        print(f"{'(plain)':<9} p50 {pct(ms, 50):7.2f} | p99 {pct(ms, 99):7.2f} ms | max "
              f"{max(ms):7.2f} ms: bpy.ops.import_scene.gltf alone on a model of the row, "
              f"{args.rounds} times; land row p50 / this p50 "
              f"{pct(gaps['land row'], 50) * 1000 / pct(ms, 50):.2f}")
    if any(stolen):
        worst = max(range(len(stolen)), key=stolen.__getitem__)
        print(f"CPU time stolen by the host (a virtual machine's): {sum(stolen):.2f} s over "
              f"the rounds, the most in round {worst + 1} ({stolen[worst] * 1000:.0f} ms)")
    calls = [c * 1000 for c in heart.timer_calls]
    if calls:
        p99, peak = pct(calls, 99), max(calls)
        print(f"\n== The timer callback (runtime._timer), {len(calls)} calls with "
              f"{args.polling} polling ==")
        print(f"timer     p50 {pct(calls, 50):7.3f} | p99 {p99:7.3f} ms (goal < "
              f"{TIMER_P99_MS:g}, ratio {p99 / TIMER_P99_MS:5.2f}) | max {peak:7.3f} ms "
              f"(goal < {TIMER_MAX_MS:g}, ratio {peak / TIMER_MAX_MS:5.2f})")
    sys.stdout.flush()
    os._exit(0)  # the bpy wheel's exit clean-up is not ours to time or trust


if __name__ == "__main__":
    main()
