"""OME-Zarr (NGFF) high-content plates: the fields of a plate, from its metadata.

A plate is a Zarr group whose ``plate`` metadata lists its wells as
``{row}/{column}`` groups; each well's ``well`` metadata lists its fields of
view, each an OME-Zarr image. :func:`plate_fields` returns the fields' folders
in plate order; each is read as one image (its full-resolution level), and
:func:`~.discovery.parse_metadata` gives its well and site from that layout.
The metadata is plain JSON (``.zattrs`` for NGFF 0.4, ``zarr.json`` for 0.5),
so listing a plate needs neither zarr nor ome-zarr-py.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from .readers import zarr_attrs

__all__ = ["folder_name", "is_hcs_plate", "plate_fields", "plate_name"]


def is_hcs_plate(path: str | os.PathLike) -> bool:
    """``True`` for a folder holding an OME-Zarr plate (``plate`` metadata)."""
    p = Path(path)
    return p.is_dir() and "plate" in zarr_attrs(p)


def plate_fields(path: str | os.PathLike) -> list[Path]:
    """The folders of every field of view of an OME-Zarr plate, well by well.

    Parameters
    ----------
    path : str or PathLike
        The plate's folder (``plate.ome.zarr``).

    Returns
    -------
    list of Path
        ``plate.ome.zarr/B/3/0`` and so on: wells in the order of the plate
        metadata (rows, then columns), fields in the order of each well's.

    Raises
    ------
    ValueError
        When the plate metadata is missing or malformed.
    """
    root = Path(path)
    plate = zarr_attrs(root).get("plate")
    if not isinstance(plate, dict) or not isinstance(plate.get("wells"), list):
        raise ValueError(f"not an OME-Zarr plate (no plate metadata listing wells): {root}")

    def order(well: dict) -> tuple:  # plate order; a stable sort keeps the metadata's otherwise
        return well.get("rowIndex", 0), well.get("columnIndex", 0)

    fields = []
    for well in sorted((w for w in plate["wells"] if isinstance(w, dict) and "path" in w),
                       key=order):
        wdir = root / well["path"]
        images = zarr_attrs(wdir).get("well", {}).get("images", [])
        fields.extend(wdir / str(im["path"]) for im in images
                      if isinstance(im, dict) and "path" in im)
    return fields


@lru_cache(maxsize=64)
def plate_name(root: str) -> str:
    """The plate's name from its metadata, else the folder's name without ``.ome.zarr``."""
    plate = zarr_attrs(Path(root)).get("plate")
    name = plate.get("name") if isinstance(plate, dict) else None
    if isinstance(name, str) and name.strip():
        return name.strip()
    return folder_name(root)


def folder_name(root: str | os.PathLike) -> str:
    """A plate folder's name without ``.ome.zarr`` (or ``.zarr``)."""
    base = Path(root).name
    for suffix in (".ome.zarr", ".zarr"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base
