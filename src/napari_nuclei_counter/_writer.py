"""npe2 writer: a Points layer to a CSV with the columns of ``nuclei.csv``.

Text cells are escaped as in every table of the tool
(:mod:`~napari_nuclei_counter.core.results.csvsafe`); the reader undoes it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from .core.results.columns import NUCLEI
from .core.results.csvsafe import write_csv

__all__ = ["points_to_table", "write_points_csv"]


def points_to_table(data: np.ndarray, features: pd.DataFrame | None) -> pd.DataFrame:
    """Turn Points data and features into the ``nuclei.csv`` table.

    Parameters
    ----------
    data : ndarray, shape (M, D)
        The last two columns are ``y`` (row) and ``x`` (column); they are
        rounded to whole pixels.
    features : pandas.DataFrame or None
        ``path``, ``plate``, ``well``, ``site`` and ``intensity`` are copied when
        present, left blank otherwise.

    Returns
    -------
    pandas.DataFrame
        Columns ``path, plate, well, site, y, x, intensity``.
    """
    data = np.asarray(data, dtype=float).reshape(len(data), -1)
    feats = features if features is not None else pd.DataFrame(index=range(len(data)))
    feats = feats.reset_index(drop=True)
    out = pd.DataFrame(index=range(len(data)))
    for col in ("path", "plate", "well", "site"):
        out[col] = feats[col].astype(str).to_numpy() if col in feats else ""
    out["y"] = np.rint(data[:, -2]).astype(np.int64) if len(data) else np.empty(0, np.int64)
    out["x"] = np.rint(data[:, -1]).astype(np.int64) if len(data) else np.empty(0, np.int64)
    out["intensity"] = (feats["intensity"].astype(float).to_numpy() if "intensity" in feats
                        else np.nan)
    return out[NUCLEI.names]


def write_points_csv(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 single-layer writer for Points (atomic: temp file + rename)."""
    table = points_to_table(data, meta.get("features"))
    write_csv(path, table, text=NUCLEI.text, lineterminator=os.linesep)
    return [path]
