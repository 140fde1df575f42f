"""The analysis' files: four CSV tables and dose_response.png."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = ["DosePanel", "draw_dose_response", "write_outputs"]


@dataclass
class DosePanel:
    """One compound's panel of a dose-response figure."""

    compound: str
    axes: object
    points: pd.DataFrame
    scatter: object


def draw_dose_response(figure, analysis, compounds=None) -> list[DosePanel]:
    """Draw one panel per compound into a matplotlib Figure."""
    raise NotImplementedError


def write_outputs(analysis, out, *, run_json=None) -> dict[str, Path]:
    """Write the analysis' tables and figure into ``out``."""
    raise NotImplementedError
