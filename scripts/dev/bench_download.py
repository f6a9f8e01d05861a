"""Benchmark "downloads at wire speed": our download path against plain streaming `requests`
on the same ~100 MB file over loopback, and the memory our download takes. No bpy.

Run with `.venv/bin/python scripts/dev/bench_download.py` (about half a minute).

The local service runs as a subprocess on port 0; one text_to_model task's GLB is padded to
`--mb` MiB (the `pad_glb_mb` fault: zeros at the end of the BIN chunk, still a valid GLB) and
fetched once so the service has it built. Both sides then read the same URL over keep-alive
connections and write it to a file in the same folder:

- ours: `Worker.download_model(data)`, the worker's whole model download (core/worker.py ->
  `ModelStreamClient.download`): the link checks, the `.part` file, the size limit, the
  cancel checks and the watchdog, the rename, the GLB check;
- plain: `requests.Session().get(url, stream=True)` and `iter_content(client.DOWNLOAD_CHUNK)`
  (the same chunk size) written to a file, nothing else.

A warm-up of each side first, then `--pairs` pairs (9). The side that goes first alternates
from pair to pair, and inside a pair the sides take turns (A B B A A B ... over `--runs` 5
runs each); each side's figure is its best run in the pair, because on shared cores another
process only ever adds time (`--runs 1`: one run each). Only the download is timed: our job
folder is made before and each side's file removed after, untimed. A run's throughput is its
bytes over its time.perf_counter seconds; a pair's ratio is ours/plain; the goal is their
median >= 0.95. CPU time per run (time.process_time, all of this process's threads) is shown
too: it does not count the time another process held the core.

RSS growth: the baseline is VmRSS before this process's first download (ours goes first,
before anything the downloads allocate is kept by the allocator); before each run the peak
RSS is reset (writing 5 to /proc/self/clear_refs), and after it VmHWM - baseline is that
run's growth. The largest over all our runs is the figure (goal < 32 MB); plain's is shown
for reference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import requests  # noqa: E402

from modelstream_addon.core import client as client_mod  # noqa: E402
from modelstream_addon.core import formats, worker  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "scripts"))
from local_service import server as local_service  # noqa: E402

KEY = "sk-bench-0123456789abcdef"
RATIO_GOAL = 0.95
RSS_GOAL_MB = 32.0


def status_kb(field):
    """A field of /proc/self/status in KiB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak():
    """Reset VmHWM to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Run:
    """One timed download: wall seconds, CPU seconds, bytes, and its peak RSS over
    `baseline` (bytes; None where the peak cannot be reset)."""

    def __init__(self, side, baseline):
        download, tidy = side()
        exact = reset_peak()
        cpu = time.process_time()
        start = time.perf_counter()
        download()
        self.wall = time.perf_counter() - start
        self.cpu = time.process_time() - cpu
        self.growth = (status_kb("VmHWM") - baseline) * 1024 if exact else None
        self.size = tidy()

    @property
    def rate(self):
        return self.size / self.wall


def finished_task(client, mb):
    """A finished text_to_model task whose GLB is padded to `mb` MiB, built once."""
    requests.post(f"{client.base_url}/_local/faults", json={"pad_glb_mb": mb},
                  timeout=10).raise_for_status()
    task_id = client.create_task({"type": "text_to_model", "prompt": "a stone cube",
                                  "face_limit": 1000, "texture": False, "pbr": False})
    deadline = time.monotonic() + 60
    while (data := client.get_task(task_id))["status"] != "success":
        if time.monotonic() > deadline:
            raise RuntimeError(f"the task did not finish: {data.get('status')}")
        time.sleep(0.2)
    return data


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100, help="GLB size in MiB (100)")
    parser.add_argument("--pairs", type=int, default=9, help="pairs of runs (9)")
    parser.add_argument("--runs", type=int, default=5,
                        help="runs of each side in a pair, best kept (5)")
    parser.add_argument("--chunk", type=int, default=0,
                        help="chunk size in KiB for both sides (default: the client's "
                             "DOWNLOAD_CHUNK), to compare chunk sizes")
    args = parser.parse_args()
    if args.chunk:
        client_mod.DOWNLOAD_CHUNK = args.chunk * 1024

    proc, url = local_service.spawn(KEY, "--latency", "0.2")
    workdir = tempfile.mkdtemp(prefix="modelstream-bench-download-")
    client = client_mod.ModelStreamClient(KEY, url)
    plain_session = requests.Session()
    chunk = client_mod.DOWNLOAD_CHUNK
    settings = worker.Settings(download_dir=os.path.join(workdir, "downloads"),
                               max_download=2**31)
    os.makedirs(settings.download_dir)
    counter = iter(range(1, 1 << 40))
    try:
        data = finished_task(client, args.mb)
        model_url = formats.model_url(data.get("output"))
        client.download(model_url, os.path.join(workdir, "built.glb"), max_bytes=2**31)
        expected = os.path.getsize(os.path.join(workdir, "built.glb"))
        os.remove(os.path.join(workdir, "built.glb"))

        def ours():
            """(download, tidy): the job's folder is made first and removed after, both
            untimed, as the worker's caller makes it (deleting 100 MB is not downloading)."""
            job_id = f"{next(counter):012x}"
            folder = os.path.join(settings.download_dir, job_id)
            os.makedirs(folder)
            w = worker.Worker(client, threading.Event(), lambda **update: None, settings,
                              job_id)
            got = []

            def tidy():
                path, fmt = got[0]
                size = os.path.getsize(path)
                shutil.rmtree(folder)
                if fmt != "glb" or size != expected:
                    raise RuntimeError(f"ours got {size} bytes of {fmt}, not {expected} of glb")
                return size

            return lambda: got.append(w.download_model(data)), tidy

        def plain():
            path = os.path.join(workdir, "plain.glb")

            def download():
                with plain_session.get(model_url, stream=True, timeout=client.timeout) as resp:
                    resp.raise_for_status()
                    with open(path, "wb") as f:
                        for part in resp.iter_content(chunk_size=chunk):
                            f.write(part)

            def tidy():
                size = os.path.getsize(path)
                os.remove(path)
                if size != expected:
                    raise RuntimeError(f"plain got {size} bytes, not {expected}")
                return size

            return download, tidy

        sides = {"ours": ours, "plain": plain}
        baseline = status_kb("VmRSS")  # before this process's first download of the file
        for name in sides:  # warm-up: connections, page cache, the code's first run
            Run(sides[name], baseline)
        pairs = []
        for n in range(args.pairs):
            first, second = ("ours", "plain") if n % 2 == 0 else ("plain", "ours")
            order = [side for turn in range(args.runs)
                     for side in ((first, second) if turn % 2 == 0 else (second, first))]
            runs = {"ours": [], "plain": []}
            for name in order:
                runs[name].append(Run(sides[name], baseline))
            pairs.append((first, runs))
    finally:
        plain_session.close()
        client.close()
        proc.kill()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n== {expected / 1e6:.1f} MB ({expected / 2**20:.0f} MiB) over loopback, "
          f"chunk {chunk // 1024} KiB, {args.pairs} pairs, best of {args.runs} run(s) of "
          "each side per pair ==")
    ratios, cpu_ratios = [], []
    for n, (first, runs) in enumerate(pairs, 1):
        best = {name: max(r, key=lambda x: x.rate) for name, r in runs.items()}
        ratio = best["ours"].rate / best["plain"].rate
        cpu = min(r.cpu for r in runs["ours"]) / min(r.cpu for r in runs["plain"])
        ratios.append(ratio)
        cpu_ratios.append(cpu)
        every = " | ".join(f"{name} " + " ".join(f"{r.rate / 1e6:.0f}" for r in rs)
                           for name, rs in runs.items())
        print(f"pair {n} ({first} first): ours {best['ours'].rate / 1e6:.0f} MB/s, plain "
              f"{best['plain'].rate / 1e6:.0f} MB/s, ratio {ratio:.3f}; CPU ms ours "
              f"{min(r.cpu for r in runs['ours']) * 1000:.0f} / plain "
              f"{min(r.cpu for r in runs['plain']) * 1000:.0f} = {cpu:.3f}  (every run, "
              f"MB/s: {every})")
    median = statistics.median(ratios)
    bests = {name: statistics.median(max(r.rate for r in runs[name]) for _, runs in pairs)
             for name in ("ours", "plain")}
    print(f"throughput, median of the pairs' best runs: ours {bests['ours'] / 1e6:.0f} MB/s, "
          f"plain {bests['plain'] / 1e6:.0f} MB/s")
    print(f"throughput ratio ours/plain: median {median:.3f} (goal >= {RATIO_GOAL}, ratio "
          f"to goal {median / RATIO_GOAL:.2f}); min {min(ratios):.3f}, max {max(ratios):.3f}")
    print(f"CPU time ratio ours/plain: median {statistics.median(cpu_ratios):.3f} (lower is "
          "better; not the goal, a check that does not see other processes)")
    growth = [r.growth for _, runs in pairs for r in runs["ours"]]
    plain_growth = [r.growth for _, runs in pairs for r in runs["plain"]]
    if None in growth:
        print("RSS growth: not measured (/proc/self/clear_refs cannot be written here)")
    else:
        peak = max(growth) / 1e6
        print(f"RSS growth during our download: max {peak:.1f} MB over {len(growth)} runs "
              f"(goal < {RSS_GOAL_MB:g} MB, ratio to goal {peak / RSS_GOAL_MB:.2f}); plain's "
              f"max {max(plain_growth) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
