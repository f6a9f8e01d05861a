"""ModelStream for Blender: text prompt to a 3D model in the scene.

The client, task builders and job engine import no bpy, so they can be used and tested
without Blender; the Blender side is imported only when the add-on registers.
"""

_MODULES = ("properties", "preferences", "operators", "library", "presets", "variations",
            "own_mesh", "ui")


def _blender_modules():
    import importlib

    return [importlib.import_module(f".{name}", __package__) for name in _MODULES]


def register():
    for module in _blender_modules():
        module.register()
    from . import runtime

    runtime.start()


def unregister():
    from . import runtime

    runtime.shutdown()
    for module in reversed(_blender_modules()):
        module.unregister()
