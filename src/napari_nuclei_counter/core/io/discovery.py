"""Finding images in a folder and reading plate metadata from their names."""

from __future__ import annotations

import fnmatch
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .readers import IMAGE_SUFFIXES, is_zarr_image

__all__ = [
    "BBBC021_PATTERN",
    "BBBC021_REGEX",
    "FolderListing",
    "ImageMeta",
    "NAME_SCHEMES",
    "find_images",
    "is_mask_name",
    "list_folder",
    "name_scheme",
    "names_masks",
    "natural_key",
    "parse_metadata",
    "scan_folder",
    "suggest_pattern",
]

#: Default glob: the DAPI channel (``w1``) of BBBC021-style names.
BBBC021_PATTERN = "*_w1*.tif"

#: a field of an OME-Zarr (NGFF) plate: ``PLATE.ome.zarr/{row}/{column}/{field}``; the
#: plate's wells are row/column groups and their fields are listed in its metadata
#: (:mod:`.plates`), so the path says what the metadata says
HCS_FIELD = re.compile(r"(?P<root>(?:^|.*/)(?P<plate>[^/]+?)(?:\.ome)?\.zarr)/"
                       r"(?P<row>[A-Za-z]{1,2})/(?P<col>\d{1,3})/(?P<site>[A-Za-z0-9]+)/?$")
#: a scene's or a time point's name: ``#SCENE``, ``#tT``, ``#SCENE_tT`` (see :mod:`.images`)
_SCENE = re.compile(r"#(?:(?P<scene>\d+)(?:_t(?P<t>\d+))?|t(?P<t_only>\d+))$")

#: ``{week}_{plate}_{well}_{site}_{channel}{uuid}.tif``, e.g.
#: ``Week1_22123_B02_s4_w1EB868A72-19FC-46BB-BDFA-66B8966A817C.tif``.
BBBC021_REGEX = (
    r"^(?P<week>[^_]+)_(?P<plate>[^_]+)_(?P<well>[A-Za-z]{1,2}\d{1,3})_"
    r"(?P<site>s\d+)_(?P<channel>w\d)"
)

_FIELDS = ("plate", "well", "site", "channel", "plane", "timepoint", "scene")
_NAME_FIELDS = _FIELDS[:6]

#: File-name schemes of plate imagers, tried in this order (the first match wins).
#: Groups: ``plate``, ``well`` (or ``row`` and ``col`` numbers), ``site`` (kept as
#: the name writes it: ``s4``, ``f01``, ``F002``), ``channel``; ``plane`` and
#: ``timepoint`` get columns of their own.
NAME_SCHEMES: dict[str, str] = {
    # Week1_22123_B02_s4_w1<UUID>.tif
    "BBBC021": BBBC021_REGEX,
    # MyPlate_D05_s3_w1<UUID>.tif, A01_s1_w1.tif (MetaXpress; without the week prefix)
    "ImageXpress": r"^(?:(?P<plate>.+?)_)?(?P<well>[A-Pa-p]\d{1,2})_(?P<site>s\d+)"
                   r"(?:_(?P<channel>w\d))?",
    # r02c03f01p01-ch1sk1fk1fl1.tiff: row 2, column 3 = well B03
    "Opera Phenix": r"^r(?P<row>\d{2})c(?P<col>\d{2})(?P<site>f\d{2,3})(?:p(?P<plane>\d{2}))?"
                    r"-(?P<channel>ch\d+)",
    # AssayPlate_Greiner_655090_C04_T0001F002L01A01Z01C01.tif
    "Yokogawa CV7000": r"^(?P<plate>.+)_(?P<well>[A-P]\d{2})_T(?P<timepoint>\d{4})"
                       r"(?P<site>F\d{3})L\d{2}A\d{2}Z(?P<plane>\d{2})(?P<channel>C\d{2})",
    # AS_09125_050118150001_A01f00d0.TIF
    "Cellomics": r"^(?P<plate>.+)_(?P<well>[A-P]\d{2})(?P<site>f\d{2,3})(?P<channel>d\d)",
    # 20180328_TestAbs_G - 8(fld 4 wv Red - Cy5).tif, B - 03(fld 1 wv DAPI - DAPI).tif
    "IN Cell Analyzer": r"^(?:(?P<plate>.*)_)?(?P<row>[A-P]) - (?P<col>\d{1,2})"
                        r"\((?P<site>fld \d+) wv (?P<channel>[^)]+?)\)",
    # MiaPaCa2-PhaseOriginal_A2_1_03d06h40m.tif
    "Incucyte": r"^(?P<plate>.+?)_(?P<well>[A-P]\d{1,2})_(?P<site>\d+)_",
}
_COMPILED = {name: re.compile(rx) for name, rx in NAME_SCHEMES.items()}

#: a word of a file name that starts with "label" or "mask" (``A9 p10d_labels.tif``,
#: ``img_mask.png``, ``mask2d.tif``, ``cells-Labels.tif``): an annotation saved
#: beside the images, not an image to count
_MASK_WORD = re.compile(r"(?:^|[^a-z0-9])(?:label|mask)", re.IGNORECASE)

log = logging.getLogger(__name__)


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
    plane : str
        A z plane the name gives (``'01'`` from Opera's ``p01``, Yokogawa's ``Z01``).
    timepoint : str
        A time point the name gives (``'0001'`` from Yokogawa's ``T0001``).
    scene : str
        The scene (series, position) of a file holding several, ``'0'``, ``'1'``, ...
    """

    plate: str = ""
    well: str = ""
    site: str = ""
    channel: str = ""
    plane: str = ""
    timepoint: str = ""
    scene: str = ""

    def as_dict(self) -> dict[str, str]:
        """Return the metadata as a ``dict`` with the table column names."""
        return {f: getattr(self, f) for f in _FIELDS}


def natural_key(text: str) -> list:
    """Sort key that orders ``s2`` before ``s10`` (case-insensitive).

    Runs of decimal digits (of any script) compare as numbers; every other
    character, superscripts and other digit-like signs included, as text.
    The key alternates text and numbers, so any two keys compare.
    """
    parts = re.split(r"(\d+)", text)
    return [int(t) if i % 2 and t.isdecimal() else t.lower() for i, t in enumerate(parts)]


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
        The image path; its file name is parsed (a ``#SCENE`` suffix gives
        ``scene``, a ``#tT`` or ``#SCENE_tT`` suffix also ``timepoint``),
        except for the fields of an OME-Zarr plate (``PLATE.ome.zarr/B/3/0``),
        whose well and field come from the plate's layout.
    regex : str or re.Pattern, optional
        A regular expression with any of the named groups ``plate``, ``well``,
        ``site`` and ``channel``, matched at the start of the file name
        (``re.search`` semantics when it does not start with ``^``). Default:
        the plate imagers' schemes of :data:`NAME_SCHEMES`, in order.

    Returns
    -------
    ImageMeta
        Blank fields for a name that does not match.
    """
    text = os.fspath(path).replace(os.sep, "/")
    scene = _SCENE.search(text)
    extra = {}
    if scene:
        t = scene["t"] or scene["t_only"]
        extra = {k: v for k, v in (("scene", scene["scene"]), ("timepoint", t)) if v is not None}
    name = Path(text[: scene.start()] if scene else text).name
    if regex is not None:
        m = re.compile(regex).search(name)
    else:
        m = HCS_FIELD.search(text) or next(
            (m for m in (p.search(name) for p in _COMPILED.values()) if m), None)
    if not m:
        return ImageMeta(**extra)
    found = m.groupdict()
    groups = {k: (v or "") for k, v in found.items() if k in _NAME_FIELDS}
    groups.update(extra)
    if found.get("root"):  # a plate's field: the plate's name from its metadata
        from .plates import plate_name

        groups["plate"] = plate_name(found["root"])
    if found.get("row") and found.get("col") and not groups.get("well"):
        row = found["row"]
        letter = row.upper() if row.isalpha() else chr(ord("A") + int(row) - 1)
        groups["well"] = f"{letter}{int(found['col']):02d}"
    if groups.get("well"):
        groups["well"] = _normalise_well(groups["well"])
    return ImageMeta(**groups)


def name_scheme(path: str | os.PathLike) -> str:
    """The plate imager whose naming a file name follows (``''`` when none does)."""
    text = os.fspath(path).replace(os.sep, "/")
    if HCS_FIELD.search(text):
        return "OME-Zarr plate"
    name = Path(text).name
    return next((scheme for scheme, p in _COMPILED.items() if p.search(name)), "")


def is_mask_name(name: str) -> bool:
    """Whether a file name reads as a mask or label image rather than an image to count.

    A word of the name (after its start, a space, ``_``, ``-``, ``.`` or any
    other sign that is not a letter or digit) begins with ``label`` or
    ``mask``, in any case: ``A9 p10d_labels.tif``, ``B02_s1_mask.png``,
    ``mask2d.tif``, ``cells-Labels.tif``; not ``Plabel.tif``.
    """
    return _MASK_WORD.search(name) is not None


def names_masks(pattern: str) -> bool:
    """Whether a file-name pattern asks for mask or label files itself.

    It does when it holds ``label`` or ``mask`` (any case): ``*_labels.tif``
    lists the label images, ``*.tif`` leaves them out.
    """
    low = pattern.lower()
    return "label" in low or "mask" in low


@dataclass
class FolderListing:
    """What :func:`scan_folder` found in a folder.

    Attributes
    ----------
    found : list of Path
        The images, sorted by natural order of the path relative to the folder.
    warnings : list of str
        One sentence per folder that could not be listed.
    left_out : list of Path
        Files that match the pattern but are named like masks or label images
        (:func:`is_mask_name`), left out because the pattern does not name them;
        in the same order.
    """

    found: list[Path]
    warnings: list[str] = field(default_factory=list)
    left_out: list[Path] = field(default_factory=list)

    def note(self, option: str = "--pattern") -> str:
        """One line on the files left out, or ``''`` when none was.

        Parameters
        ----------
        option : str, optional
            What the user names files in: ``'--pattern'`` on the command
            line, ``'the pattern'`` in the dock.
        """
        n = len(self.left_out)
        if not n:
            return ""
        names = ", ".join(p.name for p in self.left_out[:2]) + (", …" if n > 2 else "")
        files = "file" if n == 1 else "files"
        them = "it" if n == 1 else "them"
        return (f"{n} label/mask {files} left out ({names}); name {them} in {option} to "
                f"include {them}")


def find_images(
    folder: str | os.PathLike,
    pattern: str = BBBC021_PATTERN,
    *,
    recursive: bool = False,
) -> list[Path]:
    """List the images in a folder that match a glob pattern, naturally sorted.

    :func:`scan_folder` without its warnings and its note on the mask and
    label files left out: they are logged.

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
    listing = scan_folder(folder, pattern, recursive=recursive)
    for warning in listing.warnings:
        log.warning("%s", warning)
    if listing.left_out:
        log.warning("%s", listing.note())
    return listing.found


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:  # a name too long, a loop of links: listed, its read says why
        return False


def _walk(root: Path, onerror: Callable[[OSError], None]
          ) -> Iterator[tuple[str, list[str], list[str]]]:
    """:func:`os.walk` from the top down, without following links, at any depth.

    Yields ``(folder, sub-folders, files)`` as :func:`os.walk` does, and the
    caller may prune the sub-folders in place. A loop instead of a recursion:
    folders nested thousands deep are walked as any other (Python 3.11's
    :func:`os.walk` recurses once per level). A folder that cannot be listed
    is handed to ``onerror``; so is one whose path grew longer than the system
    allows, which is how the walk of a deep tree ends.
    """
    stack = [os.fspath(root)]
    while stack:
        top = stack.pop()
        dirnames: list[str] = []
        filenames: list[str] = []
        links: set[str] = set()
        try:
            with os.scandir(top) as entries:
                for entry in entries:
                    try:
                        is_dir = entry.is_dir()
                        if is_dir and entry.is_symlink():
                            links.add(entry.name)
                    except OSError:  # as os.walk: listed as a file
                        is_dir = False
                    (dirnames if is_dir else filenames).append(entry.name)
        except OSError as exc:
            onerror(exc)
            continue
        yield top, dirnames, filenames
        # in reverse, so that the stack gives them back in listing order
        stack.extend(os.path.join(top, d) for d in reversed(dirnames) if d not in links)


def list_folder(
    folder: str | os.PathLike,
    pattern: str = BBBC021_PATTERN,
    *,
    recursive: bool = False,
    skip: Collection[str | os.PathLike] = (),
) -> tuple[list[Path], list[str]]:
    """The images in a folder that match a glob pattern, and what could not be listed.

    :func:`scan_folder`'s images and warnings (which mask and label files it
    left out, :func:`scan_folder` says).
    """
    listing = scan_folder(folder, pattern, recursive=recursive, skip=skip)
    return listing.found, listing.warnings


def scan_folder(
    folder: str | os.PathLike,
    pattern: str = BBBC021_PATTERN,
    *,
    recursive: bool = False,
    skip: Collection[str | os.PathLike] = (),
) -> FolderListing:
    """The images in a folder that match a glob pattern, what could not be listed, what was left out.

    Matching is on the file name, case-insensitive (``*.tif`` also finds
    ``.TIF``). Symbolic links are listed like files, dangling ones included,
    so that a broken link shows up as an error for that image rather than
    silently vanishing. Folder names with spaces or parentheses need no
    quoting. Hidden files (``.name``) are skipped. A sub-folder that cannot
    be read (no permission, a path longer than the system allows) gives a
    warning that names it: its images are not silently missing.

    Files named like masks or label images (:func:`is_mask_name`:
    ``A9 p10d_labels.tif`` beside ``A9 p10d.tif``) are annotations, not
    images: they are left out, and listed in ``left_out``, unless the pattern
    names them (:func:`names_masks`: ``--pattern '*_labels.tif'``).

    Parameters
    ----------
    folder : str or PathLike
        Folder to search.
    pattern : str, optional
        Glob for file names, default ``'*_w1*.tif'`` (BBBC021 DAPI channel).
    recursive : bool, optional
        Also search sub-folders (symlinked folders are not followed, to avoid loops).
    skip : collection of path, optional
        Files and folders never listed (a run's own output folder and tables),
        compared as absolute paths.

    Returns
    -------
    FolderListing
        The images, sorted by natural order of the path relative to
        ``folder``; one warning per folder that could not be listed; the
        mask and label files left out.

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
    skipped = {os.path.abspath(s) for s in skip}
    found: list[Path] = []
    warnings: list[str] = []

    def unlisted(exc: OSError) -> None:
        where = exc.filename if exc.filename is not None else root
        warnings.append(f"cannot list the folder {where} ({exc.strerror or exc}): "
                        "the images in it are not counted")

    for dirpath, dirnames, filenames in _walk(root, unlisted):
        base = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")
                       and os.path.abspath(base / d) not in skipped]
        # an OME-Zarr image is a folder: listed like a file when it matches, never entered
        found.extend(base / d for d in dirnames
                     if fnmatch.fnmatchcase(d.lower(), pat) and is_zarr_image(base / d))
        dirnames[:] = [d for d in dirnames if not d.lower().endswith(".zarr")]
        for name in filenames:
            if name.startswith(".") or not fnmatch.fnmatchcase(name.lower(), pat):
                continue
            p = base / name
            if _is_dir(p) or os.path.abspath(p) in skipped:
                continue
            found.append(p)
        if not recursive:
            break
    found.sort(key=lambda p: natural_key(str(p.relative_to(root))))
    if names_masks(pattern):
        return FolderListing(found, warnings)
    left_out = [p for p in found if is_mask_name(p.name)]
    return FolderListing([p for p in found if not is_mask_name(p.name)], warnings, left_out)


def suggest_pattern(folder: str | os.PathLike, *, recursive: bool = False
                    ) -> tuple[str, int] | None:
    """A pattern for the images of a folder, for a hint when the user's matched none.

    ``'*.EXT'`` of the commonest image file type among the files of the
    folder that are not named like masks or label images (the pattern
    leaves those out too), and how many images it lists.

    Parameters
    ----------
    folder : str or PathLike
    recursive : bool, optional
        Also count the files of its sub-folders.

    Returns
    -------
    (str, int) or None
        ``None`` when the folder holds no image file (or cannot be listed).
    """
    try:
        listing = scan_folder(folder, "*", recursive=recursive)
    except OSError:
        return None
    types = Counter(p.suffix.lower() for p in listing.found
                    if p.suffix.lower() in IMAGE_SUFFIXES)
    if not types:
        return None
    suffix, n = types.most_common(1)[0]
    return f"*{suffix}", n
