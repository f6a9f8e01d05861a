"""Where the add-on writes: Blender's user folder for this extension (downloads, inputs,
captures, the history, presets, the asset library), never the folder it is installed in."""

import bpy

# The extension's own package (bl_ext.<repository>.modelstream_addon): Blender names its
# preferences and user folder after it, not after this subpackage.
PACKAGE = __package__.rpartition(".")[0]


def user_folder(path=""):
    """The extension's user folder, or `path` inside it, created when missing."""
    return bpy.utils.extension_path_user(PACKAGE, path=path, create=True)
