"""Wells and plates: positions, layouts, per-well tables and the words used to show them.

One vocabulary for every view of a plate: the command line's PNG
(:func:`~napari_nuclei_counter.core.render.pictures.render_plate_map`) and the
"Plate map" dock both name rows (:func:`row_label`), wells
(:func:`well_name`), values (:func:`format_value`) and titles
(:func:`plate_map_title`) with the functions here.

numpy and pandas only (pandas imported where tables are used); nothing
from the rest of the core but :mod:`.discovery` and the columns of :mod:`.columns`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from ..io.discovery import natural_key
from .columns import WELLS

if TYPE_CHECKING:  # pandas is imported where tables are used: a faster start-up
    import pandas as pd

__all__ = [
    "MAP_VALUES",
    "MISSING_LEGEND",
    "NO_DATA",
    "PLATE_FORMATS",
    "WELL_COLUMNS",
    "colour_bar_labels",
    "format_value",
    "infer_plate_format",
    "plate_map_title",
    "plate_map_values",
    "plate_rows",
    "row_label",
    "STANDARD_FORMATS",
    "successful",
    "value_range",
    "well_name",
    "well_position",
    "well_sort_key",
    "well_table",
]

#: Columns of :func:`well_table` (``timepoint`` comes after ``well`` when the names give one).
WELL_COLUMNS = WELLS.names

#: Standard plate layouts ``(rows, columns)``: 96, 384 and 1536 wells (inferred from wells).
PLATE_FORMATS = ((8, 12), (16, 24), (32, 48))

#: Every standard layout, 6 to 1536 wells (the ones a ``layout`` may name).
STANDARD_FORMATS = ((2, 3), (3, 4), (4, 6), (6, 8), *PLATE_FORMATS)

#: The largest plate: wells beyond it (``'ZZ999'``) have no position, they are unplaced.
MAX_ROWS, MAX_COLUMNS = PLATE_FORMATS[-1]

#: What a plate map can show: column of :func:`well_table` -> its description.
MAP_VALUES = {"mean": "mean nuclei per site", "total": "total nuclei per well"}

#: What a plate map says when it has no value at all, and its legend for wells without data.
NO_DATA = "no data"
MISSING_LEGEND = "grey with a cross: no data"

_WELL_RE = re.compile(r"\s*([A-Za-z]{1,2})0*(\d{1,3})\s*")


# --------------------------------------------------------------------------- names


def well_position(well) -> tuple[int, int] | None:
    """Return the 0-based ``(row, col)`` of a well name, or ``None``.

    ``'A01'`` is ``(0, 0)``, ``'B2'`` and ``'b02'`` are ``(1, 1)``, ``'P24'``
    is ``(15, 23)``; two-letter rows (1536-well plates) follow ``'Z'``:
    ``'AA01'`` is ``(26, 0)``. Blank or unparseable names, column 0 and wells
    beyond the largest standard plate (1536 wells: rows A-AF, columns 1-48)
    give ``None``: such wells are listed as unplaced, never laid out.
    """
    if not isinstance(well, str):
        return None
    m = _WELL_RE.fullmatch(well)
    if not m:
        return None
    letters, number = m.group(1).upper(), int(m.group(2))
    if number < 1:
        return None
    row = ord(letters[-1]) - ord("A")
    if len(letters) == 2:
        row += 26 * (ord(letters[0]) - ord("A") + 1)
    if row >= MAX_ROWS or number > MAX_COLUMNS:
        return None
    return row, number - 1


def row_label(row: int) -> str:
    """Letters of a 0-based plate row: ``0 -> 'A'``, ``25 -> 'Z'``, ``26 -> 'AA'``."""
    if row < 26:
        return chr(ord("A") + row)
    return chr(ord("A") + row // 26 - 1) + chr(ord("A") + row % 26)


def well_name(row: int, col: int) -> str:
    """Name of the well at a 0-based position: ``(1, 1) -> 'B02'``."""
    return f"{row_label(row)}{col + 1:02d}"


def well_sort_key(well: str) -> tuple:
    """Sort key putting wells in plate order (row, then column); unreadable names last."""
    pos = well_position(well)
    return (0, *pos) if pos is not None else (1, natural_key(str(well)))


def format_value(v: float) -> str:
    """A well's value as written on a plate map: ``'214'``, ``'3.5'``; ``''`` for NaN."""
    if not np.isfinite(v):
        return ""
    return f"{v:.0f}" if abs(v) >= 10 or float(v).is_integer() else f"{v:.1f}"


def plate_map_title(value: str, plate: str | None = "") -> str:
    """Title of a plate map: ``'plate P1: mean nuclei per site'``.

    Raises
    ------
    ValueError
        For a ``value`` not in :data:`MAP_VALUES`.
    """
    if value not in MAP_VALUES:
        raise ValueError(f"value must be one of {sorted(MAP_VALUES)}, got {value!r}")
    return (f"plate {plate}: " if plate else "") + MAP_VALUES[value]


def value_range(grid: np.ndarray) -> tuple[float, float]:
    """Lowest and highest finite value of a plate grid; ``(nan, nan)`` when there is none."""
    grid = np.asarray(grid, dtype=np.float64)
    finite = grid[np.isfinite(grid)]
    if not finite.size:
        return np.nan, np.nan
    return float(finite.min()), float(finite.max())


def colour_bar_labels(vmin: float, vmax: float) -> tuple[str, str]:
    """Texts at the top and the bottom of a plate map's colour bar.

    ``(format_value(vmax), format_value(vmin))``, or ``(NO_DATA, '')`` when
    the plate has no value.
    """
    if not np.isfinite(vmin):
        return NO_DATA, ""
    return format_value(vmax), format_value(vmin)


# --------------------------------------------------------------------------- layouts


def infer_plate_format(wells: Iterable) -> tuple[int, int]:
    """Guess the plate layout from the wells present.

    Parameters
    ----------
    wells : iterable of str
        Well names such as ``'B02'``; blank and unparseable names are ignored.

    Returns
    -------
    tuple of int
        ``(rows, columns)``: ``(8, 12)`` (96 wells) unless a row letter is
        after ``'H'`` or a column after 12, then ``(16, 24)`` (384 wells); then
        ``(32, 48)`` (1536 wells), the largest (wells beyond it have no
        position, see :func:`well_position`). ``(8, 12)`` when no well name
        can be read.
    """
    positions = [p for p in map(well_position, wells) if p is not None]
    if not positions:
        return PLATE_FORMATS[0]
    rows = max(p[0] for p in positions) + 1
    cols = max(p[1] for p in positions) + 1
    for fmt in PLATE_FORMATS:
        if rows <= fmt[0] and cols <= fmt[1]:
            return fmt
    return PLATE_FORMATS[-1]  # unreachable: positions stop at the largest plate


# --------------------------------------------------------------------------- tables


def successful(images: pd.DataFrame) -> pd.Series:
    """Boolean mask of the images processed without error (and with a count).

    Parameters
    ----------
    images : pandas.DataFrame
        An images table: ``n_nuclei`` and, optionally, ``error``.

    Returns
    -------
    pandas.Series of bool
        Same index as ``images``.
    """
    ok = images["n_nuclei"].notna()
    if "error" in images:
        ok &= images["error"].fillna("").astype(str).str.strip() == ""
    return ok


def well_table(images: pd.DataFrame) -> pd.DataFrame:
    """Sum up an images table per well.

    Parameters
    ----------
    images : pandas.DataFrame
        One row per image with the columns ``plate``, ``well``, ``n_nuclei``
        (nullable integer, NA for failed images) and ``error`` (the
        ``images.csv`` table).

    Returns
    -------
    pandas.DataFrame
        One row per ``(plate, well)`` with the columns ``plate``, ``well``,
        ``images`` (number of successfully processed images), ``total`` (sum
        of their counts; nullable integer, NA when every image of the well
        failed), ``mean`` (``total / images``) and ``std`` (sample standard
        deviation, ``ddof=1``; NaN with fewer than two images). Images with a
        blank well are left out. Sorted by plate (natural order), then by
        well in plate order (row letter, then column number). When the
        images' names give time points (a non-blank ``timepoint`` column), a
        well's time points stay apart: one row per ``(plate, well,
        timepoint)``, with a ``timepoint`` column after ``well``.
    """
    import pandas as pd

    times = (images["timepoint"].fillna("").astype(str) if "timepoint" in images
             else pd.Series("", index=images.index))
    timed = bool((times != "").any())
    table = pd.DataFrame({
        "plate": images["plate"].fillna("").astype(str) if "plate" in images else "",
        "well": images["well"].fillna("").astype(str).str.strip(),
        "timepoint": times,
        "n": images["n_nuclei"].where(successful(images)),
    })
    table = table[table["well"] != ""]
    groups = table.groupby(["plate", "well", "timepoint"], sort=False)
    group = groups.ngroup().to_numpy()  # numbered in order of first appearance
    out = groups.size().index.to_frame(index=False)  # one row per group, in that order
    n = len(out)
    valid = table["n"].notna().to_numpy()
    group = group[valid]
    counts = table["n"][valid].to_numpy(dtype=np.int64)
    k = np.bincount(group, minlength=n)
    counts = counts[np.argsort(group, kind="stable")]  # each well's counts together, in order
    ends = np.cumsum(k)
    running = np.concatenate([[0], np.cumsum(counts)])
    total = running[ends] - running[ends - k]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(k > 0, total / np.maximum(k, 1), np.nan)  # numpy's: an exact sum / k
    std = np.full(n, np.nan)
    for g in np.flatnonzero(k > 1):  # numpy's own std of each well, to the last bit
        std[g] = counts[ends[g] - k[g]:ends[g]].std(ddof=1)
    out = out.assign(images=k, total=pd.arrays.IntegerArray(total, k == 0), mean=mean, std=std)
    plate_keys = {p: natural_key(p) for p in out["plate"].unique()}
    time_keys = {t: natural_key(t) for t in out["timepoint"].unique()}
    keys = [(plate_keys[p], well_sort_key(w), time_keys[t])
            for p, w, t in zip(out["plate"], out["well"], out["timepoint"], strict=True)]
    order = sorted(range(n), key=keys.__getitem__)
    out = out.iloc[order].reset_index(drop=True)[list(WELLS.all_names if timed
                                                      else WELLS.names)]
    return out.astype({c: WELLS.dtypes[c] for c in WELLS.names})


def plate_rows(wells: pd.DataFrame, value: str, plate: str | None) -> pd.DataFrame:
    """The rows of one plate of a :func:`well_table` (the first plate when ``plate`` is None).

    A table with time points gives the first time point's rows (natural order).

    Raises
    ------
    ValueError
        For a ``value`` not in :data:`MAP_VALUES` or a plate not in the table.
    """
    if value not in MAP_VALUES:
        raise ValueError(f"value must be one of {sorted(MAP_VALUES)}, got {value!r}")
    plates = wells["plate"].astype(str)
    if plate is None:
        plate = plates.iloc[0] if len(wells) else ""
    elif len(wells) and not (plates == str(plate)).any():
        raise ValueError(f"plate {plate!r} is not in the table; plates: {sorted(set(plates))}")
    sub = wells[plates == str(plate)]
    if "timepoint" in sub and len(sub):
        first = min(sub["timepoint"].astype(str), key=natural_key)
        sub = sub[sub["timepoint"].astype(str) == first]
    return sub


def plate_map_values(
    wells: pd.DataFrame,
    *,
    value: str = "mean",
    plate: str | None = None,
    layout: tuple[int, int] | None = None,
) -> np.ndarray:
    """Lay out one value per well on the plate grid.

    Parameters
    ----------
    wells : pandas.DataFrame
        A :func:`well_table`.
    value : {'mean', 'total'}, optional
        Mean nuclei per image (site) or total nuclei per well.
    plate : str, optional
        Which plate; the first plate of the table when not given.
    layout : tuple of int, optional
        ``(rows, columns)``; inferred from the plate's wells
        (:func:`infer_plate_format`) when not given.

    Returns
    -------
    ndarray of float64, shape ``layout``
        NaN where the plate has no data.

    Raises
    ------
    ValueError
        For an unknown ``value`` or ``plate``, or a well outside ``layout``.
    """
    sub = plate_rows(wells, value, plate)
    if layout is None:
        layout = infer_plate_format(sub["well"])
    if tuple(int(n) for n in layout) not in STANDARD_FORMATS:
        raise ValueError(f"layout must be a standard plate (6 to 1536 wells: "
                         f"{', '.join(f'{r}x{c}' for r, c in STANDARD_FORMATS)}), got {layout}")
    grid = np.full(tuple(int(n) for n in layout), np.nan)
    numbers = sub[value].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    for well, v in zip(sub["well"], numbers, strict=True):
        pos = well_position(well)
        if pos is None:
            continue
        if pos[0] >= grid.shape[0] or pos[1] >= grid.shape[1]:
            raise ValueError(f"well {well} does not fit a plate of layout {grid.shape}")
        grid[pos] = v
    return grid
