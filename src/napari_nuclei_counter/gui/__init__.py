"""The napari GUI: the only part of the package that imports Qt, magicgui or napari."""

from .detector.dock import NucleiCounterWidget

__all__ = ["NucleiCounterWidget"]
