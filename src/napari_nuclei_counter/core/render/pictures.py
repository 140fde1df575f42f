"""Pictures of results: the plate map and the captioned gallery mosaic, as uint8 RGB arrays.

The one renderer of plate maps and galleries as files: the command line's
PNGs and the docks' "Export PNG" both come from :func:`render_plate_map`,
:func:`render_gallery` and :func:`save_png`. The plate map dock paints its
live view with Qt, from the same colour maps (:func:`colormap`,
:func:`colour_index`, :func:`text_ink`, :data:`MISSING_RGB`) and the same
words (:mod:`..results.wells`). Text is drawn with Pillow's default font.

numpy, OpenCV and Pillow (imported when drawing); no Qt, no napari.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..io.images import atomic_write
from ..results.wells import (
    MISSING_LEGEND,
    colour_bar_labels,
    format_value,
    plate_map_title,
    plate_map_values,
    plate_rows,
    row_label,
    value_range,
)
from .thumbnails import as_rgb

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MISSING_RGB",
    "colormap",
    "colour_index",
    "render_gallery",
    "render_plate_map",
    "save_png",
    "text_ink",
]

#: Colour of wells without data.
MISSING_RGB = (200, 200, 200)
#: Colour of the cross drawn over wells without data.
MISSING_CROSS_RGB = (150, 150, 150)

_CV2_COLORMAPS = {
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
    "inferno": cv2.COLORMAP_INFERNO,
    "plasma": cv2.COLORMAP_PLASMA,
    "cividis": cv2.COLORMAP_CIVIDIS,
    "turbo": cv2.COLORMAP_TURBO,
}
_GALLERY_BG = (24, 24, 24)
_CAPTION_RGB = (235, 235, 235)


# --------------------------------------------------------------------------- colours


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
    if name not in _CV2_COLORMAPS:
        raise ValueError(f"cmap must be one of {sorted(_CV2_COLORMAPS)}, got {name!r}")
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    return cv2.applyColorMap(ramp, _CV2_COLORMAPS[name])[:, 0, ::-1].copy()


def colour_index(values, vmin: float, vmax: float) -> np.ndarray:
    """Entries of a :func:`colormap` for plate values: ``vmin`` -> 0, ``vmax`` -> 255.

    Parameters
    ----------
    values : array_like of float
        NaN (no data) gets entry 0; colour those wells :data:`MISSING_RGB`.
    vmin, vmax : float
        The plate's value range (see :func:`~.wells.value_range`); when they
        are equal every value gets the middle entry (128), when NaN entry 0.

    Returns
    -------
    ndarray of int, same shape as ``values``
        In ``0..255``, rounded half to even.
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(vmin):
        return np.zeros(values.shape, int)
    if vmax > vmin:
        t = (np.nan_to_num(values, nan=vmin) - vmin) / (vmax - vmin)
    else:
        t = np.full(values.shape, 0.5)
    return np.rint(t * 255).astype(int).clip(0, 255)


def text_ink(rgb) -> tuple[int, int, int]:
    """Black or white, whichever reads better on a well of colour ``rgb``."""
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (0, 0, 0) if luminance > 128 else (255, 255, 255)


# --------------------------------------------------------------------------- plate map


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
        A :func:`~.wells.well_table`.
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
    sub = plate_rows(wells, value, plate)
    plate_name = str(sub["plate"].iloc[0]) if len(sub) else str(plate or "")
    title = plate_map_title(value, plate_name)
    fonts = {"title": _font(15), "label": _font(12), "cell": _font(max(8, cell // 3))}

    n_rows, n_cols = grid.shape
    pad, bar_w = 10, 14
    label_w = max(_text_size(fonts["label"], row_label(n_rows - 1))[0], 8) + 8
    x0, y0 = pad + label_w, pad + 24 + 16
    gw, gh = n_cols * cell, n_rows * cell
    vmin, vmax = value_range(grid)
    bar_labels = colour_bar_labels(vmin, vmax)
    num_w = max(_text_size(fonts["label"], t)[0] for t in bar_labels)
    bar_x = x0 + gw + 16
    width = bar_x + bar_w + 6 + num_w + pad
    height = y0 + gh + 8 + 16 + pad

    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.text((pad, pad), title, fill=(0, 0, 0), font=fonts["title"])
    _draw_axis_labels(draw, fonts["label"], grid.shape, (x0, y0), cell)
    index = colour_index(grid, vmin, vmax)
    for r in range(n_rows):
        for c in range(n_cols):
            box = (x0 + c * cell + 1, y0 + r * cell + 1, x0 + (c + 1) * cell - 1,
                   y0 + (r + 1) * cell - 1)
            if np.isfinite(grid[r, c]):
                _draw_well(draw, fonts["cell"], box, tuple(int(v) for v in lut[index[r, c]]),
                           format_value(grid[r, c]))
            else:
                _draw_missing(draw, box)
    _draw_colour_bar(img, draw, fonts["label"], lut, (bar_x, y0, bar_w, gh), bar_labels)
    draw.text((x0, y0 + gh + 8), MISSING_LEGEND, fill=(90, 90, 90),
              font=fonts["label"])
    return np.asarray(img, dtype=np.uint8).copy()


def _draw_axis_labels(draw, font, shape: tuple[int, int], origin: tuple[int, int],
                      cell: int) -> None:
    x0, y0 = origin
    for c in range(shape[1]):
        text = str(c + 1)
        tw, th = _text_size(font, text)
        draw.text((x0 + c * cell + (cell - tw) / 2, y0 - th - 6), text, fill=(0, 0, 0), font=font)
    for r in range(shape[0]):
        text = row_label(r)
        tw, th = _text_size(font, text)
        draw.text((x0 - tw - 6, y0 + r * cell + (cell - th) / 2 - 1), text, fill=(0, 0, 0),
                  font=font)


def _draw_well(draw, font, box: tuple, rgb: tuple, text: str) -> None:
    draw.rectangle(box, fill=rgb)
    tw, th = _text_size(font, text)
    size = box[2] - box[0] + 1
    if tw <= size - 4:
        ink = text_ink(rgb)
        left, top, _, _ = font.getbbox(text)
        draw.text((box[0] + (size - tw) / 2 - left, box[1] + (size - th) / 2 - top), text,
                  fill=ink, font=font)


def _draw_missing(draw, box: tuple) -> None:
    draw.rectangle(box, fill=MISSING_RGB)
    inset = (box[2] - box[0]) // 4
    a, b, c, d = box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset
    draw.line((a, b, c, d), fill=MISSING_CROSS_RGB, width=1)
    draw.line((a, d, c, b), fill=MISSING_CROSS_RGB, width=1)


def _draw_colour_bar(img, draw, font, lut: np.ndarray, rect: tuple,
                     labels: tuple[str, str]) -> None:
    from PIL import Image

    x, y, w, h = rect
    ramp = lut[np.rint(np.linspace(255, 0, h)).astype(int)]
    img.paste(Image.fromarray(np.ascontiguousarray(np.repeat(ramp[:, None], w, axis=1))), (x, y))
    draw.rectangle((x - 1, y - 1, x + w, y + h), outline=(120, 120, 120))
    top, bottom = labels
    draw.text((x + w + 6, y), top, fill=(0, 0, 0), font=font)
    _, th = _text_size(font, bottom or "0")
    draw.text((x + w + 6, y + h - th - 3), bottom, fill=(0, 0, 0), font=font)


# --------------------------------------------------------------------------- gallery


def render_gallery(
    tiles: Sequence[Sequence],
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
        ``(thumbnail, caption)`` pairs or :class:`~.gallery.Tile`; thumbnails are
        ``uint8`` RGB ``(h, w, 3)`` (see :func:`~.thumbnails.thumbnail`) or grayscale ``(h, w)``.
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
    pictures = [as_rgb(t[0]) for t in tiles]
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
    for i, tile in enumerate(tiles):
        text = _shorten(font, str(tile[1]), cell_w - 4)
        tw, th = _text_size(font, text)
        left, top, _, _ = font.getbbox(text)
        x = gap + (i % k) * step_x + (cell_w - tw) / 2 - left
        y = gap + (i // k) * step_y + cell_h + (caption_height - th) / 2 - top
        draw.text((x, y), text, fill=_CAPTION_RGB, font=font)
    return np.asarray(img, dtype=np.uint8).copy()


def _shorten(font, text: str, width: int) -> str:
    if _text_size(font, text)[0] <= width:
        return text
    while len(text) > 1 and _text_size(font, text + "...")[0] > width:
        text = text[:-1]
    return text + "..."


def save_png(rgb: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8 RGB (or grayscale) array as a PNG file, atomically.

    Returns
    -------
    Path
        ``path``.
    """
    from PIL import Image

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3)):
        raise ValueError(f"expected a uint8 (h, w, 3) or (h, w) array, got {rgb.dtype} "
                         f"{rgb.shape}")
    picture = Image.fromarray(np.ascontiguousarray(rgb))
    with atomic_write(path, "wb") as fh:
        picture.save(fh, format="PNG")
    return Path(path)
