"""The add-on's two floors hold: the core imports no bpy and nothing of the Blender side,
and no import anywhere in the add-on goes round in a circle or hides inside a function.

The import graph is read from the source with `ast`, so a new module is covered without
editing this file; the core is also imported in a fresh interpreter where bpy cannot be
imported, so the rule cannot break silently (this test session has bpy loaded already)."""

import ast
import os
import subprocess
import sys

from tests.conftest import ROOT

PACKAGE = "modelstream_addon"
SOURCE = os.path.join(ROOT, PACKAGE)
# Blender's own modules: only the Blender side may import them.
BLENDER_MODULES = ("bpy", "mathutils", "gpu", "bmesh", "bl_ui", "bl_operators", "addon_utils",
                   "bpy_extras", "idprop")


def modules(folder=SOURCE, prefix=PACKAGE):
    """{dotted module name: path} for every .py file of the add-on."""
    found = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                parts = os.path.relpath(path, folder)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join([prefix, *parts])] = path
    return found


def _package_of(module, path):
    return module if path.endswith("__init__.py") else module.rpartition(".")[0]


def imports(module, path, known):
    """[(imported name, line, inside a function)] of one module: add-on modules resolved
    to their dotted names, other modules as written."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = _package_of(module, path)
                    for _ in range(child.level - 1):
                        base = base.rpartition(".")[0]
                    base = f"{base}.{child.module}" if child.module else base
                else:
                    base = child.module
                for alias in child.names:  # `from . import runtime` imports a module
                    name = f"{base}.{alias.name}"
                    found.append((name if name in known else base, child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def graph():
    known = modules()
    return known, {m: imports(m, path, known) for m, path in known.items()}


def cycles(edges):
    """Every import cycle among the add-on's modules, each as a list of module names."""
    found, state, stack = [], {}, []

    def walk(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            walk(node)
    return found


def test_no_import_cycles_in_the_addon():
    known, found = graph()
    edges = {m: {name for name, _, _ in names if name in known and name != m}
             for m, names in found.items()}
    circles = cycles(edges)
    assert not circles, "import cycles: " + "; ".join(" -> ".join(c) for c in circles)


def test_the_cycle_finder_finds_a_cycle():
    """The check above must be able to fail."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_addon_import_hides_inside_a_function():
    known, found = graph()
    hidden = [f"{m}:{line} imports {name}" for m, names in found.items()
              for name, line, inside in names if inside and name.startswith(PACKAGE)]
    assert not hidden, "imports inside functions: " + "; ".join(hidden)


def test_the_core_imports_neither_bpy_nor_the_blender_side():
    known, found = graph()
    core = f"{PACKAGE}.core"
    assert core in known and len([m for m in known if m.startswith(core + ".")]) >= 10
    wrong = [f"{m}:{line} imports {name}" for m, names in found.items()
             if m == core or m.startswith(core + ".")
             for name, line, _ in names
             if name.split(".")[0] in BLENDER_MODULES
             or (name.startswith(PACKAGE) and not name.startswith(core))]
    assert not wrong, "the core reaches up: " + "; ".join(wrong)


PROBE = """
import importlib, sys
sys.modules["bpy"] = None  # any `import bpy` now raises ImportError
for name in ("mathutils", "gpu", "bmesh"):
    sys.modules[name] = None
sys.path.insert(0, sys.argv[1])
for name in sys.argv[2:]:
    importlib.import_module(name)
"""


def test_core_modules_import_without_bpy():
    core = sorted(m for m in modules() if m.startswith(f"{PACKAGE}.core"))
    done = subprocess.run([sys.executable, "-c", PROBE, ROOT, *core], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
