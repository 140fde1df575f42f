"""Writing a run's tables as results stream in, and moving them into place at the end.

``images.partial.csv`` and ``nuclei.partial.csv`` grow while a run goes on;
:meth:`ResultsWriter.close` turns them into ``images.csv``, ``nuclei.csv``,
``wells.csv`` and ``run.json`` (the run's parameters, versions and counts).

The final set is consistent as a whole: the tables move into place first,
``run.json`` comes last with each table's rows, bytes and SHA-256 and the
tables' format version (:mod:`.integrity`), and the streaming files are
removed only after that, so a run killed in between still resumes. Text
cells are escaped for spreadsheets and for names of any bytes
(:mod:`.csvsafe`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import socket
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from ..._version import __version__
from ..io.images import atomic_write
from ..params import DetectionParams
from .columns import IMAGES, NUCLEI, WELLS
from .csvsafe import csv_line, write_csv
from .integrity import SCHEMA, table_entry
from .parquet import write_parquet
from .tables import PARTIAL, ImageResult, finish_images, read_images_csv
from .wells import well_table

__all__ = ["RUN_FILES", "WIDGET_COMMAND", "ResultsWriter", "finish_tables", "nuclei_lines",
           "remove_stale_parts", "run_command", "write_parquet", "write_results"]

log = logging.getLogger(__name__)

#: the files a run writes atomically into its folder (their temporary files are removed)
RUN_FILES = ("images.csv", "nuclei.csv", "wells.csv", "run.json", "run.partial.json",
             "images.partial.csv", "nuclei.partial.csv", "images.parquet", "nuclei.parquet")

#: a temporary file of an unlocked folder older than this is stale, in seconds
STALE_PART_SECONDS = 600.0

#: ``run.json``'s ``command`` for a run started from the napari dock
WIDGET_COMMAND = "napari-nuclei-counter widget"

_IMAGE_ESCAPED = [c in IMAGES.text for c in IMAGES.names]


def run_command(front_end: str = "cli", argv: list[str] | None = None) -> str:
    """The ``command`` entry of ``run.json``: what started the run.

    Parameters
    ----------
    front_end : {'cli', 'widget'}, optional
        ``'cli'``: ``nuclei-counter`` and this process's arguments
        (``sys.argv[1:]``, or ``argv`` when given), also for library users
        of :class:`~napari_nuclei_counter.core.run.pipeline.Run`;
        ``'widget'``: the napari dock (:data:`WIDGET_COMMAND`).
    argv : list of str, optional
        The arguments after the program's name.
    """
    if front_end == "widget":
        return WIDGET_COMMAND
    if front_end != "cli":
        raise ValueError(f"front_end must be 'cli' or 'widget', not {front_end!r}")
    return " ".join(["nuclei-counter", *(sys.argv[1:] if argv is None else argv)])


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


def remove_stale_parts(folder, names=RUN_FILES, *, locked: bool | None = None) -> list[Path]:
    """Remove temporary files that a killed atomic write of the tool left in ``folder``.

    Only the tool's own temporary files are touched: ``.NAME.XXXXXXXX.part``
    (:func:`~napari_nuclei_counter.core.io.images.atomic_write`'s names) for
    ``NAME`` in ``names``; any other file stays. In a folder whose lock this
    process holds no other writer can be at work, so every such file is
    stale; otherwise only those untouched for :data:`STALE_PART_SECONDS`.

    Parameters
    ----------
    folder : path
    names : sequence of str, optional
        The files whose temporary files may be removed.
    locked : bool, optional
        Whether this process holds the folder's lock; read from the lock file
        when not given.

    Returns
    -------
    list of Path
        The files removed. Errors are logged, never raised.
    """
    from ..run.lock import lock_holder

    folder = Path(folder)
    if locked is None:
        holder = lock_holder(folder) or {}
        locked = holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname()
    pattern = re.compile("|".join(rf"\.{re.escape(n)}\.[a-z0-9_]{{8}}\.part" for n in names))
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        log.debug("cannot list %s: %s", folder, exc)
        return removed
    now = time.time()
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if not locked and now - entry.stat(follow_symlinks=False).st_mtime < STALE_PART_SECONDS:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError as exc:
            log.debug("cannot remove %s: %s", entry.path, exc)
    if removed:
        log.info("removed %d temporary file(s) of an interrupted write in %s", len(removed),
                 folder)
    return removed


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResultsWriter:
    """Stream results into ``images.csv``, ``nuclei.csv``, ``wells.csv`` and ``run.json``.

    Results may arrive in any order; rows are written in input order, holding
    back only results that arrive early. While the run goes on, rows are
    appended to ``images.partial.csv`` and ``nuclei.partial.csv`` and reach
    the disk at least every second (a nucleus row before its image's row), so
    a run killed outright loses at most a second of work and ``--resume``
    finishes it. :meth:`close` (also after Ctrl+C or SIGTERM) adds the
    per-plate QC flags and moves the tables into place atomically. An
    earlier run's final tables are moved to ``previous-run/`` by the run
    pipeline when the run starts, and removed once these are in place.

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
        remove_stale_parts(self.out_dir)  # of a run killed while it wrote a table
        self.n_done = len(self._skip)
        self.n_failed = 0
        self.n_nuclei = 0
        self._next = 0
        self._advance()
        self._pending: dict[int, ImageResult] = {}
        self._last_sync = time.monotonic()
        self._files = {}
        # nuclei.csv is renamed, not rewritten, at the end: its checksum for
        # run.json is kept up to date as rows are written (no second reading)
        self._nuclei_hash = hashlib.sha256()
        self._nuclei_bytes = 0
        self._nuclei_rows = 0
        for name, cols in (("nuclei.csv", NUCLEI.names), ("images.csv", IMAGES.names)):
            path = self.out_dir / PARTIAL[name]
            append = bool(self._skip) and path.exists()
            if append and name == "nuclei.csv":
                self._hash_existing(path)
            fh = open(path, "a" if append else "w", newline="", encoding="utf-8")
            self._files[name] = fh
            if not append:
                header = csv_line(cols, [False] * len(cols))
                if name == "nuclei.csv":
                    self._write_nuclei(header, 0)
                else:
                    fh.write(header)
        self._write_run(self.out_dir / "run.partial.json", complete=False)
        self._closed = False

    def _hash_existing(self, path: Path) -> None:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                self._nuclei_hash.update(block)
                self._nuclei_bytes += len(block)
                self._nuclei_rows += block.count(b"\n")
        self._nuclei_rows -= 1  # the header

    def _write_nuclei(self, text: str, rows: int) -> None:
        data = text.encode("utf-8")
        self._files["nuclei.csv"].write(text)
        self._nuclei_hash.update(data)
        self._nuclei_bytes += len(data)
        self._nuclei_rows += rows

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
        self._write_nuclei(nuclei_lines(r), len(r.coords))
        row = r.image_row()
        self._files["images.csv"].write(csv_line([row[c] for c in IMAGES.names], _IMAGE_ESCAPED))
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

    def _write_run(self, path: Path, complete: bool, final: bool = False,
                   tables: dict | None = None) -> None:
        run = {
            "schema": SCHEMA,
            "parameters": self.params.to_dict(),
            "parameters_digest": self.params.digest(),
            "versions": _versions(),
            "command": self.info["command"] if "command" in self.info else run_command(),
            "started": self.started,
            "finished": _now() if final else None,
            "n_images": self.n_images,
            "n_processed": self.n_done,
            "n_failed": self.n_failed,
            "n_nuclei": self.n_nuclei,
            "complete": bool(complete and self.n_done == self.n_images),
            **{k: v for k, v in self.info.items() if k != "command"},
        }
        if tables is not None:
            run["tables"] = tables
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
        try:
            self.sync()
        finally:
            for fh in self._files.values():
                fh.close()
        nuclei = table_entry(self.out_dir / PARTIAL["nuclei.csv"], self._nuclei_rows,
                             (self._nuclei_bytes, self._nuclei_hash.hexdigest()))
        tables = finish_tables(self.out_dir, parquet=self.parquet, nuclei=nuclei)
        self._recount()
        # run.json last: it vouches for the tables moved into place before it
        self._write_run(self.out_dir / "run.json", complete=complete, final=True, tables=tables)
        (self.out_dir / PARTIAL["images.csv"]).unlink(missing_ok=True)
        (self.out_dir / "run.partial.json").unlink(missing_ok=True)
        remove_stale_parts(self.out_dir)
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
            except OSError:  # e.g. the disk is full: what reached the disk stays
                pass
            finally:
                try:
                    fh.close()
                except OSError:
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


def finish_tables(out_dir, *, parquet: bool = False, nuclei: dict | None = None) -> dict:
    """Turn the streaming files into the final tables.

    Adds the per-plate QC flags to ``images.csv``, writes ``wells.csv``, and
    replaces the final files atomically; ``nuclei.csv`` is renamed, not
    rewritten, so its size does not matter. ``images.partial.csv`` stays
    until the caller has written ``run.json``.

    Parameters
    ----------
    nuclei : dict, optional
        ``nuclei.csv``'s entry (:func:`~.integrity.table_entry`) when the
        caller knows it; otherwise the file is read once to make it.

    Returns
    -------
    dict
        The ``tables`` entry of ``run.json``: rows, bytes and SHA-256 per table.
    """
    out = Path(out_dir)
    images = finish_images(read_images_csv(out / PARTIAL["images.csv"]))
    tables = {}
    wells = well_table(images)
    for spec, table in ((IMAGES, images), (WELLS, wells)):
        name = spec.file
        data = write_csv(out / name, table, text=spec.text).encode("utf-8")
        tables[name] = table_entry(out / name, len(table),
                                   (len(data), hashlib.sha256(data).hexdigest()))
    partial_nuclei = out / PARTIAL["nuclei.csv"]
    if nuclei is None:
        with open(partial_nuclei, "rb") as fh:
            rows = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b"")) - 1
        nuclei = table_entry(partial_nuclei, rows)
    os.replace(partial_nuclei, out / "nuclei.csv")
    tables["nuclei.csv"] = nuclei
    if parquet:
        write_parquet(out)
    return tables


def write_results(out_dir, results: Iterable[ImageResult], params: DetectionParams,
                  info: dict | None = None) -> Path:
    """Write the result files for results already in memory."""
    results = list(results)
    with ResultsWriter(out_dir, params, len(results), info) as w:
        for r in results:
            w.add(r)
    return Path(out_dir)


def nuclei_lines(r: ImageResult) -> str:
    """An image's rows of ``nuclei.csv`` as CSV text, its text cells escaped (:mod:`.csvsafe`).

    The same text as :func:`~.csvsafe.csv_line` row by row; the cells shared
    by every row of the image are quoted and escaped once per image, not once per row.
    """
    if len(r.coords) == 0:
        return ""
    m = r.meta
    shared = [r.path, m.plate, m.well, m.site]
    prefix = csv_line([*shared, ""], [c in NUCLEI.text for c in NUCLEI.names[:4]] + [False])[:-2]
    ys, xs = r.coords.T.tolist()
    return "".join([f"{prefix}{y},{x},{v!r}\r\n"
                    for y, x, v in zip(ys, xs, r.intensities.tolist(), strict=True)])
