"""Which 2-D plane of a multi-channel file, an RGB image, a z-stack or a time series to detect in.

:class:`PlaneChoice` is the user's choice (``--channel``, ``--z``, ``--t``);
:func:`select_plane` applies it to an array whose axes a reader names, and
says in one sentence what to choose when the file holds more than one plane.
Every reader (:mod:`.readers`) uses it, so the choice means the same for
every format.

A reader may hand :func:`select_plane` a lazy array (anything with ``shape``,
``dtype`` and indexing that returns an ndarray: a TIFF's pages, a Zarr array):
the plane is chosen from the shape, the pixels it needs are counted against
:data:`MAX_PIXELS` and only then read, so a z-stack of 2,000 planes decodes one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_PIXELS", "PlaneChoice", "check_pixels", "sample_names", "select_plane"]

#: the most pixels decoded for one image (height x width x planes read), unless a
#: reader is given ``max_pixels``: far above any microscope field (16,384 x 16,384),
#: far below what a lying header can ask for; 0 means no limit
MAX_PIXELS = 2**28

#: the names of an RGB(A) image's samples, for ``--channel blue`` and the dock's channel list
RGB_NAMES = ("red", "green", "blue", "alpha")


def sample_names(n: int) -> tuple[str, ...]:
    """Names of the ``n`` samples of a pixel: red, green, blue (and alpha) for RGB(A), else none."""
    return RGB_NAMES[:n] if n in (3, 4) else ()


def check_pixels(n: int, max_pixels: int | None = None, what: str = "the image") -> None:
    """Refuse to decode ``n`` pixels when they are more than the limit.

    Parameters
    ----------
    n : int
        Pixels that decoding would produce (from the file's header).
    max_pixels : int, optional
        The limit; default :data:`MAX_PIXELS`; 0 means no limit.
    what : str, optional
        What is decoded, for the message.

    Raises
    ------
    ValueError
        One sentence that names the option to raise the limit.
    """
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    if limit > 0 and n > limit:
        raise ValueError(f"{what} has {n:,} pixels to decode, more than the limit of "
                         f"{limit:,}: raise it with --max-pixels (max_pixels= in Python) "
                         "if the file is genuine")


@dataclass(frozen=True)
class PlaneChoice:
    """Which 2-D plane of a multi-dimensional file to detect in.

    Attributes
    ----------
    channel : str or None
        A channel of a multi-channel file: a 0-based index (``'1'``) or a name
        from the OME-XML or ImageJ metadata (case-insensitive); for an RGB(A)
        image, ``'red'``, ``'green'``, ``'blue'`` (``'alpha'``) or 0-3.
    z : str or None
        For a z-stack: ``'max'`` or ``'mean'`` (a projection) or a 0-based
        plane index. A multi-page TIFF without axis metadata is read as a
        z-stack only with a choice here.
    t : str or None
        For a time series: a 0-based time point. A file without a time axis
        (or with one time point) is read as it is.
    """

    channel: str | None = None
    z: str | None = None
    t: str | None = None

    def __post_init__(self) -> None:
        z, t = self.z, self.t
        if z is not None and str(z).lower() not in ("max", "mean") and not str(z).isdigit():
            raise ValueError(f"z must be 'max', 'mean' or a plane index (0, 1, ...), not {z!r}")
        if t is not None and not str(t).isdigit():
            raise ValueError(f"t must be a time point index (0, 1, ...), not {t!r}")

    def as_dict(self) -> dict:
        """For ``run.json`` and the resume key (``t`` only when chosen)."""
        out = {"channel": self.channel, "z": self.z}
        if self.t is not None:
            out["t"] = self.t
        return out


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


def _samples_error(n: int) -> ValueError:
    """What to do with a pixel of ``n`` samples (an RGB(A) image) when no channel is chosen."""
    if n in (3, 4):
        kind = "an RGBA" if n == 4 else "an RGB"
        return ValueError(f"{kind} colour image: choose the channel that holds the nuclei, "
                          f"e.g. --channel blue (red, green, blue or 0-{n - 1}; in the dock, "
                          "its channel list)")
    return ValueError(f"{n} samples per pixel: choose one with --channel 0-{n - 1}")


def select_plane(data, axes: str, choice: PlaneChoice | None = None,
                 names: list[str] | None = None, *, max_pixels: int | None = None
                 ) -> np.ndarray:
    """The 2-D plane of ``data`` that ``choice`` picks.

    Parameters
    ----------
    data : ndarray or lazy array
        An array, or anything with ``shape`` and indexing by a tuple of ints
        and slices that returns an ndarray (only the chosen plane is read).
    axes : str
        tifffile's axes of ``data`` (``'CYX'``, ``'ZCYX'``, ``'IYX'`` for plain pages,
        ``'YXS'`` for RGB, ``'TCZYX'``, ...).
    choice : PlaneChoice, optional
    names : list of str, optional
        Channel names, for choosing by name and for messages.
    max_pixels : int, optional
        The most pixels read (height x width x planes of a projection);
        default :data:`MAX_PIXELS`, 0 for no limit.

    Raises
    ------
    ValueError
        When the file holds several channels, colours, planes or time points
        and nothing (or something unknown) was chosen, or when the plane is larger than
        ``max_pixels``; the message says what to do.
    """
    choice = choice or PlaneChoice()
    names = list(names or [])
    axes = axes.upper()
    shape = tuple(int(n) for n in data.shape)
    if len(axes) != len(shape):
        raise ValueError(f"the file's metadata names the axes {axes!r} for an array of "
                         f"{len(shape)} dimensions")
    index: list = [slice(None)] * len(shape)
    kept = []  # positions of the axes the plane keeps
    for i, a in enumerate(axes):
        if shape[i] == 1 and a not in "YX":
            index[i] = 0
        else:
            kept.append(i)
    c = next((i for i in kept if axes[i] == "C"), None)
    if c is not None:
        n = shape[c]
        if choice.channel is None:
            listed = f" ({', '.join(names[:n])})" if names else ""
            raise ValueError(f"{n} channels{listed}: choose one with --channel")
        index[c] = _channel_index(choice.channel, names, n)
        kept.remove(c)
    s = next((i for i in kept if axes[i] == "S"), None)
    if s is not None:  # the colours of an RGB(A) image: one is the channel (DAPI is blue)
        n = shape[s]
        if choice.channel is None or c is not None:
            raise _samples_error(n)
        index[s] = _channel_index(choice.channel, list(sample_names(n)), n)
        kept.remove(s)
    stack = next((i for a in "ZIQ" for i in kept if axes[i] == a), None)
    project = None
    if stack is not None:
        n = shape[stack]
        if choice.z is None:
            what = (f"a z-stack of {n} planes" if axes[stack] == "Z" else
                    f"{n} pages without axis metadata")
            raise ValueError(f"{what}: choose --z max, --z mean or a plane with --z INDEX")
        z = str(choice.z).lower()
        if z in ("max", "mean"):
            project = z
        elif int(z) < n:
            index[stack] = int(z)
            kept.remove(stack)
        else:
            raise ValueError(f"plane {z} does not exist: {n} planes, numbered from 0")
    t = next((i for i in kept if axes[i] == "T"), None)
    if t is not None:
        n = shape[t]
        if choice.t is None:
            raise ValueError(f"a time series of {n} time points: choose one with --t INDEX")
        if int(choice.t) >= n:
            raise ValueError(f"time point {choice.t} does not exist: {n} time points, "
                             "numbered from 0")
        index[t] = int(choice.t)
        kept.remove(t)
    check_pixels(math.prod(shape[i] for i in kept if axes[i] != "S"), max_pixels)
    out = np.asarray(data[tuple(index)])
    if project is not None:
        k = kept.index(stack)
        out = out.max(axis=k) if project == "max" else out.mean(axis=k)
    return out
