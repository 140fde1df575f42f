"""A results folder as one consistent set: table checksums in ``run.json``, checked by readers.

The writer moves the final tables into place first and writes ``run.json``
last, with the format version of the tables (:data:`SCHEMA`) and, for each
table, its rows, bytes and SHA-256. A folder whose tables do not match its
``run.json`` (a run killed between two renames, a table edited or replaced
by hand, a copy cut short) is reported by :func:`check_folder`, which every
reader calls: the gallery, the plate map, the napari reader and ``--resume``.
Folders written before the checksums (no ``schema``) are read as they are.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ..run.errors import RunError
from ..run.lock import describe_holder, lock_holder

__all__ = ["FINAL_TABLES", "RUN_JSON_MAX_BYTES", "SCHEMA", "DamagedTable", "InconsistentResults",
           "check_folder", "file_digest", "read_run_json", "table_entry"]

log = logging.getLogger(__name__)

#: format version of the tables; bumped when a table's columns or escaping change.
#: 2: text cells escaped (:mod:`.csvsafe`), checksums in ``run.json``.
#: 3: ``threshold_above_image`` in ``images.csv``.
SCHEMA = 3

#: the tables whose checksums ``run.json`` holds
FINAL_TABLES = ("images.csv", "nuclei.csv", "wells.csv")


#: the largest ``run.json`` read (one is a few kilobytes)
RUN_JSON_MAX_BYTES = 16 << 20


class DamagedTable(RunError):
    """A table file that cannot be read as a table (garbage bytes, no header, extra fields)."""


class InconsistentResults(RunError):
    """A results folder whose tables do not belong together (see :func:`check_folder`)."""


def read_run_json(path: Path) -> dict:
    """A run's ``run.json`` (or ``run.partial.json``), checked to be a run description.

    Raises
    ------
    InconsistentResults
        When it cannot be read, is too large, is not a JSON object, or its
        ``schema``, ``tables`` or ``parameters`` entries have the wrong types.
    """
    path = Path(path)
    where = f"{path.name} in {path.parent}"
    try:
        with open(path, "rb") as fh:
            data = fh.read(RUN_JSON_MAX_BYTES + 1)
    except OSError as exc:
        raise InconsistentResults(f"{where} cannot be read ({exc.strerror or exc})") from None
    if len(data) > RUN_JSON_MAX_BYTES:
        raise InconsistentResults(f"{where} is damaged (larger than "
                                  f"{RUN_JSON_MAX_BYTES >> 20} MiB)")
    try:
        run = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise InconsistentResults(f"{where} is damaged (JSON nested too deep)") from None
    except ValueError:  # UnicodeDecodeError is one too
        raise InconsistentResults(f"{where} is damaged (not JSON)") from None
    if not isinstance(run, dict):
        raise InconsistentResults(f"{where} is damaged (not a JSON object)")
    schema = run.get("schema")
    if schema is not None and (isinstance(schema, bool) or not isinstance(schema, int)):
        raise InconsistentResults(f"{where} is damaged (its schema {schema!r} is not a whole "
                                  "number)")
    tables = run.get("tables")
    if tables is not None and not (isinstance(tables, dict)
                                   and all(isinstance(e, dict) for e in tables.values())):
        raise InconsistentResults(f"{where} is damaged (its tables entry is not a mapping of "
                                  "table names to sizes and checksums)")
    if "parameters" in run and not isinstance(run["parameters"], dict):
        raise InconsistentResults(f"{where} is damaged (its parameters are not a JSON object)")
    return run


def file_digest(path: Path) -> tuple[int, str]:
    """Bytes and SHA-256 (hex) of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


def table_entry(path: Path, rows: int, digest: tuple[int, str] | None = None) -> dict:
    """The ``run.json`` entry of one table."""
    size, sha = digest if digest is not None else file_digest(path)
    return {"rows": int(rows), "bytes": size, "sha256": sha}


def check_folder(folder, *, verify: bool = True) -> list[str]:
    """Check that a results folder's final tables are the ones its ``run.json`` describes.

    Parameters
    ----------
    folder : path
    verify : bool, optional
        Also compare SHA-256 checksums (sizes are always compared).

    Returns
    -------
    list of str
        Notes for the user that do not stop reading, e.g. that a run is still
        writing into the folder, or that it was stopped before it finished.

    Raises
    ------
    InconsistentResults
        When a table is missing or differs from ``run.json``, or the tables
        come from a newer version of this program.
    """
    folder = Path(folder)
    notes = []
    holder = lock_holder(folder)
    if holder is not None and not holder.get("stale"):
        notes.append(f"a run is still writing into {folder} ({describe_holder(holder)}); "
                     "showing what it has done so far")
    elif (folder / "run.partial.json").exists():
        notes.append(f"the run into {folder} stopped before it finished; "
                     "run 'nuclei-counter detect ... --resume' to finish it")
    run_path = folder / "run.json"
    if not run_path.exists() or not (folder / "images.csv").exists():
        return notes
    run = read_run_json(run_path)
    schema = run.get("schema")
    if schema is None:
        return notes  # written before checksums: nothing to compare
    if schema > SCHEMA:
        raise InconsistentResults(f"the tables in {folder} have format {schema!r}, newer than "
                                  f"this version reads ({SCHEMA}); update napari-nuclei-counter")
    for name, entry in (run.get("tables") or {}).items():
        if name not in FINAL_TABLES:
            continue
        path = folder / name
        if not path.exists():
            raise InconsistentResults(f"{name} is missing from {folder}, which run.json lists; "
                                      "the folder is incomplete")
        size = path.stat().st_size
        if size != entry.get("bytes") or (verify and file_digest(path)[1] != entry.get("sha256")):
            raise InconsistentResults(
                f"{name} in {folder} is not the table run.json describes (a run stopped while "
                "it moved its tables into place, or the file was changed); run the same "
                "'nuclei-counter detect' again into that folder (with --resume) to rewrite them")
    return notes
