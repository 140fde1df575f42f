"""Running a batch from the dock: the core's :class:`Run` in a napari ``thread_worker``.

Everything that touches files (finding the images, the resume state, the
streaming tables and their final form) happens inside the core's run, in the
worker thread; the GUI thread only receives messages and moves numbers into
the store, the progress bar and the status line.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from napari.qt.threading import create_worker
from napari.utils import progress
from qtpy.QtCore import QObject, Signal

from ...._reader import stack_layer_data
from ....core.io.planes import PlaneChoice
from ....core.run.pipeline import Run

__all__ = ["RunController"]

#: results are relayed to the GUI at most this often, s
RELAY_SECONDS = 0.1
#: how often napari's own progress bar moves during a run
PBAR_SECONDS = 1.0


def _run_job(run: Run, layer_name: str | None):
    """Generator run by the batch ``thread_worker``; yields ``(kind, payload)`` messages.

    ``('layer', layer_data)`` first when the run is on a folder (the stack to
    show, made from the files found), then ``('start', done_results)`` (the
    results of images done before, after a resume), then ``('results',
    list)`` at most every ``RELAY_SECONDS``: napari's progress bar processes
    events on each update, so one update per image would let hundreds of
    queued updates nest into each other when images are fast. Last, when the
    fixed threshold was above every smoothed value of some images,
    ``('suggestion', value)``: the threshold they suggest
    (:meth:`Run.suggest_threshold`, which reads a few of them again, here
    rather than on the window's thread; ``None`` when none suggests one).
    """
    run.prepare()
    if layer_name is not None:
        plane = run.plane if run.plane != PlaneChoice() else None
        yield "layer", stack_layer_data(run.labels, name=layer_name, regex=run.regex, plane=plane)
    yield "start", run.done_results()
    batch: list = []
    last = 0.0
    results = iter(run)
    try:
        for r in results:
            batch.append(r)
            now = time.monotonic()
            if now - last >= RELAY_SECONDS:
                yield "results", batch
                batch, last = [], now
    finally:
        results.close()  # writes the final tables, also when the worker is quit
    if batch:
        yield "results", batch
    if run.threshold_above and run.params.threshold_method is None and not run.cancel.is_set():
        yield "suggestion", run.suggest_threshold()


class RunFailed(Exception):
    """A run stopped by an error (superqt treats a plain ``RuntimeError`` as a deleted worker)."""


def _relay(job):
    """The worker's generator function: relays the job's messages."""
    try:
        yield from job
    except RuntimeError as exc:  # would end the worker silently, the dock stuck "running"
        raise RunFailed(str(exc) or type(exc).__name__) from exc


def _close_quietly(gen) -> None:
    try:
        gen.close()
    except ValueError:  # still running in the worker thread: its cancel event stops it
        pass


class RunController(QObject):
    """Start, follow and cancel one run at a time.

    Signals
    -------
    layer_made(tuple)
        The image ``LayerData`` of a folder run's stack (the dock adds it).
    started(object)
        The :class:`Run`, once its images are known and before any result.
    results(list)
        :class:`ImageResult` objects, in batches (done-before ones first).
    finished(object)
        The :class:`Run` (its ``summary`` says how it went), or ``None`` when it
        stopped with an error.
    failed(object)
        The exception that stopped a run.

    Attributes
    ----------
    suggestion : float or None
        After a run whose fixed threshold was above every smoothed value of
        some images, the threshold they suggest (see :func:`_run_job`);
        ``None`` otherwise. Set before ``finished``.
    """

    layer_made = Signal(tuple)
    started = Signal(object)
    results = Signal(list)
    finished = Signal(object)
    failed = Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.run: Run | None = None  #: the run going on (or the last one)
        self.suggestion: float | None = None
        self.worker = None  #: the batch worker while a run is going on
        self._pbar = None
        self._pbar_at = 0.0  #: when napari's progress bar last moved
        self._pending = 0  #: images done since then
        self._description: str | None = None  #: its next description
        self._error = False

    @property
    def running(self) -> bool:
        """Whether a run is going on."""
        return self.worker is not None

    def start(self, run: Run, *, layer_name: str | None = None,
              cancel_on: Callable[[Callable], None] | None = None):
        """Start ``run`` in a worker thread; return the napari worker.

        Parameters
        ----------
        run : Run
            Not prepared yet: its file work happens in the worker.
        layer_name : str, optional
            Make an image layer of this name from the files found (folder runs).
        cancel_on : callable, optional
            ``cancel_on(callback)`` connects a plain callable that cancels the
            run (e.g. to the dock's ``destroyed`` signal).
        """
        self.run = run
        self.suggestion = None
        self._error = False
        job = _run_job(run, layer_name)
        worker = create_worker(_relay, job)
        worker.yielded.connect(self._on_message)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        # napari quits workers when it closes; make sure the workers go too. Plain
        # callables, not methods of self, so they run even if the dock is gone.
        worker.aborted.connect(run.cancel.set)
        # napari quits workers when it closes and then waits for them: quitting also
        # cancels the run, which then ends within a fraction of a second and writes
        # its tables in the worker thread before napari's wait returns
        quit_worker = worker.quit

        def quit_and_cancel() -> None:
            run.cancel.set()
            quit_worker()

        worker.quit = quit_and_cancel
        # a worker quit by napari leaves the job suspended at a yield: close it,
        # which stops the worker processes and writes the tables
        worker.finished.connect(functools.partial(_close_quietly, job))
        if cancel_on is not None:
            cancel_on(run.cancel.set)
        self.worker = worker
        worker.start()
        return worker

    def cancel(self) -> bool:
        """Ask the run to stop (its workers end within a second); ``False`` if none runs."""
        if self.run is None or not self.running:
            return False
        self.run.cancel.set()
        return True

    def _on_message(self, message) -> None:
        kind, payload = message
        if kind == "layer":
            self.layer_made.emit(payload)
        elif kind == "suggestion":
            self.suggestion = payload
        elif kind == "start":
            run = self.run
            self.started.emit(run)
            if payload:
                self.results.emit(list(payload))
            # last: napari's progress bar processes events (so the next messages,
            # even the end of the run, may be handled inside these calls)
            pbar = progress(total=run.n_images, desc="Detecting nuclei")
            self._pbar, self._pbar_at, self._pending = pbar, time.monotonic(), 0
            self._description = None
            pbar.update(len(payload))
            if self.worker is None:  # the run ended meanwhile
                pbar.close()
                self._pbar = None
        else:
            self.results.emit(payload)
            self._pending += len(payload)
            self._tick_pbar()

    def _tick_pbar(self, force: bool = False) -> None:
        """Move napari's progress bar, at most every :data:`PBAR_SECONDS`.

        Each update of napari's bar repaints it at once and processes events
        (tens of milliseconds with software OpenGL); the dock's own bar shows
        every batch.
        """
        pbar = self._pbar
        now = time.monotonic()
        if pbar is None or not (force or now - self._pbar_at >= PBAR_SECONDS):
            return
        self._pbar_at = now
        pending, self._pending = self._pending, 0
        if self._description is not None:
            text, self._description = self._description, None
            pbar.set_description(text)
        if pending:
            # last: napari's progress bar processes events (and so may run
            # the next slots) while it redraws
            pbar.update(pending)

    def set_description(self, text: str) -> None:
        """Describe the run on napari's progress bar (shown with its next move)."""
        self._description = text

    def _on_error(self, exc: Exception) -> None:
        self._error = True
        self.failed.emit(exc)

    def _on_finished(self) -> None:
        pbar, self._pbar = self._pbar, None
        if pbar is not None:
            pbar.close()
        self.worker = None
        self.finished.emit(None if self._error else self.run)


def save_in_worker(fn: Callable, *args, done: Callable[[object], None],
                   error: Callable[[Exception], None]):
    """Run ``fn(*args)`` (file work, e.g. saving tables) in a worker thread."""
    worker = create_worker(fn, *args)
    worker.returned.connect(done)
    worker.errored.connect(error)
    worker.start()
    return worker
