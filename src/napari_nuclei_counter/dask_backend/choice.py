"""Choosing where a run's tasks execute: local processes or a Dask cluster.

:func:`choose_backend` is the one place that turns a front end's choice
(the command line's ``--backend``/``--workers``/``--scheduler``, the dock's
*run with*, *workers* and *scheduler*) into a backend object for
:class:`~napari_nuclei_counter.core.run.pipeline.Run`. It lives in the
adapter layer because it knows the Dask adapter; the core's
:func:`~napari_nuclei_counter.core.run.backends.make_backend` makes the
local backends. Dask is imported only when a Dask backend is chosen.
"""

from __future__ import annotations

from ..core.run.backends import make_backend

__all__ = ["BACKEND_KINDS", "choose_backend"]

#: the names a front end may give a kind of backend -> the kind
BACKEND_KINDS = {"process": "process", "local processes": "process", "serial": "serial",
                 "dask": "dask"}


def choose_backend(kind: str = "process", *, workers: int | None = None,
                   scheduler: str | None = None, nice: int = 0, threads_per_worker: int = 1,
                   client=None):
    """The backend of a run.

    Parameters
    ----------
    kind : str, optional
        ``'process'`` (or the dock's ``'local processes'``): worker processes
        on this machine; ``'dask'`` (any case): a Dask cluster; ``'serial'``:
        this process.
    workers : int, optional
        Local worker processes (default every core; ``0``: this process, no
        workers), or the workers of a local Dask cluster (``None`` or ``0``:
        Dask's default). A cluster at ``scheduler`` has its own workers.
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler; without one a
        local Dask cluster is started for the run.
    nice : int, optional
        Added to the local worker processes' niceness (the dock lowers their
        priority so that its window stays responsive).
    threads_per_worker : int, optional
        Threads of each worker of a local Dask cluster.
    client : distributed.Client, optional
        An open Dask client to use (left open).

    Returns
    -------
    Backend
        A :class:`~napari_nuclei_counter.core.run.backends.ProcessBackend`,
        :class:`~napari_nuclei_counter.core.run.backends.SerialBackend` or
        :class:`~napari_nuclei_counter.dask_backend.backend.DaskBackend`.

    Raises
    ------
    ValueError
        For an unknown ``kind``.
    """
    found = BACKEND_KINDS.get(str(kind).strip().lower())
    if found is None:
        raise ValueError(f"kind must be one of {', '.join(map(repr, BACKEND_KINDS))}, "
                         f"not {kind!r}")
    if found == "dask":
        from .backend import DaskBackend

        return DaskBackend(scheduler, n_workers=workers or None,
                           threads_per_worker=threads_per_worker, client=client)
    return make_backend(found, workers, nice=nice)
