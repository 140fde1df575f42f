"""The layering rule: core and CLI never import Qt, magicgui or napari."""

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "napari_nuclei_counter"
FORBIDDEN = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "napari", "superqt",
             "vispy")


def test_importing_core_and_cli_loads_no_gui_module():
    code = (
        "import sys, napari_nuclei_counter, napari_nuclei_counter.core, napari_nuclei_counter.cli\n"
        "import napari_nuclei_counter.core.batch, napari_nuclei_counter.core.sample\n"
        "from napari_nuclei_counter import detect_nuclei; import numpy as np\n"
        "detect_nuclei(np.zeros((64, 64)))\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_core_sources_do_not_import_gui_packages():
    for path in (PKG / "core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in FORBIDDEN, f"{path.name} imports {n}"
    # imports of the package's own upper layers: see test_architecture.py


def test_no_print_in_library_code():
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Name) and n.func.id == "print"]
        assert not calls, f"print() in {path.relative_to(PKG)}"
