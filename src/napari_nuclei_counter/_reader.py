"""npe2 reader: image files, folders and OME-Zarr plates as lazy stacks; results as Points.

- an image file (TIFF, PNG, JPEG, ND2, CZI, ... through the core's one reader):
  one layer per channel (napari's ``channel_axis``), z and time as sliders
  (named ``z`` and ``t``), RGB as colour;
- a folder of images (the BBBC021 DAPI pattern ``*_w1*.tif`` first, else
  every TIFF, PNG or JPEG) or an OME-Zarr plate (its fields, from the plate
  metadata): one lazily read stack, one layer per channel of multi-channel
  files and per colour of RGB files (z-stacks shown as their maximum
  projection);
- a results folder: the images and one Points layer of the nuclei.

Adapter layer: imports the core and dask, never Qt. Returns napari
``LayerData`` tuples, so it does not import napari either.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .core.io.discovery import BBBC021_PATTERN, find_images, natural_key, parse_metadata
from .core.io.images import PlaneChoice, describe_image, read_image, split_scene
from .core.io.plates import folder_name, is_hcs_plate, plate_fields
from .core.io.readers import IMAGE_SUFFIXES, is_zarr_image, read_raw
from .core.results.columns import NUCLEI
from .core.results.csvsafe import decode_columns
from .core.results.tables import load_results

__all__ = [
    "napari_get_reader",
    "points_layer_data",
    "read_image_file",
    "read_image_folder",
    "read_plate",
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
    ``nuclei.csv`` / results CSV file, an OME-Zarr plate or image, an image
    file of a type the core reads, or a folder of images (the BBBC021 DAPI
    pattern ``*_w1*.tif`` first; all TIFFs, PNGs and JPEGs when none match).
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.is_dir():
        if (p / "images.csv").is_file():
            return read_results
        if is_hcs_plate(p):
            return read_plate
        if is_zarr_image(p):
            return read_image_file
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
    if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
        return read_image_file
    return None


#: what a folder shows when no file follows the BBBC021 DAPI pattern
_FOLDER_PATTERNS = ("*.tif", "*.tiff", "*.png", "*.jpg", "*.jpeg")


def _folder_images(folder: Path) -> list[Path]:
    paths = find_images(folder, BBBC021_PATTERN)
    if not paths:
        paths = sorted({p for pat in _FOLDER_PATTERNS for p in find_images(folder, pat)},
                       key=lambda p: natural_key(p.name))
    return paths


def _regular(path) -> bool:
    """A regular file or a folder (OME-Zarr), never a FIFO, device or socket: safe to open."""
    import stat

    try:
        mode = os.stat(split_scene(str(path))[0]).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


def _header(path: Path):
    """What a file holds (:func:`~napari_nuclei_counter.core.io.images.describe_image`), or None."""
    if not _regular(path):  # a FIFO would block the viewer forever
        return None
    try:
        return describe_image(path)
    except Exception:  # unreadable: shown blank, its run row says why
        return None


def _load_plane(path: str, shape: tuple[int, int], dtype,
                plane: PlaneChoice | None = None) -> np.ndarray:
    """Read one image for display; unreadable or odd-shaped files show as blank."""
    out = np.zeros(shape, dtype)
    if not _regular(path):
        log.warning("not shown (not a regular file): %s", path)
        return out
    try:
        img = read_image(path, plane=plane)
    except Exception as exc:
        log.warning("cannot display %s: %s", path, exc)
        return out
    h, w = min(shape[0], img.shape[0]), min(shape[1], img.shape[1])
    out[:h, :w] = img[:h, :w]
    return out


class _StackPlanes:
    """The chunk function of a lazy stack: block ``i`` is file ``i``'s plane."""

    def __init__(self, paths: list[str], shape: tuple[int, int], dtype,
                 plane: PlaneChoice | None) -> None:
        self.paths, self.shape, self.dtype, self.plane = paths, shape, dtype, plane

    def __call__(self, block_info=None) -> np.ndarray:
        i = block_info[None]["chunk-location"][0]
        extra = () if self.plane is None else (self.plane,)
        return _load_plane(self.paths[i], self.shape, self.dtype, *extra)[None]


def stack_layer_data(paths: Sequence[str | os.PathLike], name: str = "images",
                     regex: str | None = None, plane: PlaneChoice | None = None) -> tuple:
    """Image ``LayerData`` for many images as one lazily loaded (N, H, W) stack.

    Each plane is read only when napari displays it (dask, one chunk per
    file). The stack's shape is the most common shape among the first 16
    files; other sizes are cropped or padded for display only (detection
    always reads the file).
    ``metadata['nuclei_counter']`` holds the paths, their plate metadata and
    the plane choice (``channel``, ``z``) the stack shows.

    Parameters
    ----------
    paths : sequence of str or PathLike
        Files, ``FILE#SCENE`` names or OME-Zarr field folders.
    name : str, optional
    regex : str, optional
        For the plate metadata of names no imager's scheme reads.
    plane : PlaneChoice, optional
        Which channel (and z projection or plane) of multi-channel files and z-stacks.
    """
    import dask.array as da
    from dask.base import tokenize

    paths = [str(p) for p in paths]
    # the stack's plane shape from the first few headers: opening 10,000 files
    # here would make the viewer wait; other sizes are cropped or padded later
    heads = [_header(Path(p)) for p in paths[:_SHAPE_SAMPLE]]
    good = [(h.plane_shape, h.dtype) for h in heads if h is not None]
    if good:
        shape, dtype = Counter(good).most_common(1)[0][0]
    else:
        shape, dtype = (64, 64), np.dtype(np.uint16)
    if plane is not None and plane.z == "mean":
        dtype = np.dtype(np.float64)
    extra = () if plane is None else (plane,)
    loader = _StackPlanes(paths, shape, dtype, plane)
    # one blockwise layer of len(paths) chunks: the graph has one layer whatever
    # the number of files, so computing a slice on the window's thread stays
    # cheap for stacks of thousands of files
    stack = da.map_blocks(loader, dtype=dtype, chunks=((1,) * len(paths), (shape[0],), (shape[1],)),
                          meta=np.empty((0, 0, 0), dtype),
                          name="nuclei-stack-" + tokenize(paths, shape, str(dtype), extra))
    meta = [parse_metadata(p, regex).as_dict() for p in paths]
    choice = (plane or PlaneChoice()).as_dict()
    kwargs = {
        "name": name,
        "metadata": {META_KEY: {"paths": paths, "meta": meta, **choice}},
        "colormap": "gray",
        "axis_labels": ("image", "y", "x"),
    }
    first = next((p for p, h in zip(paths, heads, strict=True) if h is not None), None)
    if first is not None:
        sample = _load_plane(first, shape, dtype, *extra)
        lo, hi = np.percentile(sample, [0.5, 99.8])
        if hi > lo:
            kwargs["contrast_limits"] = [float(lo), float(hi)]
    return stack, kwargs, "image"


_CHANNEL_COLOURS = ("gray", "green", "magenta", "cyan", "yellow", "red")
#: the colours of an RGB file's channels, by their names (its alpha is not shown)
_RGB_COLOURS = {"red": "red", "green": "green", "blue": "blue"}


def stack_layers(paths: Sequence[str | os.PathLike], name: str,
                 regex: str | None = None) -> list[tuple]:
    """Stacks of ``paths``: one per channel when the first file has several.

    A z-stack shows its maximum projection (what ``--z max`` counts); DAPI,
    when a channel is so named, is the first layer's neighbour in napari's
    list like any other channel: each layer's metadata says its channel.
    """
    head = next((h for h in (_header(Path(p)) for p in list(paths)[:_SHAPE_SAMPLE]) if h), None)
    z = "max" if head is not None and head.n_planes > 1 else None
    if head is None or head.n_channels == 1:
        return [stack_layer_data(paths, name=name, regex=regex,
                                 plane=PlaneChoice(None, z) if z else None)]
    names = list(head.channels) + [""] * head.n_channels
    rgb = "C" not in head.axes  # the channels are an RGB(A) file's colours
    layers = []
    for c in range(head.n_channels):
        if rgb and names[c] not in _RGB_COLOURS:
            continue
        label = names[c] or str(c)
        data, kwargs, kind = stack_layer_data(paths, name=f"{name} [{label}]", regex=regex,
                                              plane=PlaneChoice(str(c), z))
        kwargs["colormap"] = (_RGB_COLOURS[names[c]] if rgb
                              else _CHANNEL_COLOURS[c % len(_CHANNEL_COLOURS)])
        kwargs["blending"] = "additive"
        kwargs["metadata"][META_KEY]["channel_name"] = names[c]
        layers.append((data, kwargs, kind))
    return layers


def read_image_folder(path: str | list[str]) -> list[tuple]:
    """Read a folder of images (the BBBC021 DAPI pattern, else every TIFF, PNG or JPEG)."""
    folder = Path(path[0] if isinstance(path, (list, tuple)) else path)
    return stack_layers(_folder_images(folder), name=folder.name or str(folder))


def read_plate(path: str | list[str]) -> list[tuple]:
    """Read an OME-Zarr plate: its fields (from the plate metadata) as one stack per channel."""
    root = Path(path[0] if isinstance(path, (list, tuple)) else path)
    return stack_layers(plate_fields(root), name=folder_name(root))


def read_image_file(path: str | list[str]) -> list[tuple]:
    """Read one image file (or OME-Zarr image): one layer per channel, z and time as sliders.

    The first scene of a multi-scene file; ``nuclei-counter detect`` counts
    every scene and every time point. The sliders are named by their axes
    (``t``, ``z``).
    """
    p = Path(path[0] if isinstance(path, (list, tuple)) else path)
    file, scene = split_scene(p)
    data, axes, names = read_raw(file, scene or 0)
    axes = axes.upper()
    keep = [i for i, a in enumerate(axes) if data.shape[i] != 1 or a in "YXS"]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    kwargs: dict = {"name": p.stem, "metadata": {META_KEY: {"paths": [str(p)]}}}
    rgb = axes.endswith("S") and data.shape[-1] in (3, 4)
    # the sliders' names: a layer's axes, without its colours or its channels
    kwargs["axis_labels"] = tuple((axes[:-1] if rgb else axes.replace("C", "")).lower())
    if rgb:
        kwargs["rgb"] = True
    elif "C" in axes:
        k = axes.index("C")
        n = data.shape[k]
        labels = [(names[i] if i < len(names) and names[i] else f"{p.stem} [{i}]")
                  for i in range(n)]
        kwargs.update(channel_axis=k, name=labels, blending="additive",
                      colormap=[_CHANNEL_COLOURS[i % len(_CHANNEL_COLOURS)] for i in range(n)])
    return [(data, kwargs, "image")]


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
    else:  # a lone CSV with at least y and x; text cells escaped as the tool writes them
        nuclei = decode_columns(pd.read_csv(p, keep_default_na=False), NUCLEI.text)
        if "path" not in nuclei:
            nuclei["path"] = ""
        images = pd.DataFrame({"path": pd.unique(nuclei["path"])})
    order = {path: i for i, path in enumerate(images["path"])}
    out = []
    if len(images) and all(_regular(x) for x in images["path"][:1]):
        plane = res.plane if p.is_dir() or (folder / "images.csv").is_file() else None
        out.append(stack_layer_data(list(images["path"]), name=folder.name or "images",
                                    plane=plane if plane != PlaneChoice() else None))
    nuclei = _valid_points(nuclei, out[0][0].shape[1:] if out else None)
    index = nuclei["path"].map(order).fillna(0).to_numpy(dtype=float)
    coords = np.column_stack([index, nuclei["y"].to_numpy(float), nuclei["x"].to_numpy(float)])
    feats = nuclei[[c for c in NUCLEI.names if c in nuclei and c not in ("y", "x")]].copy()
    out.append(points_layer_data(coords, feats, name=f"nuclei ({folder.name})"))
    return out


def _valid_points(nuclei: pd.DataFrame, shape) -> pd.DataFrame:
    """The rows whose ``y``, ``x`` are finite, not negative and inside ``shape`` (when known)."""
    y = pd.to_numeric(nuclei["y"], errors="coerce").to_numpy(float)
    x = pd.to_numeric(nuclei["x"], errors="coerce").to_numpy(float)
    ok = np.isfinite(y) & np.isfinite(x) & (y >= 0) & (x >= 0)
    if shape is not None:
        ok &= (y < shape[0]) & (x < shape[1])
    if not ok.all():
        log.warning("%d of %d nuclei rows left out: coordinates not finite or outside the image",
                    int((~ok).sum()), len(ok))
    return nuclei[ok].assign(y=y[ok], x=x[ok])
