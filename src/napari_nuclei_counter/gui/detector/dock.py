"""The "Nuclei detector" dock: tune on a live preview, run a plate, see the results.

The dock assembles its parts, each in its own module: the form
(:mod:`._form`), the parameters (:mod:`._parameters`), the live preview
(:mod:`._preview`), the folder fields, channel picker and folder preview
(:mod:`._folder`, :mod:`._channels`, :mod:`._folder_preview`), the run and
the results it keeps (:mod:`._dock_run` over :mod:`._run`, the core's run
pipeline in a worker thread), the progress (:mod:`._progress`) and the
``nuclei`` Points layer (:mod:`._points`). Everything slow runs off the GUI
thread; the GUI thread only moves numbers into widgets and layers.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog, QWidget

from ..._reader import META_KEY
from ...core.params import DetectionParams
from ...core.results.tables import ImageResult
from ...core.results.writer import write_results
from ..registry import store_for
from .folder_preview import FOLDER_PREVIEW_LAYER
from .form import add_scoring, build_form
from .parameters import ParametersPanel
from .points import RESULTS_LAYER, PointsSync
from .preview import PREVIEW_LAYER, PreviewController
from .run_panel import RunMixin
from .run_thread import RunController, save_in_worker

if TYPE_CHECKING:
    import napari

    from ...core.run.pipeline import Run

__all__ = ["NucleiCounterWidget", "PREVIEW_LAYER", "RESULTS_LAYER"]

log = logging.getLogger(__name__)

#: how often the dock looks whether the ``nuclei`` layer may follow the results, ms
POINTS_INTERVAL_MS = 250
#: the names of the views' docks; they open as tabs beside the detector
GALLERY, PLATE_MAP = "Nuclei gallery", "Plate map"


class NucleiCounterWidget(RunMixin, QWidget):
    """Tune the three parameters on a live preview and run the whole plate.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        #: the last run's results, shared with the gallery and plate map of this viewer
        self.store = store_for(napari_viewer)
        self.run_layer = None  #: the image layer of the results shown
        self.run_layer_next = None  #: the image layer of the run going on
        self.parameters = ParametersPanel(self)
        self.sigma = self.parameters.sigma
        self.min_distance = self.parameters.min_distance
        self.threshold = self.parameters.threshold
        self.runner = RunController(self)
        build_form(self)
        self._points_timer = QTimer(self)
        self._points_timer.setInterval(POINTS_INTERVAL_MS)
        self.preview = PreviewController(
            self.viewer, layer=lambda: self.preview_layer, plane=self._current_plane,
            params=self.params, enabled=lambda: self.preview_check.value,
            show_text=self._set_preview_text, parent=self)
        self.points = PointsSync(self.viewer, self.store, run_layer=lambda: self.run_layer,
                                 busy=lambda: self.running, on_edited=self._on_hand_edits)
        self._summary: str | None = None  # the run's summary while its layer is built
        create_worker(_import_distributed, _start_thread=True)
        add_scoring(self)
        self._connect()
        self._update_source_visibility()
        self.parameters.restore()
        self._on_image_changed()

    def _connect(self) -> None:
        self.parameters.changed.connect(self.preview.schedule)
        self.preview_check.changed.connect(self._on_preview_toggled)
        self.image_combo.changed.connect(self._on_image_changed)
        self.source.changed.connect(self._update_source_visibility)
        self.backend.changed.connect(self._update_source_visibility)
        self.folder_picker.matched.connect(self._on_folder_matched)
        self.channels.changed.connect(self.folder_preview.load)
        self.channels.described.connect(self.folder_preview.load)  # read with the choice
        self.folder_preview.shown.connect(self._on_folder_preview_shown)
        self.run_button.clicked.connect(self.toggle_run)
        self.save_button.clicked.connect(self._ask_save_tables)
        self.clear_button.clicked.connect(self.clear_results)
        self.gallery_button.clicked.connect(self.open_gallery)
        self.plate_button.clicked.connect(self.open_plate_map)
        self.table.clicked.connect(self._on_table_clicked)
        self._points_timer.timeout.connect(self.points.flush)
        self.points.ready.append(self._on_points_ready)
        points = self.points  # a plain callable: the dock is half gone when it runs
        self.destroyed.connect(lambda *_: points.cancel_build())
        self.runner.layer_made.connect(self._on_layer_made)
        self.runner.started.connect(self._on_run_started)
        self.runner.results.connect(self._on_results)
        self.runner.failed.connect(self._on_run_error)
        self.runner.finished.connect(self._on_run_finished)
        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        self.viewer.layers.events.removed.connect(self._on_layers_changed)
        self.viewer.dims.events.current_step.connect(self.preview.schedule)

    @property
    def last_run(self) -> Run | None:
        """The run going on, or the last one."""
        return self.runner.run

    @property
    def results(self) -> dict[int, ImageResult]:
        """The results shown by image index (see :attr:`store`)."""
        return self.store.results

    # ------------------------------------------------------------ parameters
    def params(self) -> DetectionParams:
        """The parameters currently set in the dock."""
        return self.parameters.params()

    def apply_params(self, params: DetectionParams) -> None:
        """Set the sliders (widening the threshold range if needed)."""
        self.parameters.apply(params)

    def save_preset(self, path: str | Path) -> None:
        """Write the current parameters as a JSON preset."""
        self.parameters.save_preset(path)

    def load_preset(self, path: str | Path) -> DetectionParams:
        """Read a JSON preset and apply it (``ValueError`` for an invalid one)."""
        return self.parameters.load_preset(path)

    # ----------------------------------------------------------------- layers
    def _image_layer_choices(self, *_):
        from napari.layers import Image

        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, Image) and not layer.rgb
                and layer.name != FOLDER_PREVIEW_LAYER]

    def _on_layers_changed(self, event=None) -> None:
        self.image_combo.reset_choices()
        layer = getattr(event, "value", None)
        if (event is not None and event.type == "inserted" and layer is not None
                and layer in [c[1] for c in self._image_layer_choices()]):
            self.image_combo.value = layer  # a newly opened image becomes the target

    @property
    def image_layer(self):
        """The selected image layer, or ``None``."""
        return self.image_combo.value

    @property
    def preview_layer(self):
        """The layer the live preview works on: the folder's file in folder mode."""
        if self.source.value == "folder":
            return self.folder_preview.layer
        return self.image_layer

    def _on_image_changed(self, *_) -> None:
        self.preview.forget()
        layer = self.preview_layer
        if layer is None:
            self.preview_label.value = ("Choose a folder of images." if
                                        self.source.value == "folder" else
                                        "Open an image or a folder of images (File > Open).")
            self.preview.set_points(np.empty((0, 2)))
            return
        if layer.data.ndim == 3 and META_KEY in layer.metadata \
                and tuple(layer.axis_labels[:1]) != ("image",):
            layer.axis_labels = ("image", *layer.axis_labels[1:])  # the slider's name
        suggested = layer.metadata.get(META_KEY, {}).get("suggested_params")
        if suggested:  # the image's own parameters, then the range around them
            self.apply_params(DetectionParams.from_dict(suggested))
        _, plane = self._current_plane(layer)
        if plane is not None:
            note = self.parameters.fit_threshold_range(np.asarray(plane))
            if note:
                self.status.value = note
        self.preview.start()  # at once: no slider is moving

    def current_index(self, layer=None) -> int:
        """Index of the displayed plane of a stack layer (0 for a 2-D image)."""
        layer = layer or self.preview_layer
        if layer is None or layer.data.ndim < 3:
            return 0
        axis = self.viewer.dims.ndim - layer.ndim  # leading world axes the layer lacks
        step = self.viewer.dims.current_step[axis]
        return int(min(max(step, 0), layer.data.shape[0] - 1))

    def _current_plane(self, layer):
        data = layer.data
        index = self.current_index(layer)
        if data.ndim == 2:
            return index, data
        if data.ndim == 3:
            return index, data[index]
        return index, None

    # ---------------------------------------------------------------- preview
    def _on_preview_toggled(self, on: bool) -> None:
        if on:
            self.preview.schedule()
        else:
            self.preview.hide()

    def _set_preview_text(self, text: str) -> None:
        self.preview_label.value = text

    # ------------------------------------------------------------- folder run
    def _update_source_visibility(self, *_) -> None:
        self.scheduler.enabled = self.backend.value == "Dask"
        folder = self.source.value == "folder"
        self.folder_picker.set_visible(folder)
        self.image_combo.visible = not folder
        if folder:
            self.channels.refresh_visibility()
        else:
            self.channels.hide()
        self.folder_preview.set_active(folder)
        self._on_image_changed()

    def _on_folder_matched(self, paths: list) -> None:
        self.folder_preview.set_paths(paths, load=False)  # once the channels are known
        self.channels.describe(paths[0] if paths else None)
        if not paths and self.source.value == "folder":
            self.preview_label.value = "No file matches: check the folder and the pattern."

    def _on_folder_preview_shown(self, layer) -> None:
        if self.source.value != "folder":
            return
        first = layer.metadata.get("preview_seen") is None
        layer.metadata["preview_seen"] = True
        if first:
            self._on_image_changed()  # fits the threshold range to the folder's images
        else:
            self.preview.forget()
            self.preview.start()

    def folder_paths(self) -> list[Path]:
        """The images in the chosen folder that match the pattern (lists the folder)."""
        return self.folder_picker.paths()

    def update_match_count(self, *_) -> int:
        """Show how many files a run on the folder would process (lists the folder now)."""
        return self.folder_picker.update_match_count()

    # ---------------------------------------------------------------- results
    def results_frame(self):
        """All detections of the last run as Points coordinates and features."""
        return self.points.frame()

    def show_results_points(self) -> None:
        """Put the run's detections into the single ``nuclei`` Points layer."""
        self.points.show()

    def _on_table_clicked(self, index) -> None:
        self.show_image(index.row())

    def show_image(self, index: int) -> None:
        """Move the viewer to image ``index`` of the run's stack."""
        layer = self.run_layer or self.image_layer
        if layer is None or layer.data.ndim < 3:
            return
        axis = self.viewer.dims.ndim - layer.ndim
        self.viewer.dims.set_current_step(axis, int(index))

    def save_tables(self, folder: str | Path) -> Path:
        """Write ``images.csv``, ``nuclei.csv``, ``wells.csv`` and ``run.json`` of the last run.

        Blocks while it writes; *Save tables…* runs it in a worker thread.
        """
        results = self.store.ordered()
        info = {"command": "napari-nuclei-counter widget",
                "source": getattr(self.run_layer, "name", "")}
        params = self.store.params or self.params()
        out = write_results(folder, results, params, info)
        self.unsaved = self.edited = False
        return out

    def _ask_save_tables(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save tables into folder")
        if folder:
            save_in_worker(self.save_tables, folder, done=self._on_saved,
                           error=lambda exc: show_warning(f"Could not save the tables: {exc}"))

    def _on_saved(self, out) -> None:
        show_info(f"Tables saved in {out}")

    def _open_view(self, name: str, factory):
        """Dock a view as a tab beside the detector and the other view (or raise its tab)."""
        docked = self.viewer.window.dock_widgets
        if name in docked:
            widget = docked[name]
            dock = widget.parent()
            if dock is not None:
                dock.show()
                dock.raise_()
            else:
                widget.show()
            return widget
        widget = factory(self.viewer, store=self.store)
        dock = self.viewer.window.add_dock_widget(widget, name=name, area="right", tabify=True)
        dock.raise_()
        return widget

    def open_gallery(self, *_):
        """Dock the gallery of this run's images (or show it if docked)."""
        from ..views.gallery import GalleryWidget

        return self._open_view(GALLERY, GalleryWidget)

    def open_plate_map(self, *_):
        """Dock the plate map of this run (or show it if docked)."""
        from ..views.plate_map import PlateMapWidget

        return self._open_view(PLATE_MAP, PlateMapWidget)


def _import_distributed() -> None:
    """Import dask.distributed, if installed, off the window's thread.

    dask looks for a distributed client before every compute, and the first
    look imports the package: 0.3-0.5 s of the window's thread when napari
    shows the first plane of a lazy stack (the run's folder, at its start).
    """
    try:
        if importlib.util.find_spec("distributed") is not None:
            import distributed  # noqa: F401
    except Exception as exc:  # only a head start; dask imports it anyway
        log.debug("distributed not imported ahead: %s", exc)
