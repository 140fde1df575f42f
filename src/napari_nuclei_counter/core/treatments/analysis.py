"""Percent of control, robust z, Z' per plate, conditions and dose-response per compound."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .layouts import Layout

__all__ = ["Analysis", "analyze"]


@dataclass
class Analysis:
    """The result of :func:`analyze`."""

    wells: pd.DataFrame
    plates: pd.DataFrame
    conditions: pd.DataFrame
    dose_response: pd.DataFrame
    images: pd.DataFrame
    layout: Layout
    controls: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def curve(self, compound: str, n: int = 200):
        """The fitted curve of a compound over its tested range: ``(x, y)``."""
        raise NotImplementedError

    def points(self, compound: str) -> pd.DataFrame:
        """The wells of a compound as drawn: plate, well, concentration, percent of control."""
        raise NotImplementedError


def analyze(images: pd.DataFrame, layout: Layout, *, negative: str | None = None,
            positive: str | None = None, annotations: pd.DataFrame | None = None) -> Analysis:
    """Join a layout to a run's images and analyse the plate(s)."""
    raise NotImplementedError
