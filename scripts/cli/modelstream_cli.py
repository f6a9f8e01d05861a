"""ModelStream from the command line, headless: generate, batch, import-task and status;
texture and rig meshes of a .blend; Game Ready: parts, lods, stylize, export and size.

    blender -b --online-mode -P scripts/cli/modelstream_cli.py -- generate --prompt "a chair"
    .venv/bin/python scripts/cli/modelstream_cli.py batch jobs.jsonl --out results/ --jobs 8

Runs in a Blender binary (arguments after `--`) and in the bpy wheel alike. It uses the
ModelStream extension when it is installed and enabled, else loads this repository's
add-on from a temporary extension repository that is removed at exit. The key comes from
MODELSTREAM_API_KEY (or the variable named by --api-key-env), never from the command
line; the base URL from MODELSTREAM_BASE_URL or --base-url, the service from
MODELSTREAM_SERVICE or --service (modelstream | tripo-v3). Standard output carries only
results (paths, status); Blender's own messages and progress go to standard error.
Exit status: 0 all done, 1 a task or row failed, 2 bad usage or setup, 130 interrupted.
"""

import contextlib
import filecmp
import json
import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # Blender's -P does not

import cli_addon  # noqa: E402
from cli_addon import apply_environment, loaded_addon, online_access  # noqa: E402
from cli_batch import cmd_batch  # noqa: E402
from cli_options import convert, out_path, resolve_paths, save_result  # noqa: E402
from cli_parser import UsageError, build_parser  # noqa: E402

DESCRIPTION = __doc__.split("\n\n")[0]
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
RESULTS = sys.stdout  # where results are printed; see _results_stream


def cli_argv():
    """Blender passes the script its own arguments after `--`."""
    if cli_addon.EMBEDDED:
        return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    return sys.argv[1:]


def follow(addon, job, timeout):
    """Wait for one job, telling stderr what it does; stops waiting after `timeout`."""
    context = addon.bpy.context
    deadline = None if timeout is None else time.monotonic() + timeout
    said = ""
    while not job.done:
        if deadline is not None and time.monotonic() >= deadline:
            addon.runtime.cancel(context, job.id)
            break
        job = addon.runtime.wait(context, job, 0.5)  # a chain goes on as its next step
        note = f"task {job.task_id}: {job.message}" if job.task_id else job.message
        if note != said:
            print(f"modelstream: {note}", file=sys.stderr, flush=True)
            said = note
    return job


def finish(addon, job_ids, args, timeout):
    """Follow the jobs (a task, or its variations), import them into the open scene and
    save it once; returns the exit status."""
    deadline = None if timeout is None else time.monotonic() + timeout
    jobs = [follow(addon, addon.runtime.job(job_id),
                   None if deadline is None else max(0.0, deadline - time.monotonic()))
            for job_id in job_ids]
    results = addon.api.wait([job.id for job in jobs], timeout=0)  # a chain's last steps
    problems = []
    try:
        for job, result in zip(jobs, results, strict=True):
            if not result.ok:
                problems.append(_problem(addon, job, result, timeout))
        landed = [job for job, result in zip(jobs, results, strict=True) if result.ok]
        if landed:
            for path in save_result(addon, landed, out_path(args.out, landed[0].task_id),
                                    args.raw):
                print(path, file=RESULTS, flush=True)
    except (RuntimeError, OSError) as e:
        problems.append(f"Saving the result failed: {e} (task {jobs[0].task_id})")
    finally:
        for job_id in {*job_ids, *(job.id for job in jobs)}:
            addon.runtime.remove(addon.bpy.context, job_id)
    for problem in problems:
        print(f"modelstream: error: {problem}", file=sys.stderr)
    return EXIT_FAILED if problems else 0


def _problem(addon, job, result, timeout):
    if job.state == addon.job.CANCELLED and job.task_id:
        return (f"Stopped waiting after {timeout:g} s. Task {job.task_id} may still finish "
                "(and be charged): fetch it later with `modelstream_cli.py import-task "
                f"{job.task_id}`.")
    return result.error or job.message


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
    raw = {name: getattr(args, name) for name in addon.option_props()}
    options = resolve_paths(addon, convert(addon, raw), os.getcwd())
    task_type = options.pop("task_type", "text_to_model")
    job_ids = addon.api.submit(task_type, **options)
    return finish(addon, job_ids if isinstance(job_ids, list) else [job_ids], args,
                  args.timeout)


def _open_blend(addon, args, props=None):
    """Open --blend; returns the options given as flags, checked against `props` (default
    Texture Selected's)."""
    if getattr(args, "model", None) and getattr(args, "objects", None):
        raise UsageError("--model or --objects, not both.")
    if not os.path.isfile(args.blend):
        raise UsageError(f"--blend: no file at {args.blend}")
    if os.path.realpath(args.out) == os.path.realpath(args.blend):
        raise UsageError("--out: give another path than --blend; the input .blend is never "
                         "overwritten.")
    addon.bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend))
    addon.check_enabled()
    props = props or addon.mesh_props()
    raw = {name: getattr(args, name) for name in props if hasattr(args, name)}
    return resolve_paths(addon, convert(addon, raw, props), os.getcwd())


def cmd_texture(addon, args):
    options = _open_blend(addon, args)
    job_id = addon.api.texture_selected(args.objects, wait_for_it=False, **options)
    return finish(addon, [job_id], args, args.timeout)


def cmd_rig(addon, args):
    options = _open_blend(addon, args)
    job_id = addon.api.rig(args.model or "", objects=args.objects, wait_for_it=False,
                           **options)
    return finish(addon, [job_id], args, args.timeout)


def _landed(addon, job_id, timeout):
    """Follow a job (a chain to its last step) and land it; its last job and Result."""
    job = follow(addon, addon.runtime.job(job_id), timeout)
    return job, addon.api.wait(job.id, timeout=0)


def cmd_parts(addon, args):
    options = _open_blend(addon, args, addon.game_props())
    if args.complete:
        addon.post_tasks.part_names(args.complete, "complete", required=True)
    job_id = addon.api.split_parts(args.model or "", objects=args.objects, wait_for_it=False,
                                   **options)
    if not args.complete:
        return finish(addon, [job_id], args, args.timeout)
    split, result = _landed(addon, job_id, args.timeout)
    if not result.ok:
        return finish(addon, [split.id], args, args.timeout)
    try:
        done_id = addon.api.complete_parts(result.object_name, parts=args.complete,
                                           wait_for_it=False, **options)
    except addon.errors.ModelStreamError as e:
        known = ", ".join(addon.importer.parts_of(addon.bpy.data.objects[result.object_name]))
        finish(addon, [split.id], args, args.timeout)  # the split is paid for: keep it
        raise UsageError(f"--complete: {e} Its parts: {known}; nothing was completed.") \
            from None
    return finish(addon, [split.id, done_id], args, args.timeout)


def cmd_lods(addon, args):
    options = _open_blend(addon, args, addon.game_props())
    quad = options.pop("lod_quad", False)
    job_ids = addon.api.make_lods(args.model or "",
                                  limits=args.limits or addon.post_tasks.DEFAULT_LODS,
                                  quad=quad, wait_for_it=False, **options)
    return finish(addon, job_ids, args, args.timeout)


def cmd_stylize(addon, args):
    options = _open_blend(addon, args, addon.game_props())
    job_id = addon.api.stylize(args.model or "", style=options.pop("style", "voxel"),
                               wait_for_it=False, **options)
    return finish(addon, [job_id], args, args.timeout)


def cmd_export(addon, args):
    """The converted file is a result too: printed after the .blend when copied to --to;
    a copy that failed is an error (the file stays in the job's folder)."""
    options = _open_blend(addon, args, addon.game_props())
    path = options.pop("export_path", "")
    path = os.path.abspath(os.path.expanduser(path)) if path else ""
    job_id = addon.api.export_model(args.model or "", format=options.pop("export_format",
                                                                         "FBX"),
                                    path=path, objects=args.objects, wait_for_it=False,
                                    **options)
    job, result = _landed(addon, job_id, args.timeout)
    copied = bool(path) and result.ok and os.path.isfile(path) and filecmp.cmp(
        result.output_path, path, shallow=False)
    status = finish(addon, [job.id], args, args.timeout)
    if status or not path:
        return status
    if not copied:
        print(f"modelstream: error: {result.object_name}", file=sys.stderr)
        return EXIT_FAILED
    print(path, file=RESULTS, flush=True)
    return 0


def cmd_size(addon, args):
    options = _open_blend(addon, args, addon.game_props())
    addon.api.set_size(args.model or "", **options)
    for path in save_result(addon, [], out_path(args.out, args.model or "model"), False):
        print(path, file=RESULTS, flush=True)
    return 0


def cmd_import_task(addon, args):
    addon.bpy.ops.wm.read_homefile(use_empty=True)
    addon.check_enabled()
    job_id = addon.api.import_task(args.task_id, wait_for_it=False)
    return finish(addon, [job_id], args, args.timeout)


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


COMMANDS = {"generate": cmd_generate,
            "batch": lambda addon, args: cmd_batch(addon, args, RESULTS),
            "import-task": cmd_import_task, "status": cmd_status, "texture": cmd_texture,
            "rig": cmd_rig, "parts": cmd_parts, "lods": cmd_lods, "stylize": cmd_stylize,
            "export": cmd_export, "size": cmd_size}
OFFLINE = ("size",)  # commands that send nothing: no online access asked


def _stop(signum, frame):
    raise KeyboardInterrupt


def main(argv):
    global RESULTS
    RESULTS = _results_stream()
    try:
        signal.signal(signal.SIGTERM, _stop)
        with loaded_addon() as addon:
            parser = build_parser(addon.option_props(), DESCRIPTION, addon.mesh_props(),
                                  addon.game_props())
            with contextlib.redirect_stdout(RESULTS):  # --help is a result
                try:
                    args = parser.parse_args(argv)
                except SystemExit as e:  # --help or a usage error: end the way all runs end
                    return e.code if isinstance(e.code, int) else EXIT_USAGE
            apply_environment(args)
            with (contextlib.nullcontext() if args.command in OFFLINE else online_access()):
                return run(addon, args)
    except UsageError as e:
        print(f"modelstream: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nmodelstream: interrupted; a batch resumes when run again with the same "
              "arguments.", file=sys.stderr)
        return EXIT_INTERRUPTED


def run(addon, args):
    if args.poll_min is not None:
        addon.runtime.set_poll_floor(args.poll_min)
    try:
        return COMMANDS[args.command](addon, args)
    except addon.errors.ModelStreamError as e:
        print(f"modelstream: error: {e}", file=sys.stderr)
        return EXIT_USAGE if isinstance(e, addon.errors.ConfigError) else EXIT_FAILED


def _results_stream():
    """Results go to the real stdout; everything else printed (Blender's own reports
    included) goes to stderr, so stdout can be piped."""
    sys.stdout.flush()
    results = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return results


if __name__ == "__main__":
    status = main(cli_argv())
    if cli_addon.EMBEDDED:
        sys.exit(status)
    # The bpy wheel's own clean-up at interpreter exit can crash (4.2.0 segfaults after a
    # glTF import), turning a finished run's status into a signal: flush, remove Blender's
    # session temp folder (the one thing that clean-up does that matters here) and leave.
    for stream in (RESULTS, sys.stdout, sys.stderr):
        stream.flush()
    if "bpy" in sys.modules:
        shutil.rmtree(sys.modules["bpy"].app.tempdir, ignore_errors=True)
    os._exit(status)
