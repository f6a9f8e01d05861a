"""Benchmark "a result in the scene the moment it is done": from the service marking a task
success to its object in the scene, less the download itself, per job, p50 / p95 over 32
jobs, at the default poll settings; and how often each job polled. Goals: the gap at most
0.5 s; at most one poll a second per job on average.

Run with `.venv/bin/python scripts/dev/bench_latency.py` (about a minute and a half).

The add-on is built and installed from its zip into a throw-away Blender user folder (as
bench_tick.py part 3 does), with Jobs at Once at 10, against a fresh local service whose
tasks take `--latency` seconds (default 15, a short real task: queued a fifth of it, then
running with progress and time left). The jobs (text_to_model, 10,000 faces, textured) are
sent through runtime.submit one every `--spacing` seconds (default latency / 8, so about
eight are at the service at once and they finish apart, as a user's do) and landed the way
the GUI lands them (runtime.follow's auto-import, done by the add-on's timer): the timer
callback, runtime._timer, is called again after the interval it returns, as Blender's timer
would, until every job is in the scene.

Per job, in unix time: S, when the service turned the task success (its /_local/stats
`succeeded_at`); P and R, when the worker posted DOWNLOADING (the poll that saw success had
answered) and READY (files downloaded and checked), stamped as the worker puts them on the
engine's queue; D, when it posted that the import helper took the model (the download
done; R without the helper); L, when the object exists (runtime.on_landed, called right
after the import). The gap is (L - S) - (D - P): everything but the download, the import
helper's work included. Its parts are printed too: poll lateness P - S (including that
GET), the import helper D -> R, the wait for the timer R -> the timer call that landed it,
and the landing itself (Engine.tick, the import or append, the job list). The import
helper is on, as in the GUI (`--no-helper`: off). Polls per
second per job: the service's GETs of the task (`task_polls`) over its life at the service,
from its creation (S less the latency) to P.
In background mode (the bpy module always is) land() pushes no undo step; in the GUI it
does, after the object exists, so it is outside the gap.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "scripts", "dev"))

import requests  # noqa: E402

GAP_GOAL = 0.5  # seconds beyond the download, success to the object in the scene
RATE_GOAL = 1.0  # polls per second per job, on average
KEY = "sk-bench-0123456789abcdef"
PROMPTS = ("a wooden chair", "a red vase", "a donut", "a treasure chest", "a crystal",
           "a lamp", "a tyre", "a brick house", "a flower", "a cup")


def pct(values, q):
    """Nearest-rank percentile."""
    values = sorted(values)
    return values[max(0, min(len(values) - 1, math.ceil(q / 100 * len(values)) - 1))]


def line(name, values, goal=None, unit="s"):
    p50, p95 = pct(values, 50), pct(values, 95)
    text = (f"{name:<34} p50 {p50:7.3f} {unit} | p95 {p95:7.3f} {unit} | "
            f"max {max(values):7.3f} {unit}")
    if goal is not None:
        text += (f" | goal <= {goal:g} {unit}: p50 ratio {p50 / goal:.2f}, "
                 f"p95 ratio {p95 / goal:.2f}")
    print(text)


def run(args, workdir):
    import bench_jobs
    from local_service.server import spawn

    package = bench_jobs.install_addon(workdir)  # before bpy's first import: its user folder
    import bpy

    proc, url = spawn(KEY, "--latency", str(args.latency))
    os.environ.update(MODELSTREAM_API_KEY=KEY, MODELSTREAM_BASE_URL=url)
    try:
        bpy.context.preferences.system.use_online_access = True
        bpy.context.preferences.addons[bench_jobs.PACKAGE].preferences.max_concurrent = 10
        runtime = bench_jobs.importlib_module("blender.runtime")
        job_mod = bench_jobs.importlib_module("core.job")
        worker = bench_jobs.importlib_module("core.worker")
        runtime._helper_wanted = lambda: args.helper  # the GUI's default: on
        runtime.apply_preferences()
        eng = runtime.engine()
        posted = {}  # (job id, state) -> unix time the worker posted it
        put = eng._events.put

        def stamped(item):
            state = item[1].get("state")
            if state in (job_mod.DOWNLOADING, job_mod.READY):
                posted[(item[0], state)] = time.time()
            elif item[1].get("message") == worker.PREPARING:
                posted[(item[0], worker.PREPARING)] = time.time()
            put(item)

        eng._events.put = stamped
        landed = {}  # job id -> (unix time it exists, start of the timer call that landed it)
        call_start = [0.0]
        runtime.on_landed.append(
            lambda context, job: landed.setdefault(job.id, (time.time(), call_start[0])))

        jobs = []
        deadline = time.monotonic() + args.timeout
        next_send = time.monotonic()
        while len(jobs) < args.jobs or not all(j.done and j.state != job_mod.READY
                                               for j in jobs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out; states: {[j.state for j in jobs]}")
            if len(jobs) < args.jobs and time.monotonic() >= next_send:
                n = len(jobs)
                job = runtime.submit(bpy.context, runtime.prepare(bpy.context, {
                    "task_type": "text_to_model", "prompt": f"{PROMPTS[n % 10]} {n}",
                    "face_limit": 10000}))
                runtime._will_land(job.id, "")  # runtime.follow's GUI path
                jobs.append(job)
                next_send += args.spacing
            call_start[0] = time.time()
            interval = runtime._timer()
            time.sleep(interval)
        stats = requests.get(f"{url}/_local/stats", timeout=5).json()
        failed = [(j.state, j.error) for j in jobs if j.id not in landed]
        if failed:
            raise RuntimeError(f"jobs did not land: {failed}")
        package.unregister()
    finally:
        proc.terminate()
        proc.wait(10)

    rows = []
    for job in jobs:
        s = stats["succeeded_at"][job.task_id]
        p, r = posted[(job.id, job_mod.DOWNLOADING)], posted[(job.id, job_mod.READY)]
        d = posted.get((job.id, worker.PREPARING), r)
        exists, tick = landed[job.id]
        polls = stats["task_polls"][job.task_id]
        rows.append({"gap": (exists - s) - (d - p), "late": p - s, "download": d - p,
                     "helper": r - d, "wait": tick - r, "land": exists - tick, "polls": polls,
                     "rate": polls / (p - (s - args.latency))})
    print(f"\n== From the service's success to the object in the scene: {args.jobs} jobs, "
          f"latency {args.latency:g} s, one sent every {args.spacing:.2f} s, default poll "
          f"settings, the timer at the interval it returns ==")
    line("gap (success -> scene - download)", [r["gap"] for r in rows], GAP_GOAL)
    print("  its parts:")
    line("  poll lateness (success -> seen)", [r["late"] for r in rows])
    line("  the import helper", [r["helper"] for r in rows])
    line("  wait for the timer call", [r["wait"] for r in rows])
    line("  landing (tick, import, list)", [r["land"] for r in rows])
    line("download itself (subtracted)", [r["download"] for r in rows])
    rates = [r["rate"] for r in rows]
    polls = [r["polls"] for r in rows]
    mean = sum(rates) / len(rates)
    print(f"{'polls per job per second':<34} mean {mean:.3f} | max {max(rates):.3f} | goal "
          f"<= {RATE_GOAL:g}: mean ratio {mean / RATE_GOAL:.2f}, max ratio "
          f"{max(rates) / RATE_GOAL:.2f}")
    print(f"{'polls per job':<34} mean {sum(polls) / len(polls):.1f} | max {max(polls)} "
          f"(a task of {args.latency:g} s; one create each, "
          f"{stats['requests']['create']} in all)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=32, help="jobs (default: 32)")
    parser.add_argument("--latency", type=float, default=15.0,
                        help="service seconds per task (default: 15)")
    parser.add_argument("--spacing", type=float, default=None,
                        help="seconds between submits (default: latency / 8)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--no-helper", dest="helper", action="store_false",
                        help="land each model with Blender's importer on the main thread, as "
                             "with the import helper turned off")
    args = parser.parse_args(argv)
    if args.spacing is None:
        args.spacing = args.latency / 8
    workdir = tempfile.mkdtemp(prefix="modelstream-bench-latency-")
    try:
        run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)  # the bpy wheel's exit clean-up is not ours to time or trust


if __name__ == "__main__":
    main()
