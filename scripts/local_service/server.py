"""Local ModelStream-compatible service: try the add-on without a key, run demos and tests.

Speaks the relay's contract (POST / GET /tripo/v2/openapi/task, all eight task types, and the
upstream upload endpoint), walks every task through queued -> running -> success on a clock,
and serves procedural GLB / FBX models and PNG images from its own file "CDN". Control
endpoints under /_local/ inject the failures a real service shows (slow replies, 429 / 500,
dropped connections, failed or unknown tasks, concurrency limits, truncated or corrupt
downloads, expired URLs), pad the next task's GLB to a size (`{"pad_glb_mb": 100}`, for
download benchmarks) and switch optional features off.

    python scripts/local_service [--host 127.0.0.1] [--port 0] [--key KEY ...]
                                    [--latency SECONDS] [--delay SECONDS] [--verbose]
                                    [--no-upload] [--no-data-urls] [--max-in-flight N]
                                    [--multiview-output nested|flat]
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

from . import faults, outputs
from .api import DEFAULT_KEY, FAILED, MULTIVIEW_OUTPUTS, SUCCESS, UPLOAD_PATH
from .faults import Faults
from .handler import Handler, Server
from .tasks import Task


class LocalService:
    """The service state plus its HTTP server; start() serves from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, key=None,
                 latency: float = 3.0, delay: float = 0.0, verbose: bool = False, *,
                 upload: bool = True, data_urls: bool = True, max_in_flight: int = 0,
                 multiview_output: str = "nested"):
        self.host, self.port = host, port
        keys = [key] if isinstance(key, str) else list(key or ())
        self.keys = tuple(keys or [os.environ.get("MODELSTREAM_LOCAL_KEY") or DEFAULT_KEY])
        self.key = self.keys[0]
        self.latency = max(0.0, latency)
        if multiview_output not in MULTIVIEW_OUTPUTS:
            raise ValueError(f"multiview_output must be one of {MULTIVIEW_OUTPUTS}")
        # Settings the control API may change; a reset restores these start-up values.
        self.config = {"delay": max(0.0, delay), "upload": upload, "data_urls": data_urls,
                       "max_in_flight": max(0, max_in_flight),
                       "multiview_output": multiview_output}
        self.verbose = verbose
        self._lock = threading.RLock()
        self.faults = Faults()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._clear()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalService:
        server = Server((self.host, self.port), Handler)
        server.service = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.1,),
                                        name="modelstream-local", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the service is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> LocalService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- state -----------------------------------------------------------------------------

    def _clear(self) -> None:
        """Forget tasks, uploads, counters and faults."""
        self._tasks: dict[str, Task] = {}
        self._uploads: dict[tuple[str, str], bytes] = {}
        self._tasks_created = 0
        self._max_seen = 0
        self._requests = {"create": 0, "get": 0, "file": 0, "upload": 0}
        self._clear_faults()

    def _clear_faults(self) -> None:
        self.settings = dict(self.config)
        self.faults.clear()

    @property
    def delay(self) -> float:
        return self.settings["delay"]

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def authorized(self, header: str | None) -> str | None:
        """The key a bearer header carries when it is one of ours, else None."""
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = token.strip().encode()
        return next((k for k in self.keys if hmac.compare_digest(token, k.encode())), None)

    def count_request(self, kind: str) -> None:
        with self._lock:
            self._requests[kind] += 1

    def add_upload(self, key: str, data: bytes) -> str:
        token = str(uuid.uuid4())
        with self._lock:
            self._uploads[(key, token)] = data
        return token

    def upload(self, key: str, token: str) -> bytes | None:
        """An uploaded image, only for the key that uploaded it."""
        with self._lock:
            return self._uploads.get((key, token))

    def set_faults(self, body) -> None:
        """Apply a /_local/faults body; a bad one changes nothing."""
        updates, settings = faults.parse(body)
        with self._lock:
            if body.get("reset"):
                self._clear_faults()
            self.settings.update(settings)
            self.faults.arm(updates)

    # --- tasks -----------------------------------------------------------------------------

    def create_task(self, body: dict, key: str, sources=(), parent: Task | None = None):
        """The new task, or None when the key already has max_in_flight tasks in flight."""
        with self._lock:
            now = time.monotonic()
            flying = sum(1 for t in self._tasks.values()
                         if t.key == key and t.in_flight(now, self.latency))
            limit = self.settings["max_in_flight"]
            if limit and flying >= limit:
                self.faults.hit("max_in_flight")
                return None
            evil = self.faults.take("evil_task_id")
            task = Task(evil["task_id"] if evil else str(uuid.uuid4()), key, body, now,
                        int(time.time()), list(sources), parent)
            outcome = self.faults.take("next_status")
            if outcome:
                task.final_status = outcome["status"]
                if task.final_status == FAILED or outcome["explicit_error"]:
                    task.error = {"error_code": outcome["error_code"],
                                  "error_msg": outcome["error_msg"]}
            unknown = self.faults.take("unknown_for")
            if unknown:
                task.unknown_for = unknown["seconds"]
            pad = self.faults.take("pad_glb_mb")
            if pad:
                task.pad_to = pad["bytes"]
            self._tasks[task.task_id] = task
            self._tasks_created += 1
            self._max_seen = max(self._max_seen, flying + 1)
        if any(source and source.url for source in task.sources):
            threading.Thread(target=task.resolve, daemon=True,
                             name=f"fetch-{task.task_id}").start()
        else:
            task.resolve()
        return task

    def get_task(self, task_id: str, key: str | None = None) -> Task | None:
        """A task by id; with a key, only a task that key created (upstream's rule)."""
        with self._lock:
            task = self._tasks.get(task_id)
        return task if task and key in (None, task.key) else None

    def progress(self, task: Task) -> dict:
        return task.progress(self.latency)

    def task_view(self, task: Task, base_url: str) -> dict:
        """The task as Tripo's GET returns it."""
        nested = self.settings["multiview_output"] == "nested"
        return task.view(self.latency, base_url, nested)

    def file_bytes(self, task: Task, name: str) -> tuple[bytes, str] | None:
        """A finished task's output, generated on first request and cached."""
        if self.progress(task)["status"] != SUCCESS or name not in task.outputs().values():
            return None
        return outputs.make(task, name), outputs.content_type(name)

    def stats(self) -> dict:
        pending, hits = self.faults.snapshot()
        with self._lock:
            tasks = list(self._tasks.values())
            snapshot = {"tasks_created": self._tasks_created, "requests": dict(self._requests),
                        "faults": hits, "delay": self.delay,
                        "pending_faults": pending, "uploads": len(self._uploads),
                        "max_in_flight_seen": self._max_seen, "settings": dict(self.settings)}
        snapshot["tasks"] = {t.task_id: self.progress(t)["status"] for t in tasks}
        snapshot["task_types"] = {t.task_id: t.kind for t in tasks}
        return snapshot


def spawn(key: str, *args: str) -> tuple[subprocess.Popen, str]:
    """Start the service in a child process on a free loopback port: (process, URL).
    Used by the demo, the tests and the benchmarks."""
    folder = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.Popen([sys.executable, folder, "--port", "0", "--key", key, *args],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "http://" not in line:
        proc.kill()
        raise RuntimeError(f"the local service did not start: {line!r}")
    return proc, line[line.index("http://"):].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    parser.add_argument("--key", action="append",
                        help="expected API key; repeat for several accounts, each seeing only "
                             f"its own tasks (default: $MODELSTREAM_LOCAL_KEY, else {DEFAULT_KEY})")
    parser.add_argument("--latency", type=float, default=3.0,
                        help="seconds from task creation to success (default: 3)")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="extra seconds before every API reply (default: 0)")
    parser.add_argument("--no-upload", dest="upload", action="store_false",
                        help=f"answer 404 on {UPLOAD_PATH}, like a relay of the task API only")
    parser.add_argument("--no-data-urls", dest="data_urls", action="store_false",
                        help="refuse data: URLs in file.url with a 400")
    parser.add_argument("--max-in-flight", type=int, default=0, metavar="N",
                        help="refuse creates with 429 (code 2000) while a key has N tasks "
                             "queued or running (default: no limit)")
    parser.add_argument("--multiview-output", choices=MULTIVIEW_OUTPUTS, default="nested",
                        help="multiview image URLs nested under the task type (default) or "
                             "directly in output")
    parser.add_argument("--verbose", action="store_true", help="log one line per request")
    args = parser.parse_args(argv)

    service = LocalService(args.host, args.port, args.key, args.latency, args.delay,
                           args.verbose, upload=args.upload, data_urls=args.data_urls,
                           max_in_flight=args.max_in_flight,
                           multiview_output=args.multiview_output)
    try:
        service.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    if not ipaddress.ip_address(urlsplit(service.url).hostname).is_loopback:
        print("warning: listening beyond loopback; anyone who can reach this port can use it",
              file=sys.stderr)
    print(f"ModelStream local service: {service.url}", flush=True)

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    while not stopping.wait(0.2):
        pass
    service.stop()
    return 0
