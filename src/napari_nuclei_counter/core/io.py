"""Files in and out: reading one image as a 2-D plane, writing any file atomically.

One reader for every front end: :func:`read_image` picks the decoder by file
type (:data:`READERS`): TIFF of any compression tifffile reads with
imagecodecs (LZW, zstd, deflate with predictor, JPEG, JPEG 2000, tiles,
BigTIFF, either byte order), PNG (8- and 16-bit) and JPEG through
imagecodecs. Each decode uses one thread: batch workers already use every
core.
"""

from __future__ import annotations

import os
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .detection import as_grayscale_2d

__all__ = ["PlaneChoice", "atomic_write", "read_image", "select_plane"]

_read_local = threading.local()


def _reusable(shape: tuple, dtype) -> np.ndarray:
    """A per-thread array reused by successive reads of same-sized images."""
    buf = getattr(_read_local, "buffer", None)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = np.empty(shape, dtype)
        _read_local.buffer = buf
    return buf


@dataclass(frozen=True)
class PlaneChoice:
    """Which 2-D plane of a multi-dimensional file to detect in.

    Attributes
    ----------
    channel : str or None
        A channel of a multi-channel file: a 0-based index (``'1'``) or a name
        from the OME-XML or ImageJ metadata (case-insensitive).
    z : str or None
        For a z-stack: ``'max'`` or ``'mean'`` (a projection) or a 0-based
        plane index. A multi-page TIFF without axis metadata is read as a
        z-stack only with a choice here.
    """

    channel: str | None = None
    z: str | None = None

    def __post_init__(self) -> None:
        z = self.z
        if z is not None and str(z).lower() not in ("max", "mean") and not str(z).isdigit():
            raise ValueError(f"z must be 'max', 'mean' or a plane index (0, 1, ...), not {z!r}")

    def as_dict(self) -> dict:
        """For ``run.json`` and the resume key."""
        return {"channel": self.channel, "z": self.z}


def _channel_names(tf) -> list[str]:
    """Channel names from OME-XML or ImageJ metadata (empty when the file has none)."""
    if tf.is_ome and tf.ome_metadata:
        import xml.etree.ElementTree as ET

        try:
            root = ET.fromstring(tf.ome_metadata)
        except ET.ParseError:
            return []
        image = next((e for e in root.iter() if e.tag.endswith("}Image")), None)
        return [c.get("Name") or "" for c in (image.iter() if image is not None else ())
                if c.tag.endswith("}Channel")]
    if tf.is_imagej and tf.imagej_metadata:
        labels = tf.imagej_metadata.get("Labels")
        if isinstance(labels, (list, tuple)):
            return [str(v) for v in labels]
    return []


def _channel_index(channel: str, names: list[str], n: int) -> int:
    listed = ", ".join(n or "?" for n in names) if names else "no names"
    if str(channel).strip().lstrip("-").isdigit():
        i = int(channel)
        if not 0 <= i < n:
            raise ValueError(f"channel {i} does not exist: {n} channels ({listed}), "
                             f"numbered from 0")
        return i
    wanted = str(channel).strip().casefold()
    for i, name in enumerate(names[:n]):
        if name.casefold() == wanted:
            return i
    raise ValueError(f"no channel named {channel!r}: {n} channels ({listed})")


def select_plane(data: np.ndarray, axes: str, choice: PlaneChoice | None = None,
                 names: list[str] | None = None) -> np.ndarray:
    """The 2-D plane of ``data`` that ``choice`` picks.

    Parameters
    ----------
    data : ndarray
    axes : str
        tifffile's axes of ``data`` (``'CYX'``, ``'ZCYX'``, ``'IYX'`` for plain pages, ...).
    choice : PlaneChoice, optional
    names : list of str, optional
        Channel names, for choosing by name and for messages.

    Raises
    ------
    ValueError
        When the file holds several channels or planes and nothing (or
        something unknown) was chosen; the message says what to do.
    """
    choice = choice or PlaneChoice()
    names = list(names or [])
    axes = axes.upper()
    keep = [i for i, a in enumerate(axes) if data.shape[i] != 1 or a in "YX"]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if "C" in axes:
        k = axes.index("C")
        n = data.shape[k]
        if choice.channel is None:
            listed = f" ({', '.join(names[:n])})" if names else ""
            raise ValueError(f"{n} channels{listed}: choose one with --channel")
        data = np.take(data, _channel_index(choice.channel, names, n), axis=k)
        axes = axes[:k] + axes[k + 1:]
    stack = next((a for a in "ZIQ" if a in axes), None)
    if stack is not None:
        k = axes.index(stack)
        n = data.shape[k]
        if choice.z is None:
            what = (f"a z-stack of {n} planes" if stack == "Z" else
                    f"{n} pages without axis metadata")
            raise ValueError(f"{what}: choose --z max, --z mean or a plane with --z INDEX")
        z = str(choice.z).lower()
        if z == "max":
            data = data.max(axis=k)
        elif z == "mean":
            data = data.mean(axis=k)
        elif int(z) < n:
            data = np.take(data, int(z), axis=k)
        else:
            raise ValueError(f"plane {z} does not exist: {n} planes, numbered from 0")
        axes = axes[:k] + axes[k + 1:]
    if "T" in axes:
        raise ValueError(f"a time series of {data.shape[axes.index('T')]} frames: save the "
                         "frames as separate files")
    return data


def _read_tiff(p: Path, reuse_buffer: bool, choice: PlaneChoice | None) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(p) as tf:
            series = tf.series[0]
            out = _reusable(tuple(series.shape), series.dtype) if reuse_buffer else None
            data = tf.asarray(out=out, maxworkers=1)
            axes = series.axes
            names = _channel_names(tf) if "C" in axes else []
    except Exception as exc:  # tifffile raises many kinds for bad files
        raise ValueError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    return select_plane(data, axes, choice, names)


def _read_codec(kind: str, name: str):
    def read(p: Path, reuse_buffer: bool, choice: PlaneChoice | None) -> np.ndarray:
        import imagecodecs

        decode = getattr(imagecodecs, f"{kind}_decode")
        try:
            return decode(p.read_bytes())
        except Exception as exc:  # a truncated or corrupt file
            raise ValueError(f"not a readable {name} ({type(exc).__name__}: {exc})") from None

    return read


#: decoder by file-name suffix (lower case); anything else is read as a TIFF
READERS = {
    ".png": _read_codec("png", "PNG"),
    ".jpg": _read_codec("jpeg8", "JPEG"),
    ".jpeg": _read_codec("jpeg8", "JPEG"),
}


def read_image(path: str | os.PathLike, *, plane: PlaneChoice | None = None,
               reuse_buffer: bool = False) -> np.ndarray:
    """Read one grayscale image (TIFF, PNG or JPEG) as a 2-D array.

    Parameters
    ----------
    path : str or PathLike
    plane : PlaneChoice, optional
        The channel and z choice for multi-channel files and z-stacks.
    reuse_buffer : bool, optional
        Read into a per-thread buffer that the next call overwrites (what a
        batch worker wants: no fresh memory, and its page faults, per image).
        Only for callers that are done with the image before the next read.

    Returns
    -------
    ndarray, shape (H, W)

    Raises
    ------
    FileNotFoundError, ValueError, TypeError
        With a message a biologist can act on.
    """
    p = Path(path)
    if not p.exists():
        if p.is_symlink():
            raise FileNotFoundError("broken symbolic link: its target does not exist")
        raise FileNotFoundError("file not found")
    if p.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    reader = READERS.get(p.suffix.lower(), _read_tiff)
    return as_grayscale_2d(reader(p, reuse_buffer, plane))


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

    Parameters
    ----------
    path : str or PathLike
    mode : str, optional
        ``'w'`` (text) or ``'wb'``; other keywords go to :func:`os.fdopen`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
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
