"""The "Nuclei detector" dock widget: tune on a live preview, run a plate, see the results.

Everything slow runs off the GUI thread: the preview in a napari
``thread_worker``, the batch on the core's process pool driven from a
generator ``thread_worker``. The GUI thread only moves numbers into widgets
and layers.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSlider,
    Label,
    LineEdit,
    PushButton,
    RadioButtons,
    Slider,
    SpinBox,
)
from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer
from superqt import QCollapsible
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .._reader import META_KEY, points_layer_data, stack_layer_data
from ..core.batch import default_workers, run_batch, run_batch_arrays
from ..core.discovery import BBBC021_PATTERN, ImageMeta, find_images
from ..core.params import BBBC021_PRESET, DetectionParams
from ..core.preview import PreviewCache
from ..core.results import ImageResult
from ..core.resume import load_partial_results, resume_state
from ..core.writer import ResultsWriter, write_results
from ..core.store import ResultsStore
from ._settings import save_settings, saved_params
from ._table import make_image_table

if TYPE_CHECKING:
    import napari

__all__ = ["NucleiCounterWidget"]

log = logging.getLogger(__name__)

RESULTS_LAYER = "nuclei"
PREVIEW_LAYER = "nuclei preview"


def _batch_job(results, interval: float = 0.1):
    """Generator run by the batch ``thread_worker``: relays the engine's results in batches.

    A list of results goes to the GUI at most every ``interval`` seconds:
    napari's progress bar processes events on each update, so one update per
    image lets hundreds of queued updates nest into each other when images are
    fast.
    """
    batch: list = []
    last = 0.0
    for r in results:
        batch.append(r)
        now = time.monotonic()
        if now - last >= interval:
            yield batch
            batch, last = [], now
    if batch:
        yield batch


def _reindexed(results, positions: list[int]):
    """Relay results, giving each the position of its image in the whole run."""
    try:
        for r in results:
            r.index = positions[r.index]
            yield r
    finally:
        results.close()


def _close_quietly(gen) -> None:
    """Close the engine's generator: its ``finally`` stops the worker processes."""
    try:
        gen.close()
    except ValueError:  # still running in the worker thread: the cancel event stops it
        pass


def _preview_job(cache: PreviewCache, plane, params: DetectionParams, key, request: int):
    """Function run by the preview ``thread_worker`` (reads the plane, detects)."""
    image = np.asarray(plane)
    t0 = time.perf_counter()
    det = cache.detect(image, params, key=key)
    return request, key, det, time.perf_counter() - t0


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
        self.preview_cache = PreviewCache()
        self.store = ResultsStore()  #: the last run's results, shared with gallery and plate map
        self.run_layer = None  # the image layer the last batch ran on
        self._updating_points = False
        self._writer: ResultsWriter | None = None
        self._pbar = None  # napari's progress bar of the running batch
        self.worker = None  # the batch worker while a run is going on
        self._cancel: threading.Event | None = None
        self._run_gen = None
        self._run_total = 0
        self._run_t0 = 0.0
        self._run_params: DetectionParams | None = None
        self._points_dirty = False
        self._preview_worker = None
        self._preview_pending = False
        self._preview_request = 0
        self.preview_seconds = float("nan")  #: time of the last preview computation
        self._build()
        self._connect()
        self.apply_params(saved_params())
        self._on_image_changed()

    # ------------------------------------------------------------------ build
    def _build(self) -> None:
        p = DetectionParams()
        self.image_combo = ComboBox(label="image", choices=self._image_layer_choices,
                                    tooltip="The image layer to preview and to run on")
        self.sigma = FloatSlider(label="sigma (px)", min=0.5, max=20.0, step=0.1, value=p.sigma,
                                 tooltip="Blur strength: Gaussian standard deviation in pixels. "
                                         "About a quarter of a nucleus diameter. Larger merges "
                                         "close nuclei, smaller splits textured ones.")
        self.min_distance = Slider(label="min distance (px)", min=1, max=50, value=p.min_distance,
                                   tooltip="Minimum distance between two nucleus centres, in "
                                           "pixels; also the image border where no centre is "
                                           "reported.")
        self.threshold = FloatSlider(label="threshold", min=0.0, max=65535.0, step=1.0,
                                     value=p.threshold_abs,
                                     tooltip="A centre must be brighter than this after "
                                             "blurring, in the image's intensity units "
                                             "(0-65535 for 16-bit, 0-255 for 8-bit images).")
        self.preview_check = CheckBox(text="Live preview", value=True,
                                      tooltip="Show the detections on the image on screen "
                                              "while you move the sliders")
        self.preview_label = Label(value="")
        self.source = RadioButtons(label="run on", choices=["image layer", "folder"],
                                   value="image layer", orientation="horizontal",
                                   tooltip="Every image of the chosen layer (a stack), or every "
                                           "matching file of a folder")
        self.folder = FileEdit(label="folder", mode="d",
                               tooltip="Folder of images to process (not loaded into memory)")
        self.pattern = LineEdit(label="pattern", value=BBBC021_PATTERN,
                                tooltip="File-name pattern, case-insensitive; the default is "
                                        "BBBC021's DAPI channel w1")
        self.match_label = Label(value="")
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

        presets = QHBoxLayout()
        self.bbbc_button = QPushButton("BBBC021")
        self.bbbc_button.setToolTip("sigma 4 px, min distance 6 px, threshold 1000")
        self.defaults_button = QPushButton("Defaults")
        self.save_preset_button = QPushButton("Save preset…")
        self.load_preset_button = QPushButton("Load preset…")
        for b in (self.bbbc_button, self.defaults_button, self.save_preset_button,
                  self.load_preset_button):
            presets.addWidget(b)

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
        layout.addLayout(presets)
        layout.addWidget(self.table, stretch=1)
        layout.addLayout(views)
        layout.addWidget(self.save_button)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(60)
        self._points_timer = QTimer(self)
        self._points_timer.setInterval(1000)
        self._update_source_visibility()

    def _connect(self) -> None:
        for w in (self.sigma, self.min_distance, self.threshold):
            w.changed.connect(self._on_params_changed)
        self.preview_check.changed.connect(self._on_preview_toggled)
        self.image_combo.changed.connect(self._on_image_changed)
        self.source.changed.connect(self._update_source_visibility)
        self.backend.changed.connect(self._update_source_visibility)
        self.folder.changed.connect(self.update_match_count)
        self.pattern.changed.connect(self.update_match_count)
        self.run_button.clicked.connect(self.toggle_run)
        self.bbbc_button.clicked.connect(lambda: self.apply_params(BBBC021_PRESET))
        self.defaults_button.clicked.connect(lambda: self.apply_params(DetectionParams()))
        self.save_preset_button.clicked.connect(self._ask_save_preset)
        self.load_preset_button.clicked.connect(self._ask_load_preset)
        self.save_button.clicked.connect(self._ask_save_tables)
        self.gallery_button.clicked.connect(self.open_gallery)
        self.plate_button.clicked.connect(self.open_plate_map)
        self.table.clicked.connect(self._on_table_clicked)
        self._debounce.timeout.connect(self.start_preview)
        self._points_timer.timeout.connect(self._flush_points)
        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        self.viewer.layers.events.removed.connect(self._on_layers_changed)
        self.viewer.dims.events.current_step.connect(self._on_slice_changed)
        # closing the widget or napari stops a running batch: connect a plain
        # callable, not a method of self, which is gone by then
        self._cancel_on_close = threading.Event()
        self.destroyed.connect(self._cancel_on_close.set)

    @property
    def results(self) -> dict[int, ImageResult]:
        """The last run's results by image index (see :attr:`store`)."""
        return self.store.results

    # ------------------------------------------------------------ parameters
    def params(self) -> DetectionParams:
        """The parameters currently set in the widget."""
        return DetectionParams(sigma=float(self.sigma.value),
                               min_distance=int(self.min_distance.value),
                               threshold_abs=float(self.threshold.value))

    def apply_params(self, params: DetectionParams) -> None:
        """Set the sliders (widening the threshold range if needed)."""
        t = params.threshold_abs
        if t > self.threshold.max:
            self.threshold.max = t
        if t < self.threshold.min:
            self.threshold.min = t
        with self.sigma.changed.blocked(), self.min_distance.changed.blocked():
            self.sigma.value = min(max(params.sigma, self.sigma.min), self.sigma.max)
            self.min_distance.value = min(max(params.min_distance, self.min_distance.min),
                                          self.min_distance.max)
        self.threshold.value = t  # emits once: preview and persistence follow
        if self.threshold.value == t:
            self._on_params_changed()

    def save_preset(self, path: str | Path) -> None:
        """Write the current parameters as a JSON preset."""
        Path(path).write_text(json.dumps(self.params().to_dict(), indent=2), encoding="utf-8")

    def load_preset(self, path: str | Path) -> DetectionParams:
        """Read a JSON preset and apply it.

        Raises
        ------
        ValueError
            For a file that is not a valid preset (nothing is changed).
        """
        params = DetectionParams.from_json(Path(path).read_text(encoding="utf-8"))
        self.apply_params(params)
        return params

    def _ask_save_preset(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save preset", "nuclei-preset.json",
                                              "JSON (*.json)")
        if path:
            self.save_preset(path)

    def _ask_load_preset(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load preset", "", "JSON (*.json)")
        if path:
            try:
                self.load_preset(path)
            except (ValueError, TypeError, OSError) as exc:
                show_warning(f"Not a valid preset: {exc}")

    def _on_params_changed(self, *_) -> None:
        save_settings(params=self.params().to_dict())
        self.schedule_preview()

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
        self.preview_cache.clear()
        layer = self.image_layer
        if layer is None:
            self.preview_label.value = "Open an image or a folder of images (File > Open)."
            self._set_preview_points(np.empty((0, 2)))
            return
        plane = self._current_plane(layer)
        if plane is not None:
            self._set_threshold_range(np.asarray(plane))
        suggested = layer.metadata.get(META_KEY, {}).get("suggested_params")
        if suggested:
            self.apply_params(DetectionParams.from_dict(suggested))
        self.schedule_preview()

    def _set_threshold_range(self, plane: np.ndarray) -> None:
        if plane.dtype.kind in "ui":
            info = np.iinfo(plane.dtype)
            lo, hi = float(min(0, plane.min())), float(max(plane.max(), 1))
            hi = min(hi * 1.2, float(info.max)) if plane.dtype.itemsize > 1 else 255.0
            step = 1.0
        else:
            lo, hi = float(np.min(plane)), float(np.max(plane))
            if hi <= lo:
                hi = lo + 1.0
            step = (hi - lo) / 1000.0
        t = float(self.threshold.value)
        self.threshold.step = step
        if lo <= t <= hi:
            self.threshold.min, self.threshold.max = lo, hi
            return
        # the threshold means nothing for this image (e.g. 1000 on an 8-bit
        # image): start from Otsu's threshold of the plane instead
        from skimage.filters import threshold_otsu

        guess = float(threshold_otsu(plane)) if plane.max() > plane.min() else lo
        self.threshold.min, self.threshold.max = lo, hi
        self.threshold.value = min(max(guess, lo), hi)
        self.status.value = (f"Threshold {t:g} is outside this image's range; "
                             f"set to {self.threshold.value:g} (Otsu).")

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
        if data.ndim == 2:
            return data
        if data.ndim == 3:
            return data[self.current_index(layer)]
        return None

    # ---------------------------------------------------------------- preview
    def _on_preview_toggled(self, on: bool) -> None:
        if on:
            self.schedule_preview()
        elif PREVIEW_LAYER in self.viewer.layers:
            self.viewer.layers[PREVIEW_LAYER].visible = False
            self.preview_label.value = ""

    def _on_slice_changed(self, *_) -> None:
        self.schedule_preview()

    def schedule_preview(self) -> None:
        """Ask for a preview after a short pause (sliders emit many changes)."""
        if self.preview_check.value and self.image_layer is not None:
            self._debounce.start()

    def start_preview(self) -> None:
        """Compute the preview of the displayed plane in a worker thread.

        One computation at a time; requests made meanwhile are merged into one
        that starts when it ends, and a result that is no longer current is
        dropped.
        """
        layer = self.image_layer
        if layer is None or not self.preview_check.value:
            return
        if self._preview_worker is not None:
            self._preview_pending = True
            return
        plane = self._current_plane(layer)
        if plane is None:
            self.preview_label.value = "Preview needs a 2-D image or a stack of 2-D images."
            return
        self._preview_request += 1
        index = self.current_index(layer)
        key = (id(layer), index, getattr(layer.data, "shape", None))
        worker = create_worker(_preview_job, self.preview_cache, plane, self.params(), key,
                               self._preview_request)
        worker.returned.connect(self._on_preview_done)
        worker.errored.connect(self._on_preview_error)
        worker.finished.connect(self._on_preview_finished)
        self._preview_worker = worker
        worker.start()

    def _on_preview_done(self, out) -> None:
        request, key, det, seconds = out
        if request != self._preview_request or self.image_layer is None:
            return  # stale: the image or the parameters changed meanwhile
        self.preview_seconds = seconds
        layer = self.image_layer
        coords = det.coords.astype(float)
        if layer.data.ndim == 3:
            coords = np.column_stack([np.full(len(coords), key[1], float), coords])
        self._set_preview_points(coords)
        where = f" in image {key[1] + 1}" if layer.data.ndim == 3 else ""
        self.preview_label.value = f"Preview: {det.count} nuclei{where} ({seconds * 1000:.0f} ms)"

    def _on_preview_error(self, exc: Exception) -> None:
        self.preview_label.value = f"Preview failed: {exc}"
        self._set_preview_points(np.empty((0, 2)))

    def _on_preview_finished(self) -> None:
        self._preview_worker = None
        if self._preview_pending:
            self._preview_pending = False
            self.start_preview()

    def _set_preview_points(self, coords: np.ndarray) -> None:
        layer = self.image_layer
        ndim = 3 if layer is not None and layer.data.ndim == 3 else 2
        coords = np.asarray(coords, float).reshape(-1, coords.shape[1] if coords.size else ndim)
        if PREVIEW_LAYER in self.viewer.layers:
            pts = self.viewer.layers[PREVIEW_LAYER]
            if pts.ndim != coords.shape[1]:
                self.viewer.layers.remove(pts)
            else:
                pts.data = coords
                pts.visible = True
                return
        if not len(coords) and layer is None:
            return
        self.viewer.add_points(coords, ndim=coords.shape[1], name=PREVIEW_LAYER, size=11,
                               face_color="transparent", border_color="yellow",
                               border_width=0.15, symbol="ring")
        if layer is not None:  # keep the image selected for the user
            self.viewer.layers.selection.active = layer

    # ------------------------------------------------------------- folder run
    def _update_source_visibility(self, *_) -> None:
        self.scheduler.enabled = self.backend.value == "Dask"
        folder = self.source.value == "folder"
        for w in (self.folder, self.pattern, self.match_label):
            w.visible = folder
        if folder:
            self.update_match_count()

    def folder_paths(self) -> list[Path]:
        """The images in the chosen folder that match the pattern."""
        folder = Path(str(self.folder.value))
        if not str(self.folder.value) or str(self.folder.value) == "." or not folder.is_dir():
            return []
        return find_images(folder, self.pattern.value or "*.tif")

    def update_match_count(self, *_) -> int:
        """Show how many files a run on the folder would process."""
        n = len(self.folder_paths())
        self.match_label.value = f"{n} image{'s' if n != 1 else ''} match"
        return n

    # ---------------------------------------------------------------- the run
    @property
    def running(self) -> bool:
        """Whether a batch is running."""
        return self.worker is not None

    def toggle_run(self, *_) -> None:
        """Run, or cancel the running batch (the button does both)."""
        if self.running:
            self.cancel()
        else:
            self.start_run()

    def cancel(self) -> None:
        """Stop the running batch; the worker processes end within a second."""
        if self._cancel is not None:
            self._cancel.set()
            self.status.value = "Cancelling…"

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
        self._cancel = cancel = threading.Event()
        if self.source.value == "folder":
            paths = self.folder_paths()
            if not paths:
                show_warning("No image in the folder matches the pattern.")
                return None
            data, kwargs, _ = stack_layer_data(paths, name=Path(str(self.folder.value)).name)
            layer = self.viewer.add_image(data, **kwargs)
            self.image_combo.value = layer
            labels = [str(p) for p in paths]
            gen = None  # made below, with the output folder
        else:
            layer = self.image_layer
            if layer is None:
                show_warning("Choose an image layer first (or run on a folder).")
                return None
            info = layer.metadata.get(META_KEY, {})
            paths = info.get("paths")
            if layer.data.ndim == 3 and paths and len(paths) == layer.data.shape[0]:
                labels = list(paths)
                gen = None  # made below, with the output folder
            elif layer.data.ndim in (2, 3):
                if self.backend.value == "Dask":
                    show_info("Images held in memory run on local processes; Dask workers "
                              "read files (open a folder to use Dask).")
                planes = [layer.data] if layer.data.ndim == 2 else list(layer.data)
                labels = [f"{layer.name}[{i}]" for i in range(len(planes))]
                arrays = [np.asarray(p) for p in planes]
                gen = run_batch_arrays(arrays, params, labels=labels,
                                       workers=workers if len(arrays) > 1 else 0, cancel=cancel)
            else:
                show_warning(f"Cannot run on a {layer.data.ndim}-D layer; use 2-D images or "
                             "a stack of 2-D images.")
                return None
        done_before: list[ImageResult] = []
        if gen is None:  # files: maybe stream the tables, maybe resume
            out = self.output_folder()
            done = resume_state(out, params, labels) if out and self.resume_check.value else set()
            todo = [i for i in range(len(labels)) if i not in done]
            if out is not None:
                info = {"command": "napari-nuclei-counter widget", "source": layer.name}
                self._writer = ResultsWriter(out, params, len(labels), info, done=done)
                done_before = load_partial_results(out, labels) if done else []
            gen = _reindexed(self._paths_batch([labels[i] for i in todo], params, workers,
                                               cancel), todo)
        self.run_layer = layer
        self._run_params = params
        self._run_total = len(labels)
        self._run_t0 = time.perf_counter()
        self._run_gen = gen
        meta = [ImageMeta(**m) for m in layer.metadata.get(META_KEY, {}).get("meta", [])]
        self.store.reset(labels, meta if len(meta) == len(labels) else None, params, layer)
        for r in done_before:
            self._show_result(r)
        worker = create_worker(_batch_job, gen)
        self._pbar = progress(total=len(labels) - len(done_before), desc="Detecting nuclei")
        worker.yielded.connect(self._on_results)
        worker.errored.connect(self._on_run_error)
        worker.finished.connect(self._on_run_finished)
        # napari quits workers when it closes; make sure the pool goes too. Plain
        # callables, not methods of self, so they run even if the widget is gone.
        worker.aborted.connect(cancel.set)
        worker.finished.connect(functools.partial(_close_quietly, gen))
        worker.finished.connect(self._pbar.close)
        self._cancel_on_close.clear()
        self._cancel_on_close = cancel
        self.destroyed.connect(cancel.set)
        self.worker = worker
        self.run_button.text = "Cancel"
        self.status.value = f"Running on {len(labels)} images…"
        self.save_button.setEnabled(False)
        self._points_timer.start()
        worker.start()
        return worker

    def _paths_batch(self, paths: list[str], params, workers: int, cancel):
        """The engine's generator for files: local processes or Dask."""
        if self.backend.value == "Dask":
            from .._dask import run_batch_dask

            return run_batch_dask(paths, params, scheduler=self.scheduler.value.strip() or None,
                                  n_workers=workers or None, cancel=cancel)
        return run_batch(paths, params, workers=workers, cancel=cancel)

    def output_folder(self) -> Path | None:
        """The folder tables are streamed to during a run, if one is set."""
        text = str(self.output.value)
        return Path(text) if text and text != "." else None

    def _on_results(self, results: list[ImageResult]) -> None:
        for result in results:
            if self._writer is not None:
                self._writer.add(result)
            self._show_result(result)
        if self.worker is None:
            return  # a late result after the summary: keep the summary
        done = len(self.results)
        rate = done / max(time.perf_counter() - self._run_t0, 1e-9)
        self.status.value = f"{done} / {self._run_total} images ({rate:.1f} images/s)"
        pbar = self._pbar
        if pbar is not None:
            # last: napari's progress bar processes events (and so may run the
            # next slots) while it redraws
            pbar.set_description(f"Detecting nuclei ({rate:.1f} images/s)")
            pbar.update(len(results))

    def _show_result(self, result: ImageResult) -> None:
        self.store.add(result)  # the table, gallery and plate map follow the store
        self._points_dirty = True

    def _on_run_error(self, exc: Exception) -> None:
        show_warning(f"The run stopped with an error: {exc}")

    def _on_run_finished(self) -> None:
        self._points_timer.stop()
        self._flush_points(force=True)
        self._run_gen = None
        cancelled = self._cancel is not None and self._cancel.is_set()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close(complete=not cancelled)
        self._pbar = None  # closed by the worker's finished signal
        self.worker = None
        self._cancel = None
        self.run_button.text = "Run"
        self.save_button.setEnabled(bool(self.results))
        done = len(self.results)
        failed = [r for r in self.results.values() if not r.ok]
        nuclei = sum(r.count or 0 for r in self.results.values())
        dt = time.perf_counter() - self._run_t0
        summary = (f"{'Cancelled' if cancelled else 'Done'}: {done} of {self._run_total} images, "
                   f"{nuclei} nuclei, {dt:.1f} s")
        self.status.value = summary + (f", {len(failed)} failed" if failed else "")
        if failed:
            first = failed[0]
            show_warning(f"{len(failed)} of {done} images failed, e.g. "
                         f"{Path(first.path).name}: {first.error}. See the table for all.")
        else:
            show_info(summary)

    def _flush_points(self, force: bool = False) -> None:
        if not (self._points_dirty or force) or self.run_layer is None:
            return
        self._points_dirty = False
        self.show_results_points()

    def results_frame(self) -> tuple[np.ndarray, pd.DataFrame]:
        """All detections of the last run as Points coordinates and features."""
        stack = self.run_layer is not None and self.run_layer.data.ndim == 3
        coords, feats = [], []
        for r in self.store.ordered():
            i = r.index
            if not r.ok or not len(r.coords):
                continue
            c = r.coords.astype(float)
            coords.append(np.column_stack([np.full(len(c), i, float), c]) if stack else c)
            feats.append(pd.DataFrame({
                "image": i, "intensity": r.intensities, "path": r.path,
                "well": r.meta.well, "site": r.meta.site, "plate": r.meta.plate,
            }))
        ndim = 3 if stack else 2
        if not coords:
            return np.empty((0, ndim)), pd.DataFrame(
                {"image": pd.Series(dtype=int), "intensity": pd.Series(dtype=float),
                 "path": pd.Series(dtype=str), "well": pd.Series(dtype=str),
                 "site": pd.Series(dtype=str), "plate": pd.Series(dtype=str)})
        return np.concatenate(coords), pd.concat(feats, ignore_index=True)

    def show_results_points(self) -> None:
        """Put the run's detections into the single ``nuclei`` Points layer."""
        coords, feats = self.results_frame()
        self._updating_points = True
        try:
            if RESULTS_LAYER in self.viewer.layers:
                pts = self.viewer.layers[RESULTS_LAYER]
                if pts.ndim == coords.shape[1]:
                    pts.data = coords
                    pts.features = feats
                    if len(feats):
                        pts.face_color = "intensity"
                        pts.refresh_colors(update_color_mapping=True)
                    return
                self.viewer.layers.remove(pts)
            data, kwargs, _ = points_layer_data(coords, feats, name=RESULTS_LAYER)
            pts = self.viewer.add_points(data, **kwargs)
            defaults = pts.feature_defaults
            if "intensity" in defaults:  # a nucleus added by hand has no measured intensity
                defaults["intensity"] = np.nan
                pts.feature_defaults = defaults
            pts.events.data.connect(self._on_points_edited)
            if self.run_layer is not None and self.run_layer in self.viewer.layers:
                self.viewer.layers.selection.active = self.run_layer
        finally:
            self._updating_points = False

    def _on_points_edited(self, event=None) -> None:
        """Hand corrections in the ``nuclei`` layer update counts, views and tables."""
        if self._updating_points or self.running:
            return
        if getattr(event, "action", "added") not in ("added", "removed", "changed"):
            return
        if RESULTS_LAYER not in self.viewer.layers:
            return
        pts = self.viewer.layers[RESULTS_LAYER]
        data = np.asarray(pts.data, float)
        stack = data.shape[1] == 3
        index = np.rint(data[:, 0]).astype(int) if stack else np.zeros(len(data), int)
        feats = pts.features
        inten = (feats["intensity"].to_numpy(float) if "intensity" in feats
                 else np.full(len(data), np.nan))
        changed = []
        for i in list(self.store.results):
            sel = index == i
            if self.store.set_points(i, np.rint(data[sel][:, -2:]), inten[sel]):
                changed.append(i)
        if changed:
            self.status.value = (f"Edited by hand: image(s) {', '.join(str(i + 1) for i in changed)}"
                                 "; counts and tables follow")

    # ---------------------------------------------------------------- results
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
        """Write ``images.csv``, ``nuclei.csv`` and ``run.json`` of the last run."""
        results = self.store.ordered()
        info = {"command": "napari-nuclei-counter widget", "source": getattr(
            self.run_layer, "name", "")}
        out = write_results(folder, results, self._run_params or self.params(), info)
        show_info(f"Tables saved in {out}")
        return out

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

    def _ask_save_tables(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save tables into folder")
        if folder:
            self.save_tables(folder)

