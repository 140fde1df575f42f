"""The layers hold: core -> adapters -> GUI, with no import cycles and no GUI below the GUI.

The one layering test of the suite. The import graph is built from the
source (the AST of every module), so imports inside functions and under
``TYPE_CHECKING`` count as much as module-level ones: an import that is only
delayed is still a dependency. A subprocess then checks what importing the
core and the command line really loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "napari_nuclei_counter"
#: what only the GUI layer may import
GUI_PACKAGES = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt", "napari",
                "vispy")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> set[str]:
    """Modules of this package that module ``name`` imports, anywhere in its body."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    base = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
            found.update(t for t in targets if t.split(".")[0] == PACKAGE)
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            anchor = base.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            module = ".".join(anchor + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module.split(".")[0] != PACKAGE:
            continue
        for alias in node.names:
            sub = f"{module}.{alias.name}"
            # ``from . import x`` imports the module x; ``from .m import f`` the module m
            found.add(sub if sub in MODULES else module)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _layer(name: str) -> int:
    """0: the version; 1: core; 2: adapters (CLI, Dask, reader, writer, samples); 3: GUI."""
    rel = name[len(PACKAGE) + 1:] if name != PACKAGE else ""
    if rel == "_version":
        return 0
    if rel == "core" or rel.startswith("core."):
        return 1
    if rel == "gui" or rel.startswith("gui."):
        return 3
    return 2


def test_the_graph_sees_delayed_and_type_checking_imports():
    # the parser itself: a function-level import and ``from . import x`` are edges
    # inside choose_backend
    assert f"{PACKAGE}.dask_backend.backend" in GRAPH[f"{PACKAGE}.dask_backend.choice"]
    assert f"{PACKAGE}.core.detect._fast" in GRAPH[f"{PACKAGE}.core.run.worker"]
    assert f"{PACKAGE}.core.results.wells" in GRAPH[f"{PACKAGE}.core.render.pictures"]


def test_no_import_cycles():
    colour: dict[str, int] = {}  # 1 on the path, 2 done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        colour[node] = 1
        for nxt in sorted(GRAPH[node]):
            if colour.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in colour:
                visit(nxt, path + [nxt])
        colour[node] = 2

    for name in sorted(GRAPH):
        if name not in colour:
            visit(name, [name])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_upward_imports():
    upward = [(a, b) for a, deps in GRAPH.items() for b in deps if _layer(b) > _layer(a)]
    assert not upward, upward


def test_only_the_gui_imports_qt_napari_or_magicgui():
    """The core never does; an adapter only inside a function (``nuclei-counter gui``)."""
    offenders = []
    for name, path in MODULES.items():
        if _layer(name) == 3:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree) if _layer(name) == 1 else tree.body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not
                     node.level else [])
            offenders += [(name, n) for n in names if n.split(".")[0] in GUI_PACKAGES]
    assert not offenders, offenders


def test_importing_the_core_and_the_command_line_loads_no_gui_module():
    code = (
        "import sys, numpy as np\n"
        f"import {PACKAGE}, {PACKAGE}.core, {PACKAGE}.cli.app, {PACKAGE}.core.sample\n"
        f"import {PACKAGE}.core.render.gallery, {PACKAGE}.core.render.pictures\n"
        f"{PACKAGE}.detect_nuclei(np.zeros((64, 64)))\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {GUI_PACKAGES + ('matplotlib',)!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_print_in_library_code():
    for name, path in MODULES.items():
        calls = [n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"]
        assert not calls, f"print() in {name}"
