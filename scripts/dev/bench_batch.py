"""Time `modelstream_cli.py batch` against the local service: 32 jobs, 8 at once.

Run with `.venv/bin/python scripts/dev/bench_batch.py [--latency 15] [--poll-min 0]`. The CLI
runs as a subprocess, as a pipeline would run it. The ideal is rounds x latency
(32 / 8 = 4 rounds); the goal is a ratio of at most 1.15 and about one poll per second per
job. The breakdown says where the rest goes: process start-up (bpy, the add-on), each
task's time past the service's latency (poll spacing, downloads), imports and saves.
The default latency, 15 s, is a short real task; at a few seconds the engine's 2 s minimum
poll spacing (the official SDK's rule) dominates the ratio.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from demo import start_service  # noqa: E402  (the demo key and latency flag)

GOAL_RATIO = 1.15
KEY = "sk-local-demo"


def run_batch(url, folder, rows, jobs, poll_min):
    jobs_file = os.path.join(folder, "jobs.jsonl")
    with open(jobs_file, "w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({"id": f"job{i:02d}", "prompt": f"a chair, variant {i}",
                                "face_limit": 5000}) + "\n")
    out = os.path.join(folder, "out")
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "cli", "modelstream_cli.py"), "batch",
           jobs_file, "--out", out, "--jobs", str(jobs)]
    if poll_min:
        cmd += ["--poll-min", str(poll_min)]
    env = {**os.environ, "MODELSTREAM_API_KEY": KEY, "MODELSTREAM_BASE_URL": url,
           "BLENDER_USER_RESOURCES": os.path.join(folder, "blender_user")}
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"The batch failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        return wall, json.load(f)["jobs"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=15.0,
                        help="seconds the local service takes per task (default 15)")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--poll-min", type=float, default=0.0,
                        help="the CLI's dev flag; 0 keeps the engine's default (2 s)")
    args = parser.parse_args()

    proc, url = start_service(args.latency)
    try:
        with tempfile.TemporaryDirectory(prefix="modelstream-bench-") as folder:
            wall, rows = run_batch(url, folder, args.rows, args.jobs, args.poll_min)
        import requests

        stats = requests.get(f"{url}/_local/stats", timeout=5).json()
    finally:
        proc.terminate()
        proc.wait(10)

    ideal = math.ceil(args.rows / args.jobs) * args.latency
    batch = max(r["times"]["finished"] for r in rows)
    task_times = [r["times"]["ready"] - r["times"]["started"] for r in rows]
    import_times = [r["times"]["finished"] - r["times"]["import"] for r in rows]
    tasks = stats["tasks_created"]
    requests_total = sum(stats["requests"].values())
    gets = stats["requests"]["get"]
    polls_per_second = gets / sum(task_times)

    print(f"{args.rows} jobs, --jobs {args.jobs}, latency {args.latency} s, poll min "
          f"{args.poll_min or 'engine default (2)'} s")
    print(f"wall time        {wall:6.2f} s   (the whole CLI process)")
    print(f"batch time       {batch:6.2f} s   (first submit to last .blend saved)")
    print(f"ideal            {ideal:6.2f} s   ({math.ceil(args.rows / args.jobs)} rounds x "
          f"{args.latency} s)")
    print(f"ratio            {wall / ideal:6.2f}     (wall; goal <= {GOAL_RATIO})")
    print(f"ratio, batch     {batch / ideal:6.2f}     (without process start-up and exit)")
    print(f"tasks created    {tasks}")
    print(f"requests/task    {requests_total / tasks:6.2f}     ({stats['requests']})")
    print(f"polls/task       {gets / tasks:6.2f}     ({polls_per_second:.2f} per second per "
          f"running job; goal about 1)")
    print("where the time goes:")
    print(f"  start-up + exit      {wall - batch:6.2f} s")
    print(f"  task, mean           {sum(task_times) / len(task_times):6.2f} s   (submit to "
          f"downloaded; the service takes {args.latency} s)")
    print(f"  import + save, mean  {sum(import_times) / len(import_times):6.2f} s   "
          f"(main thread, one row at a time)")
    last_ready = max(r["times"]["ready"] for r in rows)
    print(f"  after the last task  {batch - last_ready:6.2f} s   (imports still queued "
          f"when the last result arrived)")


if __name__ == "__main__":
    main()
