"""The Blender side: everything that touches scenes, operators, panels and preferences,
built on `..core` (which never imports back).

From the bottom up: `user_files` (where the add-on writes), `preferences` and `properties`
(settings), `capture`, `inputs` and `importer` (the scene in and out), `runtime` (the one
job engine and the road from options to the scene), `operator_base` (how operators fail),
`library`, `operators`, `variations`, `own_mesh`, `presets` (the commands), `ui` (panels
and menus) and `api` (for scripts). tests/test_layers.py holds that no import goes round
in a circle.
"""

from . import (
    game_ready,
    library,
    operators,
    own_mesh,
    preferences,
    presets,
    properties,
    runtime,
    ui,
    variations,
)

# In registration order: settings first, panels last.
_MODULES = (properties, preferences, operators, library, presets, variations, own_mesh,
            game_ready, ui)


def register():
    for module in _MODULES:
        module.register()
    runtime.start()


def unregister():
    runtime.shutdown()
    for module in reversed(_MODULES):
        module.unregister()
