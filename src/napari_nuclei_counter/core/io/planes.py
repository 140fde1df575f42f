"""Which 2-D plane of a multi-channel file or a z-stack to detect in.

:class:`PlaneChoice` is the user's choice (``--channel``, ``--z``);
:func:`select_plane` applies it to an array whose axes a reader names, and
says in one sentence what to choose when the file holds more than one plane.
Every reader (:mod:`.readers`) uses it, so the choice means the same for
every format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PlaneChoice", "select_plane"]


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
