"""ModelStream from the command line: generate, batch, import-task and status, headless.

    blender -b --online-mode -P scripts/cli/modelstream_cli.py -- generate --prompt "a chair"
    .venv/bin/python scripts/cli/modelstream_cli.py batch jobs.jsonl --out results/ --jobs 8

Runs in a Blender binary (arguments after `--`) and in the bpy wheel alike. It uses the
ModelStream extension when it is installed and enabled, else loads this repository's
add-on from a temporary extension repository that is removed at exit. The key comes from
MODELSTREAM_API_KEY (or the variable named by --api-key-env), never from the command
line; the base URL from MODELSTREAM_BASE_URL or --base-url. Standard output carries only
results (paths, status); Blender's own messages and progress go to standard error.
Exit status: 0 all done, 1 a task or row failed, 2 bad usage or setup, 130 interrupted.

A batch writes two files in its output folder, both {"version": 1, "jobs": [...]}:
batch_state.json, replaced atomically at every step, one record per row (id, row, state:
new | submitting | created | done | failed, task_id, options, output, raw, error, field,
uncertain), so a rerun fetches instead of creating again; and summary.json at the end
(id, row, status: done | failed, task_id, output, raw, error, field, times in seconds from
the start: started, ready, import, finished).
"""

import argparse
import contextlib
import csv
import importlib
import io
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import deque

EMBEDDED = "bpy" in sys.modules  # run by a Blender binary (-P), not by the bpy wheel
HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "modelstream_addon"
REPO_MODULE = "modelstream_cli"
KEY_ENV = "MODELSTREAM_API_KEY"
URL_ENV = "MODELSTREAM_BASE_URL"
STATE_FILE = "batch_state.json"
SUMMARY_FILE = "summary.json"
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
RESULTS = sys.stdout  # where results are printed; see _results_stream
MAX_JOBS = 10  # the service's concurrency limit per key
POLL_FLOOR = 1.0  # never poll a task more often than once a second
IMAGE_FIELDS = ("image_path", "view_front", "view_left", "view_back", "view_right")
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

TASK_TYPES = ("text_to_model", "image_to_model", "multiview_to_model", "refine_model",
              "text_to_image", "generate_image", "generate_multiview_image",
              "edit_multiview_image")

# Every operator option (properties.OPTION_NAMES) as a flag: (option, flag, argparse kwargs).
# Unset flags stay None and take the operator's defaults, as api.submit does.
OPTIONS = (
    ("task_type", "--task-type", dict(choices=TASK_TYPES, metavar="TYPE",
                                      help="what to generate: " + ", ".join(TASK_TYPES)
                                      + " (default text_to_model)")),
    ("prompt", "--prompt", dict(help="text prompt, at most 1024 characters")),
    ("model_version", "--model-version", dict(help="e.g. v3.0-20250812; default: the "
                                              "service's")),
    ("face_limit", "--face-limit", dict(type=int, metavar="N",
                                        help="target face count (default 10000)")),
    ("texture", "--texture", dict(action=argparse.BooleanOptionalAction,
                                  help="generate a texture (default on)")),
    ("pbr", "--pbr", dict(action=argparse.BooleanOptionalAction,
                          help="PBR materials; needs --texture (default off)")),
    ("texture_quality", "--texture-quality", dict(choices=("standard", "detailed"))),
    ("quad", "--quad", dict(action=argparse.BooleanOptionalAction,
                            help="quad mesh, delivered as FBX (default off)")),
    ("auto_size", "--auto-size", dict(action=argparse.BooleanOptionalAction,
                                      help="scale to a plausible real-world size")),
    ("style", "--style", dict(help="stylization preset")),
    ("image_path", "--image", dict(metavar="PATH_OR_URL", help="input image: a PNG/JPEG/WEBP "
                                   "file (others are converted) or an http(s) URL")),
    ("view_front", "--view-front", dict(metavar="PATH_OR_URL", help="multiview front image")),
    ("view_left", "--view-left", dict(metavar="PATH_OR_URL", help="the subject's left side")),
    ("view_back", "--view-back", dict(metavar="PATH_OR_URL", help="back view image")),
    ("view_right", "--view-right", dict(metavar="PATH_OR_URL",
                                        help="the subject's right side")),
    ("draft_model_task_id", "--draft-model-task-id", dict(metavar="TASK_ID",
                                                          help="draft to refine_model")),
    ("original_task_id", "--original-task-id", dict(
        metavar="TASK_ID", help="multiview image task to edit or to build a model from")),
    ("prompt_front", "--prompt-front", dict(metavar="TEXT", help="edit_multiview_image: "
                                            "an edit for the front view only")),
    ("prompt_left", "--prompt-left", dict(metavar="TEXT", help="... for the left view only")),
    ("prompt_back", "--prompt-back", dict(metavar="TEXT", help="... for the back view only")),
    ("prompt_right", "--prompt-right", dict(metavar="TEXT",
                                            help="... for the right view only")),
    ("extra_params", "--extra-params", dict(metavar="JSON", help="more API parameters as a "
                                            'JSON object, e.g. \'{"model_seed": 7}\'')),
    ("image_source", "--image-source", dict(
        choices=("FILE", "VIEWPORT", "RENDER", "IMAGE"),
        help="where the input image comes from: FILE (--image), or captured from --blend: "
             "VIEWPORT (its 3D view), RENDER (its camera), IMAGE (--image-name)")),
    ("image_name", "--image-name", dict(help="an image datablock in --blend")),
    ("multiview_source", "--multiview-source", dict(
        choices=("FILES", "ORBIT"),
        help="multiview inputs from --view-* files, or ORBIT: four views rendered around "
             "the selected (else visible) objects of --blend")),
    ("capture_resolution", "--capture-resolution", dict(type=int, metavar="PX",
                                                        help="captured image side (1024)")),
    ("capture_transparent", "--capture-transparent", dict(
        action=argparse.BooleanOptionalAction, help="capture with an alpha background")),
    ("only_selected", "--only-selected", dict(action=argparse.BooleanOptionalAction,
                                              help="capture only the selected objects")),
    ("render_engine", "--render-engine", dict(choices=("WORKBENCH", "SCENE"),
                                              help="engine for RENDER captures")),
    ("orbit_ortho", "--orbit-ortho", dict(action=argparse.BooleanOptionalAction,
                                          help="orthographic orbit views (default on)")),
    ("orbit_front", "--orbit-front", dict(choices=("NEG_Y", "ACTIVE_LOCAL"),
                                          help="which way is the subject's front")),
    ("placement", "--placement", dict(choices=("CURSOR", "ORIGIN", "REPLACE"),
                                      help="where the model goes (REPLACE: the active "
                                           "object of --blend)")),
    ("size_mode", "--size-mode", dict(choices=("KEEP", "FIT"))),
    ("target_size", "--target-size", dict(type=float, metavar="METRES",
                                          help="largest side with --size-mode FIT")),
    ("shading", "--shading", dict(choices=("KEEP", "SMOOTH", "FLAT"))),
)


class UsageError(Exception):
    """Bad arguments or setup: reported with exit status 2, before any request."""


class Parser(argparse.ArgumentParser):
    """argparse that never echoes something shaped like a key back into logs."""

    KEY_SHAPE = re.compile(r"\bsk-[A-Za-z0-9_-]+")

    def error(self, message):
        super().error(self.KEY_SHAPE.sub("sk-<hidden>", message))


def _positive_jobs(text):
    value = int(text)
    if not 1 <= value <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"must be 1-{MAX_JOBS}, got {value}")
    return value


def _poll_min(text):
    value = float(text)
    if value < POLL_FLOOR:
        raise argparse.ArgumentTypeError(f"must be at least {POLL_FLOOR} s, got {value}")
    return value


def build_parser():
    common = Parser(add_help=False, allow_abbrev=False)
    common.add_argument("--api-key-env", metavar="NAME", default=KEY_ENV,
                        help=f"environment variable holding the API key (default {KEY_ENV}); "
                             "a key is never taken from the command line")
    common.add_argument("--base-url", metavar="URL",
                        help=f"ModelStream API address (default ${URL_ENV}, else the add-on "
                             "preferences)")
    # Dev only: the engine polls every 2 s at least; benchmarks may go down to 1 s.
    common.add_argument("--poll-min", type=_poll_min, help=argparse.SUPPRESS)
    output = Parser(add_help=False, allow_abbrev=False)
    output.add_argument("--raw", action="store_true",
                        help="also keep the downloaded GLB/FBX (images for image tasks) "
                             "next to the .blend")

    parser = Parser(
        prog="modelstream_cli.py", allow_abbrev=False,
        description=__doc__.split("\n\n")[0],
        epilog="Run as `blender -b --online-mode -P scripts/cli/modelstream_cli.py -- COMMAND "
               "...` or "
               "`python scripts/cli/modelstream_cli.py COMMAND ...` with the bpy module. "
               "`COMMAND --help` lists each command's flags.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = commands.add_parser(
        "generate", parents=[common, output], allow_abbrev=False,
        help="run one task and save the result as a .blend",
        description="Run one task and save the result as a .blend. Without --blend the "
                    "model goes into an empty scene; with --blend into a copy of that file "
                    "(the input is never overwritten), which is also what VIEWPORT, "
                    "RENDER, IMAGE and ORBIT captures look at.")
    gen.add_argument("--blend", metavar="FILE", help="open this .blend first")
    gen.add_argument("--out", default=".", metavar="PATH",
                     help="a .blend path, or a directory for <task_id>.blend (default: .)")
    gen.add_argument("--timeout", type=float, metavar="SECONDS",
                     help="stop waiting after this long (the task may still finish: "
                          "import it later with import-task)")
    task = gen.add_argument_group("task options (the operator's; unset ones take its "
                                  "defaults)")
    for name, flag, kwargs in OPTIONS:
        task.add_argument(flag, dest=name, default=None, **kwargs)

    batch = commands.add_parser(
        "batch", parents=[common, output], allow_abbrev=False,
        help="run many tasks from a JSON Lines or CSV file, resumably",
        description="Run one task per row of a JSON Lines or CSV file. Columns/keys are the "
                    "operator's option names (task_type or type, prompt, face_limit, "
                    "texture, image_path, view_front, placement, ...), plus an optional "
                    "`id` naming the outputs (default: the row number). Writes "
                    f"DIR/<id>.blend per row, DIR/{SUMMARY_FILE} and DIR/{STATE_FILE}. "
                    "Rerunning the same command resumes: finished rows are skipped and "
                    "tasks already created are fetched, never created again.")
    batch.add_argument("file", metavar="FILE", help="jobs: .jsonl (one JSON object a line) "
                                                    "or .csv (a header row)")
    batch.add_argument("--out", required=True, metavar="DIR", help="output directory")
    batch.add_argument("--jobs", type=_positive_jobs, default=4, metavar="N",
                       help=f"tasks at the service at once, 1-{MAX_JOBS} (default 4)")
    batch.add_argument("--resubmit-uncertain", action="store_true",
                       help="send again rows that were being sent when an earlier run "
                            "stopped (they may have been created and charged already)")

    imp = commands.add_parser("import-task", parents=[common, output], allow_abbrev=False,
                              help="save a finished (or running) task's result as a .blend")
    imp.add_argument("task_id", metavar="TASK_ID")
    imp.add_argument("--out", default=".", metavar="PATH",
                     help="a .blend path, or a directory for <task_id>.blend (default: .)")
    imp.add_argument("--timeout", type=float, metavar="SECONDS",
                     help="stop waiting for a running task after this long")

    status = commands.add_parser("status", parents=[common], allow_abbrev=False,
                                 help="print a task's state")
    status.add_argument("task_id", metavar="TASK_ID")
    status.add_argument("--json", action="store_true",
                        help="print the service's task data as JSON")
    return parser


def cli_argv():
    """Blender passes the script its own arguments after `--`."""
    if EMBEDDED:
        return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    return sys.argv[1:]


def apply_environment(args):
    """Point the add-on at the key variable and URL; the key's value is never echoed."""
    if not ENV_NAME.fullmatch(args.api_key_env):
        raise UsageError("--api-key-env takes the NAME of an environment variable that "
                         "holds the key, not the key itself.")
    if args.api_key_env != KEY_ENV:
        value = os.environ.get(args.api_key_env, "").strip()
        if not value:
            raise UsageError(f"The environment variable {args.api_key_env} (--api-key-env) "
                             "is not set.")
        os.environ[KEY_ENV] = value
    if args.base_url:
        os.environ[URL_ENV] = args.base_url


# -- the add-on ---------------------------------------------------------------------------

class Addon:
    """The loaded add-on's modules, looked up by name (they are per-process singletons)."""

    def __init__(self, name):
        import bpy

        self.bpy = bpy
        self.name = name

    def __getattr__(self, module):
        return importlib.import_module(f"{self.name}.{module}")

    def check_enabled(self):
        """Loading a file keeps add-ons enabled; a disabled one would have lost its jobs."""
        import addon_utils  # importable once bpy is

        if not addon_utils.check(self.name)[1]:
            raise RuntimeError(f"The add-on {self.name} was disabled while running.")

    def option_props(self):
        props = self.bpy.ops.modelstream.generate.get_rna_type().properties
        return {name: props[name] for name in self.properties.OPTION_NAMES}

    def defaults(self):
        return {name: prop.default for name, prop in self.option_props().items()}


def _installed():
    """An enabled `bl_ext.<repo>.modelstream_addon` (the extension installed in Blender)."""
    import bpy  # noqa: I001 (first: it makes addon_utils importable)
    import addon_utils

    for name in (addon.module for addon in bpy.context.preferences.addons):
        if (name.startswith("bl_ext.") and name.endswith(f".{PACKAGE}")
                and addon_utils.check(name)[1]):
            return name
    return None


@contextlib.contextmanager
def loaded_addon():
    """The installed extension, else this repository's add-on from a temporary extension
    repository: nothing is installed for good, and the repository goes again at exit."""
    import bpy  # noqa: I001 (first: it makes addon_utils importable)
    import addon_utils

    name = _installed()
    if name is not None:
        yield Addon(name)
        return
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "dev"))
    from build_extension import stage

    repos = bpy.context.preferences.extensions.repos
    folder = tempfile.mkdtemp(prefix="modelstream-cli-")

    def remove_repo():
        for repo in [r for r in repos if r.module == REPO_MODULE]:
            repos.remove(repo)  # disables its add-ons: the engine stops, history is kept

    try:
        stage(os.path.join(folder, PACKAGE))
        remove_repo()
        repos.new(name="ModelStream CLI (temporary)", module=REPO_MODULE,
                  custom_directory=folder, source='USER')
        name = f"bl_ext.{REPO_MODULE}.{PACKAGE}"
        if addon_utils.enable(name, default_set=True) is None:
            raise UsageError(f"Could not enable the add-on staged in {folder}.")
        yield Addon(name)
    finally:
        remove_repo()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def online_access():
    """A real Blender must be allowed online by its user (--online-mode or the
    preference): the CLI never overrides that choice. The bpy wheel has no user
    preferences, so there the CLI turns it on for this run only (never saved)."""
    import bpy

    system = bpy.context.preferences.system
    before = system.use_online_access
    if not bpy.app.online_access:
        if bpy.app.online_access_override:
            raise UsageError("Blender was started with --offline-mode: run it with "
                             "--online-mode to reach ModelStream.")
        if EMBEDDED:
            raise UsageError("Online access is off: run Blender with --online-mode (blender "
                             "-b --online-mode -P ...), or enable Edit > Preferences > "
                             "System > Network > Allow Online Access.")
        system.use_online_access = True
        if not bpy.app.online_access:
            raise UsageError("Online access is off and could not be turned on: start "
                             "Blender with --online-mode, or enable Edit > Preferences > "
                             "System > Network > Allow Online Access.")
    try:
        yield
    finally:
        if system.use_online_access != before:
            system.use_online_access = before


# -- options ------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def convert(addon, raw):
    """Row or flag values -> the operator's types, checked against its properties, so a
    CSV cell and a JSON value mean the same. Empty values are left out (defaults)."""
    props = addon.option_props()
    error = addon.tasks.ValidationError
    options = {}
    for field, value in raw.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        prop = props.get(field)
        if prop is None:
            raise error(field, "unknown option; known: " + ", ".join(props)
                        + " (other API parameters go in extra_params).")
        options[field] = _convert_value(field, value, prop, error)
    return options


def _convert_value(field, value, prop, error):
    kind = prop.type
    text = value.strip() if isinstance(value, str) else value
    if kind == 'BOOLEAN':
        if isinstance(text, bool):
            return text
        if isinstance(text, str) and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        if isinstance(text, int) and text in (0, 1):
            return bool(text)
        raise error(field, f"must be true or false, got {value!r}.")
    if kind in ('INT', 'FLOAT'):
        number = _number(text, kind == 'INT')
        if number is None:
            what = "a whole number" if kind == 'INT' else "a number"
            raise error(field, f"must be {what}, got {value!r}.")
        if not prop.hard_min <= number <= prop.hard_max:
            raise error(field, f"must be between {prop.hard_min} and {prop.hard_max}, "
                        f"got {number}.")
        return number if kind == 'INT' else float(number)
    if kind == 'ENUM':
        names = [item.identifier for item in prop.enum_items]
        match = next((n for n in names if n.lower() == str(text).lower()), None)
        if match is None:
            raise error(field, f"must be one of {', '.join(names)}, got {value!r}.")
        return match
    if isinstance(text, (dict, list)):
        return json.dumps(text)
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise error(field, f"must be text, got {value!r}.")
    return str(text)


def _number(value, whole):
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value) if not whole or "." in value or "e" in value.lower() \
                else int(value)
        except ValueError:
            return None
    if isinstance(value, float) and whole:
        return int(value) if value.is_integer() else None
    return value if isinstance(value, (int, float)) else None


def resolve_paths(options, base):
    """Relative image paths are relative to `base` (the cwd, or the batch file's folder)."""
    for field in IMAGE_FIELDS:
        value = options.get(field)
        if value and "://" not in value and not value.startswith("//"):
            options[field] = os.path.abspath(os.path.join(base, os.path.expanduser(value)))
    return options


# -- outputs ------------------------------------------------------------------------------

def out_path(out, task_id):
    """`--out` is a .blend file, or a directory to hold <task_id>.blend."""
    out = os.path.abspath(out)
    if out.lower().endswith(".blend"):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        return out
    os.makedirs(out, exist_ok=True)
    return os.path.join(out, f"{task_id}.blend")


def save_result(addon, job, blend, raw):
    """Save the open scene as `blend` (a copy: the open file stays as it was) and, with
    `raw`, the downloaded files beside it. Returns the paths written."""
    addon.bpy.ops.wm.save_as_mainfile(filepath=blend, copy=True, check_existing=False)
    paths = [blend]
    if raw:
        stem = os.path.splitext(blend)[0]
        if job.output_path:
            paths.append(shutil.copyfile(job.output_path, f"{stem}.{job.output_format}"))
        elif job.images:
            for view, path in job.images:
                paths.append(shutil.copyfile(
                    path, f"{stem}_{view}{os.path.splitext(path)[1]}"))
    return paths


def follow(addon, job, timeout):
    """Wait for one job, telling stderr what it does; stops waiting after `timeout`."""
    engine = addon.runtime.engine()
    deadline = None if timeout is None else time.monotonic() + timeout
    said = ""
    while not job.done:
        if deadline is not None and time.monotonic() >= deadline:
            engine.cancel(job.id)
            break
        engine.wait(job.id, 0.5)
        note = f"task {job.task_id}: {job.message}" if job.task_id else job.message
        if note != said:
            print(f"modelstream: {note}", file=sys.stderr, flush=True)
            said = note
    return job


def finish_single(addon, job_id, args, timeout):
    """Follow a job, import it into the open scene and save it; returns the exit status."""
    engine = addon.runtime.engine()
    job = follow(addon, engine.jobs[job_id], timeout)
    result = addon.api.wait(job_id, timeout=0)
    try:
        if result.ok:
            paths = save_result(addon, job, out_path(args.out, job.task_id), args.raw)
            for path in paths:
                print(path, file=RESULTS, flush=True)
            return 0
        problem = result.error or job.message
        if job.state == addon.engine.CANCELLED and job.task_id:
            problem = (f"Stopped waiting after {timeout:g} s. Task {job.task_id} may still "
                       "finish (and be charged): fetch it later with `modelstream_cli.py "
                       f"import-task {job.task_id}`.")
    except (RuntimeError, OSError) as e:
        problem = f"Saving the result failed: {e} (task {job.task_id})"
    finally:
        engine.remove(job_id)
    print(f"modelstream: error: {problem}", file=sys.stderr)
    return EXIT_FAILED


def cmd_generate(addon, args):
    bpy = addon.bpy
    if args.blend:
        if not os.path.isfile(args.blend):
            raise UsageError(f"--blend: no file at {args.blend}")
        if os.path.realpath(args.out) == os.path.realpath(args.blend):
            raise UsageError("--out: give another path than --blend; the input .blend is "
                             "never overwritten.")
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend))
    else:
        bpy.ops.wm.read_homefile(use_empty=True)
    addon.check_enabled()
    raw = {name: getattr(args, name) for name, _, _ in OPTIONS}
    options = resolve_paths(convert(addon, raw), os.getcwd())
    task_type = options.pop("task_type", "text_to_model")
    job_id = addon.api.submit(task_type, **options)
    return finish_single(addon, job_id, args, args.timeout)


def cmd_import_task(addon, args):
    addon.bpy.ops.wm.read_homefile(use_empty=True)
    addon.check_enabled()
    job_id = addon.api.import_task(args.task_id, wait_for_it=False)
    return finish_single(addon, job_id, args, args.timeout)


def cmd_status(addon, args):
    data = addon.api.status(args.task_id)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True), file=RESULTS)
        return 0
    line = [f"{data.get('task_id', args.task_id)}: {data.get('status', 'unknown')}",
            f"type {data.get('type', '?')}", f"progress {data.get('progress', 0)}%"]
    if isinstance(data.get("queuing_num"), int) and data["queuing_num"] >= 0:
        line.append(f"queue position {data['queuing_num']}")
    left = data.get("running_left_time")
    if isinstance(left, (int, float)) and left > 0:
        line.append(f"about {int(left)} s left")
    print(", ".join(line), file=RESULTS)
    return 0


# -- batch --------------------------------------------------------------------------------

class Row:
    """One line of the batch file and what became of it; `record` is its state entry."""

    def __init__(self, number, raw):
        self.number = number
        self.raw = raw
        self.id = str(number)
        self.options = {}
        self.record = {"id": self.id, "row": number, "state": "new", "task_id": ""}
        self.unreadable = ""
        self.claimed = False  # its id is its own: only then is it kept in the state file
        self.job = None
        self.prepared = None
        self.times = {}

    @property
    def label(self):
        return f"row {self.number}" + (f" (id {self.id})" if self.id != str(self.number)
                                       else "")

    def fail(self, error, field=None, uncertain=None):
        """`uncertain`: whether the row may exist at the service without a known task id;
        None keeps what an earlier run knew."""
        if uncertain is None:
            uncertain = (self.record["state"] == "submitting"
                         or bool(self.record.get("uncertain")))
        self.record.update(state="failed", error=error, field=field, uncertain=uncertain)


def read_rows(path):
    """Rows of a .jsonl or .csv file; an unreadable row becomes an error for that row."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except OSError as e:
        raise UsageError(f"Cannot read the batch file {path}: {e.strerror or e}") from None
    ext = os.path.splitext(path)[1].lower()
    is_csv = ext == ".csv" or (ext not in (".jsonl", ".ndjson", ".json")
                               and not text.lstrip().startswith("{"))
    rows = []
    if is_csv:
        reader = csv.DictReader(io.StringIO(text))
        for values in reader:
            if not any((v or "").strip() for k, v in values.items() if k is not None):
                continue
            row = Row(len(rows) + 1, {k.strip(): v for k, v in values.items()
                                      if k is not None})
            if None in values:
                row.unreadable = ("more cells than the header has columns "
                                  f"(line {reader.line_num})")
            rows.append(row)
    else:
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            row = Row(len(rows) + 1, None)
            try:
                row.raw = json.loads(line)
            except ValueError as e:
                row.unreadable = f"not valid JSON (line {line_no}): {e}"
            else:
                if not isinstance(row.raw, dict):
                    row.unreadable = f"not a JSON object (line {line_no})"
            rows.append(row)
    if not rows:
        raise UsageError(f"The batch file {path} has no rows.")
    return rows


def load_state(path):
    """The state of an earlier run. An unreadable one stops the batch: guessing could
    send rows again that were already paid for."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)["jobs"]
        return {str(r["id"]): r for r in records}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"Cannot read {path} ({e}): fix or remove it; removing it may "
                         "send rows again that an earlier run already paid for.") from None


class Progress:
    """A progress bar on stderr, redrawn in place on a terminal, else one line a change."""

    WIDTH = 24

    def __init__(self, total):
        self.total = total
        self.tty = sys.stderr.isatty()
        self.start = time.monotonic()
        self.last = None
        self.drawn = 0.0

    def show(self, done, failed, running):
        finished = done + failed
        counts = (f"{finished}/{self.total} | done {done} | failed {failed} | running "
                  f"{running} | waiting {self.total - finished - running}")
        now = time.monotonic()
        if self.tty:
            if counts == self.last and now - self.drawn < 1.0:
                return
            filled = round(self.WIDTH * finished / self.total)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            sys.stderr.write(f"\r[{bar}] {counts} | {now - self.start:.0f}s\x1b[K")
        elif counts != self.last:
            sys.stderr.write(f"modelstream: {counts} | {now - self.start:.1f}s\n")
        sys.stderr.flush()
        self.last, self.drawn = counts, now

    def close(self):
        if self.tty and self.last is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()


class Batch:
    """Runs the rows `jobs` at a time and keeps DIR/batch_state.json current, so a run
    that stops at any point can be resumed without creating any task twice."""

    def __init__(self, addon, args):
        self.addon = addon
        self.args = args
        self.bpy = addon.bpy
        self.engine = addon.runtime.engine()
        self.out = os.path.abspath(args.out)
        self.state_path = os.path.join(self.out, STATE_FILE)
        self.base = os.path.dirname(os.path.abspath(args.file))
        self.rows = read_rows(args.file)
        self.orphans = []
        self.start = time.monotonic()

    def run(self):
        os.makedirs(self.out, exist_ok=True)
        previous = load_state(self.state_path)
        client = self.addon.preferences.make_client()
        self.bpy.ops.wm.read_homefile(use_empty=True)
        todo = self.plan(previous)
        self.save_state()
        prefs = self.addon.preferences.get()
        limits = prefs.max_concurrent
        prefs.max_concurrent = self.args.jobs
        self.engine.max_concurrent = self.args.jobs
        self.engine.max_download = prefs.max_download_mb * 1024 * 1024
        progress = Progress(len(self.rows))
        try:
            self.loop(client, todo, progress)
        finally:
            progress.close()
            prefs.max_concurrent = limits
            for row in self.rows:
                if row.prepared is not None and row.job is None:
                    self.addon.inputs.discard(row.prepared[2])
            self.write_summary()
        failed = [r for r in self.rows if r.record["state"] != "done"]
        print(os.path.join(self.out, SUMMARY_FILE), file=RESULTS, flush=True)
        print(f"modelstream: {len(self.rows) - len(failed)} done, {len(failed)} failed in "
              f"{time.monotonic() - self.start:.1f} s", file=sys.stderr)
        for row in failed:
            print(f"modelstream: {row.record.get('error')}", file=sys.stderr)
        return EXIT_FAILED if failed else 0

    # Planning: everything here happens before any request.

    def plan(self, previous):
        """Validate every row and decide what each needs: nothing, a fetch of the task it
        already has, or a new task. Returns the rows to run, in order."""
        seen = {}
        todo = []
        for row in self.rows:
            if row.unreadable:
                row.fail(f"{row.label}: {row.unreadable}")
                continue
            try:
                self.read_id(row, seen)
                earlier = previous.get(row.id)
                if earlier is not None:
                    # Kept even if the row is bad now: its task id must never be lost.
                    row.record.update(earlier, row=row.number, id=row.id)
                self.read_options(row)
                if earlier is not None and not self.resume(row, earlier):
                    continue
                row.record["options"] = row.options
                placement = self.addon.runtime.import_options(self.bpy.context, {
                    **self.addon.defaults(), **row.options})
                if not row.record.get("task_id"):
                    row.prepared = self.prepare(row, placement)
                else:
                    row.prepared = (placement, None, "")
                todo.append(row)
            except self.addon.errors.ModelStreamError as e:
                row.fail(f"{row.label}: {e}", getattr(e, "field", None))
        # Records of rows that are gone or unreadable now stay: they may hold a task id.
        self.orphans = [record for row_id, record in previous.items() if row_id not in seen]
        for row in todo:
            if row.record.get("task_id"):
                for job in [j for j in self.engine.jobs.values()
                            if j.task_id == row.record["task_id"]]:
                    self.engine.remove(job.id)  # a copy resumed from the add-on's history
        return deque(todo)

    def read_id(self, row, seen):
        error = self.addon.tasks.ValidationError
        row_id = row.raw.get("id")
        if row_id not in (None, ""):
            row.id = str(row_id).strip()
            row.record["id"] = row.id
            if not ID_PATTERN.fullmatch(row.id):
                raise error("id", "use letters, digits, '.', '_' or '-' (it names the "
                            "output files), at most 100 characters.")
        if row.id in seen:
            raise error("id", f"the same as row {seen[row.id]}; ids name the outputs.")
        seen[row.id] = row.number
        row.claimed = True

    def read_options(self, row):
        error = self.addon.tasks.ValidationError
        raw = {key: value for key, value in row.raw.items() if key != "id"}
        if "type" in raw:
            if raw.get("task_type") not in (None, ""):
                raise error("type", "give task_type or type, not both.")
            raw["task_type"] = raw.pop("type")
        row.options = convert(self.addon, raw)
        for field, capture in (("image_source", 'FILE'), ("multiview_source", 'FILES')):
            if row.options.get(field, capture) != capture:
                raise error(field, "captures from a .blend are for `generate --blend`; "
                            "give image files or URLs in a batch.")

    def resume(self, row, earlier):
        """What an earlier run left for this row; False when nothing is left to do."""
        changed = earlier.get("options") not in (None, row.options)
        if (earlier.get("task_id") or earlier.get("state") == "done") and changed:
            row.fail(f"{row.label}: the row changed since task {earlier.get('task_id')} was "
                     "created for it; give it a new id to generate it again.", "id")
            return False
        if earlier.get("state") == "done" and os.path.exists(earlier.get("output", "")):
            return False
        if earlier.get("task_id"):
            row.record.update(state="created", error="", field=None)
            return True
        uncertain = earlier.get("state") == "submitting" or earlier.get("uncertain")
        if uncertain and not self.args.resubmit_uncertain:
            row.fail(f"{row.label}: it was being sent when an earlier run stopped and may "
                     "have been created (and charged) already, so it was not sent again. "
                     "Check your ModelStream tasks, or rerun with --resubmit-uncertain to "
                     "send it anyway.", uncertain=True)
            return False
        row.record.update(state="new", error="", field=None, uncertain=False)
        return True

    def prepare(self, row, placement):
        """The request body, with images converted: start_job's checks, done up front."""
        opts = resolve_paths({**self.addon.defaults(), **row.options}, self.base)
        opts, workdir = self.addon.inputs.gather(self.bpy.context, opts)
        try:
            body = self.addon.tasks.build_task(opts)
        except self.addon.errors.ModelStreamError:
            self.addon.inputs.discard(workdir)
            raise
        return placement, body, workdir

    # Running.

    def loop(self, client, todo, progress):
        runtime = self.addon.runtime
        active, ready = {}, deque()
        while todo or active or ready:
            while todo and len(active) < self.args.jobs:
                row = todo.popleft()
                placement, body, workdir = row.prepared
                row.times["started"] = self.elapsed()
                if body is None:
                    row.job = self.engine.attach(client, row.record["task_id"], placement)
                else:
                    # Recorded before the request: if we stop now, the rerun knows that
                    # this row may exist at the service and does not pay for it twice.
                    row.record.update(state="submitting", error="")
                    self.save_state()
                    row.job = runtime.submit(self.bpy.context, client, body, workdir,
                                             placement)
                active[row.job.id] = row
            if ready:
                self.import_row(ready.popleft())
            elif active:
                self.engine.wait(next(iter(active)), 0.05)
            self.engine.tick()
            if self.collect(active, ready):
                self.save_state()
            counts = [r.record["state"] for r in self.rows]
            progress.show(counts.count("done"), counts.count("failed"),
                          len(active) + len(ready))

    def collect(self, active, ready):
        """Note new task ids and finished jobs; True when the state file needs writing."""
        changed = False
        for job_id, row in list(active.items()):
            job = row.job
            if job.task_id and row.record.get("task_id") != job.task_id:
                row.record.update(state="created", task_id=job.task_id)
                changed = True
            if not job.done:
                continue
            del active[job_id]
            changed = True
            if job.state == self.addon.engine.READY:
                row.times["ready"] = self.elapsed()
                ready.append(row)
                continue
            errors = self.addon.errors
            uncertain = not job.task_id and any(
                hint in job.error for hint in (errors.RequestUncertainError.hint,
                                               errors.ServiceError.hint))
            row.fail(f"{row.label}: {job.error or job.message}", uncertain=uncertain)
            self.engine.remove(job_id)
        return changed

    def import_row(self, row):
        """Only this row's result in an empty scene, saved as DIR/<id>.blend."""
        job = row.job
        row.times["import"] = self.elapsed()
        try:
            self.bpy.ops.wm.read_homefile(use_empty=True)
            self.addon.check_enabled()
            problem = self.addon.runtime.import_result(self.bpy.context, job)
            if problem:
                row.fail(f"{row.label}: {problem} (task {job.task_id})")
            else:
                paths = save_result(self.addon, job, os.path.join(self.out, f"{row.id}.blend"),
                                    self.args.raw)
                row.record.update(state="done", output=paths[0], raw=paths[1:], error="")
        except (RuntimeError, OSError) as e:
            row.fail(f"{row.label}: saving the result failed: {e} (task {job.task_id})")
        row.times["finished"] = self.elapsed()
        self.engine.remove(job.id)
        self.save_state()

    # Files.

    def elapsed(self):
        return round(time.monotonic() - self.start, 3)

    def save_state(self):
        records = [r.record for r in self.rows if r.claimed] + self.orphans
        self.addon.history.write_atomic(self.state_path, records)

    def write_summary(self):
        entries = []
        for row in self.rows:
            record = row.record
            status = record["state"] if record["state"] in ("done", "failed") else "failed"
            error = record.get("error") or ("" if status == "done" else
                                            f"{row.label}: interrupted before it finished; "
                                            "rerun the batch to resume it.")
            entries.append({"id": row.id, "row": row.number, "status": status,
                            "task_id": record.get("task_id", ""),
                            "output": record.get("output", "") if status == "done" else "",
                            "raw": record.get("raw", []) if status == "done" else [],
                            "error": error, "field": record.get("field"),
                            "times": row.times})
        self.addon.history.write_atomic(os.path.join(self.out, SUMMARY_FILE), entries)


def cmd_batch(addon, args):
    return Batch(addon, args).run()


COMMANDS = {"generate": cmd_generate, "batch": cmd_batch, "import-task": cmd_import_task,
            "status": cmd_status}


def _stop(signum, frame):
    raise KeyboardInterrupt


def main(argv):
    global RESULTS
    args = build_parser().parse_args(argv)
    RESULTS = _results_stream()
    try:
        apply_environment(args)
        signal.signal(signal.SIGTERM, _stop)
        with loaded_addon() as addon, online_access():
            if args.poll_min is not None:
                addon.runtime.engine().poll_min = args.poll_min
            try:
                return COMMANDS[args.command](addon, args)
            except addon.errors.ModelStreamError as e:
                print(f"modelstream: error: {e}", file=sys.stderr)
                return EXIT_USAGE if isinstance(e, addon.errors.ConfigError) else EXIT_FAILED
    except UsageError as e:
        print(f"modelstream: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nmodelstream: interrupted; a batch resumes when run again with the same "
              "arguments.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _results_stream():
    """Results go to the real stdout; everything else printed (Blender's own reports
    included) goes to stderr, so stdout can be piped."""
    sys.stdout.flush()
    results = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return results


if __name__ == "__main__":
    status = main(cli_argv())
    if EMBEDDED:
        sys.exit(status)
    # The bpy wheel's own clean-up at interpreter exit can crash (4.2.0 segfaults after a
    # glTF import), turning a finished run's status into a signal: flush, remove Blender's
    # session temp folder (the one thing that clean-up does that matters here) and leave.
    for stream in (RESULTS, sys.stdout, sys.stderr):
        stream.flush()
    if "bpy" in sys.modules:
        shutil.rmtree(sys.modules["bpy"].app.tempdir, ignore_errors=True)
    os._exit(status)
