"""What every operator shares: how it fails, when it is greyed out for being offline, and
which of its properties a caller set (those win over the panel's settings)."""

import bpy

from ..core import errors


def online_poll(cls):
    if not bpy.app.online_access:
        cls.poll_message_set(errors.OFFLINE_MESSAGE)
        return False
    return True


def caller_options(operator, settings, names):
    """Properties a caller set win; the rest come from the panel's settings."""
    return {name: getattr(operator if operator.properties.is_property_set(name) else settings,
                          name) for name in names}


def fail(operator, context, message, shown_in="modelstream_error"):
    """The one way an operator fails: an ERROR report (a RuntimeError for a script, as from
    Blender's own importers), the reason kept where the UI shows it, and {'CANCELLED'}."""
    setattr(context.window_manager, shown_in, message)
    operator.report({'ERROR'}, message)
    return {'CANCELLED'}
