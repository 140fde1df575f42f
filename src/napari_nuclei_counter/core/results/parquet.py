"""Parquet copies of the result tables (``--parquet``; needs pyarrow).

Parquet holds the raw values: no spreadsheet escaping (see :mod:`.csvsafe`),
except that a name with bytes that are not UTF-8 keeps its ``\\xHH`` escapes,
since Parquet strings must be UTF-8.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..io.images import atomic_write
from .columns import NUCLEI
from .csvsafe import TEXT_COLUMNS, decode_columns, encode_name
from .tables import read_images_csv

__all__ = ["write_parquet"]

_SURROGATE = re.compile("[\udc80-\udcff]")


def write_parquet(out_dir) -> None:
    """Write ``images.parquet`` and ``nuclei.parquet`` next to the CSV tables.

    The nuclei table is converted in chunks, so memory stays flat for large
    screens. Needs ``pyarrow`` (``pip install 'napari-nuclei-counter[parquet]'``).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    images = _parquet_text(read_images_csv(out / "images.csv"))
    with atomic_write(out / "images.parquet", "wb") as fh:
        images.to_parquet(fh, index=False)
    dtypes = NUCLEI.read_dtypes
    with atomic_write(out / "nuclei.parquet", "wb") as fh:
        writer = None
        for chunk in pd.read_csv(out / "nuclei.csv", dtype=dtypes, keep_default_na=False,
                                 chunksize=500_000):
            chunk = _parquet_text(decode_columns(chunk))
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            writer = writer or pq.ParquetWriter(fh, table.schema)
            writer.write_table(table)
        if writer is None:
            pq.write_table(pa.Table.from_pandas(pd.DataFrame(columns=NUCLEI.names).astype(dtypes),
                                                preserve_index=False), fh)
        else:
            writer.close()


def _parquet_text(df):
    """Raw text values for Parquet; only names with bytes that are not UTF-8 stay escaped."""
    import pandas as pd

    for col in TEXT_COLUMNS:
        if col in df and not pd.api.types.is_numeric_dtype(df[col]):
            df[col] = df[col].map(lambda v: encode_name(v) if isinstance(v, str)
                                  and _SURROGATE.search(v) else v)
    return df
