"""Shared fixtures: the local ModelStream service over loopback, and the real add-on
installed from its built zip into a throw-away Blender user folder.

BLENDER_USER_RESOURCES must be set before bpy is first imported, so it is set here, at
import time, for the whole session.
"""

import os
import shutil
import stat
import sys
import tempfile
import threading
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "scripts", "dev"))

USER_RESOURCES = tempfile.mkdtemp(prefix="modelstream-blender-user-")
os.environ["BLENDER_USER_RESOURCES"] = USER_RESOURCES
for name in ("MODELSTREAM_API_KEY", "MODELSTREAM_BASE_URL"):
    os.environ.pop(name, None)

KEY = "sk-test-0123456789abcdef"
ADDON = "bl_ext.user_default.modelstream_addon"


def write_png(path, width=64, height=48, rgb=(200, 120, 40)):
    """A real (tiny, plain-colour) PNG file, written without any image library."""
    import struct
    import zlib

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n"
                + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return str(path)


def refused(operator, **kwargs):
    """Run an operator that must fail: its ERROR report reaches a script as a RuntimeError,
    as from Blender's own importers. Returns the message."""
    with pytest.raises(RuntimeError) as info:
        operator(**kwargs)
    return str(info.value)


def wait_until(predicate, timeout, message, interval=0.02):
    """Every wait in a test has its own deadline, so a broken behaviour fails with a reason
    instead of hanging until the global timeout. Returns the predicate's last value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"after {timeout} s: {message}")
        time.sleep(interval)
    return value


class SlowHistory:
    """A history file that cannot be read until the test says so: `path` becomes a named
    pipe holding `records`, and a reader waits in open() until `feed()` (or the deadline,
    so that nothing hangs). While it is a pipe, nothing has replaced the file."""

    def __init__(self, path, records, deadline=30):
        from modelstream_addon.core import history

        self.path = str(path)
        plain = self.path + ".plain"
        history.write_atomic(plain, records)
        with open(plain, encoding="utf-8") as f:
            text = f.read()
        os.remove(plain)
        os.mkfifo(self.path)
        self.fed = threading.Event()
        self._go = threading.Event()
        threading.Thread(target=self._feed, args=(text, deadline), daemon=True).start()

    def _feed(self, text, deadline):
        self._go.wait(deadline)
        with open(self.path, "w", encoding="utf-8") as f:  # waits for a reader
            self.fed.set()
            f.write(text)

    def feed(self):
        self._go.set()

    def replaced(self):
        """Whether something wrote a file in the pipe's place."""
        return not stat.S_ISFIFO(os.lstat(self.path).st_mode)


needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")


def task_input(service, task_id):
    """What the service received for a task: its GET answers with the request as `input`."""
    resp = requests.get(f"{service.url}/tripo/v2/openapi/task/{task_id}",
                        headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    resp.raise_for_status()
    return resp.json()["data"]["input"]


class Service:
    """A handle on the local service subprocess: its URL and its control endpoints."""

    def __init__(self, proc, url):
        self.proc = proc
        self.url = url

    def faults(self, **faults):
        requests.post(f"{self.url}/_local/faults", json=faults, timeout=5).raise_for_status()

    def stats(self):
        return requests.get(f"{self.url}/_local/stats", timeout=5).json()

    def reset(self):
        requests.post(f"{self.url}/_local/reset", timeout=5).raise_for_status()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_service(*args):
    from local_service.server import spawn

    return Service(*spawn(KEY, *args))


@pytest.fixture(scope="session")
def service_process():
    with start_service("--latency", "1.5") as svc:
        yield svc


@pytest.fixture
def service(service_process):
    service_process.reset()
    return service_process


@pytest.fixture(scope="session", autouse=True)
def _cleanup_user_resources():
    yield
    shutil.rmtree(USER_RESOURCES, ignore_errors=True)


@pytest.fixture(scope="session")
def built_zip(tmp_path_factory):
    from build_extension import build

    return build(str(tmp_path_factory.mktemp("dist")))


@pytest.fixture(scope="session")
def addon(built_zip):
    """The add-on installed and enabled the way a user's Install from Disk does it."""
    import bpy

    result = bpy.ops.extensions.package_install_files(
        filepath=built_zip, repo="user_default", enable_on_install=True)
    assert result == {'FINISHED'}
    return InstalledAddon()


class InstalledAddon:
    """`addon.runtime`, `addon.api`, `addon.client`...: the add-on's modules as currently
    loaded (disabling and enabling the add-on loads them anew), from either floor."""

    def __getattr__(self, name):
        import importlib.util

        for floor in ("blender", "core"):
            if importlib.util.find_spec(f"{ADDON}.{floor}.{name}") is not None:
                return importlib.import_module(f"{ADDON}.{floor}.{name}")
        raise AttributeError(f"the add-on has no module {name!r}")


@pytest.fixture
def v3(blender, service, monkeypatch):
    """The add-on on Tripo API v3, through a relay that notes each request's path."""
    from tests.relay import Relay

    relay = Relay(service.url)
    monkeypatch.setenv("MODELSTREAM_SERVICE", "tripo-v3")
    monkeypatch.setenv("MODELSTREAM_BASE_URL", relay.url)
    yield relay
    relay.close()


@pytest.fixture
def blender(addon, service, monkeypatch):
    """A clean scene, online access on, the key and URL from the environment."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.preferences.system.use_online_access = True
    monkeypatch.setenv("MODELSTREAM_API_KEY", KEY)
    monkeypatch.setenv("MODELSTREAM_BASE_URL", service.url)
    bpy.context.window_manager.modelstream_jobs.clear()
    yield bpy
    bpy.context.preferences.system.use_online_access = True


_status = {}


def pytest_sessionfinish(session, exitstatus):
    _status["exit"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """The 4.2 bpy wheel crashes in its own exit clean-up once its glTF exporter has run
    (two lines reproduce it: import bpy; bpy.ops.export_scene.gltf(...)), so under it the
    test process ends here, flushed, with pytest's own status."""
    bpy = sys.modules.get("bpy")
    if bpy is not None and bpy.app.version < (4, 3, 0) and "exit" in _status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_status["exit"])
