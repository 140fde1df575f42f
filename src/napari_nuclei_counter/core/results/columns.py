"""The columns of every table the tool writes, in one place.

Each table is a :class:`Table`: its columns in file order, each with its
kind, which fixes the pandas dtype it is read back with and whether its
cells are escaped for spreadsheets (:mod:`.csvsafe`). Writers
(:func:`~.csvsafe.write_csv`), readers (:meth:`Table.typed`), the Parquet
copies and ``--resume`` all take the columns from here, so a new column of
``images.csv`` is one line in :data:`IMAGES` (and its value in
:meth:`~.tables.ImageResult.image_row`).

Kinds
-----
``'text'``
    Text from outside (file names and what is parsed from them, error
    messages): escaped in CSV files, read as ``str``.
``'label'``
    Text the program makes itself (QC flag words, plane, time point and
    scene numbers): written as it is, read as ``str``.
``'int'``, ``'count'``, ``'float'``, ``'bool'``
    ``int64``; a nullable ``Int64`` (empty when unknown, e.g. the count of
    a failed image); ``float64`` (empty is NaN); ``bool`` (``True``/``False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EVALUATION", "IMAGES", "KINDS", "NUCLEI", "TUNING", "WELLS", "Column", "Table"]

#: pandas dtype of each kind of column
KINDS = {"text": object, "label": object, "int": "int64", "count": "Int64", "float": "float64",
         "bool": bool}

_TRUE = ("True", "true", "1")


@dataclass(frozen=True)
class Column:
    """One column of a table.

    Attributes
    ----------
    name : str
    kind : str
        One of :data:`KINDS` (see the module).
    optional : bool
        Present only in some files (``wells.csv``'s ``timepoint``).
    """

    name: str
    kind: str
    optional: bool = False

    @property
    def dtype(self):
        """The pandas dtype the column is read with."""
        return KINDS[self.kind]


@dataclass(frozen=True)
class Table:
    """A table's file name and columns, in file order."""

    file: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        """Column names in file order (optional columns left out)."""
        return [c.name for c in self.columns if not c.optional]

    @property
    def all_names(self) -> list[str]:
        """Column names in file order, optional ones included."""
        return [c.name for c in self.columns]

    @property
    def text(self) -> tuple[str, ...]:
        """Columns whose cells are escaped in CSV files (see :mod:`.csvsafe`)."""
        return tuple(c.name for c in self.columns if c.kind == "text")

    @property
    def strings(self) -> tuple[str, ...]:
        """Columns read as ``str`` (text and labels)."""
        return tuple(c.name for c in self.columns if c.kind in ("text", "label"))

    @property
    def dtypes(self) -> dict:
        """``{name: pandas dtype}`` of every column."""
        return {c.name: c.dtype for c in self.columns}

    @property
    def read_dtypes(self) -> dict:
        """``dtype=`` for :func:`pandas.read_csv`: ``str`` for text and labels, numbers typed.

        Counts and booleans are read as ``str`` too (their empty cells), then :meth:`typed`.
        """
        return {c.name: str if c.kind in ("text", "label", "count", "bool") else c.dtype
                for c in self.columns}

    def empty(self) -> pd.DataFrame:
        """A table without rows, its columns typed."""
        import pandas as pd

        return pd.DataFrame({c.name: pd.Series(dtype=c.dtype) for c in self.columns
                             if not c.optional})

    def typed(self, df: pd.DataFrame) -> pd.DataFrame:
        """The columns of a table read as strings, in order and typed (a new frame).

        Columns missing from the file (written by an older version) come out
        empty; empty numbers are NA/NaN; ``bool`` is ``True`` for
        ``True``/``true``/``1``.

        Raises
        ------
        ValueError, TypeError
            For an ``int`` column whose cells are not whole numbers.
        """
        import pandas as pd

        out = {}
        for c in self.columns:
            if c.name not in df:
                if c.optional:
                    continue
                col = pd.Series("", index=df.index, dtype=object)
            else:
                col = df[c.name]
            if c.kind in ("text", "label"):
                out[c.name] = col
            elif c.kind == "bool":
                out[c.name] = col.isin(_TRUE)
            elif c.kind == "int":
                out[c.name] = col.astype("int64")
            else:
                num = pd.to_numeric(col.replace("", None), errors="coerce")
                out[c.name] = num.astype(c.dtype)
        return pd.DataFrame(out, index=df.index)


def _columns(spec: str, *, optional: tuple[str, ...] = ()) -> tuple[Column, ...]:
    """``'path:text plate:text ...'`` as columns."""
    cols = []
    for item in spec.split():
        name, kind = item.split(":")
        if kind not in KINDS:
            raise ValueError(f"unknown column kind {kind!r} of {name!r}")
        cols.append(Column(name, kind, name in optional))
    return tuple(cols)


#: one row per image
IMAGES = Table("images.csv", _columns(
    "path:text plate:text well:text site:text channel:text plane:label timepoint:label "
    "scene:label n_nuclei:count error:text seconds:float saturated_fraction:float "
    "sharpness:float qc_flags:label edited:bool file_size:float file_mtime:float "
    "threshold:float threshold_above_image:bool"))

#: one row per nucleus
NUCLEI = Table("nuclei.csv", _columns(
    "path:text plate:text well:text site:text y:int x:int intensity:float"))

#: one row per well (per time point, when the names give time points)
WELLS = Table("wells.csv", _columns(
    "plate:text well:text timepoint:label images:int total:count mean:float std:float",
    optional=("timepoint",)))

#: ``nuclei-counter evaluate``: one row per image
EVALUATION = Table("evaluation.csv", _columns(
    "path:text plate:text well:text site:text n_true:count n_detected:count tp:count "
    "fp:count fn:count precision:float recall:float f1:float count_error:count error:text"))

#: ``nuclei-counter tune``: one row per parameter set tried, best first
TUNING = Table("tuning.csv", _columns(
    "rank:int sigma:float min_distance:int threshold_abs:float n_true:int n_detected:int tp:int "
    "fp:int fn:int precision:float recall:float f1:float"))
