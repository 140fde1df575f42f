"""Helpers shared by the tests (imported as ``from helpers import ...``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil

#: the installed command line, beside this Python
EXE = str(Path(sys.executable).parent / "nuclei-counter")
#: the plugin's npe2 name, for ``add_plugin_dock_widget`` and ``viewer.open(..., plugin=)``
PLUGIN = "napari-nuclei-counter"


def worker_pids(proc: psutil.Process | None = None) -> set[int]:
    """Worker processes under ``proc`` (default: this process).

    The forkserver and the resource tracker are left out: they are long-lived
    helpers of multiprocessing that end with their parent.
    """
    proc = proc or psutil.Process()
    out = set()
    for p in proc.children(recursive=True):
        try:
            helper = p.ppid() == proc.pid and any(
                k in " ".join(p.cmdline()) for k in ("forkserver", "resource_tracker"))
        except psutil.NoSuchProcess:
            continue
        if not helper:
            out.add(p.pid)
    return out


def link_copies(paths: list[Path], copies: int, row: str) -> None:
    """Add ``copies`` symbolic links per image, with distinct BBBC021-style names."""
    for k in range(copies):
        for j, src in enumerate(paths):
            os.symlink(src, src.parent / f"Week1_22123_{row}{k + 10:02d}_s{j + 1}_w1L.tif")
