"""Where a run's tasks execute: in this process, or on a local process pool.

Each backend implements :class:`~napari_nuclei_counter.core.run.scheduler.Backend`;
the scheduler decides everything else. The Dask backend is an adapter
(:mod:`napari_nuclei_counter.dask_backend.backend`) with the same interface.
"""

from .pool import ProcessBackend, default_workers, no_main_reimport, start_workers_early
from .serial import SerialBackend

__all__ = [
    "ProcessBackend",
    "SerialBackend",
    "default_workers",
    "make_backend",
    "no_main_reimport",
    "start_workers_early",
]


def make_backend(backend="process", workers: int | None = None, *, nice: int = 0):
    """Return a backend object for a name (an object is returned as it is).

    Front ends choose with :func:`napari_nuclei_counter.dask_backend.choice.choose_backend`,
    which also knows the Dask adapter and calls this for the local backends.

    Parameters
    ----------
    backend : {'process', 'serial'} or Backend
    workers : int, optional
        Worker processes (default every core); ``0`` means ``'serial'``.
    nice : int, optional
        Added to the worker processes' niceness (see :class:`ProcessBackend`).
    """
    if not isinstance(backend, str):
        return backend
    if backend == "serial" or workers == 0:
        return SerialBackend()
    if backend == "process":
        return ProcessBackend(workers, nice=nice)
    raise ValueError(f"backend must be 'process' or 'serial' (or a backend object), "
                     f"not {backend!r}")
