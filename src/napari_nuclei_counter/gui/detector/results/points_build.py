"""The ``nuclei`` layer's content: coordinates, features, and the whole layer.

Functions of the results alone, without Qt and without a viewer, so that
the dock can build them, and the whole Points layer, in a worker thread
when a run has many points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from napari.layers import Points

from ...._reader import points_layer_data
from ....core.io.discovery import ImageMeta
from ....core.results.tables import ImageResult

__all__ = ["TEXT_COLUMNS", "build_frame", "build_layer", "empty_features", "look_of",
           "points_layer", "set_defaults"]

#: text feature columns, categorical over the run's values
TEXT_COLUMNS = ("path", "well", "site", "plate")
#: what of the old layer's look a layer built anew keeps
_LOOK = ("visible", "opacity", "blending")


def empty_features() -> pd.DataFrame:
    """The ``nuclei`` layer's feature columns, with no rows."""
    cols = {"image": pd.Series(dtype=int), "intensity": pd.Series(dtype=float)}
    cols.update({k: pd.Series(dtype=object) for k in TEXT_COLUMNS})
    return pd.DataFrame(cols)


def _categories(labels: Sequence[str], meta: Sequence[ImageMeta]) -> dict[str, pd.Index]:
    # object-dtype categories: napari turns every feature column into a numpy
    # array when it colours by a feature, and pandas' Arrow strings take
    # several times longer to convert
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


def set_defaults(pts) -> None:
    """A nucleus added by hand has no measured intensity.

    napari maps every point's colour again when the defaults are set, so
    they are set only when they differ.
    """
    defaults = pts.feature_defaults
    if "intensity" in defaults and not pd.isna(defaults["intensity"].iloc[0]):
        defaults["intensity"] = np.nan
        pts.feature_defaults = defaults


def points_layer(coords: np.ndarray, feats: pd.DataFrame, ndim: int, name: str) -> Points:
    """A Points layer of detections with the plugin's look (not yet in any viewer)."""
    data, kwargs, _ = points_layer_data(coords, feats, name=name)
    kwargs["ndim"] = ndim
    layer = Points(data, **kwargs)
    set_defaults(layer)
    return layer


def look_of(layer) -> dict:
    """The look of ``layer`` that a layer built anew keeps.

    The layer-wide settings of :data:`_LOOK`, and the size, symbol and border
    width when all points share one (styles given to some points only are
    the new layer's defaults again).
    """
    look = {k: getattr(layer, k) for k in _LOOK}
    for attr in ("size", "border_width"):
        values = np.asarray(getattr(layer, attr))
        if len(values) and (values == values[0]).all():
            look[attr] = float(values[0])
    if len(layer.data):
        look["symbol"] = layer.current_symbol
    return look


def build_layer(results, labels, meta, ndim: int, look: dict, name: str = "nuclei"):
    """The whole ``nuclei`` layer, built in a worker thread (not yet in any viewer).

    ``look`` (:func:`look_of` the old layer) is set here because napari
    passes over every point (its thumbnail) each time one is set. Returns the
    layer, or the exception that stopped the build (the dock then fills the
    layer in place: no error for the user to see).
    """
    try:
        coords, feats = build_frame(results, labels, meta, ndim)
        layer = points_layer(coords, feats, ndim, name)
        for attr, value in look.items():
            setattr(layer, attr, value)
        layer.extent  # noqa: B018 -- napari caches it: the window's thread need not pass over every point
        return layer
    except Exception as exc:  # reported and replaced by the in-place fill
        return exc
