"""Per-image results, the result tables, and reading a results folder back.

The types every layer shares (:class:`ImageResult`, :class:`Results`), the
tables' columns, building the tables from results, and reading the files that
:class:`~.writer.ResultsWriter` writes.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io.discovery import ImageMeta
from ..params import DetectionParams
from ..run.errors import RunError
from .columns import IMAGES, NUCLEI, WELLS
from .wells import well_table

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pandas is imported where tables are built: a faster start-up
    import pandas as pd

__all__ = [
    "IMAGE_COLUMNS",
    "NUCLEI_COLUMNS",
    "PARTIAL",
    "ImageResult",
    "Results",
    "ResultsNotReady",
    "finish_images",
    "images_table",
    "load_results",
    "pd_isna",
    "read_images_csv",
    "read_nuclei_csv",
]

#: columns of ``images.csv`` and ``nuclei.csv`` (see :mod:`.columns`)
IMAGE_COLUMNS = IMAGES.names
NUCLEI_COLUMNS = NUCLEI.names

#: streaming files of a run in progress (renamed to the final names at the end)
PARTIAL = {"images.csv": "images.partial.csv", "nuclei.csv": "nuclei.partial.csv"}


@dataclass
class ImageResult:
    """What the batch engine reports for one image.

    Attributes
    ----------
    index : int
        Position of the image in the batch input.
    path : str
    meta : ImageMeta
    coords : ndarray of intp, shape (N, 2)
        ``(row, col)`` centres, brightest first.
    intensities : ndarray of float64, shape (N,)
        Smoothed intensity at each centre.
    seconds : float
        Time spent on this image (reading + detection) in its worker.
    error : str
        Empty when the image was processed; otherwise a plain-words reason.
    metrics : dict
        Image quality measures (``saturated_fraction``, ``sharpness``), see
        :mod:`napari_nuclei_counter.core.detect.qc`.
    file_size, file_mtime : int, float or None
        The file's size and modification time when it was read (``--resume``
        uses them to know that a file is unchanged).
    edited : bool
        ``True`` when the detections were corrected by hand.
    threshold : float or None
        The threshold the detection used (an automatic one is per image).
    threshold_above_image : bool
        Nothing was found and the threshold is at or above every smoothed value
        of the image: no threshold this high can find anything in it
        (:func:`~napari_nuclei_counter.core.detect.thresholds.threshold_above`).
    """

    index: int
    path: str
    meta: ImageMeta = field(default_factory=ImageMeta)
    coords: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.intp))
    intensities: np.ndarray = field(default_factory=lambda: np.empty(0))
    seconds: float = 0.0
    error: str = ""
    metrics: dict = field(default_factory=dict)
    file_size: int | None = None
    file_mtime: float | None = None
    edited: bool = False
    threshold: float | None = None
    threshold_above_image: bool = False

    @property
    def ok(self) -> bool:
        """``True`` when the image was processed without error."""
        return not self.error

    @property
    def count(self) -> int | None:
        """Number of nuclei, ``None`` for a failed image."""
        return len(self.coords) if self.ok else None

    def image_row(self) -> dict:
        """Return this image's row of ``images.csv`` (``qc_flags`` is filled per plate later)."""
        m = self.metrics
        return {
            "path": self.path, **self.meta.as_dict(), "n_nuclei": self.count,
            "error": self.error, "seconds": round(self.seconds, 6),
            "saturated_fraction": m.get("saturated_fraction"), "sharpness": m.get("sharpness"),
            "qc_flags": "", "edited": self.edited,
            "file_size": self.file_size, "file_mtime": self.file_mtime,
            "threshold": self.threshold, "threshold_above_image": self.threshold_above_image,
        }


def images_table(results: Iterable[ImageResult]) -> pd.DataFrame:
    """One row per image (the ``images.csv`` table), QC flags included."""
    import pandas as pd

    df = pd.DataFrame([r.image_row() for r in results], columns=IMAGE_COLUMNS)
    return finish_images(df)


def finish_images(df: pd.DataFrame) -> pd.DataFrame:
    """Type an images table's counts, blank its missing text cells and add the QC flags (in place)."""
    import pandas as pd

    from ..detect.qc import qc_flags

    df["n_nuclei"] = df["n_nuclei"].astype("Int64")
    for col in IMAGES.strings:
        if col in ("path", "qc_flags"):  # the path is always there; the flags come next
            continue
        if col not in df:  # tables written before these columns existed
            df[col] = ""
        df[col] = df[col].fillna("").astype(str)
    df["edited"] = df["edited"].fillna(False).astype(bool)
    df["qc_flags"] = qc_flags(df) if len(df) else pd.Series(dtype=str)
    return df


def _read_csv_lines(path: Path, required: tuple = ("path",), **kwargs) -> pd.DataFrame:
    """Read a CSV that a crash may have cut mid-line: the torn last line is dropped.

    Text cells are decoded (:mod:`.csvsafe`). A file that is not such a table
    (garbage bytes, no header, rows with extra fields) raises
    :class:`~.integrity.DamagedTable`, whose message holds no file content.
    """
    import pandas as pd

    from .csvsafe import decode_columns
    from .integrity import DamagedTable

    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:  # keep \r inside cells
            text = fh.read()
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        with warnings.catch_warnings():  # a row with extra fields: damaged, not cut
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(io.StringIO(text), keep_default_na=False, index_col=False,
                             **kwargs)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.ParserWarning,
            pd.errors.EmptyDataError, ValueError) as exc:
        raise DamagedTable(f"{path.name} in {path.parent} is damaged and cannot be read as a "
                           f"table ({type(exc).__name__})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DamagedTable(f"{path.name} in {path.parent} is damaged and cannot be read as a "
                           f"table (no column {missing[0]!r})")
    return decode_columns(df)


def read_images_csv(path: Path) -> pd.DataFrame:
    """Read ``images.csv`` (or its streaming file), its columns typed (:data:`.columns.IMAGES`).

    Raises
    ------
    ~.integrity.DamagedTable
        For a file that is not such a table, or whose counts are not whole
        numbers of nuclei (e.g. ``1e300`` or ``-3``).
    """
    from .integrity import DamagedTable

    df = _read_csv_lines(path, dtype=str)
    try:
        with warnings.catch_warnings():  # numpy's warning of a cast that then fails
            warnings.simplefilter("ignore", RuntimeWarning)
            typed = IMAGES.typed(df)
        counts = typed["n_nuclei"]
        if bool((counts.dropna() < 0).any()):
            raise ValueError("negative count")
    except (ValueError, TypeError, OverflowError):
        raise DamagedTable(f"{Path(path).name} in {Path(path).parent} is damaged: counts or "
                           "columns that are not whole numbers") from None
    return typed


def read_nuclei_csv(path: Path) -> pd.DataFrame:
    """Read ``nuclei.csv`` (or its streaming file), its columns typed (:data:`.columns.NUCLEI`)."""
    from .integrity import DamagedTable

    df = _read_csv_lines(path, ("path", "y", "x", "intensity"),
                         dtype={k: str for k in NUCLEI.strings})
    try:
        return df.astype({c: NUCLEI.dtypes[c] for c in ("y", "x", "intensity")})
    except (ValueError, TypeError):
        raise DamagedTable(f"{Path(path).name} in {Path(path).parent} is damaged: "
                           "coordinates that are not numbers") from None


def pd_isna(value) -> bool:
    """``pandas.isna`` for one value, without importing pandas at start-up."""
    import pandas as pd

    return bool(pd.isna(value))


@dataclass
class Results:
    """A results folder loaded back.

    Attributes
    ----------
    images : pandas.DataFrame
        ``images.csv``; ``n_nuclei`` is a nullable integer (NA when failed),
        ``error`` an empty string when fine.
    wells : pandas.DataFrame
        ``wells.csv`` (recomputed when missing).
    nuclei : pandas.DataFrame
        ``nuclei.csv``.
    run : dict
        ``run.json``.
    params : DetectionParams
    """

    images: pd.DataFrame
    nuclei: pd.DataFrame
    run: dict
    params: DetectionParams
    wells: pd.DataFrame | None = None

    @property
    def plane(self):
        """The channel, z and time choice the run used (from ``run.json``), to read its images again."""
        from ..io.planes import PlaneChoice

        channel, z, t = (self.run.get(k) for k in ("channel", "z", "t"))
        return PlaneChoice(*(None if v is None else str(v) for v in (channel, z, t)))


class ResultsNotReady(RunError):
    """A results folder whose run has not written its first row yet (not a damaged one)."""


def _has_a_line(path: Path) -> bool:
    """Whether a file holds at least one complete line (a streaming table's header)."""
    with open(path, "rb") as fh:
        return b"\n" in fh.read(1 << 16)


def load_results(folder: str | os.PathLike, *, read_nuclei: bool = True) -> Results:
    """Load a results folder written by the CLI, the plugin or :class:`ResultsWriter`.

    A run that was killed before it finished, or that is still going, is read
    from its streaming files (``images.partial.csv``, ``nuclei.partial.csv``).
    With ``read_nuclei=False`` the nuclei table is left unread (an empty table):
    for callers that need the counts only, such as ``analyze`` (a screen's
    ``nuclei.csv`` takes seconds to read).

    Raises
    ------
    FileNotFoundError
        If neither ``images.csv`` nor ``images.partial.csv`` is there.
    ResultsNotReady
        If the run writing into the folder has not written its tables' header
        yet (it has just started, or was stopped at once).
    ~.integrity.InconsistentResults, ~.integrity.DamagedTable
        If ``run.json`` or a table is damaged, or the tables do not belong
        together (one sentence each).
    """
    import pandas as pd

    from ..run.lock import describe_holder, lock_holder
    from .csvsafe import decode_columns
    from .integrity import DamagedTable, InconsistentResults, check_folder, read_run_json

    folder = Path(folder)
    for note in check_folder(folder):  # raises InconsistentResults for a mixed set
        log.warning("%s", note)
    final = (folder / "images.csv").exists()
    images_path = folder / ("images.csv" if final else PARTIAL["images.csv"])
    if not images_path.exists():
        raise FileNotFoundError(f"no images.csv in {folder}")
    if not final and not _has_a_line(images_path):
        holder = lock_holder(folder)
        if holder is not None and not holder.get("stale"):
            raise ResultsNotReady(f"a run is still writing into {folder} "
                                  f"({describe_holder(holder)}) and has no result yet; "
                                  "try again in a moment")
        raise ResultsNotReady(f"the run into {folder} stopped before it wrote any result; "
                              "run 'nuclei-counter detect ... --resume' to finish it")
    images = read_images_csv(images_path)
    if not final:
        images = finish_images(images)
    nuclei_path = folder / ("nuclei.csv" if final else PARTIAL["nuclei.csv"])
    nuclei = (read_nuclei_csv(nuclei_path)
              if read_nuclei and nuclei_path.exists() and (final or _has_a_line(nuclei_path))
              else pd.DataFrame(columns=NUCLEI_COLUMNS))
    run = {}
    for name in ("run.json", "run.partial.json"):
        if (folder / name).exists():
            run = read_run_json(folder / name)
            break
    try:
        params = (DetectionParams.from_dict(run["parameters"]) if "parameters" in run
                  else DetectionParams())
    except (ValueError, TypeError) as exc:
        raise InconsistentResults(f"{name} in {folder} is damaged (its parameters: "
                                  f"{exc})") from None
    wells_path = folder / "wells.csv"
    if final and wells_path.exists():
        try:
            wells = decode_columns(pd.read_csv(wells_path, dtype={c: str for c in WELLS.strings},
                                               keep_default_na=False), WELLS.text)
            if not {"plate", "well"} <= set(wells.columns):
                raise ValueError("no plate or well column")
        except (ValueError, TypeError, pd.errors.ParserError, pd.errors.EmptyDataError):
            raise DamagedTable(f"wells.csv in {folder} is damaged and cannot be read as a "
                               "table; delete it to have it computed again from "
                               "images.csv") from None
    else:
        wells = well_table(images)
    return Results(images, nuclei, run, params, wells)
