"""Finishing an interrupted run: which images are done, and their results.

:func:`resume_state` keeps the longest prefix of the input that a previous run
with the same parameters finished, so the final tables come out exactly as
an uninterrupted run's; :func:`load_partial_results` reads those images'
results back (the dock shows them). :func:`refuse_other_finished_run` keeps a
run from replacing a finished run with other parameters unasked.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np

from ..io.discovery import ImageMeta
from ..io.images import split_scene
from ..params import DetectionParams
from ..results.columns import IMAGES, NUCLEI
from ..results.csvsafe import write_csv
from ..results.integrity import SCHEMA, DamagedTable, InconsistentResults, check_folder, read_run_json
from ..results.tables import PARTIAL, ImageResult, pd_isna, read_images_csv, read_nuclei_csv
from .errors import RunError

__all__ = ["FinishedRunInFolder", "load_partial_results", "refuse_other_finished_run",
           "resume_state"]

log = logging.getLogger(__name__)


class FinishedRunInFolder(RunError):
    """An output folder holds a complete run with other parameters, which a run would replace."""


def refuse_other_finished_run(out_dir, params: DetectionParams, *, key: dict,
                              input_path: str | None = None,
                              pattern: str | None = None) -> None:
    """Refuse to write into a folder that holds a complete run with other parameters.

    The folder's ``run.json`` decides: a run that finished every image
    (``complete``), not all of them with an error, with other detection
    parameters, another name regex, channel or z of ``key``, another input
    or another pattern is a result a new run would replace. The engine is
    not compared: every engine gives the same nuclei. A run with the same
    choices (the user runs it again), a run that stopped before it finished,
    a run whose every image failed or that found no nucleus at all (the user
    follows its errors' advice, or the advice to lower the threshold), a
    folder without ``run.json`` (or with one that cannot be read) is written
    into as before.

    Parameters
    ----------
    out_dir : path
    params : DetectionParams
        The new run's parameters.
    key : dict
        The new run's resume key, compared with the ``resume_key`` of ``run.json``.
    input_path, pattern : str, optional
        The new run's input (resolved) and pattern; not compared when ``None``.

    Raises
    ------
    FinishedRunInFolder
        With one sentence that names what differs, ``--overwrite`` and ``--resume``.
    """
    out = Path(out_dir)
    try:
        run = read_run_json(out / "run.json") if (out / "run.json").is_file() else None
    except InconsistentResults:
        return  # cannot tell what it holds: the new run writes as before
    if (run is None or run.get("complete") is not True
            or run.get("n_failed") == run.get("n_images") or run.get("n_nuclei") == 0):
        return  # not finished, or nothing to lose: every image failed, or nothing was found
    differences = _differences(run, params, key, {"input": input_path, "pattern": pattern})
    if differences:
        raise FinishedRunInFolder(
            f"{out} holds a complete run with other parameters ({'; '.join(differences)}): "
            "choose another --out, or add --overwrite (or --resume) to replace it")


def _differences(run: dict, params: DetectionParams, key: dict, source: dict) -> list[str]:
    """``'NAME THERE there, HERE here'`` for each choice of ``run`` that differs."""
    before = run.get("parameters")
    try:
        before = DetectionParams.from_dict(before).to_dict()
    except (ValueError, TypeError):  # another version's or a damaged entry: compared as it is
        before = before if isinstance(before, dict) else {}
    now = params.to_dict()
    pairs = [(name, before.get(name), now.get(name)) for name in {**now, **before}]
    earlier_key = run.get("resume_key")
    if isinstance(earlier_key, dict):  # runs before the key: their parameters only
        pairs += [(name, earlier_key.get(name), value) for name, value in key.items()
                  if name != "engine"]
    pairs += [(name, run.get(name), value) for name, value in source.items()
              if value is not None and run.get(name) is not None]
    return [f"{name} {_shown(there)} there, {_shown(here)} here"
            for name, there, here in pairs if not _same(name, there, here)]


def _same(name: str, there, here) -> bool:
    if name == "pattern" and isinstance(there, str) and isinstance(here, str):
        return there.lower() == here.lower()  # patterns match case-insensitively
    return there == here


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def _file_key(path: str) -> tuple[int, float] | None:
    try:
        st = os.stat(split_scene(path)[0])  # a scene's identity is its file's
    except OSError:
        return None
    return st.st_size, st.st_mtime


def resume_state(out_dir, params: DetectionParams, paths: list[str], *,
                 key: dict | None = None) -> set[int]:
    """Prepare ``out_dir`` to finish an interrupted run; return the indices already done.

    The images done are the longest prefix of ``paths`` that a previous run
    with the same parameters (same :meth:`DetectionParams.digest`), the same
    ``key`` and the same table format processed without error, whose files
    still have the same size and modification time, and whose nuclei rows
    all reached the disk. Failed images are tried again. Keeping a prefix makes the finished
    tables identical, row order included, to an uninterrupted run. The streaming files are
    rewritten to hold exactly the done images, ready for :class:`ResultsWriter` to append to.

    Parameters
    ----------
    out_dir : path
    params : DetectionParams
    paths : list of str
        The images of the new run, in input order.
    key : dict, optional
        The rest of what must match (engine, name regex, channel, z): compared
        with the ``resume_key`` of the previous ``run.json``.

    Returns
    -------
    set of int
        Positions in ``paths`` that need no work. Empty when there is nothing
        to resume or the parameters differ.
    """
    out = Path(out_dir)
    streaming = all((out / name).exists() for name in PARTIAL.values())
    # both streaming files: a run stopped while it went on; otherwise the final
    # pair (also a run stopped between its final renames: images.csv was
    # written from the streaming file before nuclei.partial.csv was renamed)
    images_path = out / (PARTIAL["images.csv"] if streaming else "images.csv")
    nuclei_path = out / (PARTIAL["nuclei.csv"] if streaming else "nuclei.csv")
    run_path = out / "run.partial.json"
    if not run_path.exists():
        run_path = out / "run.json"
    if not (images_path.exists() and nuclei_path.exists() and run_path.exists()):
        return set()
    try:
        run = read_run_json(run_path)
    except InconsistentResults as exc:
        raise InconsistentResults(f"cannot resume: {exc}; run without --resume to start afresh "
                                  "(or choose another --out)") from None
    try:
        same = DetectionParams.from_dict(run["parameters"]).digest() == params.digest()
        # the whole key (engine, regex, channel, z) and the tables' format:
        # anything that changes a row; runs before the key start afresh
        same = same and run.get("schema") == SCHEMA
        if key is not None:
            same = same and run.get("resume_key") == key
    except (ValueError, KeyError, TypeError, AttributeError):
        same = False
    if not same:
        log.warning("the previous run in %s used other parameters or choices: starting afresh",
                    out)
        return set()
    if run_path.name == "run.json":
        try:
            check_folder(out)
        except InconsistentResults as exc:
            log.warning("%s; starting afresh", exc)
            return set()
    if not (_has_a_line(images_path) and _has_a_line(nuclei_path)):
        return set()  # stopped before the header reached the disk: nothing was done
    try:
        images = read_images_csv(images_path)
        nuclei = read_nuclei_csv(nuclei_path)
    except DamagedTable as exc:
        raise DamagedTable(f"cannot resume: {exc}; run without --resume to start afresh "
                           "(or choose another --out)") from None
    counts = Counter(nuclei["path"].tolist())  # not groupby: names may hold surrogates
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
        if row["error"]:
            break  # failed: tried again (it may have been fixed, e.g. with chmod)
        expected = 0 if row["error"] or pd_isna(row["n_nuclei"]) else int(row["n_nuclei"])
        if int(counts.get(path, 0)) != expected:
            break  # its nuclei rows did not all reach the disk
        done.add(i)
        done_rows.append(k)
    images = images.loc[done_rows]
    keep = set(images["path"].tolist())
    nuclei = nuclei[[p in keep for p in nuclei["path"].tolist()]]
    out.mkdir(parents=True, exist_ok=True)
    for spec, table in ((IMAGES, images), (NUCLEI, nuclei)):
        # "\r\n" as the csv module ends the rows the writer appends
        write_csv(out / PARTIAL[spec.file], table, text=spec.text, lineterminator="\r\n")
    return done


def _has_a_line(path: Path) -> bool:
    with open(path, "rb") as fh:
        return b"\n" in fh.read(1 << 16)


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
    images = read_images_csv(out / PARTIAL["images.csv"])
    nuclei = read_nuclei_csv(out / PARTIAL["nuclei.csv"])
    rows: dict = {}
    for k, p in enumerate(nuclei["path"].tolist()):  # not groupby: names may hold surrogates
        rows.setdefault(p, []).append(k)
    by_path = {p: nuclei.iloc[ks] for p, ks in rows.items()}
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
        meta = ImageMeta(**{k: str(row.get(k, "") or "") for k in ImageMeta.__dataclass_fields__})
        metrics = {k: row[k] for k in ("saturated_fraction", "sharpness")}
        results.append(ImageResult(i, row["path"], meta, coords, values, row["seconds"],
                                   row["error"], metrics, row["file_size"], row["file_mtime"],
                                   bool(row["edited"]), threshold=row.get("threshold"),
                                   threshold_above_image=bool(row["threshold_above_image"])))
    return results


