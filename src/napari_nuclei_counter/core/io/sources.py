"""What a run's input names: the images of a folder, a file, or an OME-Zarr plate.

:func:`list_images` turns the input of ``nuclei-counter detect`` (and of the
dock's folder mode) into one name per image: a file; ``FILE#SCENE`` for each
scene of a file holding several (OME-TIFF series, ND2/CZI positions);
``FILE#tT`` (``FILE#SCENE_tT``) for each time point of a time series (the
files whose scenes are listed, and OME-Zarr images), or for the one time
point ``t`` chosen; the folder of each field of an OME-Zarr plate. It also
warns when the matched files span several channels by name (``w1`` and ``w2``).

What the input names but cannot be listed or read as named (a sub-folder
that cannot be read, a plate's missing well, a path in plate metadata that
leads outside the plate, scenes that repeat another scene's pixels, a file
whose name is also a scene's) is an *error of the listing*: a warning that
names it, and a run that lists any ends with a non-zero exit status.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from .discovery import parse_metadata, scan_folder
from .images import scene_collision, scene_path
from .plates import is_hcs_plate, plate_listing
from .readers import is_zarr_image, scene_info

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
    errors : list of str
        The warnings that say something the input names is not read (a
        folder that cannot be listed, a missing well, ...): a run with any
        is not a complete run.
    """

    labels: list[str]
    kind: str
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _with_scenes(paths: list[Path], scenes: bool, errors: list[str],
                 t: str | None = None) -> list[str]:
    """One name per image of ``paths``: per scene and per time point (only ``t`` when given)."""
    out = []
    for p in paths:
        n, n_times, notes = scene_info(p) if scenes else (1, 1, ())
        errors.extend(f"{p}: {note}" for note in notes)
        if n <= 1 and n_times <= 1:
            out.append(str(p))
            continue
        times = [None] if n_times <= 1 else range(n_times) if t is None else [int(t)]
        names = [scene_path(p, s if n > 1 else None, k) for s in range(n) for k in times]
        errors.extend(why for why in map(scene_collision, names) if why)
        out.extend(names)
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
                scenes: bool = True, resolve: bool = True,
                skip: Collection[str | os.PathLike] = (), t: str | int | None = None
                ) -> ImageList:
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
        One image per scene of a file holding several (``FILE#SCENE``) and
        per time point of a time series (``FILE#tT``, ``FILE#SCENE_tT``);
        ``False``: one per file (its first scene).
    resolve : bool, optional
        Names from the absolute, resolved path (as the result tables hold
        them); ``False``: from ``path`` as given.
    skip : collection of path, optional
        Files and folders of a folder never listed: a run's output folder and
        its tables, when it lies in the input folder.
    t : str or int, optional
        Only this time point (0-based) of each time series (``--t``); files
        without a time axis are listed as they are. A time point a file does
        not have is that image's error when it is read.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        For a plate whose metadata is malformed, and for an input that cannot
        be read at all: a folder that cannot be listed, a loop of symbolic
        links, a path longer than the system allows.
    """
    p = Path(path).expanduser()
    try:
        p = p.resolve() if resolve else p
        exists = p.exists()
    except (OSError, RuntimeError) as exc:  # a loop of links (RuntimeError before 3.13)
        raise ValueError(f"cannot read the input {p} ({_why(exc)})") from None
    if not exists:
        raise FileNotFoundError(f"input folder not found: {p}")
    if p.is_dir():
        try:
            with os.scandir(p):
                pass
        except OSError as exc:
            raise ValueError(f"cannot read the input folder {p} ({_why(exc)})") from None
    errors: list[str] = []
    if is_hcs_plate(p):
        fields, errors = plate_listing(p)
        found = ImageList([str(f) for f in fields], "plate")
    elif is_zarr_image(p):
        found = ImageList(_with_scenes([p], scenes, errors, t), "zarr")
    elif p.is_file():
        found = ImageList(_with_scenes([p], scenes, errors, t), "file")
    else:
        skip = [Path(s).expanduser().resolve() if resolve else s for s in skip]
        listing = scan_folder(p, pattern, recursive=recursive, skip=skip)
        paths, errors = listing.found, listing.warnings
        labels = _with_scenes(paths, scenes, errors, t)
        found = ImageList(labels, "folder")
        if listing.left_out:  # said, but not an error: they are not images
            found.warnings.append(listing.note())
        warning = _channel_warning(labels, pattern)
        if warning:
            found.warnings.append(warning)
    found.errors = errors
    found.warnings[:0] = errors
    for warning in found.warnings:
        log.warning("%s", warning)
    return found


def _why(exc: BaseException) -> str:
    """The reason of an error reading the input, in the system's words."""
    if isinstance(exc, RuntimeError):
        return "a loop of symbolic links"
    return getattr(exc, "strerror", None) or str(exc)
