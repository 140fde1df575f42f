"""The scheduler's watchdog: notices when no task has come back for too long.

A worker can get stuck without dying: stopped (``SIGSTOP``, a suspended
job), blocked on a hung network file system, or in an endless computation.
The scheduler asks :meth:`Watchdog.stalled` between its waits; when no result
came for the stall timeout while tasks were in flight, it asks the backend
to kill the workers of those tasks (``Backend.kill``) and retries their
images one at a time, like images whose worker died; an image that gets
stuck again when it runs alone is reported as failed (:data:`STUCK`).

The timeout, unless given: 120 s before the first image is done (workers
start, imports, a slow first read), then the larger of 60 s and 20 times the
median time of an image, times the most images in a task in flight.
"""

from __future__ import annotations

import bisect
import time

__all__ = ["FIRST_SECONDS", "MIN_SECONDS", "STUCK", "Watchdog"]

#: the stall timeout before the first result, s
FIRST_SECONDS = 120.0
#: the smallest automatic stall timeout after the first result, s
MIN_SECONDS = 60.0
#: an automatic timeout is this many times the median image time
FACTOR = 20.0
#: image times kept for the median
_KEEP = 1024

#: the error of an image that got stuck again when it ran alone
STUCK = ("the worker got stuck on this image twice (no result within {:.0f} s); it was "
         "stopped (see --stall-timeout)")


class Watchdog:
    """Time since the last result, against a fixed or automatic stall timeout.

    Parameters
    ----------
    timeout : float, optional
        Seconds without any result that count as stuck; default automatic
        (see the module's docstring). ``0`` or less turns the watchdog off.
    clock : callable, optional
        Monotonic clock (seconds).
    """

    def __init__(self, timeout: float | None = None, clock=time.monotonic):
        self.timeout = None if timeout is None else float(timeout)
        self._clock = clock
        self._last = clock()
        self._times: list[float] = []
        self._order: list[float] = []

    @property
    def enabled(self) -> bool:
        """Whether the watchdog watches at all."""
        return self.timeout is None or self.timeout > 0

    def progress(self) -> None:
        """A result came back (or tasks were started afresh): the clock starts again."""
        self._last = self._clock()

    def observe(self, seconds: float) -> None:
        """Learn the time one image took."""
        bisect.insort(self._times, seconds)
        self._order.append(seconds)
        if len(self._order) > _KEEP:
            old = self._order.pop(0)
            del self._times[bisect.bisect_left(self._times, old)]

    def limit(self, images: int = 1) -> float:
        """The stall timeout now, for tasks of at most ``images`` images."""
        if self.timeout is not None:
            return self.timeout
        if not self._times:
            return FIRST_SECONDS
        median = self._times[len(self._times) // 2]
        return max(MIN_SECONDS, FACTOR * median * max(1, images))

    def stalled(self, images: int = 1) -> bool:
        """Whether no result came within :meth:`limit` (for tasks of ``images`` images)."""
        return self.enabled and self._clock() - self._last > self.limit(images)
