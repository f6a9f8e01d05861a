"""ModelStream for Blender: a text prompt, an image or the scene to a 3D model in the scene.

Two floors: `core/` (HTTP client, services, task builders, job engine, history) imports no
bpy and can be used and tested without Blender; `blender/` (capture, import, operators,
panels, preferences, the Python API) sits on it. Imports only go down. This file only
registers: the Blender side is loaded here, when Blender enables the add-on, so that the
core stays importable where there is no bpy.
"""

import importlib


def _blender_side():
    return importlib.import_module(".blender", __package__)


def register():
    _blender_side().register()


def unregister():
    _blender_side().unregister()
