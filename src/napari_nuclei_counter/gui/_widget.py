"""The "Nuclei detector" dock: tune on a live preview, run a plate, see the results.

The dock assembles four parts, each in its own module: the parameters
(:mod:`._parameters`), the live preview (:mod:`._preview`), the run
(:mod:`._run`, the core's run pipeline in a worker thread) and the ``nuclei``
Points layer (:mod:`._points`), plus the folder fields (:mod:`._folder`).
Everything slow runs off the GUI thread; the GUI thread only moves numbers
into widgets and layers.

This module is longer than 400 lines: about a third is the dock's form (every
control with its tooltip, in the order the user sees them); the rest is the
glue between the parts, whose logic lives in their own modules.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, LineEdit
from magicgui.widgets import PushButton, RadioButtons, SpinBox
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QVBoxLayout, QWidget
from superqt import QCollapsible

from .._reader import META_KEY
from ..core.backends import default_workers
from ..core.discovery import ImageMeta
from ..core.params import DetectionParams
from ..core.results import ImageResult
from ..core.run import Run
from ..core.writer import write_results
from ._folder import FolderPicker
from ._parameters import ParametersPanel
from ._points import RESULTS_LAYER, PointsSync
from ._preview import PREVIEW_LAYER, PreviewController
from ._registry import store_for
from ._run import RunController, save_in_worker
from ._table import make_image_table

if TYPE_CHECKING:
    import napari

__all__ = ["NucleiCounterWidget", "PREVIEW_LAYER", "RESULTS_LAYER"]

log = logging.getLogger(__name__)

#: how often the ``nuclei`` layer follows the results during a run, ms
POINTS_INTERVAL_MS = 1000


class NucleiCounterWidget(QWidget):
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
        self.run_layer = None  #: the image layer the last run was on
        self.parameters = ParametersPanel(self)
        self.sigma = self.parameters.sigma
        self.min_distance = self.parameters.min_distance
        self.threshold = self.parameters.threshold
        self.runner = RunController(self)
        self._build()
        self.preview = PreviewController(
            self.viewer, layer=lambda: self.image_layer, plane=self._current_plane,
            params=self.params, enabled=lambda: self.preview_check.value,
            show_text=self._set_preview_text, parent=self)
        self.points = PointsSync(self.viewer, self.store, run_layer=lambda: self.run_layer,
                                 busy=lambda: self.running, on_edited=self._on_hand_edits)
        self._connect()
        self.parameters.restore()
        self._on_image_changed()

    # ------------------------------------------------------------------ build
    def _build(self) -> None:
        self.image_combo = ComboBox(label="image", choices=self._image_layer_choices,
                                    tooltip="The image layer to preview and to run on")
        self.preview_check = CheckBox(text="Live preview", value=True,
                                      tooltip="Show the detections on the image on screen "
                                              "while you move the sliders")
        self.preview_label = Label(value="")
        self.source = RadioButtons(label="run on", choices=["image layer", "folder"],
                                   value="image layer", orientation="horizontal",
                                   tooltip="Every image of the chosen layer (a stack), or every "
                                           "matching file of a folder")
        self.folder_picker = FolderPicker(self)
        self.folder = self.folder_picker.folder
        self.pattern = self.folder_picker.pattern
        self.match_label = self.folder_picker.match_label
        self.workers = SpinBox(label="workers", min=0, max=max(64, default_workers()),
                               value=default_workers(),
                               tooltip="Worker processes (default: all cores); 0 = in this "
                                       "process, for debugging")
        self.run_button = PushButton(text="Run")
        self.status = Label(value="")
        self.controls = Container(widgets=[
            self.image_combo, self.sigma, self.min_distance, self.threshold, self.preview_check,
            self.preview_label, self.source, self.folder, self.pattern, self.match_label,
            self.run_button, self.status,
        ], labels=True)
        # Advanced: where the work runs
        self.backend = RadioButtons(label="run with", choices=["local processes", "Dask"],
                                    value="local processes", orientation="horizontal",
                                    tooltip="Worker processes on this computer, or a Dask "
                                            "cluster (for images on a shared file system)")
        self.scheduler = LineEdit(label="scheduler", value="",
                                  tooltip="Address of a running Dask scheduler, e.g. "
                                          "tcp://10.0.0.5:8786; empty: a local Dask cluster")
        self.output = FileEdit(label="write tables to", mode="d",
                               tooltip="Optional: a folder where the tables are written as the "
                                       "run goes (like the command line), so a long run can be "
                                       "resumed")
        self.resume_check = CheckBox(text="resume: skip images already done there",
                                     tooltip="Skip images already processed in that folder with "
                                             "the same parameters (same file size and time)")
        self.advanced_controls = Container(widgets=[self.workers, self.backend, self.scheduler,
                                                    self.output, self.resume_check],
                                           labels=True)
        self.advanced = QCollapsible("Advanced")
        self.advanced.addWidget(self.advanced_controls.native)

        #: one row per image of the run, a view of :attr:`store` (see ``_table.py``)
        self.table = make_image_table(self.store, self)
        self.save_button = QPushButton("Save tables…")
        self.save_button.setToolTip("Write images.csv, nuclei.csv, wells.csv and run.json into "
                                    "a folder")
        self.save_button.setEnabled(False)
        views = QHBoxLayout()
        self.gallery_button = QPushButton("Gallery")
        self.gallery_button.setToolTip("Thumbnails of every image sorted by nuclei count")
        self.plate_button = QPushButton("Plate map")
        self.plate_button.setToolTip("Wells coloured by nuclei count")
        views.addWidget(self.gallery_button)
        views.addWidget(self.plate_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.controls.native)
        layout.addWidget(self.advanced)
        layout.addLayout(self.parameters.presets)
        layout.addWidget(self.table, stretch=1)
        layout.addLayout(views)
        layout.addWidget(self.save_button)

        self._points_timer = QTimer(self)
        self._points_timer.setInterval(POINTS_INTERVAL_MS)
        self._update_source_visibility()

    def _connect(self) -> None:
        self.parameters.changed.connect(self.preview.schedule)
        self.preview_check.changed.connect(self._on_preview_toggled)
        self.image_combo.changed.connect(self._on_image_changed)
        self.source.changed.connect(self._update_source_visibility)
        self.backend.changed.connect(self._update_source_visibility)
        self.run_button.clicked.connect(self.toggle_run)
        self.save_button.clicked.connect(self._ask_save_tables)
        self.gallery_button.clicked.connect(self.open_gallery)
        self.plate_button.clicked.connect(self.open_plate_map)
        self.table.clicked.connect(self._on_table_clicked)
        self._points_timer.timeout.connect(self.points.flush)
        self.runner.layer_made.connect(self._on_layer_made)
        self.runner.started.connect(self._on_run_started)
        self.runner.results.connect(self._on_results)
        self.runner.failed.connect(self._on_run_error)
        self.runner.finished.connect(self._on_run_finished)
        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        self.viewer.layers.events.removed.connect(self._on_layers_changed)
        self.viewer.dims.events.current_step.connect(self.preview.schedule)

    @property
    def results(self) -> dict[int, ImageResult]:
        """The last run's results by image index (see :attr:`store`)."""
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
                if isinstance(layer, Image) and not layer.rgb]

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

    def _on_image_changed(self, *_) -> None:
        self.preview.cache.clear()
        layer = self.image_layer
        if layer is None:
            self.preview_label.value = "Open an image or a folder of images (File > Open)."
            self.preview.set_points(np.empty((0, 2)))
            return
        _, plane = self._current_plane(layer)
        if plane is not None:
            note = self.parameters.fit_threshold_range(np.asarray(plane))
            if note:
                self.status.value = note
        suggested = layer.metadata.get(META_KEY, {}).get("suggested_params")
        if suggested:
            self.apply_params(DetectionParams.from_dict(suggested))
        self.preview.schedule()

    def current_index(self, layer=None) -> int:
        """Index of the displayed plane of a stack layer (0 for a 2-D image)."""
        layer = layer or self.image_layer
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
        self.folder_picker.set_visible(self.source.value == "folder")

    def folder_paths(self) -> list[Path]:
        """The images in the chosen folder that match the pattern (lists the folder)."""
        return self.folder_picker.paths()

    def update_match_count(self, *_) -> int:
        """Show how many files a run on the folder would process (lists the folder now)."""
        return self.folder_picker.update_match_count()

    # ---------------------------------------------------------------- the run
    @property
    def running(self) -> bool:
        """Whether a batch is running."""
        return self.runner.running

    def toggle_run(self, *_) -> None:
        """Run, or cancel the running batch (the button does both)."""
        if self.running:
            self.cancel()
        else:
            self.start_run()

    def cancel(self) -> None:
        """Stop the running batch; the worker processes end within a second."""
        if self.runner.cancel():
            self.status.value = "Cancelling…"

    def output_folder(self) -> Path | None:
        """The folder tables are streamed to during a run, if one is set."""
        text = str(self.output.value)
        return Path(text) if text and text != "." else None

    def start_run(self):
        """Start a batch on the selected layer or folder.

        Returns
        -------
        the napari worker, or ``None`` if nothing was started.
        """
        if self.running:
            show_warning("A run is already going on; cancel it first.")
            return None
        params = self.params()
        workers = int(self.workers.value)
        dask = self.backend.value == "Dask"
        layer_name, in_memory = None, False
        opts = {"workers": workers, "cancel": threading.Event(),
                "info": {"command": "napari-nuclei-counter widget"}}
        if self.source.value == "folder":
            folder = self.folder_picker.path()
            if folder is None or not folder.is_dir():
                show_warning("Choose a folder of images first.")
                return None
            source, layer = folder, None
            layer_name = folder.name
            opts.update(pattern=self.folder_picker.glob())
        else:
            layer = self.image_layer
            if layer is None:
                show_warning("Choose an image layer first (or run on a folder).")
                return None
            paths = layer.metadata.get(META_KEY, {}).get("paths")
            if layer.data.ndim == 3 and paths and len(paths) == layer.data.shape[0]:
                source = list(paths)
            elif layer.data.ndim in (2, 3):
                if dask:
                    show_info("Images held in memory run on local processes; Dask workers "
                              "read files (open a folder to use Dask).")
                    dask = False
                planes = [layer.data] if layer.data.ndim == 2 else list(layer.data)
                source, in_memory = [np.asarray(p) for p in planes], True
                opts["labels"] = [f"{layer.name}[{i}]" for i in range(len(planes))]
            else:
                show_warning(f"Cannot run on a {layer.data.ndim}-D layer; use 2-D images or "
                             "a stack of 2-D images.")
                return None
            opts["info"]["source"] = layer.name
        if not in_memory:  # tables stream to a folder for files, like the command line
            opts.update(out=self.output_folder(),
                        resume=bool(self.output_folder() and self.resume_check.value))
        if dask:
            from .._dask import DaskBackend

            opts["backend"] = DaskBackend(self.scheduler.value.strip() or None,
                                          n_workers=workers or None)
        self.run_layer = layer
        run = Run(source, params, **opts)
        worker = self.runner.start(run, layer_name=layer_name, cancel_on=self.destroyed.connect)
        if layer is not None:  # the images are known: the table fills in at once
            self._reset_store(run, layer, opts.get("labels") or [str(p) for p in source])
        self.run_button.text = "Cancel"
        self.status.value = "Starting…"
        self.save_button.setEnabled(False)
        self._points_timer.start()
        return worker

    def _reset_store(self, run: Run, layer, labels: list[str]) -> None:
        meta = [ImageMeta(**m) for m in layer.metadata.get(META_KEY, {}).get("meta", [])]
        self.store.reset(labels, meta if len(meta) == len(labels) else None, run.params, layer)

    def _on_layer_made(self, layer_data: tuple) -> None:
        data, kwargs, _ = layer_data
        layer = self.viewer.add_image(data, **kwargs)
        self.image_combo.value = layer
        self.run_layer = layer

    def _on_run_started(self, run: Run) -> None:
        if self.store.labels != run.labels or self.store.source is not self.run_layer:
            self._reset_store(run, self.run_layer, run.labels)
        self.status.value = f"Running on {run.n_images} images…"

    def _on_results(self, results: list[ImageResult]) -> None:
        for result in results:
            self.store.add(result)  # the table, gallery and plate map follow the store
        self.points.dirty = True
        if not self.running:
            return  # a late result after the summary: keep the summary
        done = len(self.results)
        rate = self.runner.rate(done)
        self.status.value = f"{done} / {self.runner.run.n_images} images ({rate:.1f} images/s)"
        self.runner.set_description(f"Detecting nuclei ({rate:.1f} images/s)")

    def _on_run_error(self, exc: Exception) -> None:
        show_warning(f"The run stopped with an error: {exc}")

    def _on_run_finished(self, run: Run | None) -> None:
        self._points_timer.stop()
        self.points.flush(force=True)
        self.run_button.text = "Run"
        self.save_button.setEnabled(bool(self.results))
        if run is None:
            self.status.value = "The run stopped with an error."
            return
        done = len(self.results)
        failed = [r for r in self.results.values() if not r.ok]
        nuclei = sum(r.count or 0 for r in self.results.values())
        seconds = run.summary.seconds if run.summary is not None else 0.0
        cancelled = run.summary is None or run.summary.cancelled
        summary = (f"{'Cancelled' if cancelled else 'Done'}: {done} of {run.n_images} images, "
                   f"{nuclei} nuclei, {seconds:.1f} s")
        self.status.value = summary + (f", {len(failed)} failed" if failed else "")
        if failed:
            first = failed[0]
            show_warning(f"{len(failed)} of {done} images failed, e.g. "
                         f"{Path(first.path).name}: {first.error}. See the table for all.")
        else:
            show_info(summary)

    def _on_hand_edits(self, changed: list[int]) -> None:
        self.status.value = (f"Edited by hand: image(s) {', '.join(str(i + 1) for i in changed)}"
                             "; counts and tables follow")

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
        return write_results(folder, results, params, info)

    def _ask_save_tables(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save tables into folder")
        if folder:
            save_in_worker(self.save_tables, folder,
                           done=lambda out: show_info(f"Tables saved in {out}"),
                           error=lambda exc: show_warning(f"Could not save the tables: {exc}"))

    def _open_view(self, name: str, factory):
        docked = self.viewer.window.dock_widgets
        if name in docked:
            widget = docked[name]
            widget.parent().show() if widget.parent() is not None else widget.show()
            return widget
        widget = factory(self.viewer, store=self.store)
        self.viewer.window.add_dock_widget(widget, name=name, area="right")
        return widget

    def open_gallery(self, *_):
        """Dock the gallery of this run's images (or show it if docked)."""
        from ._gallery import GalleryWidget

        return self._open_view("Nuclei gallery", GalleryWidget)

    def open_plate_map(self, *_):
        """Dock the plate map of this run (or show it if docked)."""
        from ._plate_map import PlateMapWidget

        return self._open_view("Plate map", PlateMapWidget)
