"""Plate layouts: which compound, at which concentration, each well received.

:func:`read_layout` reads four kinds of file into one :class:`Layout`, whose
``wells`` table has one row per ``(plate, well)``:

``'table'``
    A tidy CSV or TSV, one row per well: ``well`` (``A01``, ``A1``, any case)
    required; ``plate`` optional (absent or empty: every plate);
    ``compound`` (alias ``treatment``), ``concentration`` (a number),
    ``unit``, ``control`` (``negative``, ``positive`` or empty; ``negcon``
    and ``poscon`` accepted); every other column is carried through.
``'images'``
    A CellProfiler-style per-image metadata table such as BBBC021's
    ``BBBC021_v1_image.csv``: ``Image_FileName_<channel>`` (or
    ``FileName_<channel>``) columns and ``Image_Metadata_*`` or
    ``Metadata_*`` columns (a ``_<channel>`` suffix is dropped:
    ``Image_Metadata_Plate_DAPI`` is the plate). Images are joined to it by
    file name (:attr:`Layout.files`), and its plate and well take precedence
    over the ones read from the names.
``'cellpainting'``
    The Cell Painting Gallery pair: ``barcode_platemap.csv``
    (``Assay_Plate_Barcode``, ``Plate_Map_Name``) and, beside it,
    ``platemap/<Plate_Map_Name>.txt`` (tab-separated: ``well_position``, a
    perturbation column, optional ``control_type``).
``'wellmap'``
    A `wellmap <https://wellmap.readthedocs.io>`_ TOML file, when the
    optional ``wellmap`` package is installed.

Every problem is a :class:`LayoutError` of one sentence that names the file
(and the well or row).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..results.integrity import file_digest
from ..results.wells import well_name, well_position

__all__ = ["CONTROLS", "LAYOUT_COLUMNS", "LAYOUT_MAX_BYTES", "Layout", "LayoutError",
           "normalise_well", "read_annotations", "read_layout"]

log = logging.getLogger(__name__)

#: the columns every :attr:`Layout.wells` starts with, extras after them
LAYOUT_COLUMNS = ("plate", "well", "compound", "concentration", "unit", "control")

#: the largest layout or annotation file read (BBBC021's image table is 3.5 MB)
LAYOUT_MAX_BYTES = 256 << 20

#: words of a ``control`` cell -> the role
CONTROLS = {"": "", "negative": "negative", "neg": "negative", "negcon": "negative",
            "negative_control": "negative", "positive": "positive", "pos": "positive",
            "poscon": "positive", "positive_control": "positive"}

#: a column's lower-case name -> the layout column it stands for
_ALIASES = {"plate": "plate", "well": "well", "well_position": "well", "compound": "compound",
            "treatment": "compound", "concentration": "concentration", "unit": "unit",
            "control": "control", "control_type": "control"}

#: perturbation columns of a Cell Painting Gallery platemap, in order of preference
_PERTURBATION = ("compound", "treatment", "pert_iname", "perturbation", "broad_sample",
                 "jcp2022_id")

#: concentration columns of a Cell Painting Gallery platemap and their units
_CPG_CONCENTRATION = (("concentration", ""), ("mmoles_per_liter", "mM"), ("mg_per_ml", "mg/ml"))

#: columns wellmap adds to every layout (other forms of the well name)
_WELLMAP_COLUMNS = ("well0", "row", "col", "row_i", "col_j", "path")

_FILE_COLUMN = re.compile(r"^(?:image_)?filename_(.+)$", re.IGNORECASE)
_PATH_COLUMN = re.compile(r"^(?:image_)?pathname_(.+)$", re.IGNORECASE)
_METADATA_PREFIX = re.compile(r"^(?:image_)?metadata_", re.IGNORECASE)


class LayoutError(ValueError):
    """A layout that cannot be used, in one sentence for the user."""


@dataclass(frozen=True)
class Layout:
    """A plate layout read from a file (see :func:`read_layout`).

    Attributes
    ----------
    path : Path
        The file read (``barcode_platemap.csv`` for the Cell Painting Gallery pair).
    kind : str
        ``'table'``, ``'images'``, ``'cellpainting'`` or ``'wellmap'``.
    sha256 : str
        SHA-256 (hex) of the file.
    wells : pandas.DataFrame
        One row per ``(plate, well)``: :data:`LAYOUT_COLUMNS` then :attr:`extras`.
        ``plate`` is ``''`` for a well of every plate, ``well`` is written
        ``A01``, ``concentration`` is a float (NaN when not given),
        ``control`` is ``'negative'``, ``'positive'`` or ``''``.
    files : pandas.DataFrame or None
        Per-image tables only: ``file`` (a file name), ``folder`` (its
        ``PathName`` column, ``''`` when none), ``plate``, ``well``.
    extras : tuple of str
        The other columns, carried through to the tables.
    """

    path: Path
    kind: str
    sha256: str
    wells: pd.DataFrame
    files: pd.DataFrame | None = None
    extras: tuple[str, ...] = ()


def normalise_well(well) -> str:
    """``'a1'``, ``'A1'``, ``' A001 '`` -> ``'A01'``; ``''`` for a name that is not a well."""
    pos = well_position(well) if isinstance(well, str) else None
    return "" if pos is None else well_name(*pos)


def _wells(column: pd.Series, rows: pd.Series, path: Path) -> pd.Series:
    """``column`` as well names (``A01``); a cell that is no well name is a LayoutError."""
    wells = column.astype(str).map(normalise_well)
    bad = wells == ""
    if bad.any():
        i = bad.idxmax()
        raise LayoutError(f"{column[i]!r} on line {rows[i]} of {path.name} is not a well "
                          "name (A01, B2, ... up to AF48)")
    return wells


# --------------------------------------------------------------------------- reading text


def _read_text(path: Path, what: str = "layout") -> str:
    try:
        size = path.stat().st_size
        if size > LAYOUT_MAX_BYTES:
            raise LayoutError(f"the {what} {path} is larger than {LAYOUT_MAX_BYTES >> 20} MiB")
        with open(path, encoding="utf-8-sig", newline="") as fh:  # -sig: Excel's BOM
            return fh.read()
    except UnicodeDecodeError:
        raise LayoutError(f"the {what} {path} is not UTF-8 text") from None
    except OSError as exc:
        raise LayoutError(f"the {what} {path} cannot be read ({exc.strerror or exc})") from None


def _read_table(path: Path, what: str = "layout", sep: str | None = None) -> pd.DataFrame:
    """A CSV or TSV file (the separator guessed from its header) with every cell as text."""
    text = _read_text(path, what)
    if not text.strip():
        raise LayoutError(f"the {what} {path} is empty")
    if sep is None:
        header = text.splitlines()[0]
        try:
            sep = csv.Sniffer().sniff(header, delimiters=",\t;").delimiter
        except csv.Error:
            sep = "\t" if path.suffix.lower() in (".tsv", ".tab", ".txt") else ","
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                         skipinitialspace=True)
    except (pd.errors.ParserError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LayoutError(f"the {what} {path} cannot be read as a table ({first})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df.apply(lambda col: col.str.strip())


def _rename(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Layout columns found by name (any case, aliases); two columns for one name are refused."""
    renames = {}
    for col in df.columns:
        target = _ALIASES.get(col.lower())
        if target is None:
            continue
        if target in renames.values():
            other = next(k for k, v in renames.items() if v == target)
            raise LayoutError(f"the layout {path} has two {target} columns ({other!r} and "
                              f"{col!r}); keep one")
        renames[col] = target
    return df.rename(columns=renames)


# --------------------------------------------------------------------------- per-well tables


def _where(path: Path, plate: str, well: str) -> str:
    return f"well {well}" + (f" of plate {plate}" if plate else "") + f" in {path.name}"


def _per_well(df: pd.DataFrame, path: Path, *, rows: pd.Series | None = None) -> pd.DataFrame:
    """Check and normalise a table of one row per well: the :attr:`Layout.wells` form.

    ``rows`` are the file's line numbers of the table's rows, for the messages.
    """
    df = _rename(df, path)
    if "well" not in df:
        raise LayoutError(f"the layout {path} has no well column (a column 'well' of names "
                          "such as A01 is required)")
    if rows is None:
        rows = pd.Series(np.arange(len(df)) + 2, index=df.index)  # line 1 is the header
    out = pd.DataFrame(index=df.index)
    out["plate"] = df["plate"].astype(str) if "plate" in df else ""
    out["well"] = _wells(df["well"], rows, path)
    out["compound"] = df["compound"].astype(str) if "compound" in df else ""
    out["concentration"] = _concentrations(df, out, path)
    out["unit"] = df["unit"].astype(str) if "unit" in df else ""
    control = df["control"].astype(str).str.lower() if "control" in df else ""
    if isinstance(control, pd.Series):
        unknown = ~control.isin(list(CONTROLS))
        if unknown.any():
            i = unknown.idxmax()
            raise LayoutError(f"the control {df['control'][i]!r} of "
                              f"{_where(path, out['plate'][i], out['well'][i])} is not one of "
                              "negative, positive (negcon, poscon) or empty")
        control = control.map(CONTROLS)
    out["control"] = control
    extras = [c for c in df.columns if c not in LAYOUT_COLUMNS]
    for col in extras:
        out[col] = df[col]
    dup = out.duplicated(["plate", "well"], keep=False)
    if dup.any():
        first = out[dup].iloc[0]
        lines = rows[dup & (out["plate"] == first["plate"]) & (out["well"] == first["well"])]
        raise LayoutError(f"{_where(path, first['plate'], first['well'])} is listed more than "
                          f"once (lines {', '.join(map(str, lines.tolist()))}); each well once")
    return out.reset_index(drop=True)


def _concentrations(df: pd.DataFrame, out: pd.DataFrame, path: Path) -> pd.Series:
    if "concentration" not in df:
        return pd.Series(np.nan, index=df.index)
    text = df["concentration"].astype(str).str.strip()
    numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
    bad = (text != "") & (numbers.isna() | ~np.isfinite(numbers) | (numbers < 0))
    if bad.any():
        i = bad.idxmax()
        raise LayoutError(f"the concentration {text[i]!r} of "
                          f"{_where(path, out['plate'][i], out['well'][i])} is not a number "
                          f"(0 or more; {int(bad.sum())} such cell(s))")
    return numbers.astype(float)


# --------------------------------------------------------------------------- per-image tables


def _is_image_table(columns) -> bool:
    return any(_FILE_COLUMN.match(c) for c in columns)


def _per_image(df: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """``(wells, files, extras)`` of a CellProfiler-style per-image metadata table."""
    channels = [m.group(1) for c in df.columns if (m := _FILE_COLUMN.match(c))]
    file_cols = [c for c in df.columns if _FILE_COLUMN.match(c)]
    path_cols = {m.group(1): c for c in df.columns if (m := _PATH_COLUMN.match(c))}
    renames = {}
    for col in df.columns:
        if _FILE_COLUMN.match(col) or _PATH_COLUMN.match(col):
            continue
        name = _METADATA_PREFIX.sub("", col)
        for ch in channels:  # Image_Metadata_Plate_DAPI: the plate
            if name.lower().endswith("_" + ch.lower()):
                name = name[: -len(ch) - 1]
                break
        if name != col and name.lower() not in _ALIASES and name in df.columns:
            continue  # keep the column that has this name already
        renames[col] = name
    meta = _rename(df[list(renames)].rename(columns=renames), path)
    for need in ("plate", "well"):
        if need not in meta:
            raise LayoutError(f"the per-image table {path} has no {need} column "
                              f"(Image_Metadata_{need.title()} or Metadata_{need.title()})")
    rows = pd.Series(np.arange(len(df)) + 2, index=df.index)
    meta["well"] = _wells(meta["well"], rows, path)
    meta["plate"] = meta["plate"].astype(str)
    files = pd.concat([pd.DataFrame({
        "file": df[c].astype(str),
        "folder": df[path_cols[m.group(1)]].astype(str) if m.group(1) in path_cols else "",
        "plate": meta["plate"], "well": meta["well"]})
        for c in file_cols if (m := _FILE_COLUMN.match(c))], ignore_index=True)
    files = files[files["file"] != ""].drop_duplicates(ignore_index=True)
    # one row per well: the layout's columns must agree within a well, extras are kept
    # where they do in every well
    keys = ["plate", "well"]
    columns = [c for c in meta.columns if c not in keys]
    varies = meta.groupby(keys, sort=False)[columns].nunique() > 1
    for col in ("compound", "concentration", "unit", "control"):
        if col in varies and varies[col].any():
            plate, well = varies.index[varies[col].to_numpy().argmax()]
            raise LayoutError(f"the images of {_where(path, plate, well)} have more than one "
                              f"{col}; a well holds one condition")
    kept = [c for c in columns if not varies[c].any()]
    first = meta.drop_duplicates(keys).set_index(keys)[kept].reset_index()
    table = _per_well(first, path)
    extras = [c for c in table.columns if c not in LAYOUT_COLUMNS]
    return table, files, extras


# --------------------------------------------------------------------------- other kinds


def _cellpainting(path: Path) -> pd.DataFrame:
    barcodes = _read_table(path)
    cols = {c.lower(): c for c in barcodes.columns}
    if "assay_plate_barcode" not in cols or "plate_map_name" not in cols:
        raise LayoutError(f"{path} is not a Cell Painting Gallery barcode_platemap.csv (it "
                          "needs the columns Assay_Plate_Barcode and Plate_Map_Name)")
    tables = []
    for barcode, name in zip(barcodes[cols["assay_plate_barcode"]],
                             barcodes[cols["plate_map_name"]], strict=True):
        platemap = path.parent / "platemap" / f"{name}.txt"
        if not platemap.is_file():
            raise LayoutError(f"the platemap {name!r} of plate {barcode} is not in "
                              f"{path.parent / 'platemap'} (expected {platemap.name})")
        pm = _read_table(platemap, sep="\t")
        lower = {c.lower(): c for c in pm.columns}
        if "well_position" not in lower:
            raise LayoutError(f"the platemap {platemap} has no well_position column")
        pert = next((lower[c] for c in _PERTURBATION if c in lower), None)
        conc = next(((lower[c], unit) for c, unit in _CPG_CONCENTRATION if c in lower), None)
        table = pd.DataFrame({"plate": barcode, "well": pm[lower["well_position"]],
                              "compound": pm[pert] if pert else ""})
        if conc is not None:
            table["concentration"] = pm[conc[0]]
            table["unit"] = conc[1]
        if "control_type" in lower:
            kind = pm[lower["control_type"]].str.lower()
            table["control"] = np.where(kind == "negcon", "negative",
                                        np.where(kind.str.startswith("poscon"), "positive", ""))
        used = {lower["well_position"], pert, conc[0] if conc else None,
                lower.get("control_type"), lower.get("plate_map_name")}
        for col in pm.columns:
            if col not in used and col.lower() not in _ALIASES:
                table[col] = pm[col]
        tables.append(table)
    if not tables:
        raise LayoutError(f"{path} names no plate")
    return pd.concat(tables, ignore_index=True)


def _wellmap(path: Path) -> pd.DataFrame:
    try:
        import wellmap
    except ImportError:
        raise LayoutError(f"reading the wellmap layout {path} needs the wellmap package: "
                          "pip install wellmap") from None
    try:
        df = wellmap.load(path)
    except Exception as exc:  # wellmap's own errors (LayoutError, KeyError, ...) for the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LayoutError(f"the wellmap layout {path} cannot be read ({first})") from None
    df = df.drop(columns=[c for c in _WELLMAP_COLUMNS if c in df.columns])
    return df.astype(object).where(df.notna(), "").astype(str)


# --------------------------------------------------------------------------- the one entry


def read_layout(path) -> Layout:
    """Read a plate layout file of any supported kind (see the module).

    Parameters
    ----------
    path : path-like
        A CSV or TSV file (one row per well, or one row per image), a Cell
        Painting Gallery ``barcode_platemap.csv``, or a wellmap ``.toml`` file.

    Returns
    -------
    Layout

    Raises
    ------
    LayoutError
        For a file that cannot be read, a missing well column, a well name
        that is not one, duplicate wells, a concentration that is not a
        number, a control word that is not one (one sentence each).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise LayoutError(f"the layout {path} is not a file")
    files = None
    if path.suffix.lower() == ".toml":
        kind, wells = "wellmap", _per_well(_wellmap(path), path)
    else:
        df = _read_table(path)
        lower = {c.lower() for c in df.columns}
        if {"assay_plate_barcode", "plate_map_name"} <= lower:
            kind, wells = "cellpainting", _per_well(_cellpainting(path), path)
        elif _is_image_table(df.columns):
            kind = "images"
            wells, files, _ = _per_image(df, path)
        else:
            kind, wells = "table", _per_well(df, path)
    extras = tuple(c for c in wells.columns if c not in LAYOUT_COLUMNS)
    log.debug("layout %s (%s): %d wells", path, kind, len(wells))
    return Layout(path=path, kind=kind, sha256=file_digest(path)[1], wells=wells, files=files,
                  extras=extras)


def read_annotations(path) -> pd.DataFrame:
    """Read a table of annotations per compound and, when it has one, concentration.

    Parameters
    ----------
    path : path-like
        A CSV or TSV file with a ``compound`` (or ``treatment``) column, an
        optional ``concentration`` column and any others (BBBC021's
        ``BBBC021_v1_moa.csv``: ``compound``, ``concentration``, ``moa``).

    Returns
    -------
    pandas.DataFrame
        ``compound``, ``concentration`` (float, NaN when the file has none)
        and the other columns as text.

    Raises
    ------
    LayoutError
        For a file that cannot be read, without a compound column, or with
        a concentration that is not a number.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise LayoutError(f"the annotations {path} are not a file")
    df = _rename(_read_table(path, "annotations"), path)
    if "compound" not in df:
        raise LayoutError(f"the annotations {path} have no compound column")
    df = df.drop(columns=[c for c in ("plate", "well", "control") if c in df])
    text = df["concentration"] if "concentration" in df else pd.Series("", index=df.index)
    numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
    bad = (text != "") & numbers.isna()
    if bad.any():
        i = bad.idxmax()
        raise LayoutError(f"the concentration {text[i]!r} of {df['compound'][i]} in {path.name} "
                          "is not a number")
    df["concentration"] = numbers.astype(float)
    return df
