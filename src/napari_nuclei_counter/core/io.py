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
from pathlib import Path

import numpy as np

from .detection import as_grayscale_2d

__all__ = ["atomic_write", "read_image"]

_read_local = threading.local()


def _reusable(shape: tuple, dtype) -> np.ndarray:
    """A per-thread array reused by successive reads of same-sized images."""
    buf = getattr(_read_local, "buffer", None)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = np.empty(shape, dtype)
        _read_local.buffer = buf
    return buf


def _read_tiff(p: Path, reuse_buffer: bool) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(p) as tf:
            series = tf.series[0]
            out = _reusable(tuple(series.shape), series.dtype) if reuse_buffer else None
            return tf.asarray(out=out, maxworkers=1)
    except Exception as exc:  # tifffile raises many kinds for bad files
        raise ValueError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None


def _read_codec(kind: str, name: str):
    def read(p: Path, reuse_buffer: bool) -> np.ndarray:
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


def read_image(path: str | os.PathLike, *, reuse_buffer: bool = False) -> np.ndarray:
    """Read one grayscale image (TIFF, PNG or JPEG) as a 2-D array.

    Parameters
    ----------
    path : str or PathLike
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
    return as_grayscale_2d(reader(p, reuse_buffer))


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
