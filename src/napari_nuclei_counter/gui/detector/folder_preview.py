"""Folder mode's preview: one matched file at a time in a ``folder preview`` image layer.

The file is read by the core's reader (with the model's channel and z
choice) in a worker thread; a spin box steps through the matched files, so
parameters can be tuned on a few of them before the run. The layer is
``model.folder_layer``; a run on the folder takes it over as its stack (and
sets ``model.folder_layer`` to ``None``); no file is read while a run goes on.
After the run, the stack is ``model.folder_layer``: choosing a file of it
moves the viewer to that image instead of reading it again, and a file not
in it is shown in a new ``folder preview`` layer (the stack is left alone).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from magicgui.widgets import Label, SpinBox
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject

from ..._reader import META_KEY
from .layout import ElidedText
from .model import DetectorModel

__all__ = ["FOLDER_PREVIEW_LAYER", "FolderPreview"]

log = logging.getLogger(__name__)

FOLDER_PREVIEW_LAYER = "folder preview"


def _read(path: str, channel, z, request: int):
    from ...core.io.images import PlaneChoice, read_image

    plane = PlaneChoice(None if channel is None else str(channel), z)
    return request, path, np.asarray(read_image(path, plane=plane))


class FolderPreview(QObject):
    """Show the ``k``-th matched file of the folder in a layer of its own.

    A new layer becomes ``model.folder_layer``; another file shown in the
    same layer emits ``model.target_reloaded``.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    model : DetectorModel
    """

    def __init__(self, viewer, model: DetectorModel, parent=None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.model = model
        self.paths: list[Path] = []
        self.step = SpinBox(label="preview file", min=0, max=0, value=0,
                            tooltip="Which matched file the preview shows (0 = the first)")
        self.name = Label(value="")
        self._name_text = ElidedText(self.name.native)  # a long file name is elided, not clipped
        self.active = False  #: folder mode is on
        self._own = None  # the layer this part made (the others it neither hides nor removes)
        self._request = 0
        for w in self.widgets:
            w.visible = False
        self.step.changed.connect(self.load)
        model.events.running.connect(self._on_running)
        model.events.folder_layer.connect(self._on_folder_layer)

    @property
    def widgets(self) -> list:
        """The magicgui widgets, for the dock's form."""
        return [self.step, self.name]

    @property
    def paused(self) -> bool:
        """A run goes on (and may show the folder as its stack): no file is read meanwhile."""
        return self.model.running

    @property
    def layer(self):
        """The ``folder preview`` layer, if it is in the viewer."""
        layer = self.model.folder_layer
        return layer if layer is not None and layer in self.viewer.layers else None

    def set_active(self, active: bool) -> None:
        """Folder mode on or off (off hides the layer and the fields)."""
        self.active = active
        for w in self.widgets:
            w.visible = active and bool(self.paths)
        layer = self.layer
        if layer is not None and layer is self._own:
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

    def _on_folder_layer(self, layer) -> None:
        if layer is not self._own:
            self._own = None  # a run took it as its stack: not a file's layer any more

    def _on_running(self, running: bool) -> None:
        if running:
            self._request += 1  # a read in flight must not bring a layer back after the run

    def load(self, *_) -> None:
        """Read the chosen file in a worker and show it."""
        if not self.paths or not self.active or self.paused:
            return
        self._request += 1
        path = str(self.paths[int(self.step.value)])
        self._name_text.set_text(Path(path).name)
        if self._step_stack(path):
            return
        worker = create_worker(_read, path, self.model.channel, self.model.z, self._request)
        worker.returned.connect(self._on_read)
        worker.errored.connect(self._on_error)
        worker.start()

    def _step_stack(self, path: str) -> bool:
        """Show ``path`` in the run's stack, if the folder's layer is one that holds it."""
        layer = self.layer
        if layer is None or layer is self._own or layer.data.ndim != 3:
            return False
        paths = layer.metadata.get(META_KEY, {}).get("paths") or []
        if path not in paths:
            return False
        step = list(self.viewer.dims.current_step)
        step[self.viewer.dims.ndim - layer.data.ndim] = paths.index(path)
        self.viewer.dims.current_step = tuple(step)
        return True

    def _on_error(self, exc: Exception) -> None:
        self._name_text.set_text(f"cannot read: {exc}")

    def _on_read(self, out) -> None:
        request, path, image = out
        if request != self._request or not self.active or self.paused:
            return
        layer = self.layer
        if layer is not None and layer is not self._own:
            layer = None  # the run's stack stays as it is: the file gets a layer of its own
        if layer is not None and layer.data.shape == image.shape \
                and layer.data.dtype == image.dtype:
            layer.data = image
        else:
            if layer is not None:
                self.viewer.layers.remove(layer)
            layer = self.viewer.add_image(image, name=FOLDER_PREVIEW_LAYER, colormap="gray")
            self._own = layer
        lo, hi = np.percentile(image, [0.5, 99.8]) if image.size else (0, 1)
        if hi > lo:
            layer.contrast_limits = (float(lo), float(hi))
        layer.metadata["path"] = path
        layer.visible = True
        if layer is self.model.folder_layer:
            self.model.target_reloaded.emit()  # another file in the same layer
        else:
            self.model.folder_layer = layer
