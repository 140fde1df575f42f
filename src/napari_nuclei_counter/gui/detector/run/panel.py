"""The detector dock's run: start, follow, cancel, and where the work runs.

The results of the last run stay in the store (table, ``nuclei`` layer,
gallery, plate map, *Save tables…*) until the new run's first result
arrives, or until *Clear*: a run cancelled before its first result loses
nothing. Before a run would replace results that were never saved, or that
were corrected by hand, the dock asks (:func:`confirm_replace`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QObject
from qtpy.QtWidgets import QMessageBox

from ...._reader import META_KEY
from ....core.io.discovery import ImageMeta
from ....core.results.store import ResultsStore
from ....core.results.tables import ImageResult
from ....core.results.writer import run_command
from ....core.run.backends import default_workers
from ....core.run.pipeline import Run
from ....dask_backend.choice import choose_backend
from ..layout import collapsible, compact_file_edit, wrap_label
from ..model import BACKENDS, DetectorModel
from ..preview import PREVIEW_LAYER
from .progress import RunProgress
from .run_thread import RunController

__all__ = ["RunPanel", "WORKER_NICE", "confirm_replace", "threshold_note"]

log = logging.getLogger(__name__)

#: niceness of the dock's worker processes: on a machine whose cores the workers
#: fill, the window's thread still gets a core at once when it needs one
WORKER_NICE = 10


def confirm_replace(parent, model: DetectorModel, store: ResultsStore) -> bool:
    """Ask before unsaved or hand-corrected results would be replaced (``True``: go on)."""
    question = model.replace_question(store)
    if not question:
        return True
    answer = QMessageBox.question(
        parent, "Replace the results?", question,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        QMessageBox.StandardButton.Cancel)
    return answer == QMessageBox.StandardButton.Yes


def threshold_note(run: Run, suggestion: float | None) -> str:
    """Why images of ``run`` found nothing: the fixed threshold is above all they hold.

    ``''`` when no image of the run was flagged ``threshold_above_image``.

    Parameters
    ----------
    run : Run
        A run that has ended (its ``summary`` is set).
    suggestion : float or None
        The threshold the flagged images suggest (:meth:`Run.suggest_threshold`).

    Returns
    -------
    str
        One sentence, e.g. ``'12 of 29 images: the threshold 1000 is above every
        smoothed value: nothing can be found in them; try threshold 30'``.
    """
    s = run.summary
    if s is None or not s.threshold_above or run.params.threshold_method is not None:
        return ""
    n, of = s.threshold_above, s.n_new
    which = " processed by this run" if run.done else ""
    text = (f"{n} of {of} image{'s' if of != 1 else ''}{which}: the threshold "
            f"{run.params.threshold_abs:.10g} is above every smoothed value: nothing can be "
            f"found in {'it' if n == 1 else 'them'}; try ")
    if suggestion is not None:
        return text + f"threshold {suggestion:.10g}"
    return text + "a lower threshold"


def _path(value) -> Path | None:
    text = str(value)
    return Path(text) if text and text != "." else None


def bind(widget, model: DetectorModel, name: str, read=lambda v: v) -> None:
    """Keep a magicgui value widget and the model's field ``name`` in step.

    ``read`` turns the widget's value into the field's.
    """
    def to_model(value) -> None:
        setattr(model, name, read(value))

    def to_widget(value) -> None:
        with widget.changed.blocked():
            widget.value = "" if value is None else value

    widget.changed.connect(to_model)
    getattr(model.events, name).connect(to_widget)
    to_widget(getattr(model, name))


class RunPanel(QObject):
    """*Run*/*Cancel*, the progress and the status line, and the *Advanced* options.

    The run goes over ``model.source`` with ``model.params`` and the run
    options; its results go into the store (the table, the ``nuclei`` layer,
    the gallery and the plate map follow the store). Sets
    ``model.running``, ``model.unsaved`` and ``model.edited``; shows
    ``model.status``.

    Attributes
    ----------
    run_button : magicgui.widgets.PushButton
    progress : RunProgress
    status : magicgui.widgets.Label
        The rows of :attr:`widgets`.
    workers, backend, scheduler, output, resume_check : magicgui widgets
        In :attr:`advanced`, a collapsible section.
    runner : RunController
        The run in its worker thread.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    model : DetectorModel
    store : ResultsStore
    """

    def __init__(self, viewer, model: DetectorModel, store: ResultsStore, parent=None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.model = model
        self.store = store
        self._replaced = False  # the running run has delivered results (the store holds them)
        self._run_layer_next = None  # the image layer of the run going on
        self._summary: str | None = None  # the run's summary while its layer is built
        self._on_folder = False  # the run going on (or the last one) is a folder's
        self.run_button = PushButton(text="Run")
        self.progress = RunProgress()
        self.status = Label(value=model.status)
        wrap_label(self.status.native)
        self.workers = SpinBox(label="workers", min=0, max=max(64, default_workers()),
                               value=model.workers,
                               tooltip="Worker processes (default: all cores); 0 = in this "
                                       "process, for debugging")
        self.backend = ComboBox(label="run with", choices=list(BACKENDS), value=model.backend,
                                tooltip="Worker processes on this computer, or a Dask "
                                        "cluster (for images on a shared file system)")
        self.scheduler = LineEdit(label="scheduler", value=model.scheduler,
                                  tooltip="Address of a running Dask scheduler, e.g. "
                                          "tcp://10.0.0.5:8786; empty: a local Dask cluster")
        self.output = FileEdit(label="write tables to", mode="d",
                               tooltip="Optional: a folder where the tables are written as "
                                       "the run goes (like the command line), so a long run "
                                       "can be resumed")
        compact_file_edit(self.output)
        self.resume_check = CheckBox(text="resume: skip images done there",
                                     tooltip="Skip images already processed in that folder "
                                             "with the same parameters (same file size and "
                                             "time)")
        self.advanced_controls = Container(widgets=[self.workers, self.backend, self.scheduler,
                                                    self.output, self.resume_check], labels=True)
        self.advanced_controls.margins = (0, 0, 0, 0)
        self.advanced = collapsible("Advanced", self.advanced_controls.native)
        bind(self.workers, model, "workers", int)
        bind(self.backend, model, "backend")
        bind(self.scheduler, model, "scheduler", str)
        bind(self.output, model, "output", _path)
        bind(self.resume_check, model, "resume_run", bool)
        self.runner = RunController(self)
        self.run_button.clicked.connect(self.toggle_run)
        self.runner.layer_made.connect(self._on_layer_made)
        self.runner.started.connect(self._on_run_started)
        self.runner.results.connect(self._on_results)
        self.runner.failed.connect(self._on_run_error)
        self.runner.finished.connect(self._on_run_finished)
        model.events.status.connect(self._on_status)
        model.events.backend.connect(self._on_backend)
        model.events.layer_building.connect(self._on_layer_building)
        self._on_backend(model.backend)

    @property
    def widgets(self) -> list:
        """The rows of the dock's form: *Run*, the progress, the status line."""
        return [self.run_button, self.progress.widget, self.status]

    def _on_status(self, text: str) -> None:
        self.status.value = text

    def _on_backend(self, backend: str) -> None:
        self.scheduler.enabled = backend == "Dask"

    # ---------------------------------------------------------------- state
    @property
    def running(self) -> bool:
        """Whether a batch is running."""
        return self.runner.running

    @property
    def replaced(self) -> bool:
        """Whether the running (or last) run has delivered results: the store holds them."""
        return self._replaced

    def toggle_run(self, *_) -> None:
        """Run, or cancel the running batch (the button does both)."""
        if self.running:
            self.cancel()
        else:
            self.start_run()

    def cancel(self) -> None:
        """Stop the running batch; the worker processes end within a second."""
        if self.runner.cancel():
            self.model.status = "Cancelling…"

    # ---------------------------------------------------------------- start
    def start_run(self, *, ask: bool = True):
        """Start a batch on the chosen layer or folder.

        Parameters
        ----------
        ask : bool, optional
            Ask before results that are not saved (or were corrected by
            hand) would be replaced.

        Returns
        -------
        the napari worker, or ``None`` if nothing was started.
        """
        if self.running:
            show_warning("A run is already going on; cancel it first.")
            return None
        made = self._make_run()
        if made is None:
            return None
        if ask and not confirm_replace(self.parent(), self.model, self.store):
            self.model.status = "Not started: the results shown are kept."
            return None
        run, layer, layer_name = made
        self._replaced = False
        self._on_folder = self.model.folder_run
        self._run_layer_next = layer
        worker = self.runner.start(run, layer_name=layer_name, cancel_on=self.destroyed.connect)
        self.run_button.text = "Cancel"
        self.model.status = "Starting…"
        self.model.running = True
        return worker

    def _make_run(self):
        model = self.model
        params = model.params
        workers = int(model.workers)
        dask = model.dask
        layer_name, in_memory = None, False
        opts = {"workers": workers, "cancel": threading.Event(),
                "info": {"command": run_command("widget")}}
        if model.folder_run:
            folder = model.folder
            if folder is None or not folder.is_dir():
                show_warning("Choose a folder of images first.")
                return None
            source, layer, layer_name = folder, None, folder.name
            opts.update(pattern=model.glob(), channel=model.channel, z=model.z, t=model.t)
        else:
            layer = model.image_layer
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
            opts.update(out=model.output, resume=model.resumes())
        # local workers at a lower priority: the window's thread gets a core when it needs one
        opts["backend"] = choose_backend("dask" if dask else "process", workers=workers,
                                         scheduler=model.scheduler.strip() or None,
                                         nice=WORKER_NICE)
        return Run(source, params, **opts), layer, layer_name

    # ------------------------------------------------------------- messages
    def _on_layer_made(self, layer_data: tuple) -> None:
        """A folder run's stack: the folder preview's layer becomes it, else a new layer."""
        data, kwargs, _ = layer_data
        kwargs.setdefault("axis_labels", ("image", "y", "x"))
        layer = self.model.folder_layer
        self.model.folder_layer = None  # the run takes it: no longer the folder's preview
        if layer is None or layer not in self.viewer.layers:
            layer = self.viewer.add_image(data, **kwargs)
        else:  # no layer added, none removed: much cheaper for napari
            layer.data = data
            for key in ("name", "metadata", "colormap", "contrast_limits", "axis_labels"):
                if key in kwargs:
                    setattr(layer, key, kwargs[key])
            layer.visible = True
        self.model.image_layer = layer  # it is an image to run on now
        self._run_layer_next = layer

    def _on_run_started(self, run: Run) -> None:
        self.progress.start(run.n_images, len(run.done))
        self.model.status = f"Running on {run.n_images} images…"

    def _replace_store(self, run: Run) -> None:
        """The first result: the new run's results take the place of the old ones."""
        layer = self._run_layer_next
        meta = [ImageMeta(**m) for m in
                (layer.metadata.get(META_KEY, {}).get("meta", []) if layer is not None else [])]
        labels = run.labels
        self.store.reset(labels, meta if len(meta) == len(labels) else None, run.params, layer,
                         plane=run.plane)
        self._replaced = True
        self.model.unsaved = run.out is None
        self.model.edited = False
        if PREVIEW_LAYER in self.viewer.layers:  # the results are what to look at now
            self.viewer.layers[PREVIEW_LAYER].visible = False

    def _on_results(self, results: list[ImageResult]) -> None:
        if not self._replaced and self.runner.run is not None:
            self._replace_store(self.runner.run)
        for result in results:
            self.store.add(result)  # the table, layer, gallery and plate map follow the store
        if not self.running:
            return  # a late result after the summary: keep the summary
        done = len(self.store.results)
        text = self.progress.update(done)
        self.model.status = "Running…"
        self.runner.set_description(f"Detecting nuclei ({self.progress.rate(done):.1f} "
                                    "images/s)")
        if self.model.layer_deferred:
            self.model.status = ("Running… the nuclei layer fills in when the run ends "
                                 "(the table, gallery and plate map follow live)")
        log.debug(text)

    def _on_run_error(self, exc: Exception) -> None:
        show_warning(f"The run stopped with an error: {exc}")

    def _on_run_finished(self, run: Run | None) -> None:
        self.model.running = False  # the nuclei layer and the buttons follow
        self.run_button.text = "Run"
        try:
            # first: the stack, a new target, may make the parameters speak (a threshold
            # outside its range); the run's summary is what the status line says after it
            self._show_folder()
        finally:
            self._report(run)

    def _show_folder(self) -> None:
        """After a run on the folder, its stack is what folder mode shows and previews."""
        layer = self._run_layer_next
        if (self._on_folder and self.model.folder_run and self.model.folder_layer is None
                and layer is not None and layer in self.viewer.layers):
            self.model.folder_layer = layer

    def _report(self, run: Run | None) -> None:
        """The status line, the progress line and a warning for failed images, as a run ends."""
        if run is None:
            self.model.status = "The run stopped with an error."
            self.progress.finish("stopped with an error")
            return
        results = self.store.results
        if not self._replaced:
            kept = len(results)
            self.model.status = ("Cancelled before any result"
                                 + (f"; the previous results ({kept} images) are kept."
                                    if kept else "."))
            self.progress.finish("cancelled")
            return
        done = len(results)
        failed = [r for r in results.values() if not r.ok]
        nuclei = sum(r.count or 0 for r in results.values())
        seconds = run.summary.seconds if run.summary is not None else 0.0
        cancelled = run.summary is None or run.summary.cancelled
        summary = (f"{'Cancelled' if cancelled else 'Done'}: {done} of {run.n_images} images, "
                   f"{nuclei} nuclei, {seconds:.1f} s")
        status = summary + (f", {len(failed)} failed" if failed else "")
        note = threshold_note(run, self.runner.suggestion)
        if note:
            status += f". {note}"
        if self.model.layer_building:
            self._summary = status
            status += "; filling the nuclei layer…"
        self.model.status = status
        self.progress.update(done)
        self.progress.finish(self.progress.label.value.split(" · about")[0]
                             + (" · cancelled" if cancelled else " · done"))
        if note:
            show_warning(note + ".")
        if failed:
            first = failed[0]
            show_warning(f"{len(failed)} of {done} images failed, e.g. "
                         f"{Path(first.path).name}: {first.error}. See the table for all.")
        log.info(summary)

    def _on_layer_building(self, building: bool) -> None:
        """The ``nuclei`` layer built off the window's thread is in place: the summary alone."""
        if building:
            return
        summary, self._summary = self._summary, None
        if summary and not self.running and self.model.status.startswith(summary):
            self.model.status = summary
