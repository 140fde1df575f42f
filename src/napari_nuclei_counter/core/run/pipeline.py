"""The run pipeline: one object from a source of images to the finished tables.

``Run(source, params, ...)`` owns a whole run, for every front end: the
command line, the dock and library users drive it the same way::

    run = Run("plate/", params, out="results", resume=True)
    for result in run:          # one ImageResult per image, as it completes
        ...
    run.summary                 # counts, time, whether it was cancelled

The steps, each written once: the **source** (a folder and a pattern, a file,
a list of paths, or images in memory) becomes labels and metadata;
**resume** finds the images a previous run into ``out`` already did;
**scheduling** runs the rest on a backend (serial, local processes, shared
memory for arrays, Dask; see :mod:`.scheduler`); the **streaming writer**
records each result as it arrives, in the thread that iterates; the **final
tables** are written when the iteration ends, also after a cancel.

An output folder always shows the latest run: when a run starts writing into
a folder that holds the final tables of an earlier run, those tables move
into its ``previous-run`` sub-folder (:data:`PREVIOUS_RUN`), so that a run
stopped before its final tables are written (killed, or interrupted while it
wrote them) is read from its streaming files, as a run that stopped, never
as the earlier run's result. They are removed once the new run's final
tables are in place. ``Run.writing`` says when the run is writing its tables:
a front end's signal handler must not raise an exception into it then
(the command line defers a second Ctrl+C).
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.discovery import BBBC021_PATTERN, name_scheme, suggest_pattern
from ..io.images import PlaneChoice
from ..io.sources import list_images
from ..params import DetectionParams
from ..results.tables import ImageResult
from ..results.writer import ResultsWriter, run_command
from .backends import default_workers, make_backend
from .errors import BackendLost, RunError, RunStopped, environment_error
from .lock import LOCK_NAME, OutputLock
from .resume import load_partial_results, refuse_other_finished_run, resume_state
from .tasks import run_arrays, run_paths

__all__ = ["PREVIOUS_RUN", "Run", "RunError", "RunSummary"]

log = logging.getLogger(__name__)

#: ``progress(result, done, total)`` after each image
Progress = Callable[[ImageResult, int, int], None]

#: the sub-folder of an output folder that holds the earlier run's final
#: tables while a new run writes into the folder
PREVIOUS_RUN = "previous-run"

#: an earlier run's final tables, moved aside when a new run starts; the table
#: readers look for first goes first, ``run.json`` last
_FINAL_FILES = ("images.csv", "nuclei.csv", "wells.csv", "images.parquet", "nuclei.parquet",
                "run.json")


@dataclass
class RunSummary:
    """How a run went.

    Attributes
    ----------
    n_images : int
        Images in the run (done before included, after a resume).
    n_done, n_failed, n_nuclei : int
        Images with a result (done before included), failed images, nuclei.
    seconds : float
        Time this run took.
    n_new : int
        Images processed by this run (not done before).
    cancelled : bool
    out : Path or None
        The output folder, if the run had one.
    tables_written : bool
        Whether the final tables were written into ``out``. ``False`` when
        the run was interrupted while it wrote them (or had no ``out``): the
        folder then holds the streaming files of what was done, which
        ``--resume`` finishes.
    threshold_above : int
        Images of this run in which nothing was found because the threshold
        is at or above every smoothed value (``threshold_above_image``; what
        they suggest instead: :meth:`Run.suggest_threshold`).
    """

    n_images: int
    n_done: int
    n_failed: int
    n_nuclei: int
    seconds: float
    n_new: int
    cancelled: bool
    out: Path | None
    tables_written: bool = False
    threshold_above: int = 0


class Run:
    """One run: source -> resume -> scheduling -> streaming writer -> final tables.

    Parameters
    ----------
    source : path, sequence of paths, ndarray or sequence of ndarrays
        A folder (its files matching ``pattern``), one image file, a list of
        image files, a 2-D image or a stack of shape (N, H, W), or a list of
        2-D images held in memory.
    params : DetectionParams, optional
    backend : {'process', 'serial'} or Backend, optional
        Where the work runs; a backend object (e.g. the Dask adapter's) is
        used as it is. ``workers=0`` means serial.
    workers : int, optional
        Worker processes of the local backend (default every core).
    engine : {'fast', 'reference'}, optional
    regex : str, optional
        Metadata regex for file names (default: the BBBC021 template).
    pattern : str, optional
        File-name glob for a folder source (case-insensitive).
    recursive : bool, optional
        Also search the folder's sub-folders.
    labels : sequence of str, optional
        Names of in-memory images (default ``'image 0'``, ...).
    channel : str or int, optional
        The channel of multi-channel files: a 0-based index or a name from the
        file's metadata (case-insensitive).
    z : {'max', 'mean'} or int, optional
        For z-stacks: a projection, or a 0-based plane.
    t : int, optional
        For time series: only this time point (0-based). Without it, each
        time point of a file whose scenes are listed (OME-TIFF, ND2, CZI,
        ...) is an image of its own.
    out : path, optional
        Write the tables there, streaming as results arrive.
    resume : bool, optional
        Skip the images a previous run with the same parameters did in ``out``.
    parquet : bool, optional
        Also write Parquet tables (needs pyarrow).
    info : dict, optional
        Extra entries for ``run.json`` (e.g. ``command``).
    chunksize : int, optional
        Most images per task (default automatic).
    cancel : threading.Event, optional
        Set it from any thread to stop; the tables hold what was done.
    progress : callable, optional
        ``progress(result, done, total)`` after each image, in the iterating thread.
    break_lock : bool, optional
        Take over another host's lock on ``out`` (see :mod:`.lock`).
    stall_timeout : float, optional
        Seconds without any result before the watchdog kills the workers of
        the tasks in flight (see :mod:`.watchdog`); default automatic.
    max_pixels : int, optional
        The most pixels decoded for one image, checked from its header; a
        larger image is that image's error. Default
        :data:`~napari_nuclei_counter.core.io.planes.MAX_PIXELS` (2**28); 0 for no limit.
    overwrite : bool, optional
        Replace a complete run with other parameters in ``out`` (its tables
        go when this run's are written); ``False``: refuse it with a
        :class:`~.resume.FinishedRunInFolder` error, unless ``resume``.

    Raises
    ------
    RunError
        From :meth:`prepare` (or the first ``next``), for a source that
        cannot run: a missing folder, no matching file, no image; an ``out``
        that another run holds (:class:`~.errors.FolderLocked`), that cannot
        be written, or that holds a complete run with other parameters
        (:class:`~.resume.FinishedRunInFolder`, with ``overwrite=False``).
    RunStopped
        While iterating, when the environment stops the run: a lost Dask
        cluster, a full disk. The tables of what was done are written when
        possible; the folder can be resumed.
    """

    def __init__(self, source, params: DetectionParams | None = None, *,
                 backend="process", workers: int | None = None, engine: str = "fast",
                 regex: str | None = None, pattern: str = BBBC021_PATTERN,
                 recursive: bool = False, labels: Sequence[str] | None = None,
                 channel: str | int | None = None, z: str | int | None = None,
                 t: str | int | None = None,
                 out: str | os.PathLike | None = None, resume: bool = False,
                 parquet: bool = False, info: dict | None = None,
                 chunksize: int | None = None, cancel: threading.Event | None = None,
                 progress: Progress | None = None, break_lock: bool = False,
                 stall_timeout: float | None = None, max_pixels: int | None = None,
                 overwrite: bool = True) -> None:
        self.source = source
        self.params = params or DetectionParams()
        self.backend = make_backend(backend, workers)
        self.backend.stall_timeout = stall_timeout  # read by the scheduler's watchdog
        self.workers = default_workers() if workers is None else workers
        self.engine = engine
        self.regex = regex
        self.pattern = pattern
        self.recursive = recursive
        self.plane = PlaneChoice(None if channel is None else str(channel),
                                 None if z is None else str(z), None if t is None else str(t))
        self.out = Path(out).expanduser() if out is not None else None
        self.resume = resume
        self.parquet = parquet
        self.info = dict(info or {})
        self.chunksize = chunksize
        self.cancel = cancel if cancel is not None else threading.Event()
        self.progress = progress
        self._given_labels = list(labels) if labels is not None else None
        self.labels: list[str] = []  #: one per image: its path, or its label
        self.arrays: list[np.ndarray] | None = None  #: in-memory images, if that is the source
        self.done: set[int] = set()  #: images done before (resume)
        #: images of this run whose threshold is above every smoothed value
        self.threshold_above: list[int] = []
        self.warnings: list[str] = []  #: what the user should know about the input
        #: what the input names but the listing could not read (also in ``warnings``)
        self.listing_errors: list[str] = []
        self.max_pixels = max_pixels
        self.overwrite = overwrite
        self.summary: RunSummary | None = None
        self._writer: ResultsWriter | None = None
        self._lock = OutputLock(self.out, break_lock=break_lock) if self.out is not None else None
        self._prepared = False
        #: ``True`` while the run writes into its tables (a row, the final
        #: tables): an exception raised into the run then could leave them
        #: half-written, so a signal handler must not raise one
        self.writing = False

    # ------------------------------------------------------------ preparing
    def prepare(self) -> None:
        """Find the images, read the resume state, open the writer (once).

        File work: call it where waiting is fine (the dock calls it from its
        worker thread). Iterating prepares first when this was not called.
        """
        if self._prepared:
            return
        self._resolve_source()
        if self.out is not None:
            self._lock.acquire()  # every front end: a second run into out is refused
            try:
                self._open_writer()
            except BaseException as exc:
                self._lock.release()
                _raise_plainly(exc, self.out)
        self._prepared = True

    def close(self) -> None:
        """Give the output folder's lock back (iterating to the end does it too)."""
        if self._lock is not None:
            self._lock.release()

    def _resolve_source(self) -> None:
        src = self.source
        if isinstance(src, np.ndarray) or (isinstance(src, (list, tuple)) and src
                                           and isinstance(src[0], np.ndarray)):
            arrays = [src] if isinstance(src, np.ndarray) and src.ndim == 2 else list(src)
            self.arrays = [np.asarray(a) for a in arrays]
            self.labels = (self._given_labels if self._given_labels is not None
                           else [f"image {i}" for i in range(len(self.arrays))])
            if len(self.labels) != len(self.arrays):
                raise RunError(f"{len(self.labels)} labels for {len(self.arrays)} images")
            return
        if isinstance(src, (str, os.PathLike)):
            path = Path(src).expanduser()
            try:
                found = list_images(path, self.pattern, recursive=self.recursive,
                                    skip=_own_files(self.out), t=self.plane.t)
            except (OSError, ValueError) as exc:  # FileNotFoundError, an unreadable input
                raise RunError(str(exc)) from None
            self.labels, self.warnings = found.labels, found.warnings
            self.listing_errors = found.errors
            if not self.labels:
                if found.kind == "plate":
                    raise RunError(f"the OME-Zarr plate {path} lists no fields of view")
                where = " (or its sub-folders)" if self.recursive else ""
                hint = suggest_pattern(path, recursive=self.recursive)
                example = (f" (--pattern '{hint[0]}' matches {hint[1]} image"
                           f"{'s' if hint[1] != 1 else ''} there)" if hint else "")
                raise RunError(
                    f"no file in {path}{where} matches the pattern {self.pattern!r}; "
                    f"check --pattern{example}" + ("" if self.recursive else " or use --recursive"))
            self.info.setdefault("input", str(path.resolve()))
            if found.kind in ("folder", "file"):
                self.info.setdefault("pattern", self.pattern)
            return
        self.labels = [str(p) for p in src]

    def _open_writer(self) -> None:
        key = self.resume_key()
        if not (self.overwrite or self.resume):
            refuse_other_finished_run(self.out, self.params, key=key,
                                      input_path=self.info.get("input"),
                                      pattern=self.info.get("pattern"))
        if self.resume and self.arrays is None:
            self.done = resume_state(self.out, self.params, self.labels, key=key)
        info = {"command": run_command(), **self.info, "engine": self.engine,
                "backend": self.backend.name, "workers": self.workers, "names": self._names(),
                **self.plane.as_dict(), "resume_key": key}
        # after resume_state: it has copied what it keeps into the streaming files
        set_aside_earlier_tables(self.out)
        self._writer = ResultsWriter(self.out, self.params, len(self.labels), info,
                                     done=self.done, parquet=self.parquet)

    def resume_key(self) -> dict:
        """What must match for a resume to keep earlier rows (besides the parameters)."""
        return {"engine": self.engine, "regex": self.regex, **self.plane.as_dict()}

    def _names(self) -> str:
        """How metadata was read from the names: the imager's scheme most files follow."""
        if self.regex is not None:
            return "regex: " + self.regex
        if self.arrays is not None:
            return ""
        schemes = Counter(name_scheme(label) for label in self.labels)
        return schemes.most_common(1)[0][0] if schemes else ""

    @property
    def n_images(self) -> int:
        """Images in the run (after :meth:`prepare`)."""
        return len(self.labels)

    def done_results(self) -> list[ImageResult]:
        """The results of the images done before (after a resume), read from ``out``."""
        self.prepare()
        if not self.done or self.out is None:
            return []
        return load_partial_results(self.out, self.labels)

    # -------------------------------------------------------------- running
    def __iter__(self) -> Iterator[ImageResult]:
        return self._run()

    def _run(self) -> Iterator[ImageResult]:
        self.prepare()
        t0 = time.perf_counter()
        todo = [i for i in range(len(self.labels)) if i not in self.done]
        writer, counted = self._writer, _Counter(self.done)
        log.info("%d images (%d done before), %s", len(self.labels), len(self.done), self.params)
        finished, failed, lost = False, False, None
        written = False
        try:
            for result in self._schedule(todo):
                if writer is not None:
                    self.writing = True
                    writer.add(result)
                    self.writing = False
                counted.add(result)
                if result.threshold_above_image:
                    self.threshold_above.append(result.index)
                if self.progress is not None:
                    self.progress(result, counted.n_done, len(self.labels))
                yield result
            finished = not self.cancel.is_set()
        except BackendLost as exc:  # the tables of what was done are written, then it says so
            lost = exc
        except OSError as exc:  # a full disk: the streaming files stay for --resume
            failed = True
            _raise_plainly(exc, self.out)
        except Exception:  # not a close, Ctrl+C or exit: those still finish the tables
            failed = True
            raise
        finally:
            self.writing = True
            try:
                if writer is not None and failed:
                    writer.abort()  # the streaming files stay for --resume; the error shows
                elif writer is not None:  # also after a cancel, a close or Ctrl+C
                    try:
                        writer.close(complete=finished)
                    except OSError as exc:
                        writer.abort()
                        _raise_plainly(exc, self.out)
                    counted, written = writer, True
                    remove_earlier_tables(self.out)
            finally:
                self.writing = False
                self.close()
                self.summary = RunSummary(
                    len(self.labels), counted.n_done, counted.n_failed, counted.n_nuclei,
                    time.perf_counter() - t0, len(todo), not finished,
                    self.out if writer is not None else None, written,
                    len(self.threshold_above))
        if lost is not None:
            where = (f"; the tables of what was done are in {self.out}: run the same command "
                     "again with --resume to finish" if writer is not None else "")
            raise RunStopped(f"{lost}{where}") from lost

    def suggest_threshold(self, at_most: int = 3) -> float | None:
        """A threshold for the images whose threshold was above every smoothed value.

        The first ``at_most`` of them (in input order) are read again and each
        suggests its Otsu threshold after blurring, rounded down
        (:func:`.worker.suggest_threshold`); the median of those (the lower
        one of the middle two) is returned, ``None`` when none suggests one.
        Call it after the run.
        """
        from .worker import suggest_threshold

        values = []
        for i in sorted(self.threshold_above)[:at_most]:
            source = self.arrays[i] if self.arrays is not None else self.labels[i]
            values.append(suggest_threshold(source, self.params, self.plane, self.max_pixels))
        values = [v for v in values if v is not None]
        return statistics.median_low(values) if values else None

    def _schedule(self, todo: list[int]) -> Iterator[ImageResult]:
        opts = {"engine": self.engine, "chunksize": self.chunksize, "cancel": self.cancel}
        if self.arrays is not None:
            backend = self.backend if len(self.arrays) > 1 else make_backend("serial")
            return run_arrays(self.arrays, self.labels, self.params, backend, **opts)
        items = [(i, self.labels[i]) for i in todo]
        return run_paths(items, self.params, self.backend, regex=self.regex, plane=self.plane,
                         max_pixels=self.max_pixels, **opts)


def _own_files(out: Path | None) -> list[Path]:
    """What a run writes into ``out``: never listed as input, when ``out`` is the input folder."""
    if out is None:
        return []
    names = ("images.csv", "nuclei.csv", "wells.csv", "run.json", "run.partial.json",
             "images.partial.csv", "nuclei.partial.csv", "images.parquet", "nuclei.parquet",
             LOCK_NAME, PREVIOUS_RUN)
    return [out / name for name in names]


def set_aside_earlier_tables(out: Path) -> list[str]:
    """Move the final tables of an earlier run in ``out`` into ``out/previous-run``.

    Called when a run starts writing into ``out`` (holding its lock): from
    then on the folder's top level holds only this run's files, so a run that
    stops before its final tables are written is never read as the earlier
    run's result. A set moved aside before (by a run that did not finish) is
    replaced only by a complete newer one.

    Returns
    -------
    list of str
        The names moved.
    """
    present = [name for name in _FINAL_FILES if os.path.lexists(out / name)]
    if not present:
        return []
    keep = out / PREVIOUS_RUN
    if os.path.lexists(keep) and not keep.is_dir():
        raise RunError(f"{keep} is not a folder: this program keeps the earlier run's tables "
                       "there while a new run writes; move it away or choose another --out")
    keep.mkdir(exist_ok=True)
    if "images.csv" in present:  # a whole newer set: nothing of an older one stays beside it
        for name in _FINAL_FILES:
            if name not in present:
                (keep / name).unlink(missing_ok=True)
    for name in present:
        os.replace(out / name, keep / name)
    log.info("the tables of the earlier run in %s moved to %s until this run's are written",
             out, keep)
    return present


def remove_earlier_tables(out: Path) -> None:
    """Remove what :func:`set_aside_earlier_tables` kept, once the new final tables are in place.

    Only the tool's own files go; the folder itself only when nothing else is
    left in it. Errors are logged, never raised: the run's tables are written.
    """
    keep = out / PREVIOUS_RUN
    if not keep.is_dir() or keep.is_symlink():
        return
    try:
        for name in _FINAL_FILES:
            (keep / name).unlink(missing_ok=True)
        keep.rmdir()
    except OSError as exc:
        log.debug("cannot remove %s: %s", keep, exc)


def _raise_plainly(exc: BaseException, out) -> None:
    """Raise ``exc``, as a plain-words run error when it is an ``OSError`` writing ``out``."""
    plain = environment_error(exc, out) if isinstance(exc, OSError) else exc
    if plain is exc:
        raise exc
    raise plain from exc


class _Counter:
    """Counts of a run without a writer (the writer keeps its own)."""

    def __init__(self, done: set[int]):
        self.n_done, self.n_failed, self.n_nuclei = len(done), 0, 0

    def add(self, result: ImageResult) -> None:
        self.n_done += 1
        if result.ok:
            self.n_nuclei += len(result.coords)
        else:
            self.n_failed += 1
