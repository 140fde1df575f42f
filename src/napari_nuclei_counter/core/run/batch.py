"""Batches without tables: one generator, a result per image as it completes.

These are the library's entry points for code that wants results, not files;
:class:`~.run.Run` adds discovery, resume and the tables around the same
scheduling. Both yield :class:`~.results.ImageResult` objects.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from ..params import DetectionParams
from ..results.tables import ImageResult
from .backends import default_workers, make_backend, start_workers_early
from .tasks import run_arrays, run_paths

__all__ = ["default_workers", "run_batch", "run_batch_arrays", "start_workers_early"]


def run_batch(
    paths: Sequence[str | os.PathLike],
    params: DetectionParams | None = None,
    *,
    workers: int | None = None,
    backend=None,
    engine: str = "fast",
    regex: str | None = None,
    chunksize: int | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[ImageResult]:
    """Detect nuclei in many images, yielding one result per image as it completes.

    Parameters
    ----------
    paths : sequence of path
        The images. ``ImageResult.index`` is the position in this sequence.
    params : DetectionParams, optional
    workers : int, optional
        Worker processes; default: every core. ``0`` runs everything in this
        process, one image after another (for debugging).
    backend : {'process', 'serial'} or Backend, optional
        Where the work runs (default local processes); e.g. the Dask adapter's
        ``DaskBackend``.
    engine : {'fast', 'reference'}, optional
    regex : str, optional
        Metadata regex for file names (see :func:`~.discovery.parse_metadata`).
    chunksize : int, optional
        Most images per task; default automatic (see :mod:`.scheduler`).
    cancel : threading.Event, optional
        Set it (from any thread) to stop: pending work is dropped, the worker
        processes end within a fraction of a second, and the generator returns.

    Yields
    ------
    ImageResult
        In completion order. A failed image yields a result with ``error`` set;
        the batch goes on.

    Notes
    -----
    Closing the generator (``gen.close()``, or leaving a ``for`` loop early)
    cancels the pending work and stops the worker processes at once. If a
    worker dies (e.g. killed by the out-of-memory killer), the images of the
    tasks that were running are retried one at a time; one that kills its
    worker again is reported as failed.
    """
    params = params or DetectionParams()
    items = [(i, str(p)) for i, p in enumerate(paths)]
    yield from run_paths(items, params, make_backend(backend or "process", workers),
                         engine=engine, regex=regex, chunksize=chunksize, cancel=cancel)


def run_batch_arrays(
    images,
    params: DetectionParams | None = None,
    *,
    labels: Sequence[str] | None = None,
    workers: int | None = None,
    engine: str = "fast",
    chunksize: int | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[ImageResult]:
    """Like :func:`run_batch`, for images already in memory.

    The images are copied into one shared-memory block that the workers map;
    no image is pickled. The arrays must not change while the generator runs.

    Parameters
    ----------
    images : ndarray of shape (N, H, W), or sequence of 2-D arrays
        The images (a stack, or images of different sizes).
    params : DetectionParams, optional
    labels : sequence of str, optional
        Reported as ``ImageResult.path``; default ``'image 0'``, ``'image 1'``, ...
    workers, engine, chunksize, cancel :
        As in :func:`run_batch`.

    Yields
    ------
    ImageResult
        In completion order; ``meta`` is blank.
    """
    params = params or DetectionParams()
    arrays = [np.asarray(im) for im in images]
    labels = list(labels) if labels is not None else [f"image {i}" for i in range(len(arrays))]
    yield from run_arrays(arrays, labels, params, make_backend("process", workers),
                          engine=engine, chunksize=chunksize, cancel=cancel)
