"""Density-sorted galleries: which images, their captions, their tiles, from a results folder.

The figure of the BBBC021 walk-through as a function of a results folder
(:func:`gallery_from_results`): a reproducible sample of the successfully
processed images (:func:`gallery_selection`), sorted by nuclei count, each a
thumbnail with its nuclei and a caption (:func:`gallery_tiles`,
:func:`caption`), laid out by :func:`~.render.render_gallery`. The gallery
dock uses the same selection and captions for its exports.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ..io.images import PlaneChoice, read_image, split_scene
from ..results.wells import successful
from .pictures import render_gallery, save_png
from .thumbnails import blank_tile, thumbnail

if TYPE_CHECKING:  # pandas is imported where tables are used: a faster start-up
    import pandas as pd

    from ..results.tables import ImageResult, Results

__all__ = [
    "ANY_FLAG",
    "FLAGGED",
    "GalleryItem",
    "GalleryOrder",
    "caption",
    "gallery_from_results",
    "gallery_order",
    "gallery_selection",
    "gallery_tiles",
    "image_thumbnail",
    "load_plane",
    "save_gallery",
]

log = logging.getLogger(__name__)

#: QC filters of :func:`gallery_order` besides a flag name: no filter, any flag
ANY_FLAG = "any"
FLAGGED = "flagged"


def gallery_selection(
    images: pd.DataFrame,
    n: int = 16,
    *,
    seed: int = 11,
    ascending: bool = False,
) -> pd.DataFrame:
    """Choose the images of a gallery and sort them by nuclei count.

    Parameters
    ----------
    images : pandas.DataFrame
        An images table (``images.csv``): ``n_nuclei`` and ``error`` at least.
    n : int, optional
        How many images. All successful images when ``n <= 0`` or ``n`` is
        at least their number; otherwise a random sample without replacement
        (``numpy.random.default_rng(seed).choice``), reproducible for the
        same ``seed`` and table.
    seed : int, optional
        Seed of the sample.
    ascending : bool, optional
        Sort from the fewest nuclei instead of the most.

    Returns
    -------
    pandas.DataFrame
        The chosen rows (original index kept), sorted by ``n_nuclei``; ties
        keep the table's order. Failed images are never chosen.
    """
    ok = images[successful(images)]
    if 0 < n < len(ok):
        picked = np.sort(np.random.default_rng(seed).choice(len(ok), size=n, replace=False))
        ok = ok.iloc[picked]
    return ok.sort_values("n_nuclei", ascending=ascending, kind="stable")


class GalleryOrder(NamedTuple):
    """What :func:`gallery_order` found: the images shown and the counts for the status line."""

    rows: list[int]  #: image indices shown, in display order
    successful: int  #: images with a result and no error
    failed: int  #: images whose detection failed
    top: int  #: largest count among the successful images (0 when none)


def gallery_order(
    results: Mapping[int, ImageResult],
    *,
    low: int = 0,
    high: int | None = None,
    well: str | None = None,
    qc: str = ANY_FLAG,
    flags: Mapping[int, str] | None = None,
    ascending: bool = False,
) -> GalleryOrder:
    """Which images of a run a gallery shows, in which order.

    Parameters
    ----------
    results : mapping of int to ImageResult
        A run's results by image index (``ResultsStore.results``).
    low, high : int, optional
        Nuclei range shown, both ends included; ``high=None``: no upper limit.
    well : str, optional
        Only this well.
    qc : str, optional
        :data:`ANY_FLAG` (no filter), :data:`FLAGGED` (any flag) or a flag
        name of :data:`~napari_nuclei_counter.core.detect.qc.FLAGS`.
    flags : mapping of int to str, optional
        QC flags by image index (``';'``-separated); an image without an
        entry passes no QC filter but :data:`ANY_FLAG`.
    ascending : bool, optional
        Fewest nuclei first; by default the most first. Ties: image order.

    Returns
    -------
    GalleryOrder
        Failed images are never shown.
    """
    flags = flags or {}
    items = []
    n_ok = failed = top = 0
    for i, r in results.items():
        if not r.ok:
            failed += 1
            continue
        n = len(r.coords)
        n_ok += 1
        top = max(top, n)
        if n < low or (high is not None and n > high):
            continue
        if well is not None and r.meta.well != well:
            continue
        if qc != ANY_FLAG:
            found = flags.get(i)
            if not found or (qc != FLAGGED and qc not in found.split(";")):
                continue
        items.append((n, i))
    if ascending:
        items.sort()
    else:
        items.sort(key=lambda t: (-t[0], t[1]))
    return GalleryOrder([i for _, i in items], n_ok, failed, top)


def caption(row) -> str:
    """Caption of a gallery tile: ``'B02 s1: 214 nuclei'``.

    Uses the file name (without extension) when the well is blank.
    """
    n = int(row["n_nuclei"])
    where = " ".join(str(row.get(k, "") or "") for k in ("well", "site")).strip()
    if not str(row.get("well", "") or "").strip():
        where = Path(str(row["path"])).stem
    return f"{where}: {n} {'nucleus' if n == 1 else 'nuclei'}"


def gallery_tiles(
    results: Results,
    selection: pd.DataFrame,
    *,
    size: int = 200,
    folder: str | os.PathLike | None = None,
) -> list[tuple[np.ndarray, str]]:
    """Read the selected images and make their captioned thumbnails.

    Parameters
    ----------
    results : Results
        A loaded results folder (:func:`~napari_nuclei_counter.core.results.tables.load_results`).
    selection : pandas.DataFrame
        Rows of ``results.images`` (see :func:`gallery_selection`).
    size : int, optional
        Longest side of each thumbnail.
    folder : str or PathLike, optional
        The results folder: images that moved are also looked for there and
        in its parent folder, by file name.

    Returns
    -------
    list of (ndarray, str)
        ``(thumbnail, caption)`` in selection order. An image that can no
        longer be read gets a grey square and says so in its caption.
    """
    by_path = {p: g[["y", "x"]].to_numpy() for p, g in results.nuclei.groupby("path", sort=False)}
    tiles = []
    for _, row in selection.iterrows():
        text = caption(row)
        try:
            image = read_image(_locate(row["path"], folder), plane=results.plane)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("gallery: cannot read %s: %s", row["path"], exc)
            tiles.append((blank_tile(size), f"{text} (unreadable)"))
            continue
        tiles.append((thumbnail(image, by_path.get(row["path"]), size=size), text))
    return tiles


def _locate(path: str, folder) -> Path:
    p = Path(path)
    if split_scene(p)[0].exists() or folder is None:
        return p
    for cand in (Path(folder) / p.name, Path(folder).parent / p.name):
        if cand.exists():
            return cand
    return p


# --------------------------------------------------------------------------- images of a run


def load_plane(path: str, data, index: int, plane: PlaneChoice | None = None) -> np.ndarray:
    """The pixels of one image of a run: its file, or its plane of an in-memory stack.

    Parameters
    ----------
    path : str
        The result's path; read with :func:`~napari_nuclei_counter.core.io.images.read_image`
        when it is a file.
    data : array_like or None
        The run's in-memory images (``(N, rows, cols)`` or ``(rows, cols)``),
        used when ``path`` is not a file.
    index : int
        Image index in the run.
    plane : PlaneChoice, optional
        The run's channel and z choice, for multi-channel files and z-stacks.

    Returns
    -------
    ndarray, shape (rows, cols)

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file and there is no ``data``.
    """
    if path and split_scene(path)[0].exists():
        return read_image(path, plane=plane)
    if data is None:
        raise FileNotFoundError(f"{path}: not a file, and the in-memory images are gone")
    if getattr(data, "ndim", 0) >= 3:
        return np.asarray(data[index])
    return np.asarray(data)


def image_thumbnail(path: str, data, index: int, coords, size: int,
                    dot_radius: int = 2, plane: PlaneChoice | None = None) -> np.ndarray:
    """Read one image of a run and draw its thumbnail with its nuclei.

    Parameters
    ----------
    path, data, index, plane :
        See :func:`load_plane`.
    coords : array_like, shape (N, 2)
        Nucleus centres in image pixels.
    size : int
        Longest side of the thumbnail.
    dot_radius : int, optional
        Radius of the nucleus dots in thumbnail pixels.

    Returns
    -------
    ndarray of uint8, shape (h, w, 3)
    """
    return thumbnail(load_plane(path, data, index, plane), coords, size=size,
                     dot_radius=dot_radius)


class GalleryItem(NamedTuple):
    """One image of a gallery export: where its pixels are, its nuclei and its caption."""

    path: str
    data: object
    index: int
    coords: np.ndarray
    caption: str


def save_gallery(items: Sequence[GalleryItem], path: str | os.PathLike, *, size: int = 200,
                 columns: int = 4) -> Path:
    """Make the thumbnails of some images of a run and save their captioned mosaic as a PNG.

    Reads the images: run it in a worker thread, not on a GUI thread.

    Parameters
    ----------
    items : sequence of GalleryItem
        In mosaic order.
    path : str or PathLike
    size : int, optional
        Longest side of each thumbnail.
    columns : int, optional
        Thumbnails per row.

    Returns
    -------
    Path
        ``path``. An image that cannot be read gets a grey square.

    Raises
    ------
    ValueError
        If ``items`` is empty.
    """
    if not items:
        raise ValueError("no image: nothing to export")
    tiles = []
    for item in items:
        try:
            picture = image_thumbnail(item.path, item.data, item.index, item.coords, size)
        except (OSError, ValueError, TypeError, IndexError) as exc:
            log.warning("gallery: cannot read image %d: %s", item.index, exc)
            picture = blank_tile(size)
        tiles.append((picture, item.caption))
    return save_png(render_gallery(tiles, columns=columns), path)


# --------------------------------------------------------------------------- a results folder


def gallery_from_results(
    folder: str | os.PathLike,
    *,
    n: int = 16,
    seed: int = 11,
    ascending: bool = False,
    size: int = 200,
    columns: int = 4,
) -> np.ndarray:
    """Make the density-sorted gallery of a results folder.

    A random sample of ``n`` successfully processed images (all of them when
    there are no more than ``n``), sorted from the most nuclei to the fewest,
    each with its detected nuclei as red dots and a caption such as
    ``'B02 s1: 214 nuclei'``: the 4x4 figure of the BBBC021 walk-through.

    Parameters
    ----------
    folder : str or PathLike
        A results folder (``images.csv``, ``nuclei.csv``).
    n, seed, ascending :
        See :func:`gallery_selection`.
    size : int, optional
        Longest side of each thumbnail.
    columns : int, optional
        Thumbnails per row.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        See :func:`~.render.render_gallery`.

    Raises
    ------
    FileNotFoundError
        If ``images.csv`` is missing.
    ValueError
        If no image of the folder was processed successfully.
    """
    from ..results.tables import load_results

    results = load_results(folder)
    selection = gallery_selection(results.images, n, seed=seed, ascending=ascending)
    if selection.empty:
        raise ValueError(f"no successfully processed image in {folder}")
    tiles = gallery_tiles(results, selection, size=size, folder=folder)
    return render_gallery(tiles, columns=columns)
