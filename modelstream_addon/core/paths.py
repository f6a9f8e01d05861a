"""Where the add-on may write, rename or delete: only inside its own folders. No bpy here.

A name from the service (a task id, a URL) or from the history file never becomes a path:
the add-on names every file itself. These checks are the last line, run right before each
write, rename or delete, on the resolved path (symlinks followed), so a hostile name or a
planted link cannot reach a user's file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil

from .errors import ModelStreamError

JOB_ID = re.compile(r"[0-9a-f]{12}")


class UnsafePathError(ModelStreamError):
    """A path would leave the add-on's folder: nothing was written or deleted."""


def inside(root, path):
    """Whether `path` resolves strictly inside `root` (never `root` itself)."""
    try:
        base = os.path.realpath(root)
        real = os.path.realpath(path)
        return real != base and os.path.commonpath([real, base]) == base
    except (TypeError, ValueError, OSError):
        return False


def plain_join(root, *parts):
    """root/parts..., each part one plain name (no separator, never '..'); not resolved, so
    cheap: what it names is checked by safe_path before any use."""
    for part in parts:
        if (not isinstance(part, str) or part in ("", ".", "..") or "\0" in part
                or any(sep and sep in part for sep in (os.sep, os.altsep))):
            raise UnsafePathError(f"Refused the file name {part!r}: not a plain name.")
    return os.path.join(root, *parts)


def safe_path(root, *parts):
    """root/parts..., each part one plain name; raises UnsafePathError unless the result
    resolves inside `root`."""
    path = plain_join(root, *parts)
    if not inside(root, path):
        raise UnsafePathError(f"Refused {path!r}: it is outside {root}.")
    return path


def job_folder(root, job_id, *names):
    """A job's own download folder (or a file in it), named by the engine's id, never by
    the service; checked against `root`, so a folder linked elsewhere is refused too."""
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        raise UnsafePathError(f"Refused the job id {job_id!r}.")
    return safe_path(root, job_id, *names)


def under(root, path):
    """Whether `path`, as written, names something strictly inside `root`: a cheap first
    sorting of paths read back from the history (the resolved check runs before any use)."""
    if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
        return False
    base = _prefix(root)
    path = os.path.normcase(os.path.normpath(path))
    return len(path) > len(base) and path.startswith(base)


@functools.lru_cache(maxsize=16)
def _prefix(root):
    """`root` as the start of the paths inside it (a history holds thousands of them)."""
    return os.path.normcase(os.path.normpath(root)).rstrip(os.sep) + os.sep


def remove(root, path):
    """Delete a file or a folder tree, only when it resolves inside `root`."""
    if not path or not inside(root, path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


def export_destination(path, extension):
    """Where the user asked a converted file to go, checked before the copy: an absolute
    path to a file ending in `.extension` in a folder that exists, not a folder itself nor
    a link (which would write elsewhere than it says). Returns the normalised path."""
    if not isinstance(path, str) or not path.strip() or "\0" in path:
        raise UnsafePathError("Give the path of the file to export to.")
    path = os.path.abspath(os.path.expanduser(path.strip()))
    if not path.lower().endswith(f".{extension}"):
        raise UnsafePathError(f"The export path must end in .{extension}: {path}")
    if os.path.isdir(path) or os.path.islink(path):
        raise UnsafePathError(f"Refused {path}: it is a folder or a link, not a file.")
    if not os.path.isdir(os.path.dirname(path)):
        raise UnsafePathError(f"There is no folder {os.path.dirname(path)} to export into.")
    return path


def copy_out(source, path, extension):
    """Copy `source` to the checked export `path`: written beside it under a temporary name,
    then moved into place, so a failed copy never leaves half a file under the user's
    name."""
    path = export_destination(path, extension)
    temporary = f"{path}.part-{os.getpid()}"
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(OSError):
            os.remove(temporary)
    return path
