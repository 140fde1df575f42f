"""Ground truth for scoring: annotated nuclei as a label image or points, and reading it.

A label image (0 background, one integer per nucleus), a colour-coded mask
(one colour per nucleus, RGB or RGBA as annotation tools export them), a
binary mask (split into nuclei by connected components, with a warning), or
a CSV of clicked centres (``y,x`` or napari's ``axis-0,axis-1`` columns).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["TouchingNucleiWarning", "Truth", "labels_from_mask", "read_truth"]

class TouchingNucleiWarning(UserWarning):
    """A binary mask was split into nuclei by connected components (touching ones merge)."""


@dataclass(frozen=True)
class Truth:
    """Annotated nuclei of one image: a label image or points, in their own frame.

    Attributes
    ----------
    labels : ndarray of int, shape (H, W), or None
        0 background, one positive integer per nucleus.
    points : ndarray of float, shape (M, 2), or None
        ``(row, col)`` centres.
    scale, translate : tuple of float
        The truth's napari-style transform (world = data * scale + translate).
    source : str
        Where it came from (for messages).
    """

    labels: np.ndarray | None = None
    points: np.ndarray | None = None
    scale: tuple[float, float] = (1.0, 1.0)
    translate: tuple[float, float] = (0.0, 0.0)
    source: str = ""

    def __post_init__(self) -> None:
        if (self.labels is None) == (self.points is None):
            raise ValueError("truth needs either labels or points (exactly one)")
        where = f" in {self.source}" if self.source else ""
        if self.labels is not None:
            lab = np.asarray(self.labels)
            if lab.ndim != 2 or lab.dtype.kind not in "uib":
                raise ValueError(f"truth labels must be a 2-D integer image{where}, got "
                                 f"shape {lab.shape} dtype {lab.dtype}")
            if not lab.any():
                raise ValueError(f"no nuclei in the truth{where}: the label image is all 0")
        else:
            pts = np.asarray(self.points, dtype=np.float64)
            if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
                raise ValueError(f"truth points must be finite (row, col) pairs{where}, got "
                                 f"shape {pts.shape}")
            if len(pts) == 0:
                raise ValueError(f"no nuclei in the truth{where}: no points")
            object.__setattr__(self, "points", pts)
        for name in ("scale", "translate"):
            v = tuple(float(x) for x in np.ravel(getattr(self, name))[-2:])
            object.__setattr__(self, name, v)

    def label_centroids(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, centroids)`` of the labelled nuclei, in the truth's frame (computed once)."""
        cached = self.__dict__.get("_centroids")
        if cached is None:
            from scipy import ndimage as ndi

            lab = np.asarray(self.labels)
            ids = np.unique(lab)
            ids = ids[ids > 0]
            cen = np.asarray(ndi.center_of_mass(np.ones(lab.shape), lab, ids)).reshape(-1, 2)
            cached = (ids, cen)
            object.__setattr__(self, "_centroids", cached)
        return cached

    @property
    def kind(self) -> str:
        """``'labels'`` or ``'points'``."""
        return "labels" if self.labels is not None else "points"


# -- reading truth ---------------------------------------------------------------


def labels_from_mask(mask, *, source: str = "") -> np.ndarray:
    """Turn an annotation mask into a label image (0 background, 1..N nuclei).

    Parameters
    ----------
    mask : array_like
        A label image (kept as it is), a colour-coded RGB(A) mask (shape
        (H, W, 3|4): one colour per nucleus, black or fully transparent pixels
        are background) or a binary mask (0 and one other value, or bool),
        which is split into nuclei by connected components (8-connectivity),
        with a :class:`TouchingNucleiWarning`.
    source : str, optional
        Named in messages.

    Returns
    -------
    ndarray of int, shape (H, W)

    Raises
    ------
    ValueError
        For a mask that is not 2-D (or colour), not made of whole numbers.
    """
    from scipy import ndimage as ndi

    arr = np.asarray(mask)
    where = f" ({source})" if source else ""
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4:
        colour = arr[..., :3]
        background = ~colour.any(axis=-1)
        if arr.shape[-1] == 4:
            background |= arr[..., 3] == 0
        flat = colour.reshape(-1, 3)
        _, inverse = np.unique(flat, axis=0, return_inverse=True)
        lab = inverse.reshape(arr.shape[:2]).astype(np.int64) + 1
        lab[background] = 0
        from skimage.segmentation import relabel_sequential

        return relabel_sequential(lab)[0]
    arr = arr.squeeze() if arr.ndim > 2 else arr
    if arr.ndim != 2:
        raise ValueError(f"a truth mask must be 2-D or colour (H, W, 3|4), got shape "
                         f"{np.asarray(mask).shape}{where}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any() or (arr < 0).any():
            raise ValueError(f"a truth mask must hold whole numbers >= 0{where}")
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "ui":
        raise ValueError(f"a truth mask must hold integers, got dtype {arr.dtype}{where}")
    values = np.unique(arr)
    if len(values) == 2 and values[0] == 0:
        lab, n = ndi.label(arr > 0, structure=np.ones((3, 3), int))
        warnings.warn(f"binary mask{where}: split into {n} nuclei by connected components; "
                      "touching nuclei count as one", TouchingNucleiWarning, stacklevel=2)
        return lab
    return arr


def _read_raw(path: Path) -> np.ndarray:
    """Decode a mask file with the core's own decoders, keeping colour channels."""
    from ..io.readers import read_plane, read_raw

    if not path.exists():
        raise FileNotFoundError(f"truth file not found: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    data, axes, _ = read_raw(path)
    if axes in ("YX", "YXS"):  # a grey mask, or a colour one (one colour per nucleus)
        return np.asarray(data)
    return np.asarray(read_plane(path))


def _read_points(path: Path) -> np.ndarray:
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as exc:  # an empty or malformed CSV
        raise ValueError(f"cannot read truth points {path.name}: {exc}") from None
    cols = {str(c).strip().lower(): c for c in df.columns}
    axes = sorted((c for c in cols if c.startswith("axis-")), key=lambda c: int(c[5:] or 0))
    if "y" in cols and "x" in cols:
        yx = [cols["y"], cols["x"]]
    elif len(axes) == 2:
        yx = [cols[axes[0]], cols[axes[1]]]
    else:
        raise ValueError(f"truth points {path.name}: need columns y,x (or napari's "
                         f"axis-0,axis-1), found {', '.join(map(str, df.columns)) or 'none'}")
    try:
        return df[yx].to_numpy(dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"truth points {path.name}: non-numeric coordinates ({exc})") from None


def read_truth(path, *, scale=(1.0, 1.0), translate=(0.0, 0.0)) -> Truth:
    """Read a truth file: a label/colour/binary mask image, or a CSV of points.

    Parameters
    ----------
    path : str or PathLike
        ``.csv``: points with columns ``y,x`` or ``axis-0,axis-1`` (napari's
        Points export); anything else: a mask image (TIFF, PNG, JPEG).
    scale, translate : sequence of float, optional
        The truth's transform (see :class:`Truth`).

    Raises
    ------
    FileNotFoundError
        For a missing file.
    ValueError
        For an unreadable file or a truth with no nuclei; the message names the file.
    """
    p = Path(path)
    if p.suffix.lower() == ".csv":
        if not p.exists():
            raise FileNotFoundError(f"truth file not found: {p}")
        return Truth(points=_read_points(p), scale=scale, translate=translate, source=p.name)
    try:
        raw = _read_raw(p)
    except ValueError as exc:
        raise ValueError(f"cannot read truth {p.name}: {exc}") from None
    return Truth(labels=labels_from_mask(raw, source=p.name), scale=scale, translate=translate,
                 source=p.name)
