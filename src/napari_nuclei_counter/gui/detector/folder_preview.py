"""Folder mode's preview: one matched file at a time in a ``folder preview`` image layer.

The file is read by the core's reader (with the channel and z choice) in a
worker thread; a spin box steps through the matched files, so parameters
can be tuned on a few of them before the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from magicgui.widgets import Label, SpinBox
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Signal

__all__ = ["FOLDER_PREVIEW_LAYER", "FolderPreview"]

log = logging.getLogger(__name__)

FOLDER_PREVIEW_LAYER = "folder preview"


def _read(path: str, channel, z, request: int):
    from ...core.io.images import PlaneChoice, read_image

    plane = PlaneChoice(None if channel is None else str(channel), z)
    return request, path, np.asarray(read_image(path, plane=plane))


class FolderPreview(QObject):
    """Show the ``k``-th matched file of the folder in a layer of its own.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    choice : callable
        ``choice() -> (channel, z)`` for the reader.

    Signals
    -------
    shown(object)
        The ``folder preview`` layer after its image changed.
    """

    shown = Signal(object)

    def __init__(self, viewer, choice: Callable[[], tuple], parent=None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self._choice = choice
        self.paths: list[Path] = []
        self.step = SpinBox(label="preview file", min=0, max=0, value=0,
                            tooltip="Which matched file the preview shows (0 = the first)")
        self.name = Label(value="")
        self.active = False  #: folder mode is on
        self.paused = False  #: a run shows the folder as its stack: no preview meanwhile
        self._request = 0
        for w in self.widgets:
            w.visible = False
        self.step.changed.connect(self.load)

    @property
    def widgets(self) -> list:
        """The magicgui widgets, for the dock's form."""
        return [self.step, self.name]

    @property
    def layer(self):
        """The ``folder preview`` layer, if it is in the viewer."""
        layers = self.viewer.layers
        return layers[FOLDER_PREVIEW_LAYER] if FOLDER_PREVIEW_LAYER in layers else None

    def set_active(self, active: bool) -> None:
        """Folder mode on or off (off hides the layer and the fields)."""
        self.active = active
        for w in self.widgets:
            w.visible = active and bool(self.paths)
        layer = self.layer
        if layer is not None:
            layer.visible = active
        if active and self.paths and layer is None:
            self.load()

    def set_paths(self, paths: list[Path], load: bool = True) -> None:
        """The files that match now (``load``: show the chosen one now)."""
        self.paths = list(paths)
        with self.step.changed.blocked():
            self.step.max = max(len(self.paths) - 1, 0)
            if self.step.value > self.step.max:
                self.step.value = 0
        for w in self.widgets:
            w.visible = self.active and bool(self.paths)
        if self.active and load:
            self.load()

    def load(self, *_) -> None:
        """Read the chosen file in a worker and show it."""
        if not self.paths or not self.active or self.paused:
            return
        self._request += 1
        path = str(self.paths[int(self.step.value)])
        self.name.value = Path(path).name
        channel, z = self._choice()
        worker = create_worker(_read, path, channel, z, self._request)
        worker.returned.connect(self._on_read)
        worker.errored.connect(self._on_error)
        worker.start()

    def _on_error(self, exc: Exception) -> None:
        self.name.value = f"cannot read: {exc}"

    def _on_read(self, out) -> None:
        request, path, image = out
        if request != self._request or not self.active or self.paused:
            return
        layer = self.layer
        if layer is not None and layer.data.shape == image.shape \
                and layer.data.dtype == image.dtype:
            layer.data = image
        else:
            if layer is not None:
                self.viewer.layers.remove(layer)
            layer = self.viewer.add_image(image, name=FOLDER_PREVIEW_LAYER, colormap="gray")
        lo, hi = np.percentile(image, [0.5, 99.8]) if image.size else (0, 1)
        if hi > lo:
            layer.contrast_limits = (float(lo), float(hi))
        layer.metadata["path"] = path
        layer.visible = True
        self.shown.emit(layer)

    def hand_over(self):
        """Give up the preview's layer (to become the run's stack); return it, or ``None``.

        Putting new data into a layer that is already shown costs napari much
        less than adding a layer and removing another (each builds or frees
        its OpenGL programs and controls: 0.2-0.5 s of the window's thread).
        """
        self._request += 1  # a read still in flight must not touch it
        self.paused = True  # until the run ends (the dock resumes it)
        layer = self.layer
        if layer is not None:
            layer.name = f"{FOLDER_PREVIEW_LAYER} (handed over)"
        return layer

    def remove(self) -> None:
        """Take the layer out of the viewer (the run's stack replaces it)."""
        self._request += 1  # a read still in flight must not bring it back
        layer = self.layer
        if layer is not None:
            self.viewer.layers.remove(layer)
