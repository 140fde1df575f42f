"""The run's detections as Points coordinates and features (numpy and pandas only).

Pure functions of the results, so that the dock can build them, and the
whole ``nuclei`` layer, off the window's thread when a run has many points.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.results import ImageResult
from ..core.discovery import ImageMeta

__all__ = ["TEXT_COLUMNS", "build_frame", "empty_features"]

#: text feature columns, categorical over the run's values
TEXT_COLUMNS = ("path", "well", "site", "plate")


def empty_features() -> pd.DataFrame:
    """The ``nuclei`` layer's feature columns, with no rows."""
    cols = {"image": pd.Series(dtype=int), "intensity": pd.Series(dtype=float)}
    cols.update({k: pd.Series(dtype=object) for k in TEXT_COLUMNS})
    return pd.DataFrame(cols)


def _categories(labels: Sequence[str], meta: Sequence[ImageMeta]) -> dict[str, pd.Index]:
    # object-dtype categories: napari turns every feature column into a numpy
    # array when it colours by a feature, and pandas' Arrow strings take about
    # 5 times longer to convert (0.09 s against 0.02 s for 571k rows)
    out = {"path": pd.Index(list(dict.fromkeys(labels)), dtype=object)}
    for k in ("well", "site", "plate"):
        out[k] = pd.Index(sorted({getattr(m, k) for m in meta} | {""}), dtype=object)
    return out


def build_frame(results: Mapping[int, ImageResult], labels: Sequence[str],
                meta: Sequence[ImageMeta], ndim: int,
                indices=None) -> tuple[np.ndarray, pd.DataFrame]:
    """Coordinates and features of the detections of some images (default: all).

    Parameters
    ----------
    results : mapping of int to ImageResult
        The run's results by image index.
    labels, meta : sequence
        The run's image names and plate metadata (the categories of the text columns).
    ndim : int
        3 for a stack (the image index first), 2 for one image.
    indices : iterable of int, optional
        Only these images.

    Returns
    -------
    coords : ndarray, shape (M, 3) or (M, 2)
        ``(image, row, col)`` for a stack, ``(row, col)`` for one image.
    features : pandas.DataFrame
        ``image``, ``intensity``, ``path``, ``well``, ``site``, ``plate``;
        the text columns are categorical over the run's values.
    """
    order = sorted(results) if indices is None else sorted(indices)
    rs = [results[i] for i in order if i in results and results[i].ok
          and len(results[i].coords)]
    if not rs:
        return np.empty((0, ndim)), empty_features()
    counts = np.array([len(r.coords) for r in rs])
    image = np.repeat(np.array([r.index for r in rs]), counts)
    yx = np.concatenate([np.asarray(r.coords, float).reshape(-1, 2) for r in rs])
    coords = np.column_stack([image.astype(float), yx]) if ndim == 3 else yx
    cats = _categories(labels, meta)
    cols = {"image": image,
            "intensity": np.concatenate([np.asarray(r.intensities, float).reshape(-1)
                                         for r in rs])}
    for k in TEXT_COLUMNS:
        values = [r.path if k == "path" else getattr(r.meta, k) for r in rs]
        categories = cats[k]
        pos = {v: j for j, v in enumerate(categories)}
        codes = np.array([pos.get(v, -1) for v in values])
        cols[k] = pd.Categorical.from_codes(np.repeat(codes, counts), categories=categories)
    return coords, pd.DataFrame(cols)
