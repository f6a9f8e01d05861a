"""What a hostile or broken service, proxy or gateway does on the wire, on request: a file
dripped a byte a second, an honest gzip encoding, replies too large or too deep to parse,
a 401 that echoes the caller's key, odd field types in a running task, and a result link
to a link-local address. Each is armed through /_local/faults with a count."""

from __future__ import annotations

import gzip
import json
import time

HOSTILE_NET = ("drip_download", "gzip_download", "huge_reply", "deep_reply", "echo_key",
               "odd_fields", "link_local_url")
HUGE_REPLY_BYTES = 16 * 1024 * 1024
DEEP_REPLY_LEVELS = 100_000
LINK_LOCAL = "http://169.254.169.254/latest/meta-data/model.glb"


def drip(handler, data: bytes, content_type: str) -> None:
    """Headers for the whole file, then one byte a second until the client gives up."""
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    try:
        for i in range(len(data)):
            handler.wfile.write(data[i:i + 1])
            handler.wfile.flush()
            time.sleep(1.0)
    except OSError:
        pass  # the client hung up: that is what it should do
    handler.close_connection = True


def gzipped(data: bytes) -> tuple[bytes, dict]:
    """The file gzip-encoded, served honestly: Content-Length is the encoded size."""
    return gzip.compress(data), {"Content-Encoding": "gzip"}


def reply_body(faults, view: dict) -> bytes | None:
    """A task GET's body replaced by a hostile one, or None to answer normally."""
    if faults.take("huge_reply"):
        padded = {"code": 0, "data": dict(view, padding="x" * HUGE_REPLY_BYTES)}
        return json.dumps(padded).encode()
    if faults.take("deep_reply"):
        return b'{"code": 0, "data": ' + b"[" * DEEP_REPLY_LEVELS + b"]" * DEEP_REPLY_LEVELS \
            + b"}"
    return None


def odd_view(faults, view: dict) -> dict:
    """A running task's fields in shapes nobody documented: text progress, infinite time
    left, a string input, a missing queue place."""
    if view.get("status") not in ("queued", "running") or not faults.take("odd_fields"):
        return view
    odd = dict(view, progress=f"{view.get('progress', 0)}%", running_left_time="Infinity",
               input="a string where an object belongs")
    odd.pop("queuing_num", None)
    return odd


def link_local(faults, view: dict) -> dict:
    """A finished task whose model link points at the cloud metadata address."""
    output = view.get("output")
    if view.get("status") != "success" or not isinstance(output, dict) \
            or not faults.take("link_local_url"):
        return view
    output = {key: LINK_LOCAL if "model" in key else value for key, value in output.items()}
    return dict(view, output=output)


def echoed_key_message(authorization: str) -> str:
    """A gateway that quotes the request back in its error: the key leaks unless the
    client scrubs it."""
    return f"Invalid credentials in header: {authorization}"
