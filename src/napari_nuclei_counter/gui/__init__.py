"""The napari GUI: the only part of the package that imports Qt, magicgui or napari."""

from ._widget import NucleiCounterWidget

__all__ = ["NucleiCounterWidget"]
