"""Text cells of the result tables: safe in a spreadsheet, exact for file names of any bytes.

Two reversible escapes, applied to every text cell the writer puts into a CSV
table (paths, plate/well/site/channel, errors) and undone by the project's
own table readers (:mod:`.tables`), so a name read back is exactly the name
written:

1. **Bytes and control characters.** A file name on Linux is bytes; Python
   holds the bytes that are not UTF-8 as lone surrogates (``os.fsdecode``,
   PEP 383), which no UTF-8 file can hold. Each such byte, and each control
   character (U+0000-U+001F, U+007F: a ``\\r`` or ``\\n`` in a name would
   otherwise split a row over two lines), is written as ``\\xHH`` (two
   lower-case hex digits of the byte). So that this is unambiguous, a
   backslash that is itself followed by ``x`` is written ``\\x5c``. Nothing
   else changes: Windows paths keep their backslashes, UTF-8 names stay as
   they are. ``os.fsencode(decode_name(cell))`` gives the original bytes.
2. **Formulas.** A cell that begins with ``=``, ``+``, ``-``, ``@`` (or a tab
   or carriage return, already escaped by rule 1) would be run as a formula
   by Excel, LibreOffice or Google Sheets. Following OWASP's advice on CSV
   injection, such a cell gets a leading ``'`` (which spreadsheets show as
   text); a cell that itself begins with ``'`` gets one too, so that the
   reader's rule, "drop one leading ``'``", is exact.

Numbers are never escaped. Parquet tables hold the raw values (rule 2 not
applied); a name with bytes that are not UTF-8 keeps rule 1 there too, since
Parquet strings must be UTF-8.

Every CSV file the tool writes goes through :func:`write_csv` (a whole
table, with pandas) or :func:`csv_line` (one streamed row, with the
:mod:`csv` module), which apply these rules to the table's text columns
(:mod:`.columns`).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .columns import IMAGES, NUCLEI, WELLS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TEXT_COLUMNS", "csv_line", "csv_text", "decode_cell", "decode_columns",
           "decode_name", "encode_cell", "encode_columns", "encode_name", "write_csv"]

#: text columns of the result tables (the others are numbers or our own words)
TEXT_COLUMNS = tuple(dict.fromkeys(IMAGES.text + NUCLEI.text + WELLS.text))

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
_NEEDS_NAME_ESCAPE = re.compile(r"[\x00-\x1f\x7f\udc80-\udcff]|\\(?=x)")
_ESCAPED = re.compile(r"\\x([0-9a-fA-F]{2})")


def _escape_char(m: re.Match) -> str:
    ch = m.group(0)
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        code -= 0xDC00
    return f"\\x{code:02x}"


def encode_name(text: str) -> str:
    """Rule 1: bytes that are not UTF-8 and control characters as ``\\xHH``."""
    if not _NEEDS_NAME_ESCAPE.search(text):
        return text
    return _NEEDS_NAME_ESCAPE.sub(_escape_char, text)


def _unescape(m: re.Match) -> str:
    code = int(m.group(1), 16)
    return chr(code) if code < 0x80 else chr(0xDC00 + code)


def decode_name(text: str) -> str:
    """Undo :func:`encode_name`."""
    if "\\x" not in text:
        return text
    return _ESCAPED.sub(_unescape, text)


def encode_cell(value):
    """Both rules, for one text cell of a CSV table (non-strings are returned as they are)."""
    if not isinstance(value, str) or not value:
        return value
    value = encode_name(value)
    if value.startswith(_FORMULA_START):
        value = "'" + value
    return value


def decode_cell(value):
    """Undo :func:`encode_cell` (non-strings are returned as they are)."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith("'"):
        value = value[1:]
    return decode_name(value)


def encode_columns(df, columns=TEXT_COLUMNS):
    """A copy of a table with its text columns encoded for a CSV file."""
    df = df.copy()
    for col in columns:
        if col in df:
            df[col] = df[col].map(encode_cell)
    return df


def decode_columns(df, columns=TEXT_COLUMNS):
    """Decode a table's text columns in place (after reading a CSV file); returns it."""
    import pandas as pd
    from pandas.api.types import is_numeric_dtype

    for col in columns:
        if col in df and not is_numeric_dtype(df[col]):  # object or pandas' str dtype
            # object dtype: pandas' own str dtype (Arrow) cannot hold the
            # surrogates that stand for bytes which are not UTF-8
            df[col] = pd.Series([decode_cell(v) for v in df[col].tolist()], index=df.index,
                                dtype=object)
    return df


def csv_text(table: pd.DataFrame, *, text: Iterable[str] = TEXT_COLUMNS,
             lineterminator: str = "\n") -> str:
    """A table as CSV text (no index), the cells of its ``text`` columns encoded.

    Parameters
    ----------
    table : pandas.DataFrame
    text : iterable of str, optional
        The columns to escape (:func:`encode_cell`); a :class:`~.columns.Table`'s
        ``text``.
    lineterminator : str, optional
        ``"\\n"``, or ``"\\r\\n"`` for a file that :func:`csv_line` appends to.
    """
    return encode_columns(table, tuple(text)).to_csv(index=False, lineterminator=lineterminator)


def write_csv(path: str | os.PathLike, table: pd.DataFrame, *,
              text: Iterable[str] = TEXT_COLUMNS, lineterminator: str = "\n") -> str:
    """Write a table to a CSV file atomically (see :func:`csv_text`); returns the text written."""
    from ..io.images import atomic_write

    data = csv_text(table, text=text, lineterminator=lineterminator)
    with atomic_write(path, newline="", encoding="utf-8") as fh:
        fh.write(data)
    return data


def csv_line(cells: Sequence, escaped: Sequence[bool]) -> str:
    """One row as the :mod:`csv` module writes it (``\\r\\n`` ends it), text cells encoded.

    Parameters
    ----------
    cells : sequence
        The row's values; ``None`` is an empty cell, floats are written with ``repr``.
    escaped : sequence of bool
        For each cell, whether it is a text cell to encode (:func:`encode_cell`).
    """
    buf = io.StringIO()
    csv.writer(buf).writerow([encode_cell(v) if e else v
                              for v, e in zip(cells, escaped, strict=True)])
    return buf.getvalue()
