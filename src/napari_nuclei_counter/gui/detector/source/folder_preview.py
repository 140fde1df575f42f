"""Folder mode's preview: one image of the folder at a time in a ``folder preview`` layer.

The image is read by the core's reader (with the model's channel, z and time
choice) in a worker thread; a spin box steps through the folder's images, so
parameters can be tuned on a few of them before the run. The images are
those a run lists: a file, or each scene and time point of a file that holds
several (``FILE#SCENE``, ``FILE#tT``, only the chosen time point when there
is a choice), listed by the core (:func:`~napari_nuclei_counter.core.io.sources.list_images`)
when the file is first shown, so only the files looked at are opened.
The layer is ``model.folder_layer``; a run on the folder takes it over as
its stack (and sets ``model.folder_layer`` to ``None``); no file is read
while a run goes on. After the run, the stack is ``model.folder_layer``:
choosing an image of it moves the viewer to that image instead of reading it
again, and an image not in it is shown in a new ``folder preview`` layer
(the stack is left alone).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from magicgui.widgets import Label, SpinBox
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject

from ...._reader import META_KEY
from ..layout import ElidedText
from ..model import DetectorModel

__all__ = ["FOLDER_PREVIEW_LAYER", "FolderPreview"]

log = logging.getLogger(__name__)

FOLDER_PREVIEW_LAYER = "folder preview"


def _read(name: str, listed: bool, channel, z, t, request: int):
    """``(request, names, image)``: the images ``name`` stands for, the first one's pixels.

    ``names`` is ``[name]`` when ``name`` is one image as a run lists it
    (``listed``), else the core's listing of the file: one name per scene and
    time point (only ``t`` when chosen).
    """
    from ....core.io.images import PlaneChoice, read_image
    from ....core.io.sources import list_images

    names = [name] if listed else list_images(name, "*", resolve=False, t=t).labels
    plane = PlaneChoice(None if channel is None else str(channel), z, t)
    return request, names, np.asarray(read_image(names[0], plane=plane))


class FolderPreview(QObject):
    """Show the ``k``-th image of the folder in a layer of its own.

    A new layer becomes ``model.folder_layer``; another image shown in the
    same layer emits ``model.target_reloaded``.

    Attributes
    ----------
    paths : list of pathlib.Path
        The matched files.
    entries : list of (str, bool)
        What *preview file* steps through: a file not opened yet
        (``False``), or one image of the run's listing (``True``): a file,
        ``FILE#SCENE``, ``FILE#tT``. A file is replaced by its images when
        it is first shown.

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
        self.entries: list[tuple[str, bool]] = []
        self.step = SpinBox(label="preview file", min=0, max=0, value=0,
                            tooltip="Which image of the folder the preview shows (0 = the "
                                    "first; each scene and time point of a file is one)")
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
        model.events.t.connect(self._relist)

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
        self._request += 1  # a listing in flight is of the files before
        self.entries = [(str(p), False) for p in self.paths]
        self._set_step(self.step.value if self.step.value < len(self.entries) else 0)
        for w in self.widgets:
            w.visible = self.active and bool(self.paths)
        if self.active and load:
            self.load()

    def _set_step(self, value: int) -> None:
        """Fit the spin box to :attr:`entries` and put it at ``value``, without loading."""
        with self.step.changed.blocked():
            self.step.max = max(len(self.entries) - 1, 0)
            self.step.value = value

    def _relist(self) -> None:
        """Another time choice: each file is listed again (the picker's change reloads)."""
        name = self.entries[int(self.step.value)][0] if self.entries else ""
        files = [str(p) for p in self.paths]
        k = next((i for i, f in enumerate(files) if name == f or name.startswith(f + "#")), 0)
        self._request += 1
        self.entries = [(f, False) for f in files]
        self._set_step(k)

    def _on_folder_layer(self, layer) -> None:
        if layer is not self._own:
            self._own = None  # a run took it as its stack: not a file's layer any more

    def _on_running(self, running: bool) -> None:
        if running:
            self._request += 1  # a read in flight must not bring a layer back after the run

    def load(self, *_) -> None:
        """Read the chosen image in a worker and show it."""
        if not self.entries or not self.active or self.paused:
            return
        self._request += 1
        name, listed = self.entries[int(self.step.value)]
        self._name_text.set_text(Path(name).name)
        if listed and self._step_stack(name):
            return
        model = self.model
        worker = create_worker(_read, name, listed, model.channel, model.z, model.t,
                               self._request)
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
        request, names, image = out
        if request != self._request or not self.active or self.paused:
            return
        k = int(self.step.value)
        if not self.entries[k][1]:  # the file's images take its place
            self.entries[k:k + 1] = [(name, True) for name in names]
            self._set_step(k)
        path = names[0]
        self._name_text.set_text(Path(path).name)
        if self._step_stack(path):
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
