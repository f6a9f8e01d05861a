"""Faults a test or demo injects through /_local/faults, armed here and fired, counted, once
per use: what a real service does on a bad day."""

from __future__ import annotations

import email.utils
import math
import threading
import time

from .api import (
    APIS,
    GATEWAY_ERRORS,
    MULTIVIEW_OUTPUTS,
    OUTPUTS,
    RequestError,
    gateway_error,
    tripo_error,
)
from .hostile_net import HOSTILE_NET

HTTP_FAULTS = ("fail_create", "fail_get", "fail_balance")
# Files no real service should send, served in place of a deliverable (see outputs.hostile).
HOSTILE_FILES = ("external_uri_glb", "bogus_fbx", "huge_png")
COUNTED_FAULTS = HTTP_FAULTS + ("truncate_download", "corrupt_glb", "expire_url",
                                *HOSTILE_FILES, *HOSTILE_NET)
HIT_COUNTERS = COUNTED_FAULTS + ("next_status", "slow_get", "unknown_for", "max_in_flight",
                                  "pad_glb_mb", "evil_task_id")
RESETS = ("reset", "reset_before", "reset_after")


class Faults:
    """Armed faults with the uses each has left, and how often each has fired."""

    def __init__(self):
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._pending: dict[str, dict] = {}
            self._hits = dict.fromkeys(HIT_COUNTERS, 0)

    def arm(self, updates: dict[str, dict]) -> None:
        """Arm faults (a count of 0 disarms one)."""
        with self._lock:
            self._pending.update(updates)
            self._pending = {name: fault for name, fault in self._pending.items()
                             if fault["count"] > 0}

    def take(self, name: str) -> dict | None:
        """Consume one use of an armed fault: its settings when it fires, else None."""
        with self._lock:
            fault = self._pending.get(name)
            if fault is None:
                return None
            fault = dict(fault, count=fault["count"] - 1)
            if fault["count"] > 0:
                self._pending[name] = fault
            else:
                del self._pending[name]
            self._hits[name] += 1
            return fault

    def hit(self, name: str) -> None:
        """Count a fault that fired without being armed (a setting such as max_in_flight)."""
        with self._lock:
            self._hits[name] += 1

    def snapshot(self) -> tuple[dict, dict]:
        """(armed faults, times each fired), copied."""
        with self._lock:
            return dict(self._pending), dict(self._hits)


def parse(body) -> tuple[dict, dict]:
    """A /_local/faults body as (faults to arm, settings to change), all of it checked before
    any of it takes effect."""
    if not isinstance(body, dict):
        raise RequestError("faults must be a JSON object", None)
    unknown = set(body) - {"reset", "delay", "slow", "slow_get", "count", "next_status",
                           "error_code", "error_msg", "unknown_for", "max_in_flight",
                           "pad_glb_mb", "evil_task_id", "upload", "data_urls",
                           "multiview_output", "api", "outputs", "partial_edit", "balance",
                           "credits", *COUNTED_FAULTS}
    if unknown:
        name = sorted(unknown)[0]
        raise RequestError(f"unknown fault '{name}'", name)
    updates, settings = {}, {}
    if "delay" in body and "slow" in body:
        raise RequestError("'slow' is another name for 'delay'; give one", "slow")
    for name in ("delay", "slow"):
        if name in body:
            settings["delay"] = float(_seconds(body, name))
    if "slow_get" in body:
        updates["slow_get"] = {"count": _count(body.get("count", 1), "count"),
                               "seconds": _seconds(body, "slow_get")}
    elif "count" in body:
        raise RequestError("'count' goes with 'slow_get'", "count")
    if "unknown_for" in body:
        updates["unknown_for"] = {"count": 1, "seconds": _seconds(body, "unknown_for")}
    if "pad_glb_mb" in body:
        megabytes = _seconds(body, "pad_glb_mb", "a non-negative number of MiB")
        updates["pad_glb_mb"] = {"count": 1 if megabytes else 0,
                                 "bytes": int(megabytes * 1024 * 1024)}
    if "next_status" in body:
        status = body["next_status"]
        if not isinstance(status, str) or not status:
            raise RequestError("'next_status' must be a non-empty string", "next_status")
        updates["next_status"] = {
            "count": 1, "status": status, "error_code": body.get("error_code", 1000),
            "error_msg": body.get("error_msg", "generation failed (local fault injection)"),
            "explicit_error": "error_code" in body or "error_msg" in body}
    if "evil_task_id" in body:
        # A hostile service names the next task with a path ("/home/you/x", "../../x").
        task_id = body["evil_task_id"]
        if not isinstance(task_id, str) or not task_id:
            raise RequestError("'evil_task_id' must be a non-empty string", "evil_task_id")
        updates["evil_task_id"] = {"count": 1, "task_id": task_id}
    for name in HTTP_FAULTS:
        if name in body:
            updates[name] = _http_fault(name, body[name])
    for name in ("truncate_download", "corrupt_glb", "expire_url", *HOSTILE_FILES,
                 *HOSTILE_NET):
        if name in body:
            count = body[name]
            if isinstance(count, bool):
                count = int(count)
            if not isinstance(count, int) or count < 0:
                raise RequestError(f"'{name}' must be a count of downloads", name)
            updates[name] = {"count": count}
    if "max_in_flight" in body:
        limit = body["max_in_flight"]
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise RequestError("'max_in_flight' must be a task count (0 or null: no limit)",
                               "max_in_flight")
        settings["max_in_flight"] = limit or 0
    for name in ("upload", "data_urls", "partial_edit", "balance"):
        if name in body:
            if not isinstance(body[name], bool):
                raise RequestError(f"'{name}' must be true or false", name)
            settings[name] = body[name]
    for name, choices in (("multiview_output", MULTIVIEW_OUTPUTS), ("api", APIS),
                          ("outputs", OUTPUTS)):
        if name in body:
            if body[name] not in choices:
                raise RequestError(f"'{name}' must be one of: {', '.join(choices)}", name)
            settings[name] = body[name]
    if "credits" in body:
        settings["credits"] = int(_seconds(body, "credits", "a non-negative number of credits"))
    return updates, settings


def _seconds(body: dict, name: str, what: str = "a non-negative number of seconds") -> float:
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise RequestError(f"'{name}' must be {what}", name)
    return value


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(f"'{name}' must be a positive integer", name)
    return value


def _http_fault(name: str, spec) -> dict:
    """Validate {"status": 429 | 500 | ... | "reset[_before|_after]", "count", "retry_after",
    "retry_after_format": "seconds" | "http-date", "code"}."""
    if not isinstance(spec, dict):
        raise RequestError(f"'{name}' must be an object like {{\"status\": 429}}", name)
    status = spec.get("status")
    if status not in RESETS and (not isinstance(status, int) or not 400 <= status <= 599):
        raise RequestError(f"'{name}.status' must be an HTTP error status or one of "
                           f"{', '.join(RESETS)}", name)
    count = _count(spec.get("count", 1), f"{name}.count")
    retry_after = spec.get("retry_after")
    if retry_after is not None and (isinstance(retry_after, bool)
                                    or not isinstance(retry_after, (int, float))):
        raise RequestError(f"'{name}.retry_after' must be a number of seconds", name)
    retry_format = spec.get("retry_after_format", "seconds")
    if retry_format not in ("seconds", "http-date"):
        raise RequestError(f"'{name}.retry_after_format' must be 'seconds' or 'http-date'", name)
    code = spec.get("code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise RequestError(f"'{name}.code' must be a Tripo error code", name)
    return {"status": status, "count": count, "retry_after": retry_after,
            "retry_after_format": retry_format, "code": code}


def reply(fault: dict, api: str = "v2") -> tuple[int, dict, dict]:
    """(status, body, headers) of an injected HTTP error; Tripo's shape on v3 or when the
    fault names a Tripo code, else the gateway's."""
    status = fault["status"]
    message = f"injected HTTP {status} (local fault)"
    if api == "v3":
        body = tripo_error(status, message, code=fault["code"])
    elif fault["code"] is not None:
        body = {"code": fault["code"], "message": message, "suggestion": "try again later"}
    else:
        kind, code = GATEWAY_ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", "injected"))
        body = gateway_error(message, kind, code)
    headers = {}
    if fault["retry_after"] is not None:
        if fault["retry_after_format"] == "http-date":
            # Whole seconds only, so round up: the client must not come back early.
            when = math.ceil(time.time() + fault["retry_after"])
            headers["Retry-After"] = email.utils.formatdate(when, usegmt=True)
        else:
            headers["Retry-After"] = f"{fault['retry_after']:g}"
    return status, body, headers
