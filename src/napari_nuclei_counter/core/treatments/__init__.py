"""Treatments: from counts per well to percent of control, Z' and dose-response curves.

A plate layout (:mod:`.layouts`) says which compound, at which concentration,
each well received; :func:`~.analysis.analyze` joins it to a run's images and
normalises each well to its plate's negative controls, judges each plate by
Z', sums up each condition and fits a four-parameter log-logistic curve per
compound (:mod:`.dose_response`); :mod:`.outputs` writes the tables and the
curves. No Qt, no napari: the command line's ``analyze`` and the napari
Treatments panel call the same functions.
"""

from .analysis import Analysis, analyze
from .layouts import Layout, LayoutError, read_annotations, read_layout
from .outputs import DosePanel, draw_dose_response, write_outputs

__all__ = ["Analysis", "DosePanel", "Layout", "LayoutError", "analyze", "draw_dose_response",
           "read_annotations", "read_layout", "write_outputs"]
