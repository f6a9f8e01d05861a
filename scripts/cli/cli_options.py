"""Option values from flags and batch rows, checked against the operator's properties,
and the files a run writes."""

import json
import os
import re
import shutil

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def convert(addon, raw, props=None):
    """Row or flag values -> the operator's types, checked against its properties (default
    Generate's), so a CSV cell and a JSON value mean the same. Empty values are left out
    (defaults)."""
    props = props or addon.option_props()
    error = addon.tasks.ValidationError
    options = {}
    for field, value in raw.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        prop = props.get(field)
        if prop is None:
            raise error(field, "unknown option; known: " + ", ".join(props)
                        + " (other API parameters go in extra_params).")
        options[field] = _convert_value(field, value, prop, error)
    return options


def _convert_value(field, value, prop, error):
    kind = prop.type
    text = value.strip() if isinstance(value, str) else value
    if kind == 'BOOLEAN':
        if isinstance(text, bool):
            return text
        if isinstance(text, str) and text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        if isinstance(text, int) and text in (0, 1):
            return bool(text)
        raise error(field, f"must be true or false, got {value!r}.")
    if kind in ('INT', 'FLOAT'):
        number = _number(text, kind == 'INT')
        if number is None:
            what = "a whole number" if kind == 'INT' else "a number"
            raise error(field, f"must be {what}, got {value!r}.")
        if not prop.hard_min <= number <= prop.hard_max:
            raise error(field, f"must be between {prop.hard_min} and {prop.hard_max}, "
                        f"got {number}.")
        return number if kind == 'INT' else float(number)
    if kind == 'ENUM' and prop.is_enum_flag:
        items = text if isinstance(text, list) else str(text).replace(",", " ").split()
        return {_convert_value(field, item, _OneOf(prop), error) for item in items}
    if kind == 'ENUM':
        names = [item.identifier for item in prop.enum_items]
        match = next((n for n in names if n.lower() == str(text).lower()), None)
        if match is None:
            raise error(field, f"must be one of {', '.join(names)}, got {value!r}.")
        return match
    if isinstance(text, (dict, list)):
        return json.dumps(text)
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise error(field, f"must be text, got {value!r}.")
    return str(text)


class _OneOf:
    """One item of a set-valued (ENUM_FLAG) property, checked as a plain choice."""

    type = 'ENUM'
    is_enum_flag = False

    def __init__(self, prop):
        self.enum_items = prop.enum_items


def _number(value, whole):
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value) if not whole or "." in value or "e" in value.lower() \
                else int(value)
        except ValueError:
            return None
    if isinstance(value, float) and whole:
        return int(value) if value.is_integer() else None
    return value if isinstance(value, (int, float)) else None


def resolve_paths(addon, options, base):
    """Relative image paths are relative to `base` (the cwd, or the batch file's folder)."""
    for field in ("image_path", *(f"view_{view}" for view in addon.tasks.VIEWS)):
        value = options.get(field)
        if value and "://" not in value and not value.startswith("//"):
            options[field] = os.path.abspath(os.path.join(base, os.path.expanduser(value)))
    return options


def out_path(out, task_id):
    """`--out` is a .blend file, or a directory to hold <task_id>.blend. A task id is the
    service's text, never a path: only its safe characters name the file, inside `out`."""
    out = os.path.abspath(out)
    if out.lower().endswith(".blend"):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        return out
    os.makedirs(out, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", str(task_id)).strip("._")[:100] or "task"
    path = os.path.join(out, f"{stem}.blend")
    if os.path.dirname(os.path.realpath(path)) != os.path.realpath(out):
        raise OSError(f"refusing to write outside {out}")
    return path


def save_result(addon, jobs, blend, raw):
    """Save the open scene as `blend` (a copy: the open file stays as it was) and, with
    `raw`, each job's downloaded files beside it (`_2`, `_3`... after the first of several
    variations). Returns the paths written."""
    addon.bpy.ops.wm.save_as_mainfile(filepath=blend, copy=True, check_existing=False)
    paths = [blend]
    for n, job in enumerate(jobs if raw else [], 1):
        stem = os.path.splitext(blend)[0] + (f"_{n}" if n > 1 else "")
        if job.output_path:
            paths.append(shutil.copyfile(job.output_path, f"{stem}.{job.output_format}"))
        elif job.images:
            for view, path in job.images:
                paths.append(shutil.copyfile(
                    path, f"{stem}_{view}{os.path.splitext(path)[1]}"))
    return paths
