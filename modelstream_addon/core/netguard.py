"""What the client trusts from the network and from settings, checked in one place. No bpy.

Replies are read with a size cap and parsed with a depth cap; download links must be http(s)
and may not point at link-local addresses, or at private ones unless the service itself is
on one; a download has a total deadline and stops within a fraction of a second when
cancelled, whatever the host does; the key is checked before use and scrubbed from any text
a service sends back.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
import urllib.parse

from . import errors

MAX_REPLY_BYTES = 8 * 1024 * 1024
WATCH_SECONDS = 0.2


def check_key(key):
    """Whitespace or control characters in a key break the header or leak into logs."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in key):
        raise errors.ConfigError("The API key contains spaces, line breaks or control "
                                 "characters: copy it again from your account page.")
    try:
        key.encode("latin-1")
    except UnicodeEncodeError:
        raise errors.ConfigError("The API key contains characters an HTTP header cannot "
                                 "carry: copy it again from your account page.") from None
    return key


def scrub(text, key):
    """Service text with the key taken out (a reply may echo the request's header)."""
    text = str(text)
    return text.replace(key, "<API key>") if key and len(key) >= 4 else text


def read_capped(resp, limit=MAX_REPLY_BYTES):
    """The body of a streamed reply, refusing one over `limit` bytes."""
    length = resp.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        raise errors.ServiceError(f"The service's reply is too large ({int(length)} bytes).")
    chunks, size = [], 0
    for chunk in resp.iter_content(chunk_size=1 << 16):
        size += len(chunk)
        if size > limit:
            raise errors.ServiceError(f"The service's reply is over {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_reply(raw):
    """JSON from a reply, or ValueError. Nesting deeper than the interpreter's recursion
    limit (about a thousand levels) is refused the same way, never a crash."""
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ValueError("the reply is nested too deeply") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"the reply is not UTF-8: {e.reason}") from None


def _addresses(host):
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def _private(address):
    return address.is_private or address.is_loopback


def check_download_url(url, base_url, task_id=None):
    """A result link the client may fetch: http(s), never link-local (cloud metadata
    lives there), private or loopback only when the service itself is."""
    parts = urllib.parse.urlsplit(url if isinstance(url, str) else "")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise errors.DownloadError("The service sent a result link that is not an http(s) "
                                   "URL; it was not followed.", task_id=task_id)
    addresses = _addresses(parts.hostname)
    if any(a.is_link_local for a in addresses):
        raise errors.DownloadError("The service sent a result link to a link-local address; "
                                   "it was not followed.", task_id=task_id)
    base_host = urllib.parse.urlsplit(base_url).hostname or ""
    if any(_private(a) for a in addresses) and not any(
            _private(a) for a in _addresses(base_host)):
        raise errors.DownloadError("The service sent a result link to a private or local "
                                   "address; it was not followed.", task_id=task_id)


class Watchdog:
    """Ends a streamed download from outside when it is cancelled or over its deadline:
    a read that blocks (a host sending a byte a second) is woken by shutting the socket."""

    def __init__(self, resp, cancel, deadline, clock):
        self.resp, self.cancel, self.deadline, self.clock = resp, cancel, deadline, clock
        self.reason = ""
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="modelstream-watchdog",
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()

    def _watch(self):
        while not self._done.wait(WATCH_SECONDS):
            if self.cancel is not None and self.cancel.is_set():
                self.reason = "cancelled"
            elif self.deadline is not None and self.clock() > self.deadline:
                self.reason = "deadline"
            else:
                continue
            self._stop()
            return

    def _stop(self):
        connection = getattr(self.resp.raw, "_connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.resp.close()
