"""Add-on preferences: where the service, key and base URL come from when the environment is
silent.

Environment variables win (MODELSTREAM_SERVICE, MODELSTREAM_API_KEY, MODELSTREAM_BASE_URL):
that is the contract for scripts and tests. The key field only masks the text; Blender keeps
preferences in userpref.blend, so the environment is the safer place for a key on shared
machines.
"""

import os

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ..core import services
from ..core.client import DEFAULT_BASE_URL, ModelStreamClient
from ..core.errors import OFFLINE_MESSAGE, ConfigError
from .user_files import PACKAGE

KEY_ENV = "MODELSTREAM_API_KEY"
URL_ENV = "MODELSTREAM_BASE_URL"
SERVICE_ENV = services.SERVICE_ENV
# Called with (context, setting name) when an engine setting or the service changes, the
# way bpy.app.handlers are: the runtime, which sits above the preferences, adds its own.
on_change = []


def _changed(context, name):
    for handler in list(on_change):
        handler(context, name)


def _engine_setting(_self, context):
    """Engine settings apply at once, to running and resumed jobs too."""
    _changed(context, "engine")


def _service_changed(self, context):
    """The address follows the service unless the user typed their own."""
    chosen = services.named(self.service)
    if services.base_url(chosen, self.base_url) == chosen.default_base_url:
        self.base_url = chosen.default_base_url
    _changed(context, "service")


class MODELSTREAM_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = PACKAGE

    service: EnumProperty(
        name="Service", default='MODELSTREAM', update=_service_changed,
        description="Where tasks go; the environment variable MODELSTREAM_SERVICE "
        "(modelstream | tripo-v3) takes precedence",
        items=[('MODELSTREAM', "ModelStream", "The ModelStream API (Tripo's v2 task API, "
                "relayed) at https://api.modelstream.ai, with a ModelStream key (sk-...)"),
               ('TRIPO_V3', "Tripo API v3", "Tripo's own API v3 at "
                "https://openapi.tripo3d.ai, with a Tripo key (tsk_...). It has no "
                "refine_model")])
    api_key: StringProperty(name="API Key", subtype='PASSWORD',
                            description="Your key for the service: ModelStream (sk-...) or "
                            "Tripo (tsk_...). The environment variable MODELSTREAM_API_KEY "
                            "takes precedence")
    base_url: StringProperty(name="Base URL", default=DEFAULT_BASE_URL,
                             description="The service's address; a service's default address "
                             "follows the Service choice. MODELSTREAM_BASE_URL takes "
                             "precedence")
    connect_timeout: FloatProperty(name="Connect Timeout", default=10.0, min=1.0, max=120.0,
                                   unit='TIME_ABSOLUTE')
    read_timeout: FloatProperty(name="Read Timeout", default=60.0, min=5.0, max=600.0,
                                unit='TIME_ABSOLUTE')
    image_transport: EnumProperty(name="Send Images By", default='AUTO', items=[
        ('AUTO', "Auto", "The upload endpoint; inline data URLs when the service has none"),
        ('UPLOAD', "Upload", "Upload each image first and send its token"),
        ('DATA_URL', "Data URL", "Send images inline in the task request")])
    proxy: EnumProperty(name="Proxy", default='SYSTEM', items=[
        ('SYSTEM', "System", "Use the system's proxy settings (HTTPS_PROXY etc.)"),
        ('NONE', "None", "Connect directly"),
        ('CUSTOM', "Custom", "Use the proxy URL below")])
    proxy_url: StringProperty(name="Proxy URL", description="e.g. http://proxy.corp:3128")
    ca_bundle: StringProperty(
        name="CA Bundle", subtype='FILE_PATH',
        description="A PEM file of extra certificate authorities (corporate proxies, VPNs). "
        "TLS verification always stays on")
    max_concurrent: IntProperty(
        name="Jobs at Once", default=4, min=1, max=10, update=_engine_setting,
        description="At most this many tasks at the service at once; more wait here in order")
    max_history: IntProperty(
        name="History Size", default=200, min=10, max=5000, update=_engine_setting,
        description="Finished jobs kept in the history; the oldest go with their files")
    download_time_limit: FloatProperty(
        name="Download Time Limit", default=900.0, min=10.0, max=7200.0, unit='TIME_ABSOLUTE',
        description="Stop a download that takes longer than this in all, however slowly "
        "the host keeps sending")
    max_download_mb: IntProperty(name="Max Download (MB)", default=512, min=1, max=8192,
                                 update=_engine_setting,
                                 description="Refuse results larger than this")
    import_helper: BoolProperty(
        name="Import in the Background", default=True, update=_engine_setting,
        description="A second Blender, in the background, imports each result as it "
        "downloads, so that bringing it into the scene only appends it and Blender never "
        "holds for the import. It takes that Blender's memory while results arrive and "
        "ends after 10 idle minutes. Off: results import in this Blender, as File > "
        "Import does. Never used by scripts run with -b")
    save_results_to_library: BoolProperty(
        name="Save Results to Library", default=False,
        description="Also save every model that arrives into the ModelStream asset library, "
        "as Save to Library does (a failed save is a warning: the model stays in the scene)")

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        row = col.row()
        row.active = not os.environ.get(SERVICE_ENV)
        row.prop(self, "service")
        if os.environ.get(SERVICE_ENV):
            col.label(text=f"{SERVICE_ENV} is set: {os.environ[SERVICE_ENV]}", icon='INFO')
        row = col.row()
        row.active = not os.environ.get(KEY_ENV)
        row.prop(self, "api_key")
        if os.environ.get(KEY_ENV):
            col.label(text=f"{KEY_ENV} is set and is used instead.", icon='INFO')
        row = col.row()
        row.active = not os.environ.get(URL_ENV)
        row.prop(self, "base_url")
        if os.environ.get(URL_ENV):
            col.label(text=f"{URL_ENV} is set: {os.environ[URL_ENV]}", icon='INFO')
        row = col.row(align=True)
        row.prop(self, "connect_timeout")
        row.prop(self, "read_timeout")
        col.prop(self, "image_transport")
        row = col.row(align=True)
        row.prop(self, "max_concurrent")
        row.prop(self, "max_history")
        row = col.row(align=True)
        row.prop(self, "max_download_mb")
        row.prop(self, "download_time_limit")
        col.prop(self, "import_helper")
        col.prop(self, "save_results_to_library")
        box = layout.box()
        box.label(text="Network", icon='WORLD')
        box.prop(self, "proxy")
        if self.proxy == 'CUSTOM':
            box.prop(self, "proxy_url")
        box.prop(self, "ca_bundle")
        box.operator("modelstream.test_connection", icon='PLUGIN')
        report = context.window_manager.modelstream_connection_report
        if report:
            box.label(text=report, icon='ERROR' if report.startswith("Failed") else 'CHECKMARK')
        if not bpy.app.online_access:
            col.label(text=OFFLINE_MESSAGE, icon='ERROR')


def get(context=None):
    context = context or bpy.context
    return context.preferences.addons[PACKAGE].preferences


def has_key(context=None):
    return bool(os.environ.get(KEY_ENV, "").strip() or get(context).api_key.strip())


def service(context=None):
    """The chosen service's adapter: the environment, else the preferences. Raises
    ConfigError for an unknown MODELSTREAM_SERVICE."""
    return services.named(os.environ.get(SERVICE_ENV, "").strip() or get(context).service)


def shown_service(context=None):
    """For drawing: the chosen service, ModelStream when the variable is unusable (the
    next request says why)."""
    try:
        return service(context)
    except ConfigError:
        return services.named(services.DEFAULT)


def make_client(context=None, service_name=None):
    """A client from the environment, else the preferences; `service_name` (a job's
    service) instead of the chosen one. Raises ConfigError."""
    prefs = get(context)
    chosen = services.named(service_name) if service_name else service(context)
    return ModelStreamClient(
        os.environ.get(KEY_ENV, "").strip() or prefs.api_key,
        services.base_url(chosen, os.environ.get(URL_ENV, "").strip() or prefs.base_url),
        connect_timeout=prefs.connect_timeout, read_timeout=prefs.read_timeout,
        proxy=prefs.proxy.lower(), proxy_url=prefs.proxy_url.strip(),
        ca_bundle=bpy.path.abspath(prefs.ca_bundle) if prefs.ca_bundle else "",
        download_deadline=prefs.download_time_limit, service=chosen)


def register():
    bpy.utils.register_class(MODELSTREAM_AddonPreferences)


def unregister():
    bpy.utils.unregister_class(MODELSTREAM_AddonPreferences)
