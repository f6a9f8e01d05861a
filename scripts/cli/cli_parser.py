"""The command line's arguments. The task flags come from the generate operator's
properties, so an option is declared once, in the add-on, and every flag follows it."""

import argparse
import re

KEY_ENV = "MODELSTREAM_API_KEY"
URL_ENV = "MODELSTREAM_BASE_URL"
SERVICE_ENV = "MODELSTREAM_SERVICE"
SERVICES = ("modelstream", "tripo-v3")
STATE_FILE = "batch_state.json"
SUMMARY_FILE = "summary.json"
MAX_JOBS = 10  # the service's concurrency limit per key
POLL_FLOOR = 1.0  # never poll a task more often than once a second
# Shorter flags than the option names.
FLAGS = {"image_path": "--image", "lod_limits": "--limits", "lod_quad": "--quad",
         "export_format": "--format", "export_orientation": "--orientation",
         "export_face_limit": "--face-limit", "pivot_to_center_bottom": "--pivot-bottom",
         "export_path": "--to"}


def _flag(prop):
    """argparse settings for one operator property."""
    default = getattr(prop, "default", None)
    if isinstance(default, float):
        default = f"{default:g}"  # 1.8, not the float32's 1.7999999523162842
    shown = f" (default {default})" if default not in (None, "") else ""
    kwargs = {"help": _described(prop).replace("%", "%%") + shown}
    if prop.type == 'BOOLEAN':
        kwargs["action"] = argparse.BooleanOptionalAction
    elif prop.type == 'ENUM':
        kwargs["choices"] = [item.identifier for item in prop.enum_items]
        if prop.is_enum_flag:
            kwargs.update(nargs="+", metavar="NAME", help=kwargs["help"] + ": "
                          + ", ".join(kwargs.pop("choices")))
    elif prop.type == 'INT':
        kwargs.update(type=int, metavar="N")
    elif prop.type == 'FLOAT':
        kwargs.update(type=float, metavar="X")
    else:
        kwargs["metavar"] = "TEXT"
    return kwargs


def _described(prop):
    """The property's description; a choice without one says what each item does."""
    if prop.description or prop.type != 'ENUM':
        return prop.description or prop.name
    items = [f"{item.identifier} = {item.description}" for item in prop.enum_items
             if item.description]
    return f"{prop.name}: {'; '.join(items)}" if items else prop.name


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


# The own-mesh operators' options each of their commands takes.
TEXTURE_OPTIONS = ("prompt", "image_path", "pbr", "texture_quality", "texture_seed",
                   "model_version", "placement")
RIG_OPTIONS = ("spec", "rig_model", "animations", "placement")
# The Game Ready commands: what each does, whether it takes --objects (your own meshes)
# and sends a task, and the options of Split into Parts' it takes.
GAME_COMMANDS = {
    "parts": ("split a generated model or meshes of a .blend into named parts (Tripo API "
              "v3), with --complete also complete some of them, and save the file with the "
              "result beside its source", True, True,
              ("segment_model", "completion_mode")),
    "lods": ("make LODs of a generated model of a .blend, one smart-low-poly version per "
             "face limit named <name>_LOD0, _LOD1... in one collection (Tripo API v3), and "
             "save the file with them", False, True, ("lod_limits", "lod_quad")),
    "stylize": ("make a lego, voxel, voronoi or minecraft version of a generated model of a "
                ".blend (the ModelStream service: Tripo API v3 has no stylize) and save the "
                "file with it beside its source", False, True, ("style", "block_size")),
    "export": ("convert a generated model or meshes of a .blend into a file for an engine "
               "(Tripo API v3), kept with --raw beside --out or copied to --to, and save the "
               "file", True, True,
               ("export_format", "fbx_preset", "export_orientation", "export_face_limit",
                "texture_size", "pivot_to_center_bottom", "export_path")),
    "size": ("make a generated model of a .blend a real-world height in metres, resting on "
             "its origin and centred over it, and save the file (no request)", False, False,
             ("height", "origin_at_base")),
}
# Flags whose shape differs from their property's: LOD limits are numbers on the command
# line, the panel's text in the add-on.
FLAG_SHAPES = {"lod_limits": {"dest": "limits", "nargs": "+", "type": int,
                                   "metavar": "FACES"},
                    "export_path": {"metavar": "PATH"}}
# argparse reads "-y" after a flag as another flag.
FLAG_NOTES = {"export_orientation": "; write a negative axis as --orientation=-y"}


def build_parser(option_props, description="", mesh_props=None, game_props=None):
    """The command line; the task flags are the operator's properties, one per option
    (the own-mesh commands': Texture Selected's; the Game Ready ones': Split into
    Parts')."""
    common = Parser(add_help=False, allow_abbrev=False)
    common.add_argument("--api-key-env", metavar="NAME", default=KEY_ENV,
                        help=f"environment variable holding the API key (default {KEY_ENV}); "
                             "a key is never taken from the command line")
    common.add_argument("--service", choices=SERVICES,
                        help=f"where tasks go (default ${SERVICE_ENV}, else the add-on "
                             "preferences, else modelstream)")
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
        description=description,
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
    for name, prop in option_props.items():
        task.add_argument(FLAGS.get(name, "--" + name.replace("_", "-")), dest=name,
                          default=None, **_flag(prop))

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
    batch.add_argument("--library", metavar="DIR",
                       help="also save every model result as an asset in DIR: one .blend "
                            "each with a preview, tags, its task id and prompt, and a "
                            "catalog per task type (add DIR in Blender's Preferences > File "
                            "Paths > Asset Libraries to browse it)")
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

    mesh_props = mesh_props or {}
    for name, options, summary in (
            ("texture", TEXTURE_OPTIONS, "texture meshes of a .blend (Tripo API v3) and save "
                                         "the file with the result beside them"),
            ("rig", RIG_OPTIONS, "rig (and animate) a generated model or meshes of a .blend "
                                 "(Tripo API v3) and save the file with the result")):
        own = _blend_command(commands, name, summary, [common, output])
        own.add_argument("--objects", nargs="+", metavar="NAME",
                         help="the mesh objects to send (default: the file's selection"
                              + ("" if name == "texture" else
                                 ", unless --model names a generated model") + ")")
        if name == "rig":
            own.add_argument("--model", metavar="NAME",
                             help="a model generated by ModelStream (its Empty or a part)")
        own.add_argument("--timeout", type=float, metavar="SECONDS",
                         help="stop waiting after this long")
        _operator_options(own, options, mesh_props)

    _game_commands(commands, common, output, game_props or {})

    status = commands.add_parser("status", parents=[common], allow_abbrev=False,
                                 help="print a task's state")
    status.add_argument("task_id", metavar="TASK_ID")
    status.add_argument("--json", action="store_true",
                        help="print the service's task data as JSON")
    return parser


def _blend_command(commands, name, summary, parents):
    """A command that reads --blend and writes --out."""
    command = commands.add_parser(name, parents=parents, allow_abbrev=False, help=summary,
                                  description=summary[0].upper() + summary[1:]
                                  + "; the input .blend is never overwritten.")
    command.add_argument("--blend", required=True, metavar="FILE", help="the .blend to read")
    command.add_argument("--out", required=True, metavar="FILE", help="the .blend to write")
    return command


def _operator_options(command, options, props):
    """A flag per operator option the command takes."""
    group = command.add_argument_group("options (the operator's; unset ones take its "
                                       "defaults)")
    for option in options:
        if option in props:
            kwargs = {"dest": option, "default": None, **_flag(props[option]),
                      **FLAG_SHAPES.get(option, {})}
            kwargs["help"] += FLAG_NOTES.get(option, "")
            group.add_argument(FLAGS.get(option, "--" + option.replace("_", "-")), **kwargs)


def _game_commands(commands, common, output, game_props):
    for name, (summary, meshes, sends, options) in GAME_COMMANDS.items():
        game = _blend_command(commands, name, summary, [common, output] if sends else [common])
        game.add_argument("--model", metavar="NAME",
                          help="a model generated by ModelStream (its Empty or a part; "
                               "default: the file's active object's)")
        if meshes:
            game.add_argument("--objects", nargs="+", metavar="NAME",
                              help="mesh objects to send instead of --model (imported "
                                   "first)")
        if name == "parts":
            game.add_argument("--complete", nargs="+", metavar="PART",
                              help="then complete these parts of the split model (names "
                                   "as the split gave them), in the same run")
        if sends:
            game.add_argument("--timeout", type=float, metavar="SECONDS",
                              help="stop waiting after this long (for each task)")
        _operator_options(game, options, game_props)
