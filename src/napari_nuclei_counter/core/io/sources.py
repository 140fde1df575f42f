"""What a run's input names: the images of a folder, a file, or an OME-Zarr plate.

:func:`list_images` turns the input of ``nuclei-counter detect`` (and of the
dock's folder mode) into one name per image: a file; ``FILE#SCENE`` for each
scene of a file holding several (OME-TIFF series, ND2/CZI positions); the
folder of each field of an OME-Zarr plate. It also warns when the matched
files span several channels by name (``w1`` and ``w2``).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .discovery import find_images, parse_metadata
from .images import scene_path
from .plates import is_hcs_plate, plate_fields
from .readers import is_zarr_image, scene_count

__all__ = ["ImageList", "list_images"]

log = logging.getLogger(__name__)


@dataclass
class ImageList:
    """The images an input names.

    Attributes
    ----------
    labels : list of str
        One name per image, in run order.
    kind : str
        ``'folder'``, ``'file'``, ``'plate'`` (OME-Zarr HCS) or ``'zarr'`` (one OME-Zarr image).
    warnings : list of str
        Things the user should know before the run (also logged).
    """

    labels: list[str]
    kind: str
    warnings: list[str] = field(default_factory=list)


def _with_scenes(paths: list[Path], scenes: bool = True) -> list[str]:
    out = []
    for p in paths:
        n = scene_count(p) if scenes else 1
        out.extend([str(p)] if n <= 1 else [scene_path(p, s) for s in range(n)])
    return out


def _channel_warning(labels: list[str], pattern: str) -> str | None:
    channels = Counter(parse_metadata(label).channel for label in labels)
    channels.pop("", None)
    if len(channels) < 2:
        return None
    names = sorted(channels)
    first = names[0]
    return (f"the matched files hold {len(names)} channels by name ({', '.join(names)}): every "
            f"channel is counted as an image of its own; to count one, choose it in the pattern, "
            f"e.g. --pattern '*{first}*' (now {pattern!r})")


def list_images(path: str | os.PathLike, pattern: str, *, recursive: bool = False,
                scenes: bool = True, resolve: bool = True) -> ImageList:
    """The images of ``path``: a folder (files matching ``pattern``), a file, or a plate.

    Parameters
    ----------
    path : str or PathLike
        A folder, an image file, an OME-Zarr plate or image folder.
    pattern : str
        Glob for the file names in a folder (case-insensitive).
    recursive : bool, optional
        Also search a folder's sub-folders.
    scenes : bool, optional
        One image per scene of a file holding several (``FILE#SCENE``);
        ``False``: one per file (its first scene).
    resolve : bool, optional
        Names from the absolute, resolved path (as the result tables hold
        them); ``False``: from ``path`` as given.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        For a plate whose metadata is malformed.
    """
    p = Path(path).expanduser()
    p = p.resolve() if resolve else p
    if not p.exists():
        raise FileNotFoundError(f"input folder not found: {p}")
    if is_hcs_plate(p):
        return ImageList([str(f) for f in plate_fields(p)], "plate")
    if is_zarr_image(p):
        return ImageList([str(p)], "zarr")
    if p.is_file():
        return ImageList(_with_scenes([p], scenes), "file")
    labels = _with_scenes(find_images(p, pattern, recursive=recursive), scenes)
    warning = _channel_warning(labels, pattern)
    if warning:
        log.warning("%s", warning)
    return ImageList(labels, "folder", [warning] if warning else [])
