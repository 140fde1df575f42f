"""A deterministic generator of BBBC021-like DAPI images, for demos, tests and benchmarks.

Images are 1024x1280 uint16 with a background of ~150-250 counts, Poisson
noise and nuclei-like blobs (smooth-edged ellipses of 7-12 px radius with
some internal texture, 1,500-6,000 counts above background). Density varies
across the plate: columns run from sparse to confluent. Names follow BBBC021:
``Week1_22123_B02_s1_w1<UUID>.tif``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import tifffile

__all__ = [
    "SAMPLE_PLATE",
    "make_nuclei_image",
    "plate_layout",
    "sample_file_name",
    "write_sample_plate",
]

#: Plate barcode used in sample names.
SAMPLE_PLATE = "22123"
_SHAPE = (1024, 1280)


def make_nuclei_image(
    seed: int | np.random.Generator,
    n_nuclei: int = 150,
    shape: tuple[int, int] = _SHAPE,
    *,
    background: float | None = None,
    dtype=np.uint16,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one synthetic DAPI image.

    Parameters
    ----------
    seed : int or numpy.random.Generator
        Same seed, same image.
    n_nuclei : int, optional
        Number of nuclei drawn (they may touch or overlap when dense).
    shape : tuple of int, optional
        ``(rows, cols)``, default ``(1024, 1280)`` like BBBC021.
    background : float, optional
        Mean background in counts; drawn from 150-250 when not given.
    dtype : numpy dtype, optional
        ``uint16`` (default) or ``uint8`` (values scaled by 1/256).

    Returns
    -------
    image : ndarray, shape ``shape``
    centres : ndarray of float, shape (n_nuclei, 2)
        True ``(row, col)`` centres of the drawn nuclei.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    h, w = shape
    bg = rng.uniform(150, 250) if background is None else float(background)
    expected = np.full(shape, bg, dtype=np.float64)
    # slow illumination gradient, as on real microscopes
    yy = np.linspace(-1, 1, h)[:, None]
    xx = np.linspace(-1, 1, w)[None, :]
    expected *= 1.0 + 0.08 * (rng.uniform(-1, 1) * yy + rng.uniform(-1, 1) * xx)
    centres = np.column_stack([rng.uniform(0, h, n_nuclei), rng.uniform(0, w, n_nuclei)])
    for cy, cx in centres:
        a = rng.uniform(7, 12)  # semi-axes, px
        b = a * rng.uniform(0.7, 1.0)
        theta = rng.uniform(0, np.pi)
        amp = rng.uniform(1500, 6000)
        half = int(np.ceil(a * 1.6))
        r0, r1 = max(int(cy) - half, 0), min(int(cy) + half + 1, h)
        c0, c1 = max(int(cx) - half, 0), min(int(cx) + half + 1, w)
        if r0 >= r1 or c0 >= c1:
            continue
        py = np.arange(r0, r1)[:, None] - cy
        px = np.arange(c0, c1)[None, :] - cx
        u = (px * np.cos(theta) + py * np.sin(theta)) / a
        v = (-px * np.sin(theta) + py * np.cos(theta)) / b
        rr = np.sqrt(u * u + v * v)
        blob = 1.0 / (1.0 + np.exp((rr - 1.0) * 8.0))  # soft-edged ellipse
        texture = 1.0 + 0.15 * rng.standard_normal(blob.shape)
        expected[r0:r1, c0:c1] += amp * blob * texture.clip(0.5, 1.5)
    image = rng.poisson(expected).clip(0, 65535)
    if np.dtype(dtype) == np.uint8:
        image = (image / 256).clip(0, 255)
    return image.astype(dtype), centres


def plate_layout(rows: str = "BCD", columns: range = range(2, 6), sites: int = 2
                 ) -> list[tuple[str, int, int]]:
    """List ``(well, site, n_nuclei)`` for a sample plate.

    Density rises across columns (about 40 to 320 nuclei per image) and varies
    a little between rows, so a density-sorted view has something to show.

    Returns
    -------
    list of tuple
        ``(well, site, n_nuclei)`` with wells like ``'B02'`` and sites from 1.
    """
    cols = list(columns)
    out = []
    for ri, row in enumerate(rows):
        for ci, col in enumerate(cols):
            frac = ci / max(len(cols) - 1, 1)
            n = int(round(40 + 280 * frac + 15 * ri))
            for site in range(1, sites + 1):
                out.append((f"{row}{col:02d}", site, n))
    return out


def sample_file_name(well: str, site: int, rng: np.random.Generator, channel: str = "w1") -> str:
    """Return a BBBC021-style name with a reproducible UUID."""
    uid = str(uuid.UUID(bytes=rng.bytes(16), version=4)).upper()
    return f"Week1_{SAMPLE_PLATE}_{well}_s{site}_{channel}{uid}.tif"


def write_sample_plate(
    folder: str | os.PathLike,
    *,
    rows: str = "BCD",
    columns: range = range(2, 6),
    sites: int = 2,
    seed: int = 0,
    shape: tuple[int, int] = _SHAPE,
) -> list[Path]:
    """Write a synthetic BBBC021-like plate of DAPI TIFFs into ``folder``.

    The default is 3 rows x 4 columns x 2 sites = 24 images (about 63 MB).
    Existing files with the same names are overwritten; the result is the same
    for the same arguments.

    Parameters
    ----------
    folder : str or PathLike
        Created if missing.
    rows, columns, sites :
        Plate layout, see :func:`plate_layout`.
    seed : int, optional
        Master seed.
    shape : tuple of int, optional
        Image shape, default ``(1024, 1280)``.

    Returns
    -------
    list of Path
        The written files in plate order.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    names_rng = np.random.default_rng([seed, 1])
    paths = []
    for i, (well, site, n) in enumerate(plate_layout(rows, columns, sites)):
        image, _ = make_nuclei_image(np.random.default_rng([seed, 2, i]), n, shape)
        path = out / sample_file_name(well, site, names_rng)
        tifffile.imwrite(path, image, photometric="minisblack")
        paths.append(path)
    return paths
