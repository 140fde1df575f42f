"""Files in and out: reading one image as a 2-D plane, writing any file atomically.

One reader for every front end (the batch, the napari reader, the dock's
folder mode, the gallery's thumbnails): :func:`read_image` picks the decoder
by file type (:mod:`.readers`): TIFF of any compression tifffile reads with
imagecodecs, PNG (8- and 16-bit) and JPEG, OME-Zarr images and plate fields,
and ND2, CZI, LIF through bioio (the ``formats`` extra).

A file holding several scenes (series, positions) gives one image per scene,
named ``FILE#SCENE`` (0-based); a time series gives one image per time point,
named ``FILE#tT`` (``FILE#SCENE_tT`` in a file of several scenes):
:func:`split_image_name` takes such a name apart. A file on disk whose own
name is such a name (``a.ome.tif#1`` beside a two-scene ``a.ome.tif``) makes
the name ambiguous: both are refused, each with an error that says so
(:func:`scene_collision`).

Sizes are checked from headers before decoding: an image needing more than
``max_pixels`` pixels (default :data:`.planes.MAX_PIXELS`, 2**28) is refused
with an error that names ``--max-pixels``.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..detect.detection import as_grayscale_2d
from .planes import PlaneChoice, select_plane
from .readers import ImageInfo, describe, is_zarr_image, read_plane, scene_info

__all__ = ["ImageInfo", "PlaneChoice", "atomic_write", "describe_image", "read_image",
           "scene_collision", "scene_path", "select_plane", "split_image_name", "split_scene"]

#: ``FILE#SCENE``, ``FILE#tT`` or ``FILE#SCENE_tT``
_SCENE = re.compile(r"^(?P<file>.+)#(?:(?P<scene>\d+)(?:_t(?P<t>\d+))?|t(?P<t_only>\d+))$")


def scene_path(path: str | os.PathLike, scene: int | None, t: int | None = None) -> str:
    """The name of one image of a file of several scenes or time points.

    ``FILE#SCENE`` for scene ``scene`` (0-based), ``FILE#tT`` for time point
    ``t`` of a file of one scene (``scene`` ``None``), ``FILE#SCENE_tT`` for
    both.
    """
    name = f"{os.fspath(path)}#"
    if scene is not None:
        name += f"{int(scene)}" + ("" if t is None else "_")
    return name if t is None else f"{name}t{int(t)}"


def split_image_name(path: str | os.PathLike) -> tuple[Path, int | None, int | None]:
    """``(file, scene, t)`` of a name written by :func:`scene_path`; ``(path, None, None)`` else.

    A file whose own name ends in such a suffix is taken as it is.
    """
    p = Path(path)
    m = _SCENE.match(os.fspath(path))
    if m and not p.exists() and Path(m["file"]).exists():
        t = m["t"] or m["t_only"]
        return (Path(m["file"]), None if m["scene"] is None else int(m["scene"]),
                None if t is None else int(t))
    return p, None, None


def split_scene(path: str | os.PathLike) -> tuple[Path, int | None]:
    """``(file, scene)`` of a name written by :func:`scene_path`; ``(path, None)`` otherwise.

    The file of a time point's name too (its time point is left out: see
    :func:`split_image_name`). A file whose own name ends in ``#`` and
    digits is taken as it is.
    """
    return split_image_name(path)[:2]


def scene_collision(path: str | os.PathLike) -> str | None:
    """Why ``path`` is ambiguous, or ``None``: a file named like a scene of another file.

    ``a.ome.tif#1`` names scene 1 of ``a.ome.tif``; when a file of that very
    name also exists, neither can be told from the other.
    """
    m = _SCENE.match(os.fspath(path))
    if not m:
        return None
    literal, base = Path(path), Path(m["file"])
    if not (os.path.lexists(literal) and (base.is_file() or is_zarr_image(base))):
        return None
    scene, t = int(m["scene"] or 0), m["t"] or m["t_only"]
    n_scenes, n_times, _ = scene_info(base)
    if scene >= n_scenes or (t is not None and int(t) >= n_times):
        return None
    what = f"scene {scene}" if t is None else f"time point {t}"
    return (f"the name {literal.name} is both a file and {what} of {base.name}: rename "
            f"the file {literal.name} (a name ending in # and a number is a scene's or a "
            "time point's)")


def _check_exists(p: Path) -> None:
    """Refuse what cannot be an image before opening it (a FIFO would block the reader)."""
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            raise FileNotFoundError("broken symbolic link: its target does not exist") from None
        raise FileNotFoundError("file not found") from None
    if stat.S_ISDIR(st.st_mode):
        return  # an OME-Zarr image or plate field: its reader checks it
    if not stat.S_ISREG(st.st_mode):
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise ValueError(f"not a regular file but {kind}: not read")
    if st.st_size == 0:
        raise ValueError("empty file (0 bytes)")


def read_image(path: str | os.PathLike, *, plane: PlaneChoice | None = None,
               reuse_buffer: bool = False, max_pixels: int | None = None) -> np.ndarray:
    """Read one grayscale image as a 2-D array (any supported format).

    Parameters
    ----------
    path : str or PathLike
        A file, an OME-Zarr image folder (a plate's field), ``FILE#SCENE``
        for one scene of a multi-scene file, ``FILE#tT`` (``FILE#SCENE_tT``)
        for one time point of a time series.
    plane : PlaneChoice, optional
        The channel, z and time choice for multi-channel and RGB files,
        z-stacks and time series; the time point of a ``FILE#tT`` name
        takes the place of its ``t``.
    reuse_buffer : bool, optional
        Read into a per-thread buffer that the next call overwrites (what a
        batch worker wants: no fresh memory, and its page faults, per image).
        Only for callers that are done with the image before the next read.
    max_pixels : int, optional
        The most pixels decoded for this image (height x width, times the
        planes of a projection), checked from the header before decoding;
        default :data:`.planes.MAX_PIXELS` (2**28); 0 for no limit.

    Returns
    -------
    ndarray, shape (H, W)

    Raises
    ------
    FileNotFoundError, ValueError, TypeError
        With a message a biologist can act on.
    """
    p, scene, t = split_image_name(path)
    _check_exists(p)
    collision = scene_collision(path)
    if collision:
        raise ValueError(collision)
    if t is not None:
        plane = replace(plane or PlaneChoice(), t=str(t))
    return as_grayscale_2d(read_plane(p, plane, scene or 0, reuse_buffer, max_pixels))


def describe_image(path: str | os.PathLike) -> ImageInfo:
    """What an image file holds (shape, axes, channel names, scenes), from its header.

    Parameters
    ----------
    path : str or PathLike
        As for :func:`read_image`.

    Returns
    -------
    ImageInfo
        ``.channels``, ``.n_channels``, ``.n_planes``, ``.n_scenes``,
        ``.plane_shape``, ``.dtype``.

    Raises
    ------
    FileNotFoundError, ValueError
    """
    p, _ = split_scene(path)
    _check_exists(p)
    return describe(p)


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **kwargs):
    """Open a temporary file next to ``path``; rename it over ``path`` on success.

    An error (or an interruption) inside the block leaves any previous
    ``path`` untouched and removes the temporary file.

    The temporary file is ``.NAME.XXXXXXXX.part`` in the same folder; for a
    name so long that this would exceed the system's limit on a name, ``NAME``
    is cut short, so that any name the system accepts can be written.

    Parameters
    ----------
    path : str or PathLike
    mode : str, optional
        ``'w'`` (text) or ``'wb'``; other keywords go to :func:`os.fdopen`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".part", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual mode
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


#: bytes a temporary name adds to the name it stands for: ``.`` + ``.XXXXXXXX`` + ``.part``
_TEMPORARY_EXTRA = 1 + 1 + 8 + len(".part")


def _temporary_prefix(path: Path) -> str:
    """``.NAME.`` for :func:`atomic_write`'s temporary file, within the folder's name limit."""
    try:
        limit = os.pathconf(path.parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no such query here: the usual limit
        limit = 255
    if limit is None or limit <= _TEMPORARY_EXTRA:
        limit = 255
    name = os.fsencode(path.name)
    if len(name) + _TEMPORARY_EXTRA > limit:
        # cut at a byte; a character cut in two stays a valid name (fsdecode escapes it)
        name = name[:limit - _TEMPORARY_EXTRA]
    return f".{os.fsdecode(name)}."
