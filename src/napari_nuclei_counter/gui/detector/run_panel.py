"""The detector dock's run: start, follow, cancel, and keep the user's results.

A mixin of :class:`~._widget.NucleiCounterWidget`. The results of the last
run stay in the store (table, ``nuclei`` layer, gallery, plate map, *Save
tables…*) until the new run's first result arrives, or until *Clear*: a run
cancelled before its first result loses nothing. Before a run would replace
results that were never saved, or that were corrected by hand, the dock
asks.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import QMessageBox

from ..._reader import META_KEY
from ...core.io.discovery import ImageMeta
from ...core.results.tables import ImageResult
from ...core.run.backends import ProcessBackend
from ...core.run.pipeline import Run
from .points import RESULTS_LAYER
from .preview import PREVIEW_LAYER

__all__ = ["RunMixin"]

log = logging.getLogger(__name__)

#: niceness of the dock's worker processes: on a machine whose cores the workers fill,
#: the window's thread still gets one at once (event-loop stalls during a 240-image run
#: measured 432-547 ms worst / 242-261 ms 99th percentile without, 226 / 54 ms with)
WORKER_NICE = 10


class RunMixin:
    """Run, cancel, results arriving, the end of a run, *Clear* (see the module)."""

    #: the store holds results nobody saved (no output folder, no *Save tables…*)
    unsaved = False
    #: the store's results were corrected by hand since they were last saved
    edited = False
    #: the running run has delivered results (the store now holds its results)
    _replaced = False

    # ---------------------------------------------------------------- state
    @property
    def running(self) -> bool:
        """Whether a batch is running."""
        return self.runner.running

    @property
    def settled(self) -> bool:
        """Whether no run is going on and the ``nuclei`` layer holds all its results."""
        return not self.runner.running and not self.points.building

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

    # -------------------------------------------------------- asking first
    def replace_question(self) -> str:
        """What the dock asks before a run replaces the results, or ``''`` when it need not."""
        n = len(self.store.results)
        if not n or not (self.unsaved or self.edited):
            return ""
        edited = sum(1 for r in self.store.results.values() if r.edited)
        parts = [f"The results shown ({n} images) are not saved."] if self.unsaved else []
        if self.edited and edited:
            parts.append(f"{edited} image{'s' if edited != 1 else ''} were corrected by hand"
                         + (" after saving." if not self.unsaved else "."))
        parts.append("The new run replaces them when its first result arrives. Run anyway?")
        return " ".join(parts)

    def confirm_replace(self) -> bool:
        """Ask before unsaved or hand-corrected results would be replaced."""
        question = self.replace_question()
        if not question:
            return True
        answer = QMessageBox.question(
            self, "Replace the results?", question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def clear_results(self, *_, ask: bool = True) -> bool:
        """Forget the results shown (table, ``nuclei`` layer, views); asks if they are unsaved."""
        if self.running:
            show_warning("Cancel the run first.")
            return False
        if ask and not self.confirm_replace():
            return False
        self.store.reset([], None, None, None)
        self.points.reset()
        if RESULTS_LAYER in self.viewer.layers:
            self.viewer.layers.remove(RESULTS_LAYER)
        self.unsaved = self.edited = False
        self._after_store_change()
        self.status.value = "Cleared."
        return True

    def _after_store_change(self) -> None:
        has = bool(self.store.results)
        self.save_button.setEnabled(has)
        self.clear_button.setEnabled(has and not self.running)
        self.table.setVisible(bool(self.store.labels))

    # ---------------------------------------------------------------- start
    def start_run(self, *, ask: bool = True):
        """Start a batch on the selected layer or folder.

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
        if ask and not self.confirm_replace():
            self.status.value = "Not started: the results shown are kept."
            return None
        run, layer, layer_name, labels = made
        self._pending = (run, layer, labels)
        self._replaced = False
        self.run_layer_next = layer
        worker = self.runner.start(run, layer_name=layer_name, cancel_on=self.destroyed.connect)
        self.run_button.text = "Cancel"
        self.status.value = "Starting…"
        self.clear_button.setEnabled(False)
        self._points_timer.start()
        return worker

    def _make_run(self):
        params = self.params()
        workers = int(self.workers.value)
        dask = self.backend.value == "Dask"
        layer_name, in_memory, labels = None, False, None
        opts = {"workers": workers, "cancel": threading.Event(),
                "info": {"command": "napari-nuclei-counter widget"}}
        if self.source.value == "folder":
            folder = self.folder_picker.path()
            if folder is None or not folder.is_dir():
                show_warning("Choose a folder of images first.")
                return None
            source, layer, layer_name = folder, None, folder.name
            channel, z = self.channels.choice()
            opts.update(pattern=self.folder_picker.glob(), channel=channel, z=z)
        else:
            layer = self.image_layer
            if layer is None:
                show_warning("Choose an image layer first (or run on a folder).")
                return None
            paths = layer.metadata.get(META_KEY, {}).get("paths")
            if layer.data.ndim == 3 and paths and len(paths) == layer.data.shape[0]:
                source = labels = list(paths)
            elif layer.data.ndim in (2, 3):
                if dask:
                    show_info("Images held in memory run on local processes; Dask workers "
                              "read files (open a folder to use Dask).")
                    dask = False
                planes = [layer.data] if layer.data.ndim == 2 else list(layer.data)
                source, in_memory = [np.asarray(p) for p in planes], True
                labels = opts["labels"] = [f"{layer.name}[{i}]" for i in range(len(planes))]
            else:
                show_warning(f"Cannot run on a {layer.data.ndim}-D layer; use 2-D images or "
                             "a stack of 2-D images.")
                return None
            opts["info"]["source"] = layer.name
        if not in_memory:  # tables stream to a folder for files, like the command line
            opts.update(out=self.output_folder(),
                        resume=bool(self.output_folder() and self.resume_check.value))
        if dask:
            from ...dask_backend.backend import DaskBackend

            opts["backend"] = DaskBackend(self.scheduler.value.strip() or None,
                                          n_workers=workers or None)
        elif workers != 0:
            # workers at a lower priority: the window's thread gets a core when it needs one
            opts["backend"] = ProcessBackend(workers, nice=WORKER_NICE)
        return Run(source, params, **opts), layer, layer_name, labels

    # ------------------------------------------------------------- messages
    def _on_layer_made(self, layer_data: tuple) -> None:
        data, kwargs, _ = layer_data
        kwargs.setdefault("axis_labels", ("image", "y", "x"))
        layer = self.folder_preview.hand_over()
        if layer is None or layer not in self.viewer.layers:
            layer = self.viewer.add_image(data, **kwargs)
        else:  # the preview's layer becomes the stack: no layer added, none removed
            layer.data = data
            for key in ("name", "metadata", "colormap", "contrast_limits", "axis_labels"):
                if key in kwargs:
                    setattr(layer, key, kwargs[key])
            layer.visible = True
            self.image_combo.reset_choices()  # it is an image to run on now
        self.image_combo.value = layer
        self.run_layer_next = layer

    def _on_run_started(self, run: Run) -> None:
        self.progress.start(run.n_images, len(run.done))
        self.status.value = f"Running on {run.n_images} images…"

    def _replace_store(self, run: Run) -> None:
        """The first result: the new run's results take the place of the old ones."""
        layer = self.run_layer_next
        meta = [ImageMeta(**m) for m in
                (layer.metadata.get(META_KEY, {}).get("meta", []) if layer is not None else [])]
        labels = run.labels
        self.run_layer = layer
        self.store.reset(labels, meta if len(meta) == len(labels) else None, run.params, layer,
                         plane=run.plane)
        self.points.reset()
        self._replaced = True
        self.unsaved = run.out is None
        self.edited = False
        if PREVIEW_LAYER in self.viewer.layers:  # the results are what to look at now
            self.viewer.layers[PREVIEW_LAYER].visible = False
        self._after_store_change()

    def _on_results(self, results: list[ImageResult]) -> None:
        if not self._replaced and self.runner.run is not None:
            self._replace_store(self.runner.run)
        for result in results:
            self.store.add(result)  # the table, gallery and plate map follow the store
        self.points.dirty = True
        if not self.running:
            return  # a late result after the summary: keep the summary
        done = len(self.results)
        text = self.progress.update(done)
        self.status.value = "Running…"
        self.runner.set_description(f"Detecting nuclei ({self.progress.rate(done):.1f} "
                                    "images/s)")
        if self.points.deferred:
            self.status.value = ("Running… the nuclei layer fills in when the run ends "
                                 "(the table, gallery and plate map follow live)")
        log.debug(text)

    def _on_run_error(self, exc: Exception) -> None:
        show_warning(f"The run stopped with an error: {exc}")

    def _on_run_finished(self, run: Run | None) -> None:
        self._points_timer.stop()
        self.folder_preview.paused = False
        if self._replaced:
            self.points.flush(force=True)
        self.run_button.text = "Run"
        self._after_store_change()
        if run is None:
            self.status.value = "The run stopped with an error."
            self.progress.finish("stopped with an error")
            return
        if not self._replaced:
            kept = len(self.store.results)
            self.status.value = ("Cancelled before any result"
                                 + (f"; the previous results ({kept} images) are kept."
                                    if kept else "."))
            self.progress.finish("cancelled")
            return
        done = len(self.results)
        failed = [r for r in self.results.values() if not r.ok]
        nuclei = sum(r.count or 0 for r in self.results.values())
        seconds = run.summary.seconds if run.summary is not None else 0.0
        cancelled = run.summary is None or run.summary.cancelled
        summary = (f"{'Cancelled' if cancelled else 'Done'}: {done} of {run.n_images} images, "
                   f"{nuclei} nuclei, {seconds:.1f} s")
        self.status.value = summary + (f", {len(failed)} failed" if failed else "")
        if self.points.building:
            self._summary = self.status.value
            self.status.value += "; filling the nuclei layer…"
        self.progress.update(done)
        self.progress.finish(self.progress.label.value.split(" · about")[0]
                             + (" · cancelled" if cancelled else " · done"))
        if failed:
            first = failed[0]
            show_warning(f"{len(failed)} of {done} images failed, e.g. "
                         f"{Path(first.path).name}: {first.error}. See the table for all.")
        log.info(summary)

    def _on_points_ready(self) -> None:
        """The ``nuclei`` layer built off the window's thread is in place."""
        summary, self._summary = self._summary, None
        if summary and not self.running and self.status.value.startswith(summary):
            self.status.value = summary

    def _on_hand_edits(self, changed: list[int]) -> None:
        self.edited = True
        self.status.value = (f"Edited by hand: image(s) {', '.join(str(i) for i in changed)}"
                             "; counts and tables follow")
