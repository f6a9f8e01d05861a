"""Option presets (issue 13) through Blender's own preset menu: saved, recalled and removed
with `modelstream.preset_add` and `script.execute_preset`; three shipped with the add-on."""

import os

from tests.conftest import ADDON
from tests.test_ui_draw import Context, Drawn, draw

SHIPPED = {
    "Game prop, 5k faces": {"face_limit": 5000, "texture": True, "pbr": True,
                            "texture_quality": "standard", "quad": False},
    "Hero asset, detailed PBR": {"face_limit": 0, "texture": True, "pbr": True,
                                 "texture_quality": "detailed", "quad": False},
    "Blockout, untextured quads": {"texture": False, "pbr": False, "quad": True,
                                   "shading": "FLAT"},
}


def options(settings, names):
    return {name: getattr(settings, name) for name in names}


def preset_files(bpy):
    return {bpy.path.display_name(name, title_case=False): os.path.join(folder, name)
            for folder in bpy.utils.preset_paths("modelstream/generate")
            for name in os.listdir(folder) if name.endswith(".py")}


def apply(bpy, path):
    assert bpy.ops.script.execute_preset(filepath=path,
                                         menu_idname="MODELSTREAM_PT_presets") == {'FINISHED'}


def test_a_preset_saves_and_recalls_the_options(blender, addon):
    bpy = blender
    settings = bpy.context.scene.modelstream
    names = addon.presets.OPTIONS
    mine = {"model_version": "v2.5-20250123", "face_limit": 1234, "texture": False,
            "pbr": True, "texture_quality": "extreme", "quad": True, "auto_size": True,
            "placement": 'ORIGIN', "size_mode": 'FIT', "target_size": 2.5,
            "shading": 'SMOOTH'}
    assert set(mine) == set(names)
    for name, value in mine.items():
        setattr(settings, name, value)
    settings.prompt = "not part of a preset"
    scripts = bpy.utils.user_resource('SCRIPTS', path="presets")
    assert bpy.ops.modelstream.preset_add(name="My 'odd\" preset") == {'FINISHED'}
    [(label, path)] = [(k, v) for k, v in preset_files(bpy).items() if "odd" in k]
    own = bpy.utils.extension_path_user(ADDON)
    assert path.startswith(own + os.sep), "a preset written outside the extension's folder"
    assert not os.path.isdir(os.path.join(scripts, "modelstream")), "wrote into scripts"

    bpy.ops.wm.read_homefile(use_empty=True)  # every option back to its default
    settings = bpy.context.scene.modelstream
    assert options(settings, names) != mine
    apply(bpy, path)
    assert options(settings, names) == mine, "the preset did not bring the options back"
    assert settings.prompt == ""

    assert bpy.ops.modelstream.preset_add(name=label, remove_name=True) == {'FINISHED'}
    assert not os.path.exists(path)


def test_the_shipped_presets_apply_their_values_and_cannot_be_removed(blender, addon):
    bpy = blender
    files = preset_files(bpy)
    assert set(SHIPPED) <= set(files), sorted(files)
    for label, values in SHIPPED.items():
        bpy.ops.wm.read_homefile(use_empty=True)
        apply(bpy, files[label])
        settings = bpy.context.scene.modelstream
        assert options(settings, values) == values, label
        assert bpy.utils.is_path_extension(files[label])  # shipped in the extension
    bpy.ops.modelstream.preset_add(name="Game prop, 5k faces", remove_name=True)
    assert os.path.exists(files["Game prop, 5k faces"])
    assert bpy.ops.modelstream.preset_add(name="Game prop, 5k faces") == {'CANCELLED'}


def test_the_options_panel_header_opens_the_preset_menu(blender):
    bpy = blender
    shown = []
    panel = bpy.types.MODELSTREAM_PT_options
    panel.draw_header_preset(Drawn(panel, shown), Context(bpy))
    assert ("popover", "MODELSTREAM_PT_presets") in shown
    menu = draw(bpy.types.MODELSTREAM_PT_presets, bpy)
    assert [kind for kind, _ in menu].count("operator") >= len(SHIPPED)
