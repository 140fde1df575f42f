"""Writing a run's tables as results stream in, and moving them into place at the end.

``images.partial.csv`` and ``nuclei.partial.csv`` grow while a run goes on;
:meth:`ResultsWriter.close` turns them into ``images.csv``, ``nuclei.csv``,
``wells.csv`` and ``run.json`` (the run's parameters, versions and counts).
"""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from .._version import __version__
from .io import atomic_write
from .params import DetectionParams
from .results import (
    IMAGE_COLUMNS,
    NUCLEI_COLUMNS,
    PARTIAL,
    ImageResult,
    finish_images,
    read_images_csv,
)
from .wells import well_table

__all__ = ["ResultsWriter", "finish_tables", "write_parquet", "write_results"]


def _versions() -> dict[str, str]:
    """Versions of the packages that decide the results, for ``run.json``.

    A module that is already imported reports its own ``__version__`` (for
    OpenCV that is the library, whichever wheel or conda package brought it);
    the others are read from their installed metadata, since importing
    scikit-image or pandas only to ask would cost a run ~0.4 s.
    """
    from importlib.metadata import PackageNotFoundError, version

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
        images = read_images_csv(self.out_dir / "images.csv")
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
    out = Path(out_dir)
    images = finish_images(read_images_csv(out / PARTIAL["images.csv"]))
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
    images = read_images_csv(out / "images.csv")
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


