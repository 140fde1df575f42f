"""*Are my counts right?* in the dock: score, suggest parameters, estimate them.

:class:`ScoringPanel` is a self-contained widget that the detector dock
embeds, handed the dock's model (:class:`~..detector.model.DetectorModel`)
and results store. It scores the displayed image's detections against a Labels or
Points layer the user picks (clicked nuclei, a label image, or the
``nuclei`` layer after hand corrections), optionally inside a Shapes
layer's area, and marks matched, false and missed nuclei in one ``score``
Points layer; *Suggest parameters* searches the parameters on the annotated
images (:func:`~napari_nuclei_counter.core.scoring.tune.tune`); *Estimate from
image* suggests them from the image alone. All three run in napari worker
threads (:mod:`.jobs`); the GUI thread only reads layer references
and shows numbers. Work stops when the panel is closed or destroyed.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable

import numpy as np
from napari.layers import Labels, Points, Shapes
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...core.params import DetectionParams
from ...core.results.store import ResultsStore
from ..detector.layout import button_grid, compact_combo, wrap_label
from ..detector.model import DetectorModel
from ..detector.preview import PREVIEW_LAYER
from ..navigation import current_index, current_plane
from ..views.shared import weak_method
from .jobs import ScoreOutcome, TruthSource, estimate_job, score_job, shape_polygons, tune_job
from .view import (
    RESULTS,
    SCORE_LAYER,
    SLIDERS,
    estimate_text,
    refill,
    score_text,
    show_markers,
    tune_text,
)

__all__ = ["SCORE_LAYER", "ScoringPanel"]

log = logging.getLogger(__name__)


class _Relay(QObject):
    """Carries progress from a worker thread to the GUI thread (queued)."""

    progress = Signal(int, int)


class _State:
    """What the teardown needs, without the panel: flags and connections to undo."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.cancel = threading.Event()
        self.connections: list[tuple[object, Callable]] = []


def _teardown(state: _State) -> None:
    """Stop the panel's work and stop calling it (a plain function, run once)."""
    state.closed.set()
    state.cancel.set()
    for emitter, callback in state.connections:
        try:
            emitter.disconnect(callback)
        except Exception:  # the viewer or the layer is gone already
            log.debug("disconnect on close failed", exc_info=True)
    state.connections.clear()


class ScoringPanel(QWidget):
    """Score against annotations, suggest parameters from them, or estimate them.

    The image is ``model.target`` (the layer the detector previews), its
    displayed plane, and the parameters ``model.params``; parameters it
    suggests or estimates are set on ``model.params``, and
    ``model.status`` says where they came from (``'Parameters: tuned (F1
    0.93)'``, ``'Parameters: suggested'``).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    model : DetectorModel
    store : ResultsStore, optional
        The run's results: offers *score: run results*, the run's detections
        of the displayed image (hand corrections included), when the store's
        run was on that layer. Without it the panel scores the sliders'
        detections.
    parent : QWidget, optional
    """

    #: a score was shown (its :class:`ScoreOutcome`)
    scored = Signal(object)
    #: parameters were set (params, label)
    params_set = Signal(object, str)
    #: a job ended (scored, set, cancelled or failed)
    job_done = Signal(str)

    def __init__(self, viewer, model: DetectorModel, store: ResultsStore | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.model = model
        self.store = store
        self.worker = None  #: the worker while a job runs
        self.job = ""  #: ``'score'``, ``'suggest'`` or ``'estimate'`` while one runs
        self.last_score: ScoreOutcome | None = None
        self.last_tune = None  #: the last search's :class:`TuneResult`
        self.last_estimate = None  #: the last :class:`Estimate`
        self._job_cancel = threading.Event()
        self._then: Callable | None = None
        self._outcome = "done"
        self._scored_at = (None, 0)
        self._note = ""
        self._relay = _Relay()
        self._state = _State()
        self._build_form(with_detections=store is not None)
        self._relay.progress.connect(self._on_progress)
        self._connect_viewer()
        self.refresh_layers()
        self._stop = weakref.finalize(self, _teardown, self._state)
        self.destroyed.connect(self._stop)

    def _build_form(self, with_detections: bool) -> None:
        """Make the controls and lay them out (the source choice only ``with_detections``)."""
        self.truth_combo = QComboBox()
        self.truth_combo.setToolTip("The annotated nuclei: a Labels layer (one label per "
                                    "nucleus) or a Points layer (clicked centres, or the "
                                    "corrected 'nuclei' layer)")
        self.region_combo = QComboBox()
        self.region_combo.setToolTip("Score only inside the shapes of a Shapes layer "
                                     "(the part you annotated)")
        self.radius = QDoubleSpinBox()
        self.radius.setRange(0.0, 500.0)
        self.radius.setDecimals(1)
        self.radius.setSuffix(" px")
        self.radius.setSpecialValueText("auto")
        self.radius.setToolTip("Points truth: the farthest a detection may be from a clicked "
                               "centre; auto = half the typical nucleus diameter")
        self.source_combo = QComboBox()
        self.source_combo.addItems([SLIDERS, RESULTS])
        self.source_combo.setToolTip("Score the sliders' detections, or the run's result of "
                                     "this image (with hand corrections)")
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("score against", self.truth_combo)
        form.addRow("region", self.region_combo)
        form.addRow("match radius", self.radius)
        if with_detections:
            form.addRow("detections", self.source_combo)
        self.score_button = QPushButton("Score")
        self.score_button.setToolTip("Precision, recall and F1 of the displayed image; marks "
                                     "matched, false and missed nuclei ('score' layer)")
        self.suggest_button = QPushButton("Suggest parameters")
        self.suggest_button.setToolTip("Search sigma, min distance and threshold for the best "
                                       "F1 on the annotated images")
        self.estimate_button = QPushButton("Estimate from image")
        self.estimate_button.setToolTip("Suggest parameters from the typical nucleus size "
                                        "(no annotations needed)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        for combo in (self.truth_combo, self.region_combo):  # layer names: any length
            compact_combo(combo)
        # Score and Cancel side by side, the longer two a row each: the dock stays narrow
        buttons = button_grid([self.score_button, self.cancel_button])
        buttons.addWidget(self.suggest_button, 1, 0, 1, 2)
        buttons.addWidget(self.estimate_button, 2, 0, 1, 2)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.result_label = QLabel("")
        wrap_label(self.result_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.result_label)
        self.score_button.clicked.connect(self.score)
        self.suggest_button.clicked.connect(self.suggest)
        self.estimate_button.clicked.connect(self.estimate)
        self.cancel_button.clicked.connect(self.cancel)

    # ---------------------------------------------------------------- layers
    def _connect_viewer(self) -> None:
        events = self.viewer.layers.events
        for emitter in (events.inserted, events.removed):
            self._listen(emitter, weak_method(self, "_on_layers_changed"))
        for layer in self.viewer.layers:
            self._listen(layer.events.name, weak_method(self, "refresh_layers"))

    def _listen(self, emitter, callback) -> None:
        emitter.connect(callback)
        self._state.connections.append((emitter, callback))

    def _on_layers_changed(self, event=None) -> None:
        layer = getattr(event, "value", None)
        if event is not None and event.type == "inserted" and layer is not None:
            self._listen(layer.events.name, weak_method(self, "refresh_layers"))
        self.refresh_layers()

    def refresh_layers(self, *_) -> None:
        """Refill the truth and region choices from the viewer's layers (keeping the picks)."""
        if self._state.closed.is_set():
            return
        truths = [ly for ly in self.viewer.layers if isinstance(ly, (Labels, Points))
                  and ly.name not in (SCORE_LAYER, PREVIEW_LAYER)]
        shapes = [ly for ly in self.viewer.layers if isinstance(ly, Shapes)]
        refill(self.truth_combo, [(ly.name, ly) for ly in truths])
        refill(self.region_combo, [("whole image", None)] + [(ly.name, ly) for ly in shapes])
        self._update_buttons()

    @property
    def truth_layer(self):
        """The Labels or Points layer scored against, or ``None``."""
        return self.truth_combo.currentData()

    @truth_layer.setter
    def truth_layer(self, layer) -> None:
        self.truth_combo.setCurrentIndex(self.truth_combo.findText(layer.name))

    @property
    def region_layer(self):
        """The Shapes layer that limits the score, or ``None`` (the whole image)."""
        return self.region_combo.currentData()

    @region_layer.setter
    def region_layer(self, layer) -> None:
        self.region_combo.setCurrentIndex(0 if layer is None else
                                          self.region_combo.findText(layer.name))

    @property
    def match_radius(self) -> float | None:
        """The match radius in image pixels; ``None``: automatic."""
        return float(self.radius.value()) or None

    @match_radius.setter
    def match_radius(self, value: float | None) -> None:
        self.radius.setValue(float(value or 0.0))

    @property
    def busy(self) -> bool:
        """Whether a job (score, suggest, estimate) is running."""
        return self.worker is not None

    def _update_buttons(self) -> None:
        idle, truth = not self.busy, self.truth_layer is not None
        self.score_button.setEnabled(idle and truth)
        self.suggest_button.setEnabled(idle and truth)
        self.estimate_button.setEnabled(idle)
        self.cancel_button.setEnabled(not idle)

    # ------------------------------------------------------------- gathering
    def _image(self):
        layer = self.model.target
        if layer is None:
            raise ValueError("open an image first")
        index, plane = current_plane(self.viewer, layer)
        if plane is None:
            raise ValueError("scoring needs a 2-D image or a stack of 2-D images")
        return layer, int(index or 0), plane

    def _source(self, image_layer) -> TruthSource:
        truth = self.truth_layer
        if truth is None:
            raise ValueError("choose a Labels or Points layer to score against")
        si, ti = np.asarray(image_layer.scale, float), np.asarray(image_layer.translate, float)
        st, tt = np.asarray(truth.scale, float), np.asarray(truth.translate, float)
        kind = "labels" if isinstance(truth, Labels) else "points"
        data = truth.data
        ndim = data.ndim if kind == "labels" else data.shape[1]
        if ndim not in (2, 3):
            raise ValueError(f"layer '{truth.name}' must be 2-D or a stack of 2-D images")
        ps, pt = 1.0, 0.0
        if ndim == 3 and len(si) >= 3:
            ps, pt = st[0] / si[0], (tt[0] - ti[0]) / si[0]
        return TruthSource(kind, data, tuple(st[-2:] / si[-2:]),
                           tuple((tt[-2:] - ti[-2:]) / si[-2:]), ps, pt, truth.name)

    def _polygons(self, image_layer) -> list | None:
        shapes = self.region_layer
        if shapes is None:
            return None
        polys = shape_polygons(shapes.data, shapes.shape_type, scale=shapes.scale,
                               translate=shapes.translate, image_scale=image_layer.scale,
                               image_translate=image_layer.translate,
                               stacked=image_layer.data.ndim == 3)
        if not polys:
            raise ValueError(f"the region '{shapes.name}' has no rectangle, polygon or ellipse")
        return polys

    # ------------------------------------------------------------------ jobs
    def score(self, *_, note: str = ""):
        """Score the displayed image (in a worker); returns the worker or ``None``.

        ``note`` is shown below the score (what set the parameters).
        """
        def job():
            self._note = note
            layer, index, plane = self._image()
            coords = None
            if self.store is not None and self.source_combo.currentText() == RESULTS:
                coords = self._detections()
                if coords is None:
                    raise ValueError("no run result for this image: run first, or score "
                                     "the sliders")
                coords = np.asarray(coords, float)[:, -2:]
            self._scored_at = (layer, index)
            return score_job, (plane, self._source(layer), index, self.model.params), dict(
                coords=coords, match_radius=self.match_radius, polygons=self._polygons(layer))
        return self._start("score", job, self._on_scored, progress=False)

    def _detections(self):
        """The run's detections ``(N, 2)`` of the displayed image, or ``None``."""
        layer = self.model.target
        if self.store.source is not layer:
            return None
        result = self.store.results.get(current_index(self.viewer, layer) or 0)
        return None if result is None else result.coords

    def suggest(self, *_):
        """Search the parameters on the annotated images (in a worker)."""
        def job():
            layer, index, plane = self._image()
            stack = layer.data if layer.data.ndim == 3 else None
            return tune_job, (stack, plane, self._source(layer), index), dict(
                match_radius=self.match_radius, polygons=self._polygons(layer))
        return self._start("suggest", job, self._on_tuned)

    def estimate(self, *_):
        """Suggest parameters from the displayed image alone (in a worker)."""
        def job():
            return estimate_job, (self._image()[2],), {}
        return self._start("estimate", job, self._on_estimated)

    def cancel(self, *_) -> bool:
        """Ask the running job to stop; ``False`` when none runs."""
        if not self.busy:
            return False
        self._job_cancel.set()
        self._then = None
        self.result_label.setText("Cancelling…")
        return True

    def stop(self) -> None:
        """Stop all work for good (the dock closes); the panel does nothing afterwards."""
        self._stop()

    def closeEvent(self, event) -> None:
        """Closing the panel stops its work."""
        self.stop()
        super().closeEvent(event)

    def _start(self, name: str, prepare: Callable, on_returned: Callable, progress=True):
        if self.busy or self._state.closed.is_set():
            return None
        try:
            fn, args, kwargs = prepare()
        except ValueError as exc:
            self.result_label.setText(str(exc))
            self.job_done.emit("failed")
            return None
        cancel, closed, relay = threading.Event(), self._state.closed, self._relay
        self._job_cancel = cancel
        if progress:
            def report(done: int, total: int) -> None:  # worker thread
                if not closed.is_set():
                    relay.progress.emit(int(done), int(total))
            kwargs.update(progress=report,
                          cancel=lambda: cancel.is_set() or closed.is_set())
        worker = create_worker(fn, *args, _ignore_errors=True, **kwargs)  # errors shown here
        worker.returned.connect(on_returned)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        quit_worker = worker.quit

        def quit_and_cancel() -> None:  # napari quitting its workers also cancels ours
            cancel.set()
            quit_worker()

        worker.quit = quit_and_cancel
        self.worker, self.job, self._outcome = worker, name, "done"
        self.progress.setRange(0, 0)
        self.progress.setVisible(progress)
        self.result_label.setText({"score": "Scoring…", "suggest": "Searching parameters…",
                                   "estimate": "Estimating…"}[name])
        self._update_buttons()
        worker.start()
        return worker

    def _alive(self) -> bool:
        return not self._state.closed.is_set()

    def _on_progress(self, done: int, total: int) -> None:
        if self._alive() and self.busy:
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)

    def _on_error(self, exc: Exception) -> None:
        if not self._alive():
            return
        if isinstance(exc, InterruptedError):
            self.result_label.setText("Cancelled.")
            self._outcome = "cancelled"
            return
        log.info("%s failed: %s", self.job, exc)
        self.result_label.setText(f"Could not {self.job}: {exc}")
        self._outcome = "failed"

    def _on_finished(self) -> None:
        if not self._alive():
            return
        outcome = self._outcome
        self._outcome = "done"
        self.worker, self.job = None, ""
        self.progress.setVisible(False)
        self._update_buttons()
        then, self._then = self._then, None
        self.job_done.emit(outcome)
        if then is not None and outcome == "done":
            then()

    # --------------------------------------------------------------- results
    def _on_scored(self, outcome: ScoreOutcome) -> None:
        if not self._alive():
            return
        self.last_score = outcome
        self.result_label.setText(score_text(outcome) + (f"\n{self._note}" if self._note else ""))
        self.show_markers(outcome, *self._scored_at)
        self.scored.emit(outcome)

    def _on_tuned(self, out) -> None:
        if not self._alive():
            return
        result, indices = out
        self.last_tune = result
        cancelled = result.cancelled or self._job_cancel.is_set()
        text = tune_text(result, len(indices), cancelled)
        self.result_label.setText(text)
        if cancelled:
            self._outcome = "cancelled"
            return
        self._apply(result.best, f"tuned (F1 {result.score.f1:.2f})")
        if self.source_combo.currentText() == SLIDERS:
            self._then = lambda: self.score(note=text)  # show what the new parameters find

    def _on_estimated(self, est) -> None:
        if not self._alive():
            return
        self.last_estimate = est
        self.result_label.setText(estimate_text(est))
        self._apply(est.params, est.label)

    def _apply(self, params: DetectionParams, label: str) -> None:
        self.model.params = params
        self.model.say_about_params(f"Parameters: {label}")
        self.params_set.emit(params, label)

    def show_markers(self, outcome: ScoreOutcome, image_layer, index: int = 0):
        """Replace the ``score`` layer with the markers of ``outcome`` (one per kind).

        See :func:`.view.show_markers`.
        """
        return show_markers(self.viewer, outcome, image_layer, index)
