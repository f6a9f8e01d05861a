"""Local ModelStream-compatible service: try the add-on without a key, run demos and tests.

Speaks the relay's contract (POST / GET /tripo/v2/openapi/task, its eight task types and
stylize_model, and the upstream upload and balance endpoints) and Tripo's API v3
(/v3/generation/<route>, /v3/tasks, /v3/files and presigned uploads, /v3/account/balance, your
own mesh in: /v3/models/import and /texture, /v3/animations/rig-check, /rig and /retarget, and
post-processing: /v3/mesh/segment, /complete, /decimate and /v3/models/convert), walks every
task through queued -> running -> success on a clock, and serves procedural GLB / FBX models
(and the converted formats) and PNG images from its
own file "CDN". Control
endpoints under /_local/ inject the failures a real service shows (slow replies, 429 / 500,
dropped connections, failed or unknown tasks, concurrency limits, truncated or corrupt
downloads, expired URLs), pad the next task's GLB to a size (`{"pad_glb_mb": 100}`, for
download benchmarks) and switch optional features off.

    python scripts/local_service [--host 127.0.0.1] [--port 0] [--key KEY ...]
                                    [--latency SECONDS] [--delay SECONDS] [--verbose]
                                    [--no-upload] [--no-data-urls] [--max-in-flight N]
                                    [--multiview-output nested|flat] [--api v2|v3|both]
                                    [--outputs v2|v3] [--partial-edit] [--no-balance]
                                    [--credits N]
"""

from __future__ import annotations

import argparse
import collections
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
from .api import (
    APIS,
    CONVERT_FORMATS,
    DEFAULT_CREDITS,
    DEFAULT_KEY,
    FAILED,
    MESH_TYPES,
    MULTIVIEW_OUTPUTS,
    OUTPUTS,
    SUCCESS,
    UPLOAD_PATH,
    Refused,
)
from .faults import Faults
from .handler import Handler, Server
from .tasks import Task
from .uploads import Presigned


class LocalService:
    """The service state plus its HTTP server; start() serves from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, key=None,
                 latency: float = 3.0, delay: float = 0.0, verbose: bool = False, *,
                 upload: bool = True, data_urls: bool = True, max_in_flight: int = 0,
                 multiview_output: str = "nested", api: str = "both", outputs: str = "v2",
                 partial_edit: bool = False, balance: bool = True,
                 credits: int = DEFAULT_CREDITS):
        self.host, self.port = host, port
        keys = [key] if isinstance(key, str) else list(key or ())
        self.keys = tuple(keys or [os.environ.get("MODELSTREAM_LOCAL_KEY") or DEFAULT_KEY])
        self.key = self.keys[0]
        self.latency = max(0.0, latency)
        for name, value, choices in (("multiview_output", multiview_output, MULTIVIEW_OUTPUTS),
                                     ("api", api, APIS), ("outputs", outputs, OUTPUTS)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}")
        # Settings the control API may change; a reset restores these start-up values.
        self.config = {"delay": max(0.0, delay), "upload": upload, "data_urls": data_urls,
                       "max_in_flight": max(0, max_in_flight),
                       "multiview_output": multiview_output, "api": api, "outputs": outputs,
                       "partial_edit": partial_edit, "balance": balance,
                       "credits": max(0, credits)}
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
        self._uploads: dict[tuple[str, str, str], bytes] = {}
        self.presigned = Presigned()
        self._tasks_created = 0
        self._max_seen = 0
        self._requests = {"create": 0, "get": 0, "file": 0, "upload": 0, "balance": 0}
        self._by_api = {api: dict.fromkeys(self._requests, 0) for api in OUTPUTS}
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

    def count_request(self, kind: str, api: str | None = None) -> None:
        with self._lock:
            self._requests[kind] += 1
            if api:
                self._by_api[api][kind] += 1

    def count_poll(self, task: Task) -> None:
        with self._lock:
            task.polls += 1

    def add_upload(self, api: str, key: str, data: bytes, token: str | None = None) -> str:
        """A token for an upload: v2's image_token is a bare UUID, v3's file_token file_<UUID>
        (a presigned PUT brings the token it was issued)."""
        token = token or ("file_" if api == "v3" else "") + str(uuid.uuid4())
        with self._lock:
            self._uploads[(api, key, token)] = data
        return token

    def upload(self, api: str, key: str, token: str) -> bytes | None:
        """An uploaded file, only for the key and the API it was uploaded with."""
        with self._lock:
            return self._uploads.get((api, key, token))

    def set_faults(self, body) -> None:
        """Apply a /_local/faults body; a bad one changes nothing."""
        updates, settings = faults.parse(body)
        with self._lock:
            if body.get("reset"):
                self._clear_faults()
            self.settings.update(settings)
            self.faults.arm(updates)

    # --- tasks -----------------------------------------------------------------------------

    def create_task(self, kind: str, body: dict, key: str, sources=(),
                    parent: Task | None = None, api: str = "v2") -> Task:
        """The new task; Refused when the key has max_in_flight tasks in flight or too few
        credits left for it."""
        with self._lock:
            now = time.monotonic()
            flying = sum(1 for t in self._tasks.values()
                         if t.key == key and t.in_flight(now, self.latency))
            limit = self.settings["max_in_flight"]
            if limit and flying >= limit:
                self.faults.hit("max_in_flight")
                raise Refused(429, 2000, "concurrency limit")
            evil = self.faults.take("evil_task_id")
            wall = time.time()
            task = Task(evil["task_id"] if evil else str(uuid.uuid4()), key, kind, body, now,
                        int(wall), wall, list(sources), parent, api=api,
                        partial=self.settings["partial_edit"])
            if task.credits() > self._balance(key, now)["balance"]:
                raise Refused(403, 2010, "not enough credit")
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

    def get_task(self, task_id: str, key: str | None = None,
                 api: str | None = None) -> Task | None:
        """A task by id; with a key, only a task that key created (upstream's rule); with an
        API, only a task created through it."""
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None or key not in (None, task.key) or api not in (None, task.api):
            return None
        return task

    def progress(self, task: Task) -> dict:
        return task.progress(self.latency)

    def task_view(self, task: Task, base_url: str) -> dict:
        """The task as Tripo's GET returns it: v3's shape on v3, and on v2 what `outputs` says."""
        nested = self.settings["multiview_output"] == "nested"
        shape = "v3" if task.api == "v3" else self.settings["outputs"]
        view = task.view(self.latency, base_url, nested, shape)
        if task.kind == "animate_prerigcheck" and view["status"] == SUCCESS:
            view["output"] = outputs.verdict(task.parent)  # fields, not files
        elif view["status"] == SUCCESS and task.kind == "convert_model":
            view["output"]["format"] = CONVERT_FORMATS[task.input["format"]]
        elif view["status"] == SUCCESS and task.kind in MESH_TYPES:
            names = outputs.part_names(task)
            if names is not None:
                view["output"]["part_names"] = names
        return view

    def balance(self, key: str) -> dict:
        """{balance, frozen}: credits left to spend, and those held by tasks in flight."""
        with self._lock:
            return self._balance(key, time.monotonic())

    def _balance(self, key: str, now: float) -> dict:
        """A success spends its credits, a task in flight holds them, a failure spends none."""
        spent = frozen = 0
        for task in self._tasks.values():
            if task.key != key:
                continue
            if task.in_flight(now, self.latency):
                frozen += task.credits()
            elif self.progress(task)["status"] == SUCCESS:
                spent += task.credits()
        return {"balance": self.settings["credits"] - spent - frozen, "frozen": frozen}

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
                        "requests_by_api": {api: dict(counts)
                                            for api, counts in self._by_api.items()},
                        "faults": hits, "delay": self.delay,
                        "pending_faults": pending, "uploads": len(self._uploads),
                        "max_in_flight_seen": self._max_seen, "settings": dict(self.settings)}
        snapshot["tasks"] = {t.task_id: self.progress(t)["status"] for t in tasks}
        snapshot["task_types"] = {t.task_id: t.kind for t in tasks}
        snapshot["tasks_by_type"] = dict(collections.Counter(t.kind for t in tasks))
        snapshot["task_apis"] = {t.task_id: t.api for t in tasks}
        turned = {t.task_id: t.succeeded_at(self.latency) for t in tasks}
        snapshot["succeeded_at"] = {task_id: at for task_id, at in turned.items()
                                    if at is not None}
        snapshot["task_polls"] = {t.task_id: t.polls for t in tasks}
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
    parser.add_argument("--api", choices=APIS, default="both",
                        help="the paths that answer: ModelStream's v2, Tripo's v3, or both "
                             "(default); the others answer 404")
    parser.add_argument("--outputs", choices=OUTPUTS, default="v2",
                        help="results on the v2 paths in v2's shape (default) or v3's, as a "
                             "gateway passing v3 results through")
    parser.add_argument("--partial-edit", action="store_true",
                        help="an edit_multiview_image result holds only the edited views")
    parser.add_argument("--no-balance", dest="balance", action="store_false",
                        help="answer 404 on the balance endpoints, as a service without one")
    parser.add_argument("--credits", type=int, default=DEFAULT_CREDITS, metavar="N",
                        help="each key's starting balance; a task it cannot pay for is "
                             f"refused with 403 (code 2010) (default: {DEFAULT_CREDITS})")
    parser.add_argument("--verbose", action="store_true", help="log one line per request")
    args = parser.parse_args(argv)

    service = LocalService(args.host, args.port, args.key, args.latency, args.delay,
                           args.verbose, upload=args.upload, data_urls=args.data_urls,
                           max_in_flight=args.max_in_flight,
                           multiview_output=args.multiview_output, api=args.api,
                           outputs=args.outputs, partial_edit=args.partial_edit,
                           balance=args.balance, credits=args.credits)
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
