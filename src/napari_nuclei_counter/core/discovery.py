"""Finding images in a folder and reading plate metadata from their names."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BBBC021_PATTERN",
    "BBBC021_REGEX",
    "ImageMeta",
    "find_images",
    "natural_key",
    "parse_metadata",
]

#: Default glob: the DAPI channel (``w1``) of BBBC021-style names.
BBBC021_PATTERN = "*_w1*.tif"

#: ``{week}_{plate}_{well}_{site}_{channel}{uuid}.tif``, e.g.
#: ``Week1_22123_B02_s4_w1EB868A72-19FC-46BB-BDFA-66B8966A817C.tif``.
BBBC021_REGEX = (
    r"^(?P<week>[^_]+)_(?P<plate>[^_]+)_(?P<well>[A-Za-z]{1,2}\d{1,3})_"
    r"(?P<site>s\d+)_(?P<channel>w\d)"
)

_FIELDS = ("plate", "well", "site", "channel")


@dataclass(frozen=True)
class ImageMeta:
    """Plate metadata of one image; blank strings when the name does not tell.

    Attributes
    ----------
    plate : str
        Plate barcode, e.g. ``'22123'``.
    well : str
        Well, normalised to a letter and two digits, e.g. ``'B02'``.
    site : str
        Field of view within the well, e.g. ``'s4'``.
    channel : str
        Channel, e.g. ``'w1'`` (DAPI in BBBC021).
    """

    plate: str = ""
    well: str = ""
    site: str = ""
    channel: str = ""

    def as_dict(self) -> dict[str, str]:
        """Return the metadata as a ``dict`` with the table column names."""
        return {f: getattr(self, f) for f in _FIELDS}


def natural_key(text: str) -> list:
    """Sort key that orders ``s2`` before ``s10`` (case-insensitive)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _normalise_well(well: str) -> str:
    m = re.fullmatch(r"([A-Za-z]{1,2})0*(\d{1,3})", well)
    if not m:
        return well
    return f"{m.group(1).upper()}{int(m.group(2)):02d}"


def parse_metadata(path: str | os.PathLike, regex: str | re.Pattern | None = None) -> ImageMeta:
    """Read plate, well, site and channel from a file name.

    Parameters
    ----------
    path : str or PathLike
        The image path; only its file name is parsed.
    regex : str or re.Pattern, optional
        A regular expression with any of the named groups ``plate``, ``well``,
        ``site`` and ``channel``, matched at the start of the file name
        (``re.search`` semantics when it does not start with ``^``). Defaults
        to the BBBC021 template :data:`BBBC021_REGEX`.

    Returns
    -------
    ImageMeta
        Blank fields for a name that does not match.
    """
    name = Path(path).name
    pattern = re.compile(regex if regex is not None else BBBC021_REGEX)
    m = pattern.search(name)
    if not m:
        return ImageMeta()
    groups = {k: (v or "") for k, v in m.groupdict().items() if k in _FIELDS}
    if groups.get("well"):
        groups["well"] = _normalise_well(groups["well"])
    return ImageMeta(**groups)


def find_images(
    folder: str | os.PathLike,
    pattern: str = BBBC021_PATTERN,
    *,
    recursive: bool = False,
) -> list[Path]:
    """List the images in a folder that match a glob pattern, naturally sorted.

    Matching is on the file name, case-insensitive (``*.tif`` also finds
    ``.TIF``). Symbolic links are listed like files, dangling ones included,
    so that a broken link shows up as an error for that image rather than
    silently vanishing. Folder names with spaces or parentheses need no
    quoting. Hidden files (``.name``) are skipped.

    Parameters
    ----------
    folder : str or PathLike
        Folder to search.
    pattern : str, optional
        Glob for file names, default ``'*_w1*.tif'`` (BBBC021 DAPI channel).
    recursive : bool, optional
        Also search sub-folders (symlinked folders are not followed, to avoid loops).

    Returns
    -------
    list of Path
        Sorted by natural order of the path relative to ``folder``.

    Raises
    ------
    FileNotFoundError
        If ``folder`` does not exist.
    NotADirectoryError
        If ``folder`` is not a folder.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    pat = pattern.lower()
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        base = Path(dirpath)
        for name in filenames:
            if name.startswith(".") or not fnmatch.fnmatchcase(name.lower(), pat):
                continue
            p = base / name
            if p.is_dir():
                continue
            found.append(p)
        if not recursive:
            break
    found.sort(key=lambda p: natural_key(str(p.relative_to(root))))
    return found

