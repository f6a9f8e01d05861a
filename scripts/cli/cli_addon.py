"""The add-on as the command line sees it: loaded (installed, else staged from this
repository for the run), online by the user's choice, and its key taken from the
environment."""

import contextlib
import importlib
import importlib.util
import os
import re
import shutil
import sys
import tempfile

from cli_parser import KEY_ENV, SERVICE_ENV, URL_ENV, UsageError

EMBEDDED = "bpy" in sys.modules  # run by a Blender binary (-P), not by the bpy wheel
HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "modelstream_addon"
REPO_MODULE = "modelstream_cli"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def apply_environment(args):
    """Point the add-on at the service, key variable and URL; the key's value is never
    echoed."""
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
    if args.service:
        os.environ[SERVICE_ENV] = args.service


class Addon:
    """The loaded add-on's modules (runtime, api, tasks...), looked up by name in either
    floor (they are per-process singletons)."""

    def __init__(self, name):
        import bpy

        self.bpy = bpy
        self.name = name

    def __getattr__(self, module):
        for floor in ("blender", "core"):
            if importlib.util.find_spec(f"{self.name}.{floor}.{module}") is not None:
                return importlib.import_module(f"{self.name}.{floor}.{module}")
        raise AttributeError(f"the add-on has no module {module!r}")

    def check_enabled(self):
        """Loading a file keeps add-ons enabled; a disabled one would have lost its jobs."""
        import addon_utils  # importable once bpy is

        if not addon_utils.check(self.name)[1]:
            raise RuntimeError(f"The add-on {self.name} was disabled while running.")

    def option_props(self):
        """The generate operator's properties: the one declaration of every option."""
        props = self.bpy.ops.modelstream.generate.get_rna_type().properties
        return {name: props[name] for name in self.properties.OPTION_NAMES}

    def mesh_props(self):
        """Texture Selected's properties: the own-mesh commands' options."""
        props = self.bpy.ops.modelstream.texture_selected.get_rna_type().properties
        return {name: props[name] for name in self.own_mesh.MESH_OPTION_NAMES}

    def game_props(self):
        """Split into Parts' properties: the Game Ready commands' options."""
        props = self.bpy.ops.modelstream.split_parts.get_rna_type().properties
        return {name: props[name] for name in self.game_ready.GAME_OPTION_NAMES}

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
