"""The gallery pipeline: which images, in which order, with which captions, as which tiles.

Every gallery goes through the same four steps: the command line's
``gallery`` PNG (:func:`gallery_from_results`), the gallery dock and its
*Export PNG…* (:func:`save_gallery`).

1. **Selection.** :func:`sample_by_count` is the one rule: a reproducible
   random sample (or all), sorted by nuclei count, ties in the given order.
   :func:`gallery_selection` applies it to a results folder's images table,
   :func:`gallery_order` to a run's results behind the dock's filters (count
   range, well, QC flag), :func:`gallery_sample` to the images a dock shows.
2. **Items.** :func:`items_of_table` and :func:`items_of_results` say where
   each chosen image's pixels are, its nuclei and its :func:`caption`.
3. **Tiles.** :func:`gallery_tile` reads an item and draws its thumbnail with
   its nuclei (:func:`~.thumbnails.thumbnail`), or a grey square with
   ``(unreadable)`` in its caption: plain uint8 arrays.
4. **Render.** :func:`~.pictures.render_gallery` lays tiles out as a captioned
   mosaic; the dock turns each tile into a ``QPixmap`` instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
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
    "EDITED",
    "FLAGGED",
    "UNREADABLE",
    "GalleryItem",
    "GalleryOrder",
    "GalleryTooLarge",
    "MAX_GALLERY_PIXELS",
    "Tile",
    "caption",
    "gallery_from_results",
    "gallery_order",
    "gallery_pixels",
    "gallery_sample",
    "gallery_selection",
    "gallery_tile",
    "gallery_tiles",
    "image_thumbnail",
    "items_of_results",
    "items_of_table",
    "load_plane",
    "result_caption",
    "sample_by_count",
    "save_gallery",
]

log = logging.getLogger(__name__)

#: QC filters of :func:`gallery_order` besides a flag name: no filter, any flag
ANY_FLAG = "any"
#: the largest gallery picture, in pixels (about 400 MB of RGB)
MAX_GALLERY_PIXELS = 1 << 27
FLAGGED = "flagged"
#: added to the caption of an image whose pixels cannot be read
UNREADABLE = " (unreadable)"
#: added to the caption of an image corrected by hand, where edits are marked
EDITED = " (edited)"
#: errors of reading an image that give a grey tile instead of a thumbnail
_READ_ERRORS = (OSError, ValueError, TypeError, IndexError)


# --------------------------------------------------------------------------- 1. selection


def sample_by_count(counts: Sequence[int], n: int = 0, *, seed: int = 11,
                    ascending: bool = False) -> list[int]:
    """The one selection rule of galleries: which candidates, in which order.

    Parameters
    ----------
    counts : sequence of int
        Nuclei counts of the candidate images, in their order (table order,
        or image index order).
    n : int, optional
        How many. All candidates when ``n <= 0`` or ``n`` is at least their
        number; otherwise a random sample without replacement
        (``numpy.random.default_rng(seed).choice``), reproducible for the
        same ``seed`` and candidates.
    seed : int, optional
        Seed of the sample.
    ascending : bool, optional
        Fewest nuclei first; by default the most first.

    Returns
    -------
    list of int
        Positions in ``counts``, sorted by count; ties keep the given order.
    """
    positions: Iterable[int] = range(len(counts))
    if 0 < n < len(counts):
        positions = np.sort(np.random.default_rng(seed).choice(len(counts), size=n,
                                                               replace=False)).tolist()
    sign = 1 if ascending else -1
    return sorted(positions, key=lambda p: sign * counts[p])


def gallery_selection(
    images: pd.DataFrame,
    n: int = 16,
    *,
    seed: int = 11,
    ascending: bool = False,
) -> pd.DataFrame:
    """Choose the images of a results folder's gallery and sort them by nuclei count.

    Parameters
    ----------
    images : pandas.DataFrame
        An images table (``images.csv``): ``n_nuclei`` and ``error`` at least.
    n, seed, ascending :
        See :func:`sample_by_count`; the candidates are the successful
        images in table order.

    Returns
    -------
    pandas.DataFrame
        The chosen rows (original index kept), sorted by ``n_nuclei``; ties
        keep the table's order. Failed images are never chosen.
    """
    ok = images[successful(images)]
    counts = ok["n_nuclei"].astype("int64").tolist()
    return ok.iloc[sample_by_count(counts, n, seed=seed, ascending=ascending)]


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
        Fewest nuclei first; by default the most first.

    Returns
    -------
    GalleryOrder
        Rows sorted by :func:`sample_by_count` (ties: image index order).
        Failed images are never shown.
    """
    flags = flags or {}
    keys: list[int] = []
    counts: list[int] = []
    n_ok = failed = top = 0
    for i in sorted(results):
        r = results[i]
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
        keys.append(i)
        counts.append(n)
    rows = [keys[p] for p in sample_by_count(counts, 0, ascending=ascending)]
    return GalleryOrder(rows, n_ok, failed, top)


def gallery_sample(results: Mapping[int, ImageResult], shown: Iterable[int], n: int = 16, *,
                   seed: int = 11, ascending: bool = False) -> list[int]:
    """Images of a gallery export: those shown, or a seeded sample of ``n`` of them.

    Parameters
    ----------
    results : mapping of int to ImageResult
        A run's results by image index.
    shown : iterable of int
        The image indices a gallery shows (see :func:`gallery_order`).
    n, seed, ascending :
        See :func:`sample_by_count`; the candidates are the successful
        images shown, in image index order, as :func:`gallery_selection`
        takes a results folder's images in table order.

    Returns
    -------
    list of int
        Image indices, sorted by count (ties: image index order).
    """
    pool = sorted(int(i) for i in shown if i in results and results[i].ok)
    counts = [len(results[i].coords) for i in pool]
    return [pool[p] for p in sample_by_count(counts, n, seed=seed, ascending=ascending)]


# --------------------------------------------------------------------------- 2. items


def caption(row) -> str:
    """Caption of a gallery tile: ``'B02 s1: 214 nuclei'``.

    Uses the file name (without extension) when the well is blank.

    Parameters
    ----------
    row : mapping
        ``n_nuclei`` and ``path``; ``well`` and ``site`` when known (a row of
        an images table, or a dict).
    """
    n = int(row["n_nuclei"])
    where = " ".join(str(row.get(k, "") or "") for k in ("well", "site")).strip()
    if not str(row.get("well", "") or "").strip():
        where = Path(str(row["path"])).stem
    return f"{where}: {n} {'nucleus' if n == 1 else 'nuclei'}"


def result_caption(result: ImageResult, *, mark_edited: bool = False) -> str:
    """Caption of one result of a run: :func:`caption` of its row.

    Parameters
    ----------
    result : ImageResult
    mark_edited : bool, optional
        Add :data:`EDITED` when its nuclei were corrected by hand (the dock's
        live view does; mosaics, like the command line's, do not).

    Returns
    -------
    str
        ``'<file name>: failed'`` for a failed image.
    """
    if not result.ok:
        return f"{Path(result.path).stem}: failed"
    text = caption({"n_nuclei": result.count, "well": result.meta.well,
                    "site": result.meta.site, "path": result.path})
    return text + EDITED if mark_edited and result.edited else text


class GalleryItem(NamedTuple):
    """One image of a gallery: where its pixels are, its nuclei and its caption."""

    path: str  #: its file (or a label, for an image of an in-memory stack)
    data: object  #: the run's in-memory images, or ``None``
    index: int  #: image index in the run (the plane of ``data``)
    coords: np.ndarray | None  #: nucleus centres, ``(N, 2)`` image pixels
    caption: str


def items_of_results(results: Mapping[int, ImageResult], indices: Iterable[int],
                     data=None) -> list[GalleryItem]:
    """The gallery items of some results of a run, with their captions (:func:`result_caption`).

    Parameters
    ----------
    results : mapping of int to ImageResult
    indices : iterable of int
        Image indices, in gallery order.
    data : array_like, optional
        The run's in-memory images (see :func:`load_plane`).

    Returns
    -------
    list of GalleryItem
        With copies of the nuclei: the results may change while tiles are made.
    """
    items = []
    for i in indices:
        r = results[i]
        items.append(GalleryItem(r.path, data, int(i), np.array(r.coords, copy=True),
                                 result_caption(r)))
    return items


def items_of_table(results: Results, selection: pd.DataFrame) -> list[GalleryItem]:
    """The gallery items of some rows of a results folder's images table.

    Parameters
    ----------
    results : Results
        A loaded results folder (:func:`~napari_nuclei_counter.core.results.tables.load_results`).
    selection : pandas.DataFrame
        Rows of ``results.images`` (see :func:`gallery_selection`).

    Returns
    -------
    list of GalleryItem
        In selection order, with :func:`caption` of each row.
    """
    by_path = {p: g[["y", "x"]].to_numpy() for p, g in results.nuclei.groupby("path", sort=False)}
    return [GalleryItem(str(row["path"]), None, k, by_path.get(row["path"]), caption(row))
            for k, (_, row) in enumerate(selection.iterrows())]


# --------------------------------------------------------------------------- 3. tiles


def _locate(path: str, folder) -> Path:
    """``path``, or a file of the same name in ``folder`` or its parent when it moved."""
    p = Path(path)
    if split_scene(p)[0].exists() or folder is None:
        return p
    for cand in (Path(folder) / p.name, Path(folder).parent / p.name):
        if cand.exists():
            return cand
    return p


def load_plane(path: str, data, index: int, plane: PlaneChoice | None = None, *,
               folder: str | os.PathLike | None = None) -> np.ndarray:
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
    folder : str or PathLike, optional
        A results folder: a file that moved is also looked for there and in
        its parent folder, by file name.

    Returns
    -------
    ndarray, shape (rows, cols)

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file and there is no ``data``.
    """
    p = _locate(path, folder) if path else None
    if p is not None and (data is None or split_scene(p)[0].exists()):
        return read_image(p, plane=plane)
    if data is None:
        raise FileNotFoundError("no file, and no in-memory images")
    if getattr(data, "ndim", 0) >= 3:
        return np.asarray(data[index])
    return np.asarray(data)


def image_thumbnail(path: str, data, index: int, coords, size: int,
                    dot_radius: int = 2, plane: PlaneChoice | None = None, *,
                    folder: str | os.PathLike | None = None) -> np.ndarray:
    """Read one image of a run and draw its thumbnail with its nuclei.

    Parameters
    ----------
    path, data, index, plane, folder :
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
    return thumbnail(load_plane(path, data, index, plane, folder=folder), coords, size=size,
                     dot_radius=dot_radius)


class Tile(NamedTuple):
    """A gallery tile: its picture and its caption."""

    picture: np.ndarray  #: uint8 ``(h, w, 3)``
    caption: str
    readable: bool = True  #: ``False``: a grey square stands in for the image


def gallery_tile(item: GalleryItem, *, size: int = 200, dot_radius: int = 2,
                 plane: PlaneChoice | None = None,
                 folder: str | os.PathLike | None = None) -> Tile:
    """Read an item's image and make its tile (any thread; the dock calls it in a worker).

    Parameters
    ----------
    item : GalleryItem
    size : int, optional
        Longest side of the thumbnail.
    dot_radius : int, optional
        Radius of the nucleus dots in thumbnail pixels.
    plane, folder :
        See :func:`load_plane`.

    Returns
    -------
    Tile
        The thumbnail (:func:`image_thumbnail`) and the item's caption; for an
        image that cannot be read, a grey ``size`` square
        (:func:`~.thumbnails.blank_tile`) and the caption with
        :data:`UNREADABLE`.
    """
    try:
        picture = image_thumbnail(item.path, item.data, item.index, item.coords, size,
                                  dot_radius, plane, folder=folder)
    except _READ_ERRORS as exc:
        log.warning("gallery: cannot read %s: %s", item.path or f"image {item.index}", exc)
        return Tile(blank_tile(size), item.caption + UNREADABLE, readable=False)
    return Tile(picture, item.caption)


def gallery_tiles(
    results: Results,
    selection: pd.DataFrame,
    *,
    size: int = 200,
    folder: str | os.PathLike | None = None,
) -> list[Tile]:
    """Read the selected images of a results folder and make their tiles.

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
    list of Tile
        In selection order (:func:`gallery_tile` of :func:`items_of_table`).
    """
    return [gallery_tile(item, size=size, plane=results.plane, folder=folder)
            for item in items_of_table(results, selection)]


# --------------------------------------------------------------------------- 4. render


def save_gallery(items: Sequence[GalleryItem], path: str | os.PathLike, *, size: int = 200,
                 columns: int = 4, plane: PlaneChoice | None = None) -> Path:
    """Make the tiles of some images of a run and save their captioned mosaic as a PNG.

    Reads the images: run it in a worker thread, not on a GUI thread.

    Parameters
    ----------
    items : sequence of GalleryItem
        In mosaic order (see :func:`items_of_results`).
    path : str or PathLike
    size : int, optional
        Longest side of each thumbnail.
    columns : int, optional
        Thumbnails per row.
    plane : PlaneChoice, optional
        The run's channel and z choice.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If ``items`` is empty.
    """
    if not items:
        raise ValueError("no image: nothing to export")
    tiles = [gallery_tile(item, size=size, plane=plane) for item in items]
    return save_png(render_gallery(tiles, columns=columns), path)


class GalleryTooLarge(ValueError):
    """A gallery whose picture would exceed :data:`MAX_GALLERY_PIXELS`."""


def gallery_pixels(n_tiles: int, *, size: int, columns: int, caption_height: int = 22,
                   gap: int = 4) -> int:
    """Pixels of the picture :func:`~.pictures.render_gallery` makes of ``n_tiles`` tiles of ``size``."""
    k = max(1, min(columns, n_tiles))
    m = -(-n_tiles // k)
    return (k * size + (k + 1) * gap) * (m * (size + caption_height) + (m + 1) * gap)


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
        See :func:`~.pictures.render_gallery`.

    Raises
    ------
    FileNotFoundError
        If ``images.csv`` is missing.
    ValueError
        If no image of the folder was processed successfully.
    GalleryTooLarge
        If the picture would exceed :data:`MAX_GALLERY_PIXELS`.
    """
    from ..results.tables import load_results

    results = load_results(folder)
    selection = gallery_selection(results.images, n, seed=seed, ascending=ascending)
    if selection.empty:
        raise ValueError(f"no successfully processed image in {folder}")
    pixels = gallery_pixels(len(selection), size=size, columns=columns)
    if pixels > MAX_GALLERY_PIXELS:
        raise GalleryTooLarge(f"a gallery of {len(selection):,} images of {size} pixels, "
                              f"{columns} per row, would be {pixels:,} pixels, more than the "
                              f"{MAX_GALLERY_PIXELS:,} allowed")
    tiles = gallery_tiles(results, selection, size=size, folder=folder)
    return render_gallery(tiles, columns=columns)
