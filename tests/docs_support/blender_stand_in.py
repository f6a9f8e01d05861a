"""`blender` for the docs' commands: the bpy wheel standing in for a Blender binary.

It takes the arguments the docs use (`-b`, `--online-mode`, `--python-expr CODE`,
`-P FILE`, `--` and what follows) and does what Blender does with them: online access on
for this run when asked, the installed extension enabled as a user's Blender enables it at
start-up, the code or file run with `sys.argv` as Blender leaves it."""

import os  # noqa: I001 (bpy first: it makes addon_utils importable)
import runpy
import sys
import traceback

import bpy
import addon_utils

ADDON = "bl_ext.user_default.modelstream_addon"


def main(argv):
    args = argv[1:]
    if "--" in args:
        args = args[:args.index("--")]
    if "--online-mode" in args:
        bpy.context.preferences.system.use_online_access = True
    if addon_utils.enable(ADDON, default_set=True) is None:
        sys.exit(f"the extension {ADDON} is not installed in BLENDER_USER_RESOURCES")
    sys.argv = ["blender", *argv[1:]]
    for flag, value in zip(args, args[1:], strict=False):
        if flag == "--python-expr":
            exec(compile(value, "<string>", "exec"), {"__name__": "__main__"})
        elif flag in ("-P", "--python"):
            runpy.run_path(value, run_name="__main__")


if __name__ == "__main__":
    try:
        main(sys.argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except Exception:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the 4.2 wheel crashes in its own exit clean-up
