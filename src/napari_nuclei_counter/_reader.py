"""npe2 reader: a folder of TIFFs as one lazy stack; a results folder as Points.

Adapter layer: imports the core, dask and tifffile, never Qt. Returns napari
``LayerData`` tuples, so it does not import napari either.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .core.discovery import BBBC021_PATTERN, find_images, parse_metadata
from .core.results import NUCLEI_COLUMNS, load_results

__all__ = [
    "napari_get_reader",
    "points_layer_data",
    "read_image_folder",
    "read_results",
    "stack_layer_data",
]

log = logging.getLogger(__name__)

#: key under ``layer.metadata`` where the plugin keeps per-image information
META_KEY = "nuclei_counter"
#: how many files' headers decide the shape of a stack
_SHAPE_SAMPLE = 16


def napari_get_reader(path: str | list[str]) -> Callable | None:
    """Return a reader for ``path`` if this plugin can open it, else ``None``.

    Accepted: a folder holding ``images.csv`` (a results folder), a
    ``nuclei.csv`` / results CSV file, or a folder of TIFFs (the BBBC021 DAPI
    pattern ``*_w1*.tif`` first; all TIFFs when none match).
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.is_dir():
        if (p / "images.csv").is_file():
            return read_results
        if _folder_images(p):
            return read_image_folder
        return None
    if p.suffix.lower() == ".csv" and p.is_file():
        try:
            cols = pd.read_csv(p, nrows=0).columns
        except Exception:
            return None
        if {"y", "x"} <= set(cols):
            return read_results
    return None


def _folder_images(folder: Path) -> list[Path]:
    paths = find_images(folder, BBBC021_PATTERN)
    if not paths:
        paths = find_images(folder, "*.tif") + find_images(folder, "*.tiff")
    return paths


def _header(path: Path) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype of a TIFF's first image without reading its pixels."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            return tuple(series.shape), np.dtype(series.dtype)
    except Exception:
        return None


def _load_plane(path: str, shape: tuple[int, int], dtype) -> np.ndarray:
    """Read one image for display; unreadable or odd-shaped files show as blank."""
    from .core.io import read_image

    out = np.zeros(shape, dtype)
    try:
        img = read_image(path)
    except Exception as exc:
        log.warning("cannot display %s: %s", path, exc)
        return out
    h, w = min(shape[0], img.shape[0]), min(shape[1], img.shape[1])
    out[:h, :w] = img[:h, :w]
    return out


def stack_layer_data(paths: Sequence[str | os.PathLike], name: str = "images",
                     regex: str | None = None) -> tuple:
    """Image ``LayerData`` for many TIFFs as one lazily loaded (N, H, W) stack.

    Each plane is read only when napari displays it (dask, one chunk per
    file). The stack's shape is the most common shape among the first 16
    files; other sizes are cropped or padded for display only (detection
    always reads the file).
    ``metadata['nuclei_counter']`` holds the paths and their plate metadata.
    """
    import dask
    import dask.array as da

    paths = [str(p) for p in paths]
    # the stack's plane shape from the first few headers: opening 10,000 files
    # here would make the viewer wait; other sizes are cropped or padded later
    heads = [_header(Path(p)) for p in paths[:_SHAPE_SAMPLE]]
    good = [h for h in heads if h is not None and len(h[0]) == 2]
    if good:
        shape, dtype = Counter(good).most_common(1)[0][0]
    else:
        shape, dtype = (64, 64), np.dtype(np.uint16)
    load = dask.delayed(_load_plane, pure=True)
    planes = [da.from_delayed(load(p, shape, dtype), shape=shape, dtype=dtype) for p in paths]
    stack = da.stack(planes)
    meta = [parse_metadata(p, regex).as_dict() for p in paths]
    kwargs = {
        "name": name,
        "metadata": {META_KEY: {"paths": paths, "meta": meta}},
        "colormap": "gray",
    }
    first = next((p for p, h in zip(paths, heads) if h is not None and len(h[0]) == 2), None)
    if first is not None:
        sample = _load_plane(first, shape, dtype)
        lo, hi = np.percentile(sample, [0.5, 99.8])
        if hi > lo:
            kwargs["contrast_limits"] = [float(lo), float(hi)]
    return stack, kwargs, "image"


def read_image_folder(path: str | list[str]) -> list[tuple]:
    """Read a folder of TIFFs (the BBBC021 DAPI pattern, else every TIFF)."""
    folder = Path(path[0] if isinstance(path, (list, tuple)) else path)
    return [stack_layer_data(_folder_images(folder), name=folder.name or str(folder))]


def points_layer_data(coords: np.ndarray, features: pd.DataFrame, name: str = "nuclei") -> tuple:
    """Points ``LayerData`` styled like the plugin's results layer.

    Parameters
    ----------
    coords : ndarray, shape (M, 2) or (M, 3)
        ``(row, col)`` or ``(image index, row, col)``.
    features : pandas.DataFrame
        One row per point; an ``intensity`` column colours the points.
    """
    coords = np.asarray(coords, dtype=float).reshape(-1, coords.shape[1] if len(coords) else 3)
    kwargs = {
        "name": name,
        "features": features.reset_index(drop=True),
        "size": 9,
        "symbol": "disc",
        "border_width": 0.15,
        "border_color": "white",
        "ndim": coords.shape[1],
    }
    if "intensity" in features and len(features):
        kwargs["face_color"] = "intensity"
        kwargs["face_colormap"] = "plasma"
    else:
        kwargs["face_color"] = "yellow"
    return coords, kwargs, "points"


def read_results(path: str | list[str]) -> list[tuple]:
    """Read a results folder (or its ``nuclei.csv``): the images and their nuclei.

    Returns the image stack (when the image files still exist) and one Points
    layer with ``(image index, y, x)`` coordinates and the table's columns as
    features.
    """
    p = Path(path[0] if isinstance(path, (list, tuple)) else path)
    folder = p if p.is_dir() else p.parent
    if p.is_dir() or (folder / "images.csv").is_file():
        res = load_results(folder)
        images, nuclei = res.images, res.nuclei
    else:  # a lone CSV with at least y and x
        nuclei = pd.read_csv(p, keep_default_na=False)
        if "path" not in nuclei:
            nuclei["path"] = ""
        images = pd.DataFrame({"path": pd.unique(nuclei["path"])})
    order = {path: i for i, path in enumerate(images["path"])}
    index = nuclei["path"].map(order).fillna(0).to_numpy(dtype=float)
    coords = np.column_stack([index, nuclei["y"].to_numpy(float), nuclei["x"].to_numpy(float)])
    feats = nuclei[[c for c in NUCLEI_COLUMNS if c in nuclei and c not in ("y", "x")]].copy()
    out = []
    if len(images) and all(Path(x).exists() for x in images["path"][:1]):
        out.append(stack_layer_data(list(images["path"]), name=folder.name or "images"))
    out.append(points_layer_data(coords, feats, name=f"nuclei ({folder.name})"))
    return out
