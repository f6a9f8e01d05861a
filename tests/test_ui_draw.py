"""The panels' draw code, run headless against the real scene and window-manager data.

Background Blender has no regions to draw in, so a recording layout stands in for
`UILayout`: every property it is asked to show must exist on the real RNA, and every
operator id must be a registered operator. That catches the typos a GUI would only show
as a broken panel.
"""

import pytest

TASK_TYPES = ("text_to_model", "image_to_model", "multiview_to_model", "refine_model",
              "text_to_image", "generate_image", "generate_multiview_image",
              "edit_multiview_image")


class Recorder:
    """Checks each call against Blender's RNA and records what would be shown."""

    def __init__(self, shown):
        self.shown = shown
        self.alert = self.active = self.use_property_split = False
        self.use_property_decorate = False
        self.scale_y = 1.0

    def _child(self, *args, **kw):
        return Recorder(self.shown)

    row = column = box = grid_flow = split = _child

    def prop(self, data, name, **kw):
        assert name in data.bl_rna.properties, f"{data} has no property {name!r}"
        self.shown.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kw):
        assert name in data.bl_rna.properties
        assert hasattr(search_data, search_name)

    def operator(self, op_id, **kw):
        import bpy

        category, name = op_id.split(".")
        assert name in dir(getattr(bpy.ops, category)), op_id
        self.shown.append(("operator", op_id))
        return OperatorProps(op_id)

    def operator_menu_enum(self, op_id, prop, **kw):
        self.operator(op_id)

    def label(self, text="", **kw):
        self.shown.append(("label", text))

    def menu(self, name, **kw):
        import bpy

        assert hasattr(bpy.types, name), name

    def popover(self, panel, **kw):
        import bpy

        assert hasattr(bpy.types, panel), panel
        self.shown.append(("popover", panel))

    def progress(self, factor=0.0, type='BAR', text=""):
        assert 0.0 <= factor <= 1.0
        self.shown.append(("progress", text))

    def template_list(self, list_type, list_id, data, prop, active_data, active_prop, **kw):
        import bpy

        assert hasattr(bpy.types, list_type)
        assert prop in data.bl_rna.properties and active_prop in active_data.bl_rna.properties

    def template_icon(self, icon_value=0, scale=1.0):
        # Headless Blender makes no preview icons (icon_id stays 0); the request is what
        # is checked here.
        self.shown.append(("thumbnail", icon_value))

    def separator(self, **kw):
        pass


class OperatorProps:
    """Operator properties set from a button: they must exist on the operator."""

    def __init__(self, op_id):
        import bpy

        category, name = op_id.split(".")
        self.__dict__["_rna"] = getattr(getattr(bpy.ops, category), name).get_rna_type()

    def __setattr__(self, name, value):
        assert name in self._rna.properties, name


class Region:
    width = 300


class Context:
    """The real scene, window manager and preferences, with a region of a given width."""

    def __init__(self, bpy):
        self.scene = bpy.context.scene
        self.view_layer = bpy.context.view_layer
        self.window_manager = bpy.context.window_manager
        self.preferences = bpy.context.preferences
        self.region = Region()


class Drawn:
    """Stands in for the panel (or preferences) instance: a recording `layout`, the class's
    own methods, and the real data behind for anything else."""

    def __init__(self, cls, shown, data=None):
        self.__dict__.update(_cls=cls, _data=data, layout=Recorder(shown))

    def __getattr__(self, name):
        attr = getattr(self._cls, name, None)
        if callable(attr):
            return attr.__get__(self)
        if self._data is None:  # a panel's own settings (a preset menu's preset_subdir)
            return self._cls.__name__ if name == "bl_idname" else getattr(self._cls, name)
        return getattr(self._data, name)


def draw(cls, bpy, data=None):
    shown = []
    cls.draw(Drawn(cls, shown, data), Context(bpy))
    return shown


@pytest.mark.parametrize("task_type", TASK_TYPES)
def test_panels_draw_for_every_task_type(blender, task_type):
    bpy = blender
    settings = bpy.context.scene.modelstream
    settings.task_type = task_type
    for source in ('FILE', 'VIEWPORT', 'RENDER', 'IMAGE'):
        settings.image_source = source
        for mv in ('FILES', 'ORBIT'):
            settings.multiview_source = mv
            for cls in (bpy.types.MODELSTREAM_PT_generate, bpy.types.MODELSTREAM_PT_options,
                        bpy.types.MODELSTREAM_PT_jobs):
                draw(cls, bpy)
    shown = draw(bpy.types.MODELSTREAM_PT_generate, bpy)
    assert ("operator", "modelstream.generate") in shown


def test_the_your_model_panel_draws_for_every_reference_source(blender, monkeypatch):
    bpy = blender
    settings = bpy.context.scene.modelstream_mesh
    for source in ('FILE', 'VIEWPORT', 'IMAGE'):
        settings.image_source = source
        shown = draw(bpy.types.MODELSTREAM_PT_own_mesh, bpy)
    assert {("operator", "modelstream.texture_selected"), ("operator", "modelstream.rig"),
            ("operator", "modelstream.animate")} <= set(shown)
    assert any(kind == "label" and "Tripo API v3" in text for kind, text in shown)
    monkeypatch.setenv("MODELSTREAM_SERVICE", "tripo-v3")
    shown = draw(bpy.types.MODELSTREAM_PT_own_mesh, bpy)
    assert not any(kind == "label" and "Tripo API v3" in text for kind, text in shown)


def test_panel_shows_jobs_errors_and_thumbnails(blender, service, tmp_path):
    from tests.conftest import refused, write_png

    bpy = blender
    settings = bpy.context.scene.modelstream
    settings.task_type = "image_to_model"
    settings.image_source = 'FILE'
    settings.image_path = write_png(tmp_path / "in.png", 64, 64)
    assert bpy.ops.modelstream.generate(face_limit=200) == {'FINISHED'}
    service.faults(next_status="failed")
    refused(bpy.ops.modelstream.generate, face_limit=200)
    shown = draw(bpy.types.MODELSTREAM_PT_generate, bpy)
    assert any(kind == "thumbnail" for kind, _ in shown)
    assert any(kind == "label" and "failed" in text for kind, text in shown)
    wm = bpy.context.window_manager
    for index in range(len(wm.modelstream_jobs)):
        wm.modelstream_job_index = index
        jobs = draw(bpy.types.MODELSTREAM_PT_jobs, bpy)
        assert ("operator", "modelstream.retry_job") in jobs
        row = []
        ul = bpy.types.MODELSTREAM_UL_jobs
        ul.draw_item(Drawn(ul, row), Context(bpy), Recorder(row), wm,
                     wm.modelstream_jobs[index], 0, wm, "modelstream_job_index")
        assert row
    bpy.context.preferences.system.use_online_access = False
    shown = draw(bpy.types.MODELSTREAM_PT_generate, bpy)
    assert any("Online access is off" in str(text) or "Allow Online" in str(text)
               for _, text in shown)


def test_preferences_draw(blender):
    bpy = blender
    prefs = bpy.context.preferences.addons["bl_ext.user_default.modelstream_addon"].preferences
    for proxy in ('SYSTEM', 'CUSTOM'):
        prefs.proxy = proxy
        shown = draw(type(prefs), bpy, prefs)
        assert ("operator", "modelstream.test_connection") in shown
        assert ("prop", "save_results_to_library") in shown
        assert (("prop", "proxy_url") in shown) == (proxy == 'CUSTOM')
    prefs.proxy = 'SYSTEM'
