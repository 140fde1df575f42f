"""Telling a lost Dask cluster from a slow one (an adapter over the core, used by :mod:`.backend`).

A scheduler that was killed, or a cluster whose last worker died with its
nanny, leaves the client's futures waiting forever. :class:`LostCheck`
watches, between two waits, the client's connection and the scheduler's
count of worker threads (asked at most once a second). A problem that lasts ``LOST_SECONDS`` (or the
run's stall timeout, when shorter) raises
:class:`~napari_nuclei_counter.core.run.errors.BackendLost`: the run then writes
the tables of what was done and stops, resumable (exit 3 on the command line).
"""

from __future__ import annotations

import logging
import time

from ..core.run.errors import BackendLost

__all__ = ["LOST_SECONDS", "LostCheck"]

log = logging.getLogger(__name__)

#: the run ends after this long without a scheduler, or without any worker
#: while tasks wait, s (at most the stall timeout)
LOST_SECONDS = 30.0


class LostCheck:
    """Whether the cluster has been gone (no scheduler, or no worker) for too long."""

    def __init__(self, backend):
        self._backend = backend
        self._since: float | None = None

    def fine(self) -> None:
        """Tasks came back: all is well."""
        self._since = None

    def check(self) -> None:
        """Raise :class:`BackendLost` once the cluster has been gone for the grace time."""
        backend = self._backend
        client = backend._client
        status = getattr(client, "status", "running")
        if status == "running":
            # asked again at most every REFRESH_SECONDS (the last answer when
            # the scheduler does not reply)
            problem = None if backend.threads() else "the Dask cluster has no worker left"
        else:
            problem = f"lost the connection to the Dask scheduler ({status})"
        if problem is None:
            self._since = None
            return
        now = time.monotonic()
        if self._since is None:
            self._since = now
            log.warning("%s; waiting up to %.0f s", problem, self._grace())
        elif now - self._since > self._grace():
            raise BackendLost(f"{problem} for {self._grace():.0f} s")

    def _grace(self) -> float:
        stall = getattr(self._backend, "stall_timeout", None)
        return min(LOST_SECONDS, stall) if stall else LOST_SECONDS
