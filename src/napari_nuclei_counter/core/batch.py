"""The batch engine: one generator, a result per image as it completes.

Workers are separate processes started with ``forkserver`` (``spawn`` where
that is missing), never ``fork``: the GUI calls this from a thread of a Qt
process, and forking such a process is unsafe. Workers receive paths, never
pickled images, and run :func:`process_chunk`, a module-level function.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from . import _fast  # noqa: F401  (preloaded by the forkserver)
from .detection import as_grayscale_2d, detect
from .discovery import parse_metadata
from .params import DetectionParams
from .qc import image_metrics
from .results import ImageResult

__all__ = [
    "default_workers",
    "process_chunk",
    "process_image",
    "process_shared_chunk",
    "read_image",
    "run_batch",
    "run_batch_arrays",
]

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Number of CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


_read_local = threading.local()


def _reusable(shape: tuple, dtype) -> np.ndarray:
    """A per-thread array reused by successive reads of same-sized images."""
    buf = getattr(_read_local, "buffer", None)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = np.empty(shape, dtype)
        _read_local.buffer = buf
    return buf


def read_image(path: str | os.PathLike, *, reuse_buffer: bool = False) -> np.ndarray:
    """Read one grayscale TIFF as a 2-D array.

    Parameters
    ----------
    path : str or PathLike
    reuse_buffer : bool, optional
        Read into a per-thread buffer that the next call overwrites (what a
        batch worker wants: no fresh memory, and its page faults, per image).
        Only for callers that are done with the image before the next read.

    Raises
    ------
    FileNotFoundError, ValueError, TypeError
        With a message a biologist can act on.
    """
    import tifffile

    p = Path(path)
    if not p.exists():
        if p.is_symlink():
            raise FileNotFoundError("broken symbolic link: its target does not exist")
        raise FileNotFoundError("file not found")
    if p.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        with tifffile.TiffFile(p) as tf:
            series = tf.series[0]
            out = _reusable(tuple(series.shape), series.dtype) if reuse_buffer else None
            data = tf.asarray(out=out)
    except Exception as exc:  # tifffile raises many kinds for bad files
        raise ValueError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    return as_grayscale_2d(data)


def process_image(index: int, path: str, params: DetectionParams, engine: str = "fast",
                  regex: str | None = None) -> ImageResult:
    """Read and detect one image; any failure becomes the result's ``error``."""
    t0 = time.perf_counter()
    meta = parse_metadata(path, regex)
    try:
        st = os.stat(path)
        size, mtime = st.st_size, st.st_mtime
    except OSError:  # missing or a broken link: read_image says so below
        size = mtime = None
    try:
        image = read_image(path, reuse_buffer=True)  # errors say what is wrong, plainly
        det = detect(image, params, engine=engine)
        metrics = image_metrics(image)
    except Exception as exc:
        msg = str(exc) or type(exc).__name__
        return ImageResult(index, str(path), meta, seconds=time.perf_counter() - t0, error=msg,
                           file_size=size, file_mtime=mtime)
    return ImageResult(index, str(path), meta, det.coords, det.intensities,
                       time.perf_counter() - t0, metrics=metrics, file_size=size,
                       file_mtime=mtime)


def process_chunk(items: Sequence[tuple[int, str]], params: DetectionParams, engine: str = "fast",
                  regex: str | None = None) -> list[ImageResult]:
    """Worker entry point: process ``(index, path)`` pairs in order."""
    return [process_image(i, p, params, engine, regex) for i, p in items]


def _detect_array(index: int, label: str, image, params, engine) -> ImageResult:
    t0 = time.perf_counter()
    try:
        image = as_grayscale_2d(image)
        det = detect(image, params, engine=engine)
        metrics = image_metrics(image)
    except Exception as exc:
        return ImageResult(index, label, seconds=time.perf_counter() - t0,
                           error=str(exc) or type(exc).__name__)
    return ImageResult(index, label, coords=det.coords, intensities=det.intensities,
                       seconds=time.perf_counter() - t0, metrics=metrics)


def process_shared_chunk(items: Sequence[tuple], shm_name: str, params: DetectionParams,
                         engine: str = "fast") -> list[ImageResult]:
    """Worker entry point for images in shared memory.

    Parameters
    ----------
    items : sequence of ``(index, label, offset, shape, dtype)``
        Where each image lies in the shared block.
    shm_name : str
        Name of the ``multiprocessing.shared_memory.SharedMemory`` block.
    """
    from multiprocessing import shared_memory

    # workers share the creator's resource tracker (spawn and forkserver pass
    # it on), so attaching registers nothing new and the creator unlinks it
    shm = shared_memory.SharedMemory(name=shm_name)
    try:
        out = []
        for index, label, offset, shape, dtype in items:
            count = int(np.prod(shape))
            img = np.frombuffer(shm.buf, dtype=dtype, count=count, offset=offset).reshape(shape)
            out.append(_detect_array(index, label, img, params, engine))
            del img
        return out
    finally:
        shm.close()


def _watch_main(pid: int, interval: float = 0.5) -> None:
    """End this worker when the main process is gone (killed, crashed).

    A worker blocked on its task queue would otherwise wait forever: its
    parent is the forkserver, and the forkserver only exits once every
    worker has. A daemon thread checks the main process twice a second.
    """
    import threading

    def watch():
        stat = f"/proc/{pid}/stat"
        while True:
            time.sleep(interval)
            try:
                os.kill(pid, 0)
                if os.path.exists(stat):
                    with open(stat, "rb") as fh:
                        if fh.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                            os._exit(1)  # a zombie: dead, not yet reaped
            except ProcessLookupError:
                os._exit(1)
            except OSError:  # /proc quirks: keep watching with os.kill alone
                pass

    threading.Thread(target=watch, name="watch-main", daemon=True).start()


def _init_worker(main_pid: int | None = None) -> None:
    if main_pid is not None:
        _watch_main(main_pid)
    # Ctrl+C in a terminal reaches the whole process group: the main process
    # handles it and stops the workers, which must not print tracebacks
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # one thread per worker: the pool already uses every core
    cv2.setNumThreads(1)
    # pay one-off initialisation (OpenCV dispatch, lazy imports) before timing starts
    detect(np.zeros((48, 48), np.uint16) + np.eye(48, dtype=np.uint16), DetectionParams(1.0, 1, 0.0))


#: what the forkserver imports once, so that every worker starts with it
_PRELOAD = [__name__, "scipy.ndimage"]  # the exact tier; scipy.spatial is rarely needed


def _context():
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return mp.get_context("spawn")


def start_workers_early() -> None:
    """Start the forkserver now, so that it imports while the caller does other work.

    Optional: the first batch starts it anyway. The command line calls this
    before it lists the input folder, which hides most of the workers'
    start-up time.
    """
    if _context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


@contextmanager
def _no_main_reimport():
    """Keep new worker processes from re-running the caller's script.

    ``spawn`` and ``forkserver`` children re-execute the parent's ``__main__``
    file (as ``__mp_main__``) so that functions defined there can be unpickled.
    Our workers only run functions of this package, and a script without an
    ``if __name__ == "__main__":`` guard would otherwise open a second napari
    window per worker (napari#4244). While workers start, ``__main__`` does not
    advertise its file.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _chunks(items: list, size: int, workers: int = 1) -> Iterator[list]:
    """Split ``items`` into tasks of at most ``size``, smaller towards the end.

    Guided scheduling: a task holds at most a quarter of the remaining items
    per worker, so the last tasks are single images and no worker idles
    through the end of the batch while another finishes a full chunk.
    """
    s = 0
    while s < len(items):
        n = max(1, min(size, (len(items) - s) // (4 * workers)))
        yield items[s : s + n]
        s += n


def run_batch(
    paths: Sequence[str | os.PathLike],
    params: DetectionParams | None = None,
    *,
    workers: int | None = None,
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
    engine : {'fast', 'reference'}, optional
    regex : str, optional
        Metadata regex for file names (see :func:`parse_metadata`).
    chunksize : int, optional
        Most images per task; default balances progress updates and overhead.
        Tasks get smaller towards the end of the batch, down to one image, so
        that no worker idles while another finishes a long task.
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
    tasks that were running are reported as failed and the rest is retried
    in a fresh pool.
    """
    params = params or DetectionParams()
    items = [(i, str(p)) for i, p in enumerate(paths)]
    if not items:
        return
    workers = default_workers() if workers is None else int(workers)
    if workers <= 0:
        for i, p in items:
            if cancel is not None and cancel.is_set():
                return
            yield process_image(i, p, params, engine, regex)
        return
    workers = min(workers, len(items))
    if chunksize is None:
        chunksize = max(1, min(8, len(items) // (workers * 6)))
    yield from _run_pool(deque(_chunks(items, chunksize, workers)), process_chunk,
                         (params, engine, regex), workers, regex, cancel)


def _run_pool(todo: deque, fn, args: tuple, workers: int, regex=None,
              cancel: threading.Event | None = None, before_submit=None
              ) -> Iterator[ImageResult]:
    """Run chunks on a process pool, surviving workers that die.

    ``before_submit(chunk)``, when given, runs in this process right before a
    chunk is sent to a worker (e.g. to put its images into shared memory).

    When a worker dies, every task in flight fails with it and nobody can say
    which image was to blame. Those images become suspects: they are retried
    one at a time in a fresh pool, so an image that kills its worker again is
    identified and reported as failed, and the others succeed.
    """
    suspects: deque = deque()
    while todo or suspects:
        pool = ProcessPoolExecutor(workers, mp_context=_context(), initializer=_init_worker,
                                   initargs=(os.getpid(),))
        running: dict[Future, tuple[list, bool]] = {}
        broken = False
        try:
            while (todo or suspects or running) and not broken:
                # suspects run alone; ordinary chunks keep every worker busy
                limit = 1 if suspects else workers * 3
                queue = suspects if suspects else todo
                while queue and len(running) < limit:
                    chunk = queue.popleft()
                    if before_submit is not None:
                        before_submit(chunk)
                    try:
                        with _no_main_reimport():  # submit may start a worker process
                            fut = pool.submit(fn, chunk, *args)
                    except BrokenProcessPool:
                        queue.appendleft(chunk)
                        broken = True
                        break
                    running[fut] = (chunk, queue is suspects)
                if broken and not running:
                    break
                done: set = set()
                while not done:
                    if cancel is not None and cancel.is_set():
                        return  # the finally below stops the pool
                    done, _ = wait(running, timeout=0.1, return_when=FIRST_COMPLETED)
                for fut in done:
                    chunk, suspect = running.pop(fut)
                    try:
                        yield from fut.result()
                    except BrokenProcessPool:
                        broken = True
                        if suspect:
                            yield from _lost(chunk, regex)
                        else:
                            suspects.extend([item] for item in chunk)
                    except Exception as exc:  # e.g. a result that cannot be pickled
                        for item in chunk:
                            yield ImageResult(item[0], item[1], parse_metadata(item[1], regex),
                                              error=f"worker failed: {exc}")
            if broken:
                for chunk, suspect in running.values():
                    if suspect:
                        suspects.appendleft(chunk)
                    else:
                        suspects.extend([item] for item in chunk)
                log.warning("a worker process died; retrying %d image(s) one at a time",
                            len(suspects))
                running.clear()
        finally:
            _stop(pool)


def _lost(chunk, regex) -> Iterator[ImageResult]:
    for item in chunk:
        i, p = item[0], item[1]
        yield ImageResult(i, p, parse_metadata(p, regex), error=(
            "the worker process died while processing this image, twice "
            "(out of memory, or killed)"))


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel pending tasks and end the worker processes now, not when they finish."""
    procs = list(getattr(pool, "_processes", {}).values())  # no public API before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + 2.0
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)


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

    The images are copied once into one shared-memory block that the workers
    map; no image is pickled. Each image is copied just before its task is
    sent (the copy overlaps with the work), so the arrays must not change
    while the generator runs.

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
    from multiprocessing import shared_memory

    params = params or DetectionParams()
    arrays = [np.asarray(im) for im in images]
    if not arrays:
        return
    labels = list(labels) if labels is not None else [f"image {i}" for i in range(len(arrays))]
    workers = default_workers() if workers is None else int(workers)
    if workers <= 0:
        for i, im in enumerate(arrays):
            if cancel is not None and cancel.is_set():
                return
            yield _detect_array(i, labels[i], im, params, engine)
        return
    items, offset = [], 0
    for i, im in enumerate(arrays):
        items.append((i, labels[i], offset, im.shape, im.dtype.str))
        offset += -(-im.nbytes // 64) * 64  # keep every image 64-byte aligned
    shm = shared_memory.SharedMemory(create=True, size=max(offset, 1))
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

    try:
        workers = min(workers, len(items))
        if chunksize is None:
            chunksize = max(1, min(8, len(items) // (workers * 6)))
        yield from _run_pool(deque(_chunks(items, chunksize, workers)), process_shared_chunk,
                             (shm.name, params, engine), workers, None, cancel,
                             before_submit=copy_in)
    finally:
        try:
            shm.close()
        finally:
            shm.unlink()
