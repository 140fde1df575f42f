"""The napari GUI: the only part of the package that imports Qt, magicgui or napari.

The dock is imported on first use, so that its Qt-free model
(:mod:`.detector.model`) can be imported without Qt.
"""

from __future__ import annotations

__all__ = ["NucleiCounterWidget"]


def __getattr__(name: str):
    if name == "NucleiCounterWidget":
        from .detector.dock import NucleiCounterWidget

        return NucleiCounterWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
