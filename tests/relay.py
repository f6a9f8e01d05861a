"""A loopback relay in front of the local service that acts like a gateway with less in it:
paths it does not have (404), and task answers it trims. Real HTTP both ways; it notes
every request it passed on, and when it arrived (what a lower bound on the time between a
client's requests is measured from)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


class Relay:
    def __init__(self, target, missing=(), rewrite=None):
        self.target = target
        self.missing = tuple(missing)  # path prefixes answered 404, as a gateway without them
        self.rewrite = rewrite  # (path, JSON answer) -> JSON answer, for GETs
        self.seen = []  # (method, path)
        self.log = []  # (time.monotonic() on arrival, method, path, status)
        relay = self._relay

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                relay(self, "GET")

            def do_POST(self):
                relay(self, "POST")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def count(self, method, path):
        return sum(1 for seen in self.seen if seen == (method, path))

    def _relay(self, handler, method):
        arrived = time.monotonic()
        self.seen.append((method, handler.path))
        length = int(handler.headers.get("Content-Length") or 0)
        data = handler.rfile.read(length) if length else None
        if handler.path.startswith(self.missing):
            return self._answer(handler, 404, b'{"code": 404, "message": "no such route"}',
                                "application/json")
        headers = {k: v for k, v in handler.headers.items()
                   if k.lower() in ("authorization", "content-type")}
        resp = requests.request(method, self.target + handler.path, headers=headers,
                                data=data, timeout=60)
        self.log.append((arrived, method, handler.path, resp.status_code))
        content = resp.content
        if method == "GET" and self.rewrite and resp.ok:
            content = json.dumps(self.rewrite(handler.path, resp.json())).encode()
        self._answer(handler, resp.status_code, content,
                     resp.headers.get("Content-Type", "application/json"),
                     {k: v for k, v in resp.headers.items()
                      if k.lower() in ("retry-after", "x-tripo-trace-id")})

    @staticmethod
    def _answer(handler, status, content, content_type, headers=None):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content)

    def close(self):
        self._server.shutdown()
        self._server.server_close()
