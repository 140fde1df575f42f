"""What a batch sends to its workers: images on disk, or images held in memory.

:func:`path_tasks` and :func:`array_tasks` turn a source into the items, the
task function and its arguments that :func:`..scheduler.schedule` runs on a
backend. Files go to workers as paths; arrays as places in one shared-memory
block (or are used directly when the backend runs in this process).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from ..io.discovery import parse_metadata
from ..io.images import PlaneChoice
from ..params import DetectionParams
from ..results.tables import ImageResult
from .scheduler import Backend, schedule
from .worker import detect_array, process_chunk, process_shared_chunk

__all__ = ["run_arrays", "run_paths"]


def run_paths(items: list[tuple[int, str]], params: DetectionParams, backend: Backend, *,
              engine: str = "fast", regex: str | None = None, plane: PlaneChoice | None = None,
              chunksize: int | None = None, cancel: threading.Event | None = None,
              max_pixels: int | None = None) -> Iterator[ImageResult]:
    """Detect nuclei in files; yield one result per ``(index, path)`` item as it completes.

    ``max_pixels`` bounds the pixels decoded per image (see
    :func:`~napari_nuclei_counter.core.io.images.read_image`).
    """

    def failed(item, message):
        return ImageResult(item[0], item[1], parse_metadata(item[1], regex), error=message)

    yield from schedule(items, process_chunk, (params, engine, regex, plane, max_pixels), backend,
                        failed=failed,
                        chunksize=chunksize, cancel=cancel)


def _failed_array(item, message) -> ImageResult:
    return ImageResult(item[0], item[1], error=message)


def _detect_here(chunk, arrays, params, engine) -> list[ImageResult]:
    return [detect_array(i, label, arrays[i], params, engine) for i, label in chunk]


def run_arrays(arrays: Sequence[np.ndarray], labels: Sequence[str], params: DetectionParams,
               backend: Backend, *, engine: str = "fast", chunksize: int | None = None,
               cancel: threading.Event | None = None) -> Iterator[ImageResult]:
    """Detect nuclei in images held in memory; yield one result per image as it completes.

    The arrays must not change while the generator runs. A backend in this
    process reads them directly; worker processes map one shared-memory block
    into which each image is copied just before its task is sent (the copy
    overlaps with the work).

    Raises
    ------
    ValueError
        For a backend whose workers cannot map this machine's memory (Dask).
    """
    if not arrays:
        return
    if backend.in_process:
        items = [(i, labels[i]) for i in range(len(arrays))]
        yield from schedule(items, _detect_here, (arrays, params, engine), backend,
                            failed=_failed_array, chunksize=chunksize, cancel=cancel)
        return
    if not backend.shares_memory:
        raise ValueError(f"images held in memory cannot run on the {backend.name!r} backend; "
                         "its workers read files")
    with _shared_block(arrays) as (shm, offsets):
        items = [(i, labels[i], offsets[i], arrays[i].shape, arrays[i].dtype.str)
                 for i in range(len(arrays))]
        copied = np.zeros(len(items), bool)

        def copy_in(chunk) -> None:
            # just in time, right before the chunk is sent: the copy of the stack
            # (0.35 s for 600 MB) overlaps with the workers' detection
            for i, _, off, shape, dtype in chunk:
                if not copied[i]:
                    view = np.ndarray(shape, dtype=dtype, buffer=shm.buf, offset=off)
                    try:
                        view[...] = arrays[i]
                    finally:
                        del view  # no export of shm.buf may outlive this, or close() fails
                    copied[i] = True

        yield from schedule(items, process_shared_chunk, (shm.name, params, engine), backend,
                            failed=_failed_array, chunksize=chunksize, cancel=cancel,
                            before_submit=copy_in)


@contextmanager
def _shared_block(arrays: Sequence[np.ndarray]):
    """One shared-memory block with room for every array, 64-byte aligned; unlinked on exit."""
    from multiprocessing import shared_memory

    offsets, offset = [], 0
    for im in arrays:
        offsets.append(offset)
        offset += -(-im.nbytes // 64) * 64
    shm = shared_memory.SharedMemory(create=True, size=max(offset, 1))
    try:
        yield shm, offsets
    finally:
        try:
            shm.close()
        finally:
            shm.unlink()
