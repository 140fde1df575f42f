"""Text cells of the result tables: safe in a spreadsheet, exact for file names of any bytes.

Two reversible escapes, applied to every text cell the writer puts into a CSV
table (paths, plate/well/site/channel, errors) and undone by the project's
own table readers (:mod:`.results`), so a name read back is exactly the name
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
"""

from __future__ import annotations

import re

__all__ = ["decode_cell", "decode_name", "encode_cell", "encode_name", "decode_columns",
           "encode_columns", "TEXT_COLUMNS"]

#: text columns of the result tables (the others are numbers or our own words)
TEXT_COLUMNS = ("path", "plate", "well", "site", "channel", "error")

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
