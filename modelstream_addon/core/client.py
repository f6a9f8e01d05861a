"""HTTP client for the ModelStream API (a relay of Tripo's v2 task API) and Tripo API v3.
No bpy here.

One `requests.Session`, bearer auth, connect/read timeouts on every call. GETs are retried
with back-off; a task-creating POST is resent only when it provably never reached the
service, so a user is never charged twice. Paths and body shapes come from the service's
adapter (services.py); everything else is shared.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import time
import urllib.parse

import requests
import urllib3.exceptions

from . import errors, model_tasks, netguard, services

log = logging.getLogger("modelstream")

DEFAULT_BASE_URL = services.ModelStream.default_base_url
USER_AGENT = "modelstream-blender/0.1"
DEFAULT_MAX_DOWNLOAD = 512 * 1024 * 1024
# A download is written 1 MiB at a time: at 64 KiB, requests' and urllib3's per-read work
# was half of the download's CPU time (scripts/dev/bench_download.py); a cancel still ends
# it within the watchdog's 0.2 s.
DOWNLOAD_CHUNK = 1 << 20

# Tripo's numeric error codes, upstream of the relay.
_CODE_CLASSES = {
    1002: errors.AuthenticationError,
    1004: errors.InvalidRequestError,
    1007: errors.RateLimitError,
    2000: errors.RateLimitError,
    2001: errors.NotFoundError,
    2008: errors.ContentPolicyError,
    2009: errors.PromptCharactersError,
    2010: errors.PaymentRequiredError,
}
_STATUS_CLASSES = {
    400: errors.InvalidRequestError,
    401: errors.AuthenticationError,
    402: errors.PaymentRequiredError,
    403: errors.ForbiddenError,
    404: errors.NotFoundError,
    422: errors.InvalidRequestError,
    429: errors.RateLimitError,
}


def parse_retry_after(value, now=None):
    """Seconds to wait from a Retry-After header (seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def error_from_response(resp, task_id=None, body=None, key=""):
    """Build the typed error for a non-success reply, from either error shape; the key is
    scrubbed from anything the service says."""
    trace_id = resp.headers.get("X-Tripo-Trace-ID")
    message = code = param = suggestion = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            message, code, param = err.get("message"), err.get("code"), err.get("param")
        elif body.get("code") not in (None, 0):
            message, code = body.get("message"), body.get("code")
            suggestion = body.get("suggestion")
    if not message:
        message = f"HTTP {resp.status_code} {resp.reason or ''}".strip()
    if suggestion:
        message = f"{message} ({suggestion})"
    message = netguard.scrub(message, key)
    try:
        numeric = int(code)
    except (TypeError, ValueError):
        numeric = None
    cls = _CODE_CLASSES.get(numeric) or _STATUS_CLASSES.get(resp.status_code)
    if cls is None:
        cls = errors.ServiceError if resp.status_code >= 500 else errors.ModelStreamError
    kw = dict(status=resp.status_code, code=code, param=param, trace_id=trace_id,
              task_id=task_id)
    if cls is errors.RateLimitError:
        kw["retry_after"] = parse_retry_after(resp.headers.get("Retry-After"))
    return cls(f"ModelStream: {message}", **kw)


def _never_reached(exc):
    """True when the connection was never made, so the request cannot have been seen."""
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, (urllib3.exceptions.NewConnectionError,
                          urllib3.exceptions.ConnectTimeoutError,
                          requests.exceptions.ConnectTimeout)):
            return True
        if isinstance(e, (urllib3.exceptions.ProtocolError, requests.exceptions.ReadTimeout)):
            return False
        stack.extend([getattr(e, "reason", None), e.__cause__, e.__context__])
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
    return False


class ModelStreamClient:
    """Talks to one base URL with one key. Safe to share between worker threads."""

    def __init__(self, api_key, base_url=DEFAULT_BASE_URL, *, connect_timeout=10.0,
                 read_timeout=60.0, max_retries=4, backoff=1.0, proxy="system", proxy_url="",
                 ca_bundle="", download_deadline=900.0, service=None):
        if not api_key or not api_key.strip():
            raise errors.ConfigError(
                "No API key: set the MODELSTREAM_API_KEY environment variable or "
                "Edit > Preferences > Add-ons > ModelStream > API Key.")
        base_url = (base_url or "").strip().rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise errors.ConfigError(
                f"Base URL must start with http:// or https://, got {base_url!r}.")
        self._key = netguard.check_key(api_key.strip())
        self.download_deadline = download_deadline
        self.service = service or services.SERVICES[services.DEFAULT]
        self.base_url = base_url
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.backoff = backoff
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        _configure_network(self._session, proxy, proxy_url, ca_bundle)

    def __repr__(self):
        return (f"ModelStreamClient(service={self.service.name!r}, "
                f"base_url={self.base_url!r}, api_key=<hidden>)")

    def close(self):
        self._session.close()

    def _auth(self):
        return {"Authorization": f"Bearer {self._key}"}

    def _sleep(self, seconds, cancel):
        if cancel is not None:
            if cancel.wait(seconds):
                raise errors.CancelledError("Cancelled.")
        else:
            time.sleep(seconds)

    def _delay(self, attempt, err=None):
        if isinstance(err, errors.RateLimitError) and err.retry_after is not None:
            return min(err.retry_after, 120.0)
        return self.backoff * (2 ** attempt) * (0.5 + random.random())

    def _send(self, method, url, *, creates, task_id=None, **kw):
        """One request; transport failures become typed errors without the key."""
        try:
            resp = self._session.request(method, url, headers=self._auth(),
                                         timeout=self.timeout, stream=True, **kw)
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidJSONError,
                requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                ValueError) as e:
            raise errors.NotSentError(
                f"The request could not be built ({type(e).__name__}); it was not sent.",
                task_id=task_id) from None
        except requests.exceptions.SSLError as e:
            raise errors.ConnectionFailedError(
                f"TLS/certificate error talking to {self.base_url}: {_short(e)}. Behind a "
                "corporate proxy, set a CA bundle in the add-on preferences.",
                task_id=task_id) from None
        except requests.exceptions.RequestException as e:
            if _never_reached(e):
                raise errors.ConnectionFailedError(
                    f"Could not connect to {self.base_url}: {_short(e)}.",
                    task_id=task_id) from None
            if creates:
                raise errors.RequestUncertainError(
                    f"The connection to {self.base_url} broke after the request was sent "
                    f"({type(e).__name__}).", task_id=task_id) from None
            raise errors.ReadTimeoutError(
                f"No answer from {self.base_url} ({type(e).__name__}).",
                task_id=task_id) from None
        with resp:
            body, problem = self._read(resp)
        if resp.status_code >= 400:
            raise error_from_response(resp, task_id, body, self._key)
        if problem or not isinstance(body, dict):
            # A 200 to a create that cannot be read may still have created the task.
            cls = errors.RequestUncertainError if creates else errors.ServiceError
            raise cls(f"ModelStream answered HTTP {resp.status_code} with a reply that "
                      f"cannot be read ({problem or 'not a JSON object'}).",
                      trace_id=resp.headers.get("X-Tripo-Trace-ID"), task_id=task_id)
        if body.get("code") not in (0, None) or isinstance(body.get("error"), dict):
            raise error_from_response(resp, task_id, body, self._key)
        return body, resp.headers.get("X-Tripo-Trace-ID")

    @staticmethod
    def _read(resp):
        """(parsed body or None, why not): capped in size, bounded in depth."""
        try:
            return netguard.parse_reply(netguard.read_capped(resp)), ""
        except errors.ServiceError as e:
            return None, e.detail
        except ValueError as e:
            return None, str(e)[:120]
        except requests.exceptions.RequestException as e:
            return None, f"the reply broke off: {type(e).__name__}"

    def _retrying(self, send, cancel, retry_if):
        for attempt in range(self.max_retries + 1):
            try:
                return send()
            except errors.ModelStreamError as e:
                if not retry_if(e) or attempt >= self.max_retries:
                    raise
                log.info("%s; retrying", type(e).__name__)
                self._sleep(self._delay(attempt, e), cancel)

    def create_task(self, body, cancel=None):
        """POST a task; returns its id. Resent only when it provably never reached the
        service (connection refused, DNS) or was refused with 429: never charged twice.
        A task the service cannot run is refused here too, before any request."""
        path, wire = self.service.create_request(body)
        url = self.base_url + path
        reply, trace = self._retrying(
            lambda: self._send("POST", url, creates=True, json=wire), cancel,
            lambda e: isinstance(e, (errors.ConnectionFailedError, errors.RateLimitError)))
        data = reply.get("data") or {}
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not task_id:
            raise errors.ServiceError("ModelStream accepted the task but sent no task_id.",
                                      trace_id=trace)
        return str(task_id)

    def get_task(self, task_id, cancel=None):
        """GET a task's data dict, retrying transient failures with back-off."""
        url = self.base_url + self.service.get_path(task_id)
        reply, _ = self._retrying(
            lambda: self._send("GET", url, creates=False, task_id=task_id), cancel,
            lambda e: e.retryable)
        data = reply.get("data")
        if not isinstance(data, dict):
            raise errors.ServiceError("ModelStream sent a task without data.",
                                      task_id=task_id)
        return data

    def upload(self, name, data, mime, cancel=None):
        """Upload an image's bytes (no charge, so retried like a GET); returns its token
        (v2 `image_token`, v3 `file_token`). Bytes, not a path: the caller sends what it
        checked."""
        url = self.base_url + self.service.upload_path

        def send():
            return self._send("POST", url, creates=False, files={"file": (name, data, mime)})

        try:
            reply, trace = self._retrying(send, cancel, lambda e: e.retryable)
        except errors.ModelStreamError as e:
            if e.status in (404, 405):
                raise errors.UploadUnavailableError(
                    f"This service has no upload endpoint (HTTP {e.status}).",
                    status=e.status) from None
            raise
        token = (reply.get("data") or {}).get(self.service.upload_token)
        if not token:
            raise errors.ServiceError(
                f"The upload answered without an {self.service.upload_token}.", trace_id=trace)
        return token

    def upload_model(self, name, data, mime, cancel=None):
        """Upload a model file; returns its file_token. Up to 50 MB in one POST, as the
        SDK does; beyond, a presigned PUT (v3's /files/presign), which carries no key:
        the URL is the service's, checked like a download link."""
        if len(data) <= model_tasks.DIRECT_UPLOAD_BYTES:
            return self.upload(name, data, mime, cancel)
        fmt = os.path.splitext(name)[1].lstrip(".").lower()
        reply, trace = self._retrying(
            lambda: self._send("POST", f"{self.base_url}{self.service.upload_path}/presign",
                               creates=False, json={"format": fmt}),
            cancel, lambda e: e.retryable)
        found = reply.get("data") if isinstance(reply.get("data"), dict) else {}
        token = found.get("file_token")
        url = found.get("presigned_url") or found.get("upload_url")
        if not isinstance(token, str) or not token or not isinstance(url, str) or not url:
            raise errors.ServiceError("The presigned upload answered without a file_token "
                                      "and an upload URL.", trace_id=trace)
        netguard.check_download_url(url, self.base_url)
        try:
            resp = self._session.put(url, data=data, timeout=self.timeout,
                                     headers={"Content-Type": mime}, allow_redirects=False)
        except requests.exceptions.RequestException as e:
            raise errors.ConnectionFailedError(f"The upload of {name} failed: "
                                               f"{type(e).__name__}.") from None
        with resp:
            if resp.status_code >= 300:
                raise errors.ServiceError(f"The upload of {name} was refused (HTTP "
                                          f"{resp.status_code}).", status=resp.status_code)
        return token

    def balance(self):
        """The account's credit balance, asked once (never retried: it is only shown), or
        None when the service has no balance endpoint (404, 405) or gives no number."""
        try:
            reply, _ = self._send("GET", self.base_url + self.service.balance_path,
                                  creates=False)
        except errors.ModelStreamError as e:
            if isinstance(e, errors.NotFoundError) or e.status == 405:
                return None
            raise
        return services.balance_of(reply.get("data"))

    def check(self, cancel=None):
        """Check the base URL and key without creating a task: GET an id that cannot
        exist. Only the API's own 'task not found' (code 2001) proves the service checked
        the key; a host answering 404 to everything proves nothing."""
        try:
            self.get_task("modelstream-connection-check", cancel=cancel)
        except errors.NotFoundError as e:
            if str(e.code) == "2001":
                return f"Reached {self.base_url} and the API key was accepted."
            raise errors.ConfigError(
                f"{self.base_url} answered, but not as the ModelStream API does (HTTP "
                f"{e.status}): check the base URL.") from None
        raise errors.ConfigError(f"{self.base_url} answered a task that cannot exist: check "
                                 "the base URL.")

    def download(self, url, dest, *, cancel=None, max_bytes=DEFAULT_MAX_DOWNLOAD,
                 task_id=None):
        """Stream `url` to `dest`; transient failures are retried, bounded."""
        netguard.check_download_url(url, self.base_url, task_id)
        return self._retrying(
            lambda: self._download_once(url, dest, cancel, max_bytes, task_id), cancel,
            lambda e: e.retryable)

    def _redirect_check(self, task_id):
        """Every hop of a redirected result link obeys the same address rules."""
        def check(resp, *args, **kwargs):
            if resp.is_redirect:
                netguard.check_download_url(
                    urllib.parse.urljoin(resp.url, resp.headers.get("Location", "")),
                    self.base_url, task_id)
        return check

    def _download_once(self, url, dest, cancel, max_bytes, task_id):
        """Write via a .part file, renamed only when whole; the key never goes to file
        hosts (output URLs are signed links on other hosts)."""
        part = dest + ".part"
        deadline = time.monotonic() + self.download_deadline
        watchdog = None
        try:
            with self._session.get(url, stream=True, timeout=self.timeout,
                                   hooks={"response": self._redirect_check(task_id)}) as resp, \
                    netguard.Watchdog(resp, cancel, deadline, time.monotonic) as watchdog:
                if resp.status_code >= 400:
                    expired = resp.status_code in (403, 404, 410)
                    raise errors.DownloadError(
                        f"Downloading the result failed: HTTP {resp.status_code}"
                        + (" (the link has probably expired)." if expired else "."),
                        status=resp.status_code, task_id=task_id,
                        retryable=resp.status_code >= 500)
                expected = resp.headers.get("Content-Length")
                expected = int(expected) if expected and expected.isdigit() else None
                if expected is not None and expected > max_bytes:
                    raise errors.DownloadError(
                        f"The result is {expected} bytes, over the {max_bytes}-byte limit.",
                        task_id=task_id)
                size = 0
                with open(part, "wb") as f:
                    for chunk in resp.iter_content(chunk_size=DOWNLOAD_CHUNK):
                        if cancel is not None and cancel.is_set():
                            raise errors.CancelledError("Cancelled.", task_id=task_id)
                        size += len(chunk)
                        if size > max_bytes:
                            raise errors.DownloadError(
                                f"The result is over the {max_bytes}-byte limit.",
                                task_id=task_id)
                        f.write(chunk)
                wire = resp.raw.tell()  # bytes on the wire: gzip-encoded ones count as sent
            if expected is not None and wire != expected:
                raise errors.DownloadError(
                    f"The download was cut short ({wire} of {expected} bytes).",
                    task_id=task_id, retryable=True)
            os.replace(part, dest)
            return size
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError,
                OSError, AttributeError, ValueError) as e:
            stopped = watchdog.reason if watchdog is not None else ""
            if stopped == "cancelled":
                raise errors.CancelledError("Cancelled.", task_id=task_id) from None
            if stopped == "deadline":
                raise errors.DownloadError(
                    f"The download took longer than {self.download_deadline:.0f} s (the "
                    "Download Time Limit setting); stopped.", task_id=task_id) from None
            if isinstance(e, requests.exceptions.ChunkedEncodingError):
                raise errors.DownloadError("The download was cut short: the connection "
                                           "broke.", task_id=task_id, retryable=True) from None
            if not isinstance(e, requests.exceptions.RequestException):
                raise
            raise errors.DownloadError(f"Downloading the result failed: {_short(e)}.",
                                       task_id=task_id, retryable=True) from None
        finally:
            if os.path.exists(part):
                os.remove(part)


def _configure_network(session, proxy, proxy_url, ca_bundle):
    """Proxy and CA settings; TLS verification always stays on."""
    if proxy == "none":
        session.trust_env = False
    elif proxy == "custom":
        if not proxy_url.startswith(("http://", "https://", "socks5://", "socks5h://")):
            raise errors.ConfigError(f"Proxy URL must start with http:// or https://, got "
                                     f"{proxy_url!r}.")
        session.trust_env = False
        session.proxies = {"http": proxy_url, "https": proxy_url}
    elif proxy != "system":
        raise errors.ConfigError(f"Unknown proxy setting {proxy!r}.")
    if ca_bundle:
        try:
            with open(ca_bundle, "rb") as f:
                if b"-----BEGIN CERTIFICATE-----" not in f.read():
                    raise errors.ConfigError(f"The CA bundle {ca_bundle} holds no PEM "
                                             "certificate.")
        except OSError as e:
            raise errors.ConfigError(f"Cannot read the CA bundle {ca_bundle}: "
                                     f"{e.strerror}.") from None
        session.verify = ca_bundle


def _short(exc):
    """A one-line reason from a requests exception (they carry URLs, never headers)."""
    text = str(exc)
    for marker in ("Caused by ", "due to "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.strip("()'\" ")[:200]
