"""What a worker process runs: one image, or a task of several, into an :class:`ImageResult`.

Every function here is module-level, so that process pools and Dask workers
can run it by name. Workers receive paths (or where an image lies in shared
memory), never pickled images. Any failure of one image becomes that image's
``error``; a task never raises for a bad image.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Sequence

import cv2
import numpy as np

from ..detect import _fast  # noqa: F401  (preloaded by the forkserver)
from ..detect.detection import as_grayscale_2d, detect
from ..detect.qc import image_metrics
from ..detect.thresholds import check_threshold, resolve_threshold, threshold_above
from ..io.discovery import ImageMeta, parse_metadata
from ..io.images import PlaneChoice, read_image, split_scene
from ..params import DetectionParams
from ..results.tables import ImageResult

__all__ = [
    "detect_array",
    "prepare_worker",
    "process_chunk",
    "process_image",
    "process_shared_chunk",
    "suggest_threshold",
]


def _measure(index: int, label: str, load, params: DetectionParams, engine: str,
             meta: ImageMeta | None = None, **file_info) -> ImageResult:
    """Load an image, detect and measure it; any failure becomes the result's ``error``."""
    t0 = time.perf_counter()
    meta = meta or ImageMeta()
    try:
        image = load()  # errors say what is wrong, plainly
        used = resolve_threshold(as_grayscale_2d(image), params)  # per image when automatic
        det = detect(image, used, engine=engine)
        metrics = image_metrics(image)
        # nothing found: is the threshold above the whole image?
        above = det.count == 0 and threshold_above(as_grayscale_2d(image), used)
    except Exception as exc:
        return ImageResult(index, label, meta, seconds=time.perf_counter() - t0,
                           error=str(exc) or type(exc).__name__, **file_info)
    return ImageResult(index, label, meta, det.coords, det.intensities,
                       time.perf_counter() - t0, metrics=metrics, threshold=used.threshold_abs,
                       threshold_above_image=above, **file_info)


def suggest_threshold(source, params: DetectionParams, plane: PlaneChoice | None = None,
                      max_pixels: int | None = None) -> float | None:
    """The threshold an image suggests itself (its Otsu threshold after blurring, rounded down).

    For the images whose threshold was above every smoothed value: they are
    read again, a few of them, once a run has ended (see
    :func:`~napari_nuclei_counter.core.detect.thresholds.check_threshold`).

    Parameters
    ----------
    source : str or ndarray
        An image file (or ``FILE#SCENE``) read with ``plane`` and
        ``max_pixels`` as the run read it, or an image in memory.
    params : DetectionParams
    plane : PlaneChoice, optional
    max_pixels : int, optional

    Returns
    -------
    float or None
        ``None`` for a constant image or one that can no longer be read.
    """
    try:
        image = (read_image(source, plane=plane, max_pixels=max_pixels)
                 if isinstance(source, (str, os.PathLike)) else source)
        return check_threshold(as_grayscale_2d(image), params).suggestion
    except Exception:  # changed or gone since the run read it: no suggestion, no failure
        return None


def process_image(index: int, path: str, params: DetectionParams, engine: str = "fast",
                  regex: str | None = None, plane: PlaneChoice | None = None,
                  max_pixels: int | None = None) -> ImageResult:
    """Read and detect one image file; any failure becomes the result's ``error``."""
    try:
        st = os.stat(split_scene(path)[0])  # a scene's identity is its file's
        size, mtime = st.st_size, st.st_mtime
    except OSError:  # missing or a broken link: read_image says so
        size = mtime = None
    def load():
        return read_image(path, plane=plane, reuse_buffer=True, max_pixels=max_pixels)

    return _measure(index, str(path), load, params, engine, parse_metadata(path, regex),
                    file_size=size, file_mtime=mtime)


def process_chunk(items: Sequence[tuple[int, str]], params: DetectionParams, engine: str = "fast",
                  regex: str | None = None, plane: PlaneChoice | None = None,
                  max_pixels: int | None = None) -> list[ImageResult]:
    """Worker entry point: process ``(index, path)`` pairs in order."""
    return [process_image(i, p, params, engine, regex, plane, max_pixels) for i, p in items]


def detect_array(index: int, label: str, image, params: DetectionParams,
                 engine: str = "fast") -> ImageResult:
    """Detect nuclei in an image already in memory; any failure becomes ``error``."""
    return _measure(index, label, lambda: as_grayscale_2d(image), params, engine)


def process_shared_chunk(items: Sequence[tuple], shm_name: str, params: DetectionParams,
                         engine: str = "fast") -> list[ImageResult]:
    """Worker entry point for images in shared memory.

    Parameters
    ----------
    items : sequence of ``(index, label, offset, shape, dtype)``
        Where each image lies in the shared block.
    shm_name : str
        Name of the ``multiprocessing.shared_memory.SharedMemory`` block.
    params : DetectionParams
    engine : {'fast', 'reference'}, optional
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
            out.append(detect_array(index, label, img, params, engine))
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


def prepare_worker(main_pid: int | None = None, nice: int = 0) -> None:
    """Set up a worker process: single-threaded OpenCV, no Ctrl+C, warm caches.

    Parameters
    ----------
    main_pid : int, optional
        The process that owns the batch; the worker ends itself when it is gone.
    nice : int, optional
        Lower the worker's scheduling priority by this much (``os.nice``).
    """
    if nice > 0 and hasattr(os, "nice"):
        os.nice(nice)
    if main_pid is not None:
        _watch_main(main_pid)
    # Ctrl+C, or a closed terminal's SIGHUP, reaches the whole process group:
    # the main process handles it and stops the workers, which must not print
    # tracebacks
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # one thread per worker: the pool already uses every core
    cv2.setNumThreads(1)
    # pay one-off initialisation (OpenCV dispatch, lazy imports) before timing starts
    detect(np.zeros((48, 48), np.uint16) + np.eye(48, dtype=np.uint16), DetectionParams(1.0, 1, 0.0))
