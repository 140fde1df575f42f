"""Per-image results, the result tables, and their files (written atomically)."""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from .discovery import ImageMeta
from .params import DetectionParams

if TYPE_CHECKING:  # pandas is imported where tables are built: a faster start-up
    import pandas as pd

__all__ = [
    "IMAGE_COLUMNS",
    "NUCLEI_COLUMNS",
    "ImageResult",
    "ResultsWriter",
    "Results",
    "atomic_write",
    "images_table",
    "load_results",
    "nuclei_table",
    "write_results",
]

IMAGE_COLUMNS = ["path", "plate", "well", "site", "channel", "n_nuclei", "error", "seconds"]
NUCLEI_COLUMNS = ["path", "plate", "well", "site", "y", "x", "intensity"]


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
    """

    index: int
    path: str
    meta: ImageMeta = field(default_factory=ImageMeta)
    coords: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.intp))
    intensities: np.ndarray = field(default_factory=lambda: np.empty(0))
    seconds: float = 0.0
    error: str = ""

    @property
    def ok(self) -> bool:
        """``True`` when the image was processed without error."""
        return not self.error

    @property
    def count(self) -> int | None:
        """Number of nuclei, ``None`` for a failed image."""
        return len(self.coords) if self.ok else None

    def image_row(self) -> dict:
        """Return this image's row of ``images.csv``."""
        return {
            "path": self.path, **self.meta.as_dict(), "n_nuclei": self.count,
            "error": self.error, "seconds": round(self.seconds, 6),
        }

    def nuclei_rows(self) -> Iterator[tuple]:
        """Yield this image's rows of ``nuclei.csv``."""
        m = self.meta
        for (y, x), v in zip(self.coords.tolist(), self.intensities.tolist()):
            yield (self.path, m.plate, m.well, m.site, y, x, v)


def images_table(results: Iterable[ImageResult]) -> pd.DataFrame:
    """One row per image (the ``images.csv`` table)."""
    import pandas as pd

    df = pd.DataFrame([r.image_row() for r in results], columns=IMAGE_COLUMNS)
    df["n_nuclei"] = df["n_nuclei"].astype("Int64")
    return df


def nuclei_table(results: Iterable[ImageResult]) -> pd.DataFrame:
    """One row per nucleus (the ``nuclei.csv`` table)."""
    import pandas as pd

    rows = [row for r in results for row in r.nuclei_rows()]
    df = pd.DataFrame(rows, columns=NUCLEI_COLUMNS)
    return df.astype({"y": "int64", "x": "int64", "intensity": "float64"})


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs):
    """Open a temporary file next to ``path``; rename it over ``path`` on success.

    An error (or an interruption) inside the block leaves any previous
    ``path`` untouched and removes the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _versions() -> dict[str, str]:
    import pandas as pd
    import scipy
    import skimage
    import tifffile

    from .. import __version__

    out = {
        "napari_nuclei_counter": __version__, "python": platform.python_version(),
        "numpy": np.__version__, "scipy": scipy.__version__,
        "scikit-image": skimage.__version__, "tifffile": tifffile.__version__,
        "pandas": pd.__version__, "platform": platform.platform(),
    }
    try:
        import cv2

        out["opencv"] = cv2.__version__
    except ImportError:  # pragma: no cover - a core dependency
        pass
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ResultsWriter:
    """Stream results into ``images.csv``, ``nuclei.csv`` and ``run.json``.

    Results may arrive in any order; rows are written in input order, holding
    back only results that arrive early. Rows go to hidden temporary files in
    the output folder that replace the final files in :meth:`close`, so a run
    that is interrupted leaves the previous tables intact and never a
    half-written one.

    Parameters
    ----------
    out_dir : str or PathLike
        Created if missing.
    params : DetectionParams
    n_images : int
        Number of images in the batch.
    info : dict, optional
        Extra entries for ``run.json`` (command, input folder, pattern, ...).
    """

    def __init__(self, out_dir, params: DetectionParams, n_images: int, info: dict | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.params = params
        self.n_images = n_images
        self.info = dict(info or {})
        self.started = _now()
        self.n_done = 0
        self.n_failed = 0
        self.n_nuclei = 0
        self._next = 0
        self._pending: dict[int, ImageResult] = {}
        self._files = {}
        self._writers = {}
        for name, cols in (("images.csv", IMAGE_COLUMNS), ("nuclei.csv", NUCLEI_COLUMNS)):
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=self.out_dir)
            fh = os.fdopen(fd, "w", newline="", encoding="utf-8")
            self._files[name] = (fh, tmp)
            w = csv.writer(fh)
            w.writerow(cols)
            self._writers[name] = w
        self._closed = False

    def add(self, result: ImageResult) -> None:
        """Record one result (any order)."""
        self._pending[result.index] = result
        while self._next in self._pending:
            self._write(self._pending.pop(self._next))
            self._next += 1

    def _write(self, r: ImageResult) -> None:
        row = r.image_row()
        self._writers["images.csv"].writerow(
            ["" if row[c] is None else row[c] for c in IMAGE_COLUMNS])
        self._writers["nuclei.csv"].writerows(r.nuclei_rows())
        self.n_done += 1
        if r.ok:
            self.n_nuclei += len(r.coords)
        else:
            self.n_failed += 1

    def close(self, *, complete: bool = True) -> Path:
        """Finish the files and move them into place.

        Parameters
        ----------
        complete : bool, optional
            ``False`` for a cancelled run: the rows written so far still land,
            and ``run.json`` says the run was cancelled.

        Returns
        -------
        Path
            The output folder.
        """
        if self._closed:
            return self.out_dir
        self._closed = True
        for r in sorted(self._pending.values(), key=lambda r: r.index):
            self._write(r)  # only after a cancel: gaps in the input order
        self._pending.clear()
        for name, (fh, tmp) in self._files.items():
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
            os.replace(tmp, self.out_dir / name)
        run = {
            "parameters": self.params.to_dict(),
            "versions": _versions(),
            "command": self.info.pop("command", " ".join(sys.argv)),
            "started": self.started,
            "finished": _now(),
            "n_images": self.n_images,
            "n_processed": self.n_done,
            "n_failed": self.n_failed,
            "n_nuclei": self.n_nuclei,
            "complete": bool(complete and self.n_done == self.n_images),
            **self.info,
        }
        with atomic_write(self.out_dir / "run.json", encoding="utf-8") as fh:
            json.dump(run, fh, indent=2, default=str)
        return self.out_dir

    def abort(self) -> None:
        """Drop the temporary files without touching the final ones."""
        if self._closed:
            return
        self._closed = True
        for fh, tmp in self._files.values():
            fh.close()
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif issubclass(exc_type, (KeyboardInterrupt, GeneratorExit)):
            self.close(complete=False)
        else:
            self.abort()


def write_results(out_dir, results: Iterable[ImageResult], params: DetectionParams,
                  info: dict | None = None) -> Path:
    """Write the three result files for results already in memory."""
    results = list(results)
    with ResultsWriter(out_dir, params, len(results), info) as w:
        for r in results:
            w.add(r)
    return Path(out_dir)


@dataclass
class Results:
    """A results folder loaded back.

    Attributes
    ----------
    images : pandas.DataFrame
        ``images.csv``; ``n_nuclei`` is a nullable integer (NA when failed),
        ``error`` an empty string when fine.
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


def load_results(folder: str | os.PathLike) -> Results:
    """Load a results folder written by the CLI, the plugin or :class:`ResultsWriter`.

    Raises
    ------
    FileNotFoundError
        If ``images.csv`` is missing.
    """
    import pandas as pd

    folder = Path(folder)
    text = {"path": str, "plate": str, "well": str, "site": str, "channel": str, "error": str}
    images = pd.read_csv(folder / "images.csv", dtype={**text, "n_nuclei": "Int64"},
                         keep_default_na=False, na_values={"n_nuclei": [""]})
    nuclei_path = folder / "nuclei.csv"
    if nuclei_path.exists():
        nuclei = pd.read_csv(nuclei_path, dtype={k: str for k in ("path", "plate", "well", "site")},
                             keep_default_na=False)
        nuclei = nuclei.astype({"y": "int64", "x": "int64", "intensity": "float64"})
    else:
        nuclei = pd.DataFrame(columns=NUCLEI_COLUMNS)
    run_path = folder / "run.json"
    run = json.loads(run_path.read_text(encoding="utf-8")) if run_path.exists() else {}
    params = DetectionParams.from_dict(run["parameters"]) if "parameters" in run else DetectionParams()
    return Results(images, nuclei, run, params)
