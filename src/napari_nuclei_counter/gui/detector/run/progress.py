"""The run's progress in the dock: a bar, images per second and the time left."""

from __future__ import annotations

import time

from magicgui.widgets import Container, Label, ProgressBar

from ..layout import wrap_label

__all__ = ["RunProgress", "describe_progress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """``'45 s'``, ``'3 min 20 s'``, ``'1 h 05 min'``."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def describe_progress(done: int, total: int, seconds: float, start_done: int = 0) -> str:
    """The progress line: ``'57 / 240 images · 37.1 images/s · about 5 s left'``.

    Parameters
    ----------
    done, total : int
        Images done (including those done before, after a resume) and in all.
    seconds : float
        Time since this run's images started.
    start_done : int, optional
        Images that were done before the run started (not counted in the rate).
    """
    text = f"{done} / {total} images"
    new = done - start_done
    if new <= 0 or seconds <= 0:
        return text
    rate = new / seconds
    text += f" · {rate:.1f} images/s"
    if done < total:
        text += f" · about {format_seconds((total - done) / rate)} left"
    return text


class RunProgress:
    """A progress bar and a line under it, for the dock (napari's own bar is kept too).

    Attributes
    ----------
    bar : magicgui.widgets.ProgressBar
    label : magicgui.widgets.Label
    widget : magicgui.widgets.Container
        Both, hidden until a run starts.
    """

    def __init__(self) -> None:
        self.bar = ProgressBar(value=0, min=0, max=1, label="progress")
        self.label = Label(value="")
        wrap_label(self.label.native)  # a long line wraps instead of widening the dock
        self.widget = Container(widgets=[self.bar, self.label], labels=False)
        self.widget.margins = (0, 0, 0, 0)
        self.widget.visible = False
        self.total = 0
        self.start_done = 0
        self._t0 = 0.0

    def start(self, total: int, done: int = 0) -> None:
        """A run over ``total`` images begins (``done`` of them done before)."""
        self.total, self.start_done = int(total), int(done)
        self._t0 = time.perf_counter()
        self.bar.max = max(self.total, 1)
        self.bar.value = min(done, self.bar.max)
        self.label.value = describe_progress(done, total, 0.0, done)
        self.widget.visible = True

    def update(self, done: int) -> str:
        """``done`` images are done; returns the progress line."""
        native = self.bar.native
        # QProgressBar.setValue repaints at once (a whole-window flush with software
        # OpenGL); with updates off it only schedules the paint with the next frame
        native.setUpdatesEnabled(False)
        try:
            self.bar.value = min(int(done), self.bar.max)
        finally:
            native.setUpdatesEnabled(True)
        text = describe_progress(int(done), self.total, time.perf_counter() - self._t0,
                                 self.start_done)
        self.label.value = text
        return text

    def rate(self, done: int) -> float:
        """Images per second of this run so far."""
        seconds = time.perf_counter() - self._t0
        return (done - self.start_done) / seconds if seconds > 0 else 0.0

    def finish(self, text: str) -> None:
        """The run ended: leave the bar where it stopped, with a last line."""
        self.label.value = text
