"""Benchmark "downloads at wire speed": our download path against plain streaming `requests`
on the same ~100 MB file over loopback, and the memory our download takes. No bpy.

Run with `.venv/bin/python scripts/dev/bench_download.py` (about 15 s).

The file is a valid GLB of `--mb` MiB (100; a JSON chunk and one buffer of zeros), served by a
plain loopback HTTP server in a child process: keep-alive, TCP_NODELAY, the body by sendfile,
so it takes almost no CPU from the two sides it serves. (`--server local` serves it from the
local service instead, a text_to_model task padded by the `pad_glb_mb` fault; that server
writes the headers and the body in two sends without TCP_NODELAY: a 15 kB GLB fetched twice in
a row on one connection took 45 ms the second time against 2 ms, a delayed ACK waited out.)
Both sides read the same URL over keep-alive connections and write it to a file in the same
folder:

- ours: `Worker.download_model(data)`, the worker's whole model download (core/worker.py ->
  `ModelStreamClient.download`): the link checks, the `.part` file, the size limit, the
  cancel checks and the watchdog, the rename, the GLB check;
- plain: `requests.Session().get(url, stream=True)` and `iter_content(client.DOWNLOAD_CHUNK)`
  (the same chunk size) written to a file, nothing else.

A warm-up of each side first, then `--pairs` pairs (9). The side that goes first alternates
from pair to pair, and inside a pair the sides take turns in the Thue-Morse order (A B B A B
A A B B A for `--runs` 5 runs each, so neither side keeps the earlier turns); each side's
figure is its best run in the pair, because on shared cores another process only ever adds
time (`--runs 1`: one run each). Only the download is timed: our job folder is made before
and each side's file removed after, untimed. A run's throughput is its bytes over its
time.perf_counter seconds; a pair's ratio is ours/plain; the goal is their median >= 0.95.
CPU time per run (time.process_time, all of this process's threads) is shown too: it does
not count the time another process held the core. `--aa` puts plain in both places, to see
what the harness itself gives on the machine at that moment (about 1, by how much not).

RSS growth: the baseline is VmRSS before this process's first download (ours goes first,
before anything the downloads allocate is kept by the allocator); before each run the peak
RSS is reset (writing 5 to /proc/self/clear_refs), and after it VmHWM - baseline is that
run's growth. The largest over all our runs is the figure (goal < 32 MB); plain's is shown
for reference.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
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


def write_glb(path, mib):
    """A valid GLB of `mib` MiB: a JSON chunk naming one buffer, then that buffer (zeros)."""
    size = int(mib * 2**20) // 4 * 4
    doc = json.dumps({"asset": {"version": "2.0"}, "buffers": [{"byteLength": size}]}).encode()
    doc += b" " * (-len(doc) % 4)
    with open(path, "wb") as f:
        f.write(struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(doc) + 8 + size))
        f.write(struct.pack("<II", len(doc), 0x4E4F534A) + doc)
        f.write(struct.pack("<II", size, 0x004E4942))
        block = bytes(2**20)
        for left in range(size, 0, -len(block)):
            f.write(block[:left])


class FileHandler(http.server.BaseHTTPRequestHandler):
    """GET /model.glb: the file by sendfile on a keep-alive, TCP_NODELAY connection."""

    protocol_version = "HTTP/1.1"
    path_served = ""

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path != "/model.glb":
            self.send_error(404)
            return
        with open(self.path_served, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "model/gltf-binary")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            sent = 0
            while sent < size:
                sent += os.sendfile(self.connection.fileno(), f.fileno(), sent, size - sent)


def serve(path):
    """The plain file server (a child process): prints its URL, serves until killed."""
    FileHandler.path_served = path
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FileHandler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100, help="GLB size in MiB (100)")
    parser.add_argument("--pairs", type=int, default=9, help="pairs of runs (9)")
    parser.add_argument("--runs", type=int, default=5,
                        help="runs of each side in a pair, best kept (5)")
    parser.add_argument("--chunk", type=int, default=0,
                        help="chunk size in KiB for both sides (default: the client's "
                             "DOWNLOAD_CHUNK), to compare chunk sizes")
    parser.add_argument("--aa", action="store_true",
                        help="plain in both places: the harness's own noise (ratio ~1)")
    parser.add_argument("--server", choices=("plain", "local"), default="plain",
                        help="serve the file from a plain sendfile server (default) or from "
                             "the local service")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the plain server's child
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.chunk:
        client_mod.DOWNLOAD_CHUNK = args.chunk * 1024

    workdir = tempfile.mkdtemp(prefix="modelstream-bench-download-")
    if args.server == "local":
        proc, url = local_service.spawn(KEY, "--latency", "0.2")
    else:
        served = os.path.join(workdir, "served.glb")
        write_glb(served, args.mb)
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", served],
                                stdout=subprocess.PIPE, text=True)
        url = proc.stdout.readline().strip()
    client = client_mod.ModelStreamClient(KEY, url)
    plain_session = requests.Session()
    chunk = client_mod.DOWNLOAD_CHUNK
    settings = worker.Settings(download_dir=os.path.join(workdir, "downloads"),
                               max_download=2**31)
    os.makedirs(settings.download_dir)
    counter = iter(range(1, 1 << 40))
    try:
        data = (finished_task(client, args.mb) if args.server == "local"
                else {"status": "success", "output": {"model": f"{url}/model.glb"}})
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

        sides = {"ours": plain if args.aa else ours, "plain": plain}
        baseline = status_kb("VmRSS")  # before this process's first download of the file
        for name in sides:  # warm-up: connections, page cache, the code's first run
            Run(sides[name], baseline)
        pairs = []
        for n in range(args.pairs):
            first, second = ("ours", "plain") if n % 2 == 0 else ("plain", "ours")
            # Thue-Morse (A B B A B A A B ...): neither side keeps the earlier turns.
            order = [(first, second)[bin(turn).count("1") % 2] for turn in range(2 * args.runs)]
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

    if args.aa:
        print("\n(--aa: plain in the place of ours; the ratios show the harness's noise)")
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
    overall = {name: max(r.rate for _, runs in pairs for r in runs[name])
               for name in ("ours", "plain")}
    print(f"fastest run of all: ours {overall['ours'] / 1e6:.0f} MB/s, plain "
          f"{overall['plain'] / 1e6:.0f} MB/s, ratio {overall['ours'] / overall['plain']:.3f}")
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
