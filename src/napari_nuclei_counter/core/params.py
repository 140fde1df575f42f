"""Detection parameters: one frozen, validated, picklable value object."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from dataclasses import asdict, dataclass, fields
from numbers import Integral, Real
from typing import Any

__all__ = ["BBBC021_PRESET", "PRESET_MAX_BYTES", "DetectionParams", "read_preset"]

#: the largest preset file read (a preset is a few lines of JSON)
PRESET_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class DetectionParams:
    """The three numbers that define a detection.

    Parameters
    ----------
    sigma : float
        Standard deviation of the Gaussian blur, in pixels. Must be > 0.
        Roughly a quarter of a nucleus diameter works well.
    min_distance : int
        Minimum distance between two nuclei centres, in pixels (Chebyshev
        distance: the larger of the row and column offsets). Also the width
        of the image border in which no centre is reported. Integer >= 1.
    threshold_abs : float
        A centre must be strictly brighter than this after smoothing, in the
        image's own intensity units (e.g. 0-65535 for 16-bit images). Finite.
    threshold_method : {None, 'otsu', 'li', 'triangle'}
        When set, each image gets its own threshold, computed by this method
        on the smoothed image (``threshold_abs`` is then not used). Left out
        of :meth:`to_dict` when ``None``, so fixed-threshold parameters keep
        their JSON and :meth:`digest`.

    Raises
    ------
    ValueError
        If a value is out of range; the message names the parameter.
    TypeError
        If a value has the wrong type (e.g. a string).

    Examples
    --------
    >>> p = DetectionParams(sigma=4, min_distance=6, threshold_abs=1000)
    >>> DetectionParams.from_json(p.to_json()) == p
    True
    """

    sigma: float = 4.0
    min_distance: int = 6
    threshold_abs: float = 1000.0
    threshold_method: str | None = None

    def __post_init__(self) -> None:
        sigma = _as_real("sigma", self.sigma)
        if not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma must be a finite number of pixels > 0, got {self.sigma!r}")
        md = self.min_distance
        if isinstance(md, bool) or not isinstance(md, Real):
            raise TypeError(f"min_distance must be an integer number of pixels, got {md!r}")
        if not isinstance(md, Integral):
            if not math.isfinite(md) or md != int(md):
                raise ValueError(f"min_distance must be a whole number of pixels, got {md!r}")
        md = int(md)
        if md < 1:
            raise ValueError(f"min_distance must be >= 1 pixel, got {self.min_distance!r}")
        thr = _as_real("threshold_abs", self.threshold_abs)
        if not math.isfinite(thr):
            raise ValueError(f"threshold_abs must be a finite intensity, got {self.threshold_abs!r}")
        method = self.threshold_method
        if method is not None:
            if not isinstance(method, str) or method.lower() not in _AUTO:
                raise ValueError(f"threshold_method must be one of {', '.join(_AUTO)} (or None), "
                                 f"got {method!r}")
            object.__setattr__(self, "threshold_method", method.lower())
        # normalise types so that equal parameters compare and hash equal
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "min_distance", md)
        object.__setattr__(self, "threshold_abs", thr)

    # -- serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as a plain ``dict`` (``threshold_method`` only when set)."""
        data = asdict(self)
        if data["threshold_method"] is None:
            del data["threshold_method"]
        return data

    def to_json(self) -> str:
        """Return the parameters as a JSON object string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectionParams:
        """Build parameters from a mapping; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> DetectionParams:
        """Parse parameters from a JSON object string.

        Raises
        ------
        ValueError
            For text that is not JSON, JSON nested too deep to parse, or not
            an object of known parameters.
        """
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("the JSON is nested too deep to be parameters") from None
        if not isinstance(data, dict):
            raise ValueError("parameters JSON must be an object")
        return cls.from_dict(data)

    def digest(self) -> str:
        """Return a short stable hash of the parameters (for caches and resume)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def read_preset(path: str | os.PathLike) -> DetectionParams:
    """Read a preset file (the dock's Save preset, or ``tune``'s ``preset.json``).

    Only a regular file is read, and at most :data:`PRESET_MAX_BYTES` of it:
    a FIFO, a device such as ``/dev/zero`` or a huge file is refused at once
    instead of hanging or filling the memory.

    Raises
    ------
    OSError
        When the file cannot be opened.
    ValueError
        When it is not a regular file, is too large, or does not hold
        parameters (the message says which).
    """
    # O_NONBLOCK: opening a FIFO does not wait for a writer (it is refused next)
    fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        chunks, size = [], 0
        while size <= PRESET_MAX_BYTES and (block := os.read(fd, PRESET_MAX_BYTES + 1 - size)):
            chunks.append(block)
            size += len(block)
    finally:
        os.close(fd)
    if size > PRESET_MAX_BYTES:
        raise ValueError(f"larger than {PRESET_MAX_BYTES // 1024} KiB, too large for a preset")
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    return DetectionParams.from_json(text)


#: the automatic threshold methods (core.thresholds.AUTO_THRESHOLDS; no import: params is the base)
_AUTO = ("otsu", "li", "triangle")


def _as_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


#: Parameters that fit BBBC021 (MCF7, 20x, 1024x1280 uint16): the defaults.
BBBC021_PRESET = DetectionParams(sigma=4.0, min_distance=6, threshold_abs=1000.0)
