"""Plate layouts: which compound, at which concentration, each well received."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = ["Layout", "LayoutError", "read_annotations", "read_layout"]


class LayoutError(ValueError):
    """A layout that cannot be used, in one sentence for the user."""


@dataclass(frozen=True)
class Layout:
    """A plate layout read from a file (see :func:`read_layout`)."""

    path: Path
    kind: str
    sha256: str
    wells: pd.DataFrame
    files: pd.DataFrame | None = None
    extras: tuple[str, ...] = ()


def read_layout(path) -> Layout:
    """Read a plate layout file."""
    raise NotImplementedError


def read_annotations(path) -> pd.DataFrame:
    """Read a table of annotations per compound (and concentration)."""
    raise NotImplementedError
