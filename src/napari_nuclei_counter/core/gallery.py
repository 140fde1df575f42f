"""Thumbnails, density-sorted galleries and plate maps as plain uint8 RGB arrays.

Everything here returns numpy arrays (``uint8``, shape ``(rows, cols, 3)``);
the GUI turns them into Qt images and the command line writes them as PNG
(:func:`save_png`). Text is drawn with Pillow's default font.

No Qt, no napari, no matplotlib: numpy, OpenCV, pandas and Pillow only.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import cv2
import numpy as np

from .wells import (  # noqa: F401  (re-exported while importers move to .wells)
    PLATE_FORMATS,
    WELL_COLUMNS,
    infer_plate_format,
    plate_map_values,
    well_position,
    well_table,
)
from .wells import MAP_VALUES as _MAP_TITLES
from .wells import format_value as _fmt
from .wells import plate_rows as _plate_rows
from .wells import row_label as _row_label
from .wells import successful as _successful

if TYPE_CHECKING:  # pandas is imported where tables are used: a faster start-up
    import pandas as pd

    from .results import Results

__all__ = [
    "MISSING_RGB",
    "PLATE_FORMATS",
    "WELL_COLUMNS",
    "caption",
    "colormap",
    "gallery_from_results",
    "gallery_selection",
    "gallery_tiles",
    "infer_plate_format",
    "plate_map_values",
    "render_gallery",
    "render_plate_map",
    "save_png",
    "thumbnail",
    "well_position",
    "well_table",
]

log = logging.getLogger(__name__)

#: Colour of wells without data in :func:`render_plate_map`.
MISSING_RGB = (200, 200, 200)

_COLORMAPS = {
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
    "inferno": cv2.COLORMAP_INFERNO,
    "plasma": cv2.COLORMAP_PLASMA,
    "cividis": cv2.COLORMAP_CIVIDIS,
    "turbo": cv2.COLORMAP_TURBO,
}
_GALLERY_BG = (24, 24, 24)
_CAPTION_RGB = (235, 235, 235)


# --------------------------------------------------------------------------- thumbnails


def thumbnail(
    image: np.ndarray,
    coords=None,
    *,
    size: int = 160,
    percentiles: tuple[float, float] = (1.0, 99.5),
    dot_rgb: tuple[int, int, int] = (255, 64, 64),
    dot_radius: int = 2,
) -> np.ndarray:
    """Make a small contrast-stretched RGB picture of an image with its nuclei marked.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        A grayscale image of any numeric dtype.
    coords : array_like, shape (N, 2), optional
        ``(row, col)`` nucleus centres in ``image`` pixels; a filled dot is
        drawn at each, scaled into the thumbnail.
    size : int, optional
        Length of the thumbnail's longest side, in pixels; the aspect ratio is
        kept.
    percentiles : tuple of float, optional
        Intensity percentiles of ``image`` mapped to black and white.
    dot_rgb : tuple of int, optional
        Dot colour.
    dot_radius : int, optional
        Dot radius in thumbnail pixels (0: one pixel).

    Returns
    -------
    ndarray of uint8, shape (h, w, 3)
        ``max(h, w) == size``. A constant image gives a black thumbnail.

    Raises
    ------
    ValueError
        If ``image`` is not 2-D or empty, or ``size`` is less than 1.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"image must be a non-empty 2-D array, got shape {image.shape}")
    if int(size) < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    h, w = image.shape
    th, tw = _fit(h, w, int(size))
    f32 = np.ascontiguousarray(image, dtype=np.float32)
    lo, hi = _stretch_limits(f32, percentiles)
    small = cv2.resize(f32, (tw, th), interpolation=cv2.INTER_AREA) if (th, tw) != (h, w) else f32
    gray = np.nan_to_num((small - lo) * (255.0 / (hi - lo)), nan=0.0).clip(0, 255)
    rgb = np.repeat(np.rint(gray).astype(np.uint8)[:, :, None], 3, axis=2)
    _draw_dots(rgb, coords, (th / h, tw / w), dot_rgb, int(dot_radius))
    return rgb


def _fit(h: int, w: int, size: int) -> tuple[int, int]:
    """Thumbnail shape with the longest side ``size`` and the aspect kept."""
    if h >= w:
        return size, max(1, round(w * size / h))
    return max(1, round(h * size / w)), size


def _stretch_limits(image: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    finite = image[np.isfinite(image)] if not np.isfinite(image).all() else image
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, percentiles))
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi


def _draw_dots(rgb: np.ndarray, coords, scale: tuple[float, float], colour, radius: int) -> None:
    if coords is None:
        return
    pts = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return
    # pixel centres map to pixel centres: (i + 0.5) * scale - 0.5
    rows = np.rint((pts[:, 0] + 0.5) * scale[0] - 0.5).astype(int)
    cols = np.rint((pts[:, 1] + 0.5) * scale[1] - 0.5).astype(int)
    colour = tuple(int(c) for c in colour)
    for r, c in zip(rows.tolist(), cols.tolist()):
        cv2.circle(rgb, (c, r), max(radius, 0), colour, thickness=-1, lineType=cv2.LINE_8)


# --------------------------------------------------------------------------- rendering


def colormap(name: str = "viridis") -> np.ndarray:
    """Return a 256-entry RGB lookup table.

    Parameters
    ----------
    name : str, optional
        ``'viridis'``, ``'magma'``, ``'inferno'``, ``'plasma'``, ``'cividis'``
        or ``'turbo'``.

    Returns
    -------
    ndarray of uint8, shape (256, 3)
        Entry 0 for the lowest value, 255 for the highest.
    """
    if name not in _COLORMAPS:
        raise ValueError(f"cmap must be one of {sorted(_COLORMAPS)}, got {name!r}")
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    return cv2.applyColorMap(ramp, _COLORMAPS[name])[:, 0, ::-1].copy()


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # old Pillow, or built without FreeType
        return ImageFont.load_default()


def _text_size(font, text: str) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return right - left, bottom - top


def render_plate_map(
    wells: pd.DataFrame,
    *,
    value: str = "mean",
    plate: str | None = None,
    cmap: str = "viridis",
    cell: int = 36,
    layout: tuple[int, int] | None = None,
) -> np.ndarray:
    """Draw a plate as a grid of wells coloured by their nuclei count.

    Each well is a ``cell``-pixel square coloured from the lowest value of
    the plate (first colour of ``cmap``) to the highest (last colour), with
    its value written in it when it fits; wells without data are grey
    (:data:`MISSING_RGB`) with a cross. Row letters, column numbers, a title
    and a colour bar with the lowest and highest values frame the grid.

    Parameters
    ----------
    wells : pandas.DataFrame
        A :func:`well_table`.
    value : {'mean', 'total'}, optional
        Mean nuclei per image (site) or total nuclei per well.
    plate : str, optional
        Which plate; the first plate of the table when not given.
    cmap : str, optional
        Colour map name, see :func:`colormap`.
    cell : int, optional
        Size of a well in pixels (at least 8).
    layout : tuple of int, optional
        ``(rows, columns)``; inferred from the wells when not given.

    Returns
    -------
    ndarray of uint8, shape (rows, cols, 3)
    """
    from PIL import Image, ImageDraw

    if int(cell) < 8:
        raise ValueError(f"cell must be at least 8 pixels, got {cell}")
    cell = int(cell)
    grid = plate_map_values(wells, value=value, plate=plate, layout=layout)
    lut = colormap(cmap)
    sub = _plate_rows(wells, value, plate)
    plate_name = str(sub["plate"].iloc[0]) if len(sub) else str(plate or "")
    title = (f"plate {plate_name}: " if plate_name else "") + _MAP_TITLES[value]
    fonts = {"title": _font(15), "label": _font(12), "cell": _font(max(8, cell // 3))}

    n_rows, n_cols = grid.shape
    pad, bar_w = 10, 14
    label_w = max(_text_size(fonts["label"], _row_label(n_rows - 1))[0], 8) + 8
    x0, y0 = pad + label_w, pad + 24 + 16
    gw, gh = n_cols * cell, n_rows * cell
    finite = grid[np.isfinite(grid)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (np.nan, np.nan)
    bar_labels = [_fmt(vmax), _fmt(vmin)] if finite.size else ["no data", ""]
    num_w = max(_text_size(fonts["label"], t)[0] for t in bar_labels)
    bar_x = x0 + gw + 16
    width = bar_x + bar_w + 6 + num_w + pad
    height = y0 + gh + 8 + 16 + pad

    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.text((pad, pad), title, fill=(0, 0, 0), font=fonts["title"])
    _draw_axis_labels(draw, fonts["label"], grid.shape, (x0, y0), cell)
    index = _colour_index(grid, vmin, vmax)
    for r in range(n_rows):
        for c in range(n_cols):
            box = (x0 + c * cell + 1, y0 + r * cell + 1, x0 + (c + 1) * cell - 1,
                   y0 + (r + 1) * cell - 1)
            if np.isfinite(grid[r, c]):
                _draw_well(draw, fonts["cell"], box, tuple(int(v) for v in lut[index[r, c]]),
                           _fmt(grid[r, c]))
            else:
                _draw_missing(draw, box)
    _draw_colour_bar(img, draw, fonts["label"], lut, (bar_x, y0, bar_w, gh), bar_labels)
    draw.text((x0, y0 + gh + 8), "grey with a cross: no data", fill=(90, 90, 90),
              font=fonts["label"])
    return np.asarray(img, dtype=np.uint8).copy()


def _colour_index(grid: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    if not np.isfinite(vmin):
        return np.zeros(grid.shape, int)
    if vmax > vmin:
        t = (np.nan_to_num(grid, nan=vmin) - vmin) / (vmax - vmin)
    else:
        t = np.full(grid.shape, 0.5)
    return np.rint(t * 255).astype(int).clip(0, 255)


def _draw_axis_labels(draw, font, shape: tuple[int, int], origin: tuple[int, int],
                      cell: int) -> None:
    x0, y0 = origin
    for c in range(shape[1]):
        text = str(c + 1)
        tw, th = _text_size(font, text)
        draw.text((x0 + c * cell + (cell - tw) / 2, y0 - th - 6), text, fill=(0, 0, 0), font=font)
    for r in range(shape[0]):
        text = _row_label(r)
        tw, th = _text_size(font, text)
        draw.text((x0 - tw - 6, y0 + r * cell + (cell - th) / 2 - 1), text, fill=(0, 0, 0),
                  font=font)


def _draw_well(draw, font, box: tuple, rgb: tuple, text: str) -> None:
    draw.rectangle(box, fill=rgb)
    tw, th = _text_size(font, text)
    size = box[2] - box[0] + 1
    if tw <= size - 4:
        luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
        ink = (0, 0, 0) if luminance > 128 else (255, 255, 255)
        left, top, _, _ = font.getbbox(text)
        draw.text((box[0] + (size - tw) / 2 - left, box[1] + (size - th) / 2 - top), text,
                  fill=ink, font=font)


def _draw_missing(draw, box: tuple) -> None:
    draw.rectangle(box, fill=MISSING_RGB)
    inset = (box[2] - box[0]) // 4
    a, b, c, d = box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset
    draw.line((a, b, c, d), fill=(150, 150, 150), width=1)
    draw.line((a, d, c, b), fill=(150, 150, 150), width=1)


def _draw_colour_bar(img, draw, font, lut: np.ndarray, rect: tuple, labels: list[str]) -> None:
    from PIL import Image

    x, y, w, h = rect
    ramp = lut[np.rint(np.linspace(255, 0, h)).astype(int)]
    img.paste(Image.fromarray(np.ascontiguousarray(np.repeat(ramp[:, None], w, axis=1))), (x, y))
    draw.rectangle((x - 1, y - 1, x + w, y + h), outline=(120, 120, 120))
    top, bottom = labels
    draw.text((x + w + 6, y), top, fill=(0, 0, 0), font=font)
    _, th = _text_size(font, bottom or "0")
    draw.text((x + w + 6, y + h - th - 3), bottom, fill=(0, 0, 0), font=font)


def render_gallery(
    tiles: Sequence[tuple[np.ndarray, str]],
    *,
    columns: int = 4,
    caption_height: int = 22,
    gap: int = 4,
) -> np.ndarray:
    """Arrange thumbnails in a grid with a caption under each, on a dark background.

    Every tile gets a cell as large as the largest thumbnail (thumbnails are
    centred in it) plus ``caption_height`` pixels for its caption; cells are
    ``gap`` pixels apart and from the edges. Tiles fill rows left to right.

    Parameters
    ----------
    tiles : sequence of (ndarray, str)
        ``(thumbnail, caption)`` pairs; thumbnails are ``uint8`` RGB
        ``(h, w, 3)`` (see :func:`thumbnail`) or grayscale ``(h, w)``.
    columns : int, optional
        Tiles per row (fewer when there are fewer tiles).
    caption_height : int, optional
        Height of the caption strip under each thumbnail, in pixels (0: no captions).
    gap : int, optional
        Space between cells and around the mosaic, in pixels.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        With ``n`` tiles, ``k = min(columns, n)`` per row and ``m = ceil(n / k)``
        rows: ``W = k * cell_w + (k + 1) * gap`` and
        ``H = m * (cell_h + caption_height) + (m + 1) * gap``.

    Raises
    ------
    ValueError
        If ``tiles`` is empty or ``columns`` is less than 1.
    """
    from PIL import Image, ImageDraw

    if not tiles:
        raise ValueError("tiles is empty: nothing to show")
    if int(columns) < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    pictures = [_as_rgb(t) for t, _ in tiles]
    cell_h = max(p.shape[0] for p in pictures)
    cell_w = max(p.shape[1] for p in pictures)
    k = min(int(columns), len(pictures))
    m = math.ceil(len(pictures) / k)
    step_x, step_y = cell_w + gap, cell_h + caption_height + gap
    mosaic = np.empty((m * step_y + gap, k * step_x + gap, 3), np.uint8)
    mosaic[:] = _GALLERY_BG
    for i, pic in enumerate(pictures):
        y = gap + (i // k) * step_y + (cell_h - pic.shape[0]) // 2
        x = gap + (i % k) * step_x + (cell_w - pic.shape[1]) // 2
        mosaic[y:y + pic.shape[0], x:x + pic.shape[1]] = pic
    if caption_height <= 0:
        return mosaic
    img = Image.fromarray(mosaic)
    draw = ImageDraw.Draw(img)
    font = _font(max(8, caption_height - 9))
    for i, (_, text) in enumerate(tiles):
        text = _shorten(font, str(text), cell_w - 4)
        tw, th = _text_size(font, text)
        left, top, _, _ = font.getbbox(text)
        x = gap + (i % k) * step_x + (cell_w - tw) / 2 - left
        y = gap + (i // k) * step_y + cell_h + (caption_height - th) / 2 - top
        draw.text((x, y), text, fill=_CAPTION_RGB, font=font)
    return np.asarray(img, dtype=np.uint8).copy()


def _as_rgb(picture: np.ndarray) -> np.ndarray:
    picture = np.asarray(picture)
    if picture.dtype != np.uint8:
        raise ValueError(f"thumbnails must be uint8, got {picture.dtype}")
    if picture.ndim == 2:
        return np.repeat(picture[:, :, None], 3, axis=2)
    if picture.ndim != 3 or picture.shape[2] != 3:
        raise ValueError(f"thumbnails must be (h, w, 3) RGB, got shape {picture.shape}")
    return picture


def _shorten(font, text: str, width: int) -> str:
    if _text_size(font, text)[0] <= width:
        return text
    while len(text) > 1 and _text_size(font, text + "...")[0] > width:
        text = text[:-1]
    return text + "..."


# --------------------------------------------------------------------------- galleries


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
    ok = images[_successful(images)]
    if 0 < n < len(ok):
        picked = np.sort(np.random.default_rng(seed).choice(len(ok), size=n, replace=False))
        ok = ok.iloc[picked]
    return ok.sort_values("n_nuclei", ascending=ascending, kind="stable")


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
        A loaded results folder (:func:`~napari_nuclei_counter.core.results.load_results`).
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
    from .batch import read_image

    by_path = {p: g[["y", "x"]].to_numpy() for p, g in results.nuclei.groupby("path", sort=False)}
    tiles = []
    for _, row in selection.iterrows():
        text = caption(row)
        try:
            image = read_image(_locate(row["path"], folder))
        except (OSError, ValueError, TypeError) as exc:
            log.warning("gallery: cannot read %s: %s", row["path"], exc)
            tiles.append((np.full((size, size, 3), 90, np.uint8), f"{text} (unreadable)"))
            continue
        tiles.append((thumbnail(image, by_path.get(row["path"]), size=size), text))
    return tiles


def _locate(path: str, folder) -> Path:
    p = Path(path)
    if p.exists() or folder is None:
        return p
    for cand in (Path(folder) / p.name, Path(folder).parent / p.name):
        if cand.exists():
            return cand
    return p


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
        See :func:`render_gallery`.

    Raises
    ------
    FileNotFoundError
        If ``images.csv`` is missing.
    ValueError
        If no image of the folder was processed successfully.
    """
    from .results import load_results

    results = load_results(folder)
    selection = gallery_selection(results.images, n, seed=seed, ascending=ascending)
    if selection.empty:
        raise ValueError(f"no successfully processed image in {folder}")
    tiles = gallery_tiles(results, selection, size=size, folder=folder)
    return render_gallery(tiles, columns=columns)


def save_png(rgb: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8 RGB (or grayscale) array as a PNG file, atomically.

    Returns
    -------
    Path
        ``path``.
    """
    from PIL import Image

    from .results import atomic_write

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3)):
        raise ValueError(f"expected a uint8 (h, w, 3) or (h, w) array, got {rgb.dtype} "
                         f"{rgb.shape}")
    picture = Image.fromarray(np.ascontiguousarray(rgb))
    with atomic_write(path, "wb") as fh:
        picture.save(fh, format="PNG")
    return Path(path)
