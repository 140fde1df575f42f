"""Per-image results, the result tables, and their files (written atomically)."""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
import tempfile
import time
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
    "WELL_COLUMNS",
    "finish_tables",
    "load_partial_results",
    "resume_state",
    "write_parquet",
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

IMAGE_COLUMNS = [
    "path", "plate", "well", "site", "channel", "n_nuclei", "error", "seconds",
    "saturated_fraction", "sharpness", "qc_flags", "edited", "file_size", "file_mtime",
]
NUCLEI_COLUMNS = ["path", "plate", "well", "site", "y", "x", "intensity"]
WELL_COLUMNS = ["plate", "well", "images", "total", "mean", "std"]

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
        :mod:`napari_nuclei_counter.core.qc`.
    file_size, file_mtime : int, float or None
        The file's size and modification time when it was read (``--resume``
        uses them to know that a file is unchanged).
    edited : bool
        ``True`` when the detections were corrected by hand.
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
        }

    def nuclei_rows(self) -> Iterator[tuple]:
        """Yield this image's rows of ``nuclei.csv``."""
        m = self.meta
        for (y, x), v in zip(self.coords.tolist(), self.intensities.tolist()):
            yield (self.path, m.plate, m.well, m.site, y, x, v)

    def nuclei_csv(self) -> str:
        """This image's rows of ``nuclei.csv`` as CSV text.

        The same bytes as ``csv.writer().writerows(self.nuclei_rows())``, made
        about 5x faster by quoting the columns shared by every row only once.
        """
        if len(self.coords) == 0:
            return ""
        head = io.StringIO()
        m = self.meta
        csv.writer(head).writerow((self.path, m.plate, m.well, m.site, ""))
        prefix = head.getvalue()[:-2]  # up to and including the 4th comma
        ys, xs = self.coords.T.tolist()
        return "".join([f"{prefix}{y},{x},{v!r}\r\n"
                        for y, x, v in zip(ys, xs, self.intensities.tolist())])


def images_table(results: Iterable[ImageResult]) -> pd.DataFrame:
    """One row per image (the ``images.csv`` table), QC flags included."""
    import pandas as pd

    df = pd.DataFrame([r.image_row() for r in results], columns=IMAGE_COLUMNS)
    return _finish_images(df)


def _finish_images(df: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    from .qc import qc_flags

    df["n_nuclei"] = df["n_nuclei"].astype("Int64")
    for col in ("plate", "well", "site", "channel", "error"):
        df[col] = df[col].fillna("").astype(str)
    df["edited"] = df["edited"].fillna(False).astype(bool)
    df["qc_flags"] = qc_flags(df) if len(df) else pd.Series(dtype=str)
    return df


def nuclei_table(results: Iterable[ImageResult]) -> pd.DataFrame:
    """One row per nucleus (the ``nuclei.csv`` table)."""
    import pandas as pd

    rows = [row for r in results for row in r.nuclei_rows()]
    df = pd.DataFrame(rows, columns=NUCLEI_COLUMNS)
    return df.astype({"y": "int64", "x": "int64", "intensity": "float64"})


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs):
    """Open a temporary file next to ``path``; rename it over ``path`` on success.

    An error (or an interruption) inside the block leaves any previous
    ``path`` untouched and removes the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual mode
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
    """Versions of the packages that decide the results, for ``run.json``.

    A module that is already imported reports its own ``__version__`` (for
    OpenCV that is the library, whichever wheel or conda package brought it);
    the others are read from their installed metadata, since importing
    scikit-image or pandas only to ask would cost a run ~0.4 s.
    """
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    out = {"napari_nuclei_counter": __version__, "python": platform.python_version()}
    for key, module, dists in (
        ("numpy", "numpy", ("numpy",)), ("scipy", "scipy", ("scipy",)),
        ("scikit-image", "skimage", ("scikit-image",)), ("tifffile", "tifffile", ("tifffile",)),
        ("pandas", "pandas", ("pandas",)),
        ("opencv", "cv2", ("opencv-python-headless", "opencv-python",
                           "opencv-contrib-python-headless", "opencv-contrib-python")),
    ):
        found = getattr(sys.modules.get(module), "__version__", None)
        for dist in dists if found is None else ():
            try:
                found = version(dist)
                break
            except PackageNotFoundError:
                continue
        if found is not None:
            out[key] = str(found)
    out["platform"] = platform.platform()
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_csv_lines(path: Path, **kwargs) -> pd.DataFrame:
    """Read a CSV that a crash may have cut mid-line: the torn last line is dropped."""
    import io

    import pandas as pd

    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return pd.read_csv(io.StringIO(text), keep_default_na=False, **kwargs)


def _read_images(path: Path) -> pd.DataFrame:
    import pandas as pd

    df = _read_csv_lines(path, dtype=str)
    for col in IMAGE_COLUMNS:
        if col not in df:
            df[col] = ""
    df = df[IMAGE_COLUMNS].copy()
    num = {"seconds": "float64", "saturated_fraction": "float64", "sharpness": "float64",
           "file_size": "float64", "file_mtime": "float64"}
    for col, dtype in num.items():
        df[col] = pd.to_numeric(df[col].replace("", None), errors="coerce").astype(dtype)
    df["n_nuclei"] = pd.to_numeric(df["n_nuclei"].replace("", None), errors="coerce").astype("Int64")
    df["edited"] = df["edited"].isin(["True", "true", "1"])
    return df


def _read_nuclei(path: Path) -> pd.DataFrame:
    df = _read_csv_lines(path, dtype={k: str for k in ("path", "plate", "well", "site")})
    return df.astype({"y": "int64", "x": "int64", "intensity": "float64"})


def _file_key(path: str) -> tuple[int, float] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime


def resume_state(out_dir, params: DetectionParams, paths: list[str]) -> set[int]:
    """Prepare ``out_dir`` to finish an interrupted run; return the indices already done.

    The images done are the longest prefix of ``paths`` that a previous run
    with the same parameters (same :meth:`DetectionParams.digest`) processed,
    whose files still have the same size and modification time, and whose
    nuclei rows all reached the disk. Keeping a prefix makes the finished
    tables identical, row order included, to an uninterrupted run. The streaming files are rewritten to hold exactly the
    done images, ready for :class:`ResultsWriter` to append to.

    Parameters
    ----------
    out_dir : path
    params : DetectionParams
    paths : list of str
        The images of the new run, in input order.

    Returns
    -------
    set of int
        Positions in ``paths`` that need no work. Empty when there is nothing
        to resume or the parameters differ.
    """
    out = Path(out_dir)
    partial = out / PARTIAL["images.csv"]
    images_path = partial if partial.exists() else out / "images.csv"
    nuclei_path = out / (PARTIAL["nuclei.csv"] if partial.exists() else "nuclei.csv")
    run_path = out / "run.partial.json"
    if not run_path.exists():
        run_path = out / "run.json"
    if not (images_path.exists() and nuclei_path.exists() and run_path.exists()):
        return set()
    try:
        run = json.loads(run_path.read_text(encoding="utf-8"))
        same = DetectionParams.from_dict(run["parameters"]).digest() == params.digest()
    except (ValueError, KeyError, TypeError):
        same = False
    if not same:
        return set()
    images = _read_images(images_path)
    nuclei = _read_nuclei(nuclei_path)
    counts = nuclei.groupby("path").size()
    rows = {row["path"]: (k, row) for k, row in images.iterrows()}
    done_rows, done = [], set()
    # the longest prefix of the input that is done and unchanged: the final
    # tables then come out in input order, exactly as an uninterrupted run
    for i, path in enumerate(paths):
        k, row = rows.get(path, (None, None))
        if row is None:
            break
        key = _file_key(path)
        recorded = (None if pd_isna(row["file_size"]) else row["file_size"],
                    None if pd_isna(row["file_mtime"]) else row["file_mtime"])
        if (key or (None, None)) != recorded:
            break  # changed (or newly readable) since: do it again
        expected = 0 if row["error"] or pd_isna(row["n_nuclei"]) else int(row["n_nuclei"])
        if int(counts.get(path, 0)) != expected:
            break  # its nuclei rows did not all reach the disk
        done.add(i)
        done_rows.append(k)
    images = images.loc[done_rows]
    nuclei = nuclei[nuclei["path"].isin(set(images["path"]))]
    out.mkdir(parents=True, exist_ok=True)
    for name, table in ((PARTIAL["images.csv"], images), (PARTIAL["nuclei.csv"], nuclei)):
        with atomic_write(out / name, newline="", encoding="utf-8") as fh:
            table.to_csv(fh, index=False)
    return done


def load_partial_results(out_dir, paths: list[str]) -> list[ImageResult]:
    """The results already in a run's streaming files, as :class:`ImageResult` objects.

    Used after :func:`resume_state` to show the images done before.

    Parameters
    ----------
    out_dir : path
    paths : list of str
        The images of the run, in input order (``ImageResult.index`` is the
        position in this list).
    """
    out = Path(out_dir)
    if not (out / PARTIAL["images.csv"]).exists():
        return []
    images = _read_images(out / PARTIAL["images.csv"])
    nuclei = _read_nuclei(out / PARTIAL["nuclei.csv"])
    by_path = {p: g for p, g in nuclei.groupby("path", sort=False)}
    position = {p: i for i, p in enumerate(paths)}
    results = []
    for row in images.to_dict("records"):
        i = position.get(row["path"])
        if i is None:
            continue
        g = by_path.get(row["path"])
        coords = (g[["y", "x"]].to_numpy(np.intp) if g is not None
                  else np.empty((0, 2), np.intp))
        values = g["intensity"].to_numpy(float) if g is not None else np.empty(0)
        meta = ImageMeta(row["plate"], row["well"], row["site"], row["channel"])
        metrics = {k: row[k] for k in ("saturated_fraction", "sharpness")}
        results.append(ImageResult(i, row["path"], meta, coords, values, row["seconds"],
                                   row["error"], metrics, row["file_size"], row["file_mtime"],
                                   bool(row["edited"])))
    return results


def pd_isna(value) -> bool:
    """``pandas.isna`` for one value, without importing pandas at start-up."""
    import pandas as pd

    return bool(pd.isna(value))


class ResultsWriter:
    """Stream results into ``images.csv``, ``nuclei.csv``, ``wells.csv`` and ``run.json``.

    Results may arrive in any order; rows are written in input order, holding
    back only results that arrive early. While the run goes on, rows are
    appended to ``images.partial.csv`` and ``nuclei.partial.csv`` and reach
    the disk at least every second (a nucleus row before its image's row), so
    a run killed outright loses at most a second of work and ``--resume``
    finishes it. :meth:`close` (also after Ctrl+C or SIGTERM) adds the
    per-plate QC flags and moves the tables into place atomically; any
    previous tables stay untouched until then.

    Parameters
    ----------
    out_dir : str or PathLike
        Created if missing.
    params : DetectionParams
    n_images : int
        Number of images in the batch.
    info : dict, optional
        Extra entries for ``run.json`` (command, input folder, pattern, ...).
    done : set of int, optional
        Indices already in the streaming files (from :func:`resume_state`);
        rows are appended after them.
    parquet : bool, optional
        Also write ``images.parquet`` and ``nuclei.parquet`` (needs pyarrow).
    """

    def __init__(self, out_dir, params: DetectionParams, n_images: int, info: dict | None = None,
                 *, done: set[int] | frozenset = frozenset(), parquet: bool = False):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.params = params
        self.n_images = n_images
        self.info = dict(info or {})
        self.parquet = parquet
        self.started = _now()
        self._skip = set(done)
        self.n_done = len(self._skip)
        self.n_failed = 0
        self.n_nuclei = 0
        self._next = 0
        self._advance()
        self._pending: dict[int, ImageResult] = {}
        self._last_sync = time.monotonic()
        self._files = {}
        self._writers = {}
        for name, cols in (("nuclei.csv", NUCLEI_COLUMNS), ("images.csv", IMAGE_COLUMNS)):
            path = self.out_dir / PARTIAL[name]
            append = bool(self._skip) and path.exists()
            fh = open(path, "a" if append else "w", newline="", encoding="utf-8")
            self._files[name] = fh
            self._writers[name] = csv.writer(fh)
            if not append:
                self._writers[name].writerow(cols)
        self._write_run(self.out_dir / "run.partial.json", complete=False)
        self._closed = False

    def _advance(self) -> None:
        while self._next in self._skip:
            self._next += 1

    def add(self, result: ImageResult) -> None:
        """Record one result (any order)."""
        self._pending[result.index] = result
        while self._next in self._pending:
            self._write(self._pending.pop(self._next))
            self._next += 1
            self._advance()
        if time.monotonic() - self._last_sync > 1.0:
            self.sync()

    def _write(self, r: ImageResult) -> None:
        self._files["nuclei.csv"].write(r.nuclei_csv())
        row = r.image_row()
        self._writers["images.csv"].writerow(
            ["" if row[c] is None else row[c] for c in IMAGE_COLUMNS])
        self.n_done += 1
        if r.ok:
            self.n_nuclei += len(r.coords)
        else:
            self.n_failed += 1

    def sync(self) -> None:
        """Push the rows written so far to the disk (nuclei first)."""
        for name in ("nuclei.csv", "images.csv"):
            fh = self._files[name]
            fh.flush()
            os.fsync(fh.fileno())
        self._last_sync = time.monotonic()

    def _write_run(self, path: Path, complete: bool, final: bool = False) -> None:
        run = {
            "parameters": self.params.to_dict(),
            "parameters_digest": self.params.digest(),
            "versions": _versions(),
            "command": self.info.get("command", " ".join(sys.argv)),
            "started": self.started,
            "finished": _now() if final else None,
            "n_images": self.n_images,
            "n_processed": self.n_done,
            "n_failed": self.n_failed,
            "n_nuclei": self.n_nuclei,
            "complete": bool(complete and self.n_done == self.n_images),
            **{k: v for k, v in self.info.items() if k != "command"},
        }
        with atomic_write(path, encoding="utf-8") as fh:
            json.dump(run, fh, indent=2, default=str)

    def close(self, *, complete: bool = True) -> Path:
        """Finish the tables and move them into place (atomically).

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
        # after a cancel, results that came early (after a gap in the input
        # order) are left out: the tables hold a prefix of the input, which
        # --resume continues in order
        self._pending.clear()
        self.sync()
        for fh in self._files.values():
            fh.close()
        finish_tables(self.out_dir, parquet=self.parquet)
        self._recount()
        self._write_run(self.out_dir / "run.json", complete=complete, final=True)
        (self.out_dir / "run.partial.json").unlink(missing_ok=True)
        return self.out_dir

    def _recount(self) -> None:
        # after a resume the totals include the rows of the earlier run
        images = _read_images(self.out_dir / "images.csv")
        self.n_done = len(images)
        self.n_failed = int((images["error"] != "").sum())
        self.n_nuclei = int(images["n_nuclei"].fillna(0).sum())

    def abort(self) -> None:
        """Stop writing after an error: the streaming files stay for ``--resume``."""
        if self._closed:
            return
        self._closed = True
        for fh in self._files.values():
            try:
                fh.flush()
            finally:
                fh.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif issubclass(exc_type, (KeyboardInterrupt, GeneratorExit)):
            self.close(complete=False)
        else:
            self.abort()


def finish_tables(out_dir, *, parquet: bool = False) -> None:
    """Turn the streaming files into the final tables.

    Adds the per-plate QC flags to ``images.csv``, writes ``wells.csv``, and
    replaces the final files atomically; ``nuclei.csv`` is renamed, not
    rewritten, so its size does not matter.
    """
    from .gallery import well_table

    out = Path(out_dir)
    images = _finish_images(_read_images(out / PARTIAL["images.csv"]))
    with atomic_write(out / "images.csv", newline="", encoding="utf-8") as fh:
        images.to_csv(fh, index=False)
    with atomic_write(out / "wells.csv", newline="", encoding="utf-8") as fh:
        well_table(images).to_csv(fh, index=False)
    os.replace(out / PARTIAL["nuclei.csv"], out / "nuclei.csv")
    (out / PARTIAL["images.csv"]).unlink(missing_ok=True)
    if parquet:
        write_parquet(out)


def write_parquet(out_dir) -> None:
    """Write ``images.parquet`` and ``nuclei.parquet`` next to the CSV tables.

    The nuclei table is converted in chunks, so memory stays flat for large
    screens. Needs ``pyarrow`` (``pip install 'napari-nuclei-counter[parquet]'``).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    images = _read_images(out / "images.csv")
    with atomic_write(out / "images.parquet", "wb") as fh:
        images.to_parquet(fh, index=False)
    dtypes = {"path": str, "plate": str, "well": str, "site": str, "y": "int64", "x": "int64",
              "intensity": "float64"}
    with atomic_write(out / "nuclei.parquet", "wb") as fh:
        writer = None
        for chunk in pd.read_csv(out / "nuclei.csv", dtype=dtypes, keep_default_na=False,
                                 chunksize=500_000):
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            writer = writer or pq.ParquetWriter(fh, table.schema)
            writer.write_table(table)
        if writer is None:
            pq.write_table(pa.Table.from_pandas(pd.DataFrame(columns=NUCLEI_COLUMNS).astype(dtypes),
                                                preserve_index=False), fh)
        else:
            writer.close()


def write_results(out_dir, results: Iterable[ImageResult], params: DetectionParams,
                  info: dict | None = None) -> Path:
    """Write the result files for results already in memory."""
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


def load_results(folder: str | os.PathLike) -> Results:
    """Load a results folder written by the CLI, the plugin or :class:`ResultsWriter`.

    A run that was killed before it finished is read from its streaming
    files (``images.partial.csv``, ``nuclei.partial.csv``).

    Raises
    ------
    FileNotFoundError
        If neither ``images.csv`` nor ``images.partial.csv`` is there.
    """
    import pandas as pd

    from .gallery import well_table

    folder = Path(folder)
    final = (folder / "images.csv").exists()
    images_path = folder / ("images.csv" if final else PARTIAL["images.csv"])
    if not images_path.exists():
        raise FileNotFoundError(f"no images.csv in {folder}")
    images = _read_images(images_path)
    if not final:
        images = _finish_images(images)
    nuclei_path = folder / ("nuclei.csv" if final else PARTIAL["nuclei.csv"])
    nuclei = (_read_nuclei(nuclei_path) if nuclei_path.exists()
              else pd.DataFrame(columns=NUCLEI_COLUMNS))
    run = {}
    for name in ("run.json", "run.partial.json"):
        if (folder / name).exists():
            run = json.loads((folder / name).read_text(encoding="utf-8"))
            break
    params = DetectionParams.from_dict(run["parameters"]) if "parameters" in run else DetectionParams()
    wells_path = folder / "wells.csv"
    wells = (pd.read_csv(wells_path, dtype={"plate": str, "well": str}, keep_default_na=False)
             if final and wells_path.exists() else well_table(images))
    return Results(images, nuclei, run, params, wells)
