"""OME-Zarr (NGFF) high-content plates: the fields of a plate, from its metadata.

A plate is a Zarr group whose ``plate`` metadata lists its wells as
``{row}/{column}`` groups; each well's ``well`` metadata lists its fields of
view, each an OME-Zarr image. :func:`plate_fields` returns the fields' folders
in plate order; each is read as one image (its full-resolution level), and
:func:`~.discovery.parse_metadata` gives its well and site from that layout.
The metadata is plain JSON (``.zattrs`` for NGFF 0.4, ``zarr.json`` for 0.5),
so listing a plate needs neither zarr nor ome-zarr-py.

A plate reads only inside its own folder: a well or field path in the
metadata that is absolute or climbs out with ``..`` is refused, with a
warning that names it. A well the metadata lists whose folder is missing (or
holds no well metadata) is a warning too, never a silently missing well.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

from .readers import inside_path, zarr_attrs

__all__ = ["folder_name", "is_hcs_plate", "plate_fields", "plate_listing", "plate_name"]

log = logging.getLogger(__name__)


def is_hcs_plate(path: str | os.PathLike) -> bool:
    """``True`` for a folder holding an OME-Zarr plate (``plate`` metadata)."""
    p = Path(path)
    return p.is_dir() and "plate" in zarr_attrs(p)


def plate_fields(path: str | os.PathLike) -> list[Path]:
    """The folders of every field of view of an OME-Zarr plate, well by well.

    :func:`plate_listing` without its warnings: they are logged.

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
    fields, warnings = plate_listing(path)
    for warning in warnings:
        log.warning("%s", warning)
    return fields


def plate_listing(path: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """The fields of an OME-Zarr plate, and the wells and fields that cannot be listed.

    Parameters
    ----------
    path : str or PathLike
        The plate's folder (``plate.ome.zarr``).

    Returns
    -------
    fields : list of Path
        As :func:`plate_fields`.
    warnings : list of str
        One sentence per well or field the metadata lists but that is not
        read: a missing well folder, a well without metadata, a path that
        leads outside the plate's folder.

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
        rc = well.get("rowIndex", 0), well.get("columnIndex", 0)
        return tuple(v if isinstance(v, int) and not isinstance(v, bool) else 0 for v in rc)

    fields: list[Path] = []
    warnings: list[str] = []
    for well in sorted((w for w in plate["wells"] if isinstance(w, dict) and "path" in w),
                       key=order):
        wdir = inside_path(root, well["path"])
        if wdir is None:
            warnings.append(f"the plate {root} lists the well {well['path']!r}, which is not a "
                            "path inside the plate's folder: not read")
            continue
        if not wdir.is_dir():
            warnings.append(f"the plate {root} lists the well {well['path']}, but its folder "
                            f"{wdir} is missing: no image of it is counted")
            continue
        meta = zarr_attrs(wdir).get("well")
        images = meta.get("images") if isinstance(meta, dict) else None
        if not isinstance(images, list):
            warnings.append(f"the plate {root} lists the well {well['path']}, but {wdir} has no "
                            "well metadata listing its fields: no image of it is counted")
            continue
        for im in images:
            if not isinstance(im, dict) or "path" not in im:
                continue
            field = inside_path(wdir, str(im["path"]))
            if field is None:
                warnings.append(f"the well {wdir} lists the field {im['path']!r}, which is not "
                                "a path inside the plate's folder: not read")
                continue
            fields.append(field)
    return fields, warnings


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
