"""The analysis' files: four CSV tables, ``dose_response.png`` and its entry in ``run.json``.

Tables go through the project's one CSV writer
(:func:`~napari_nuclei_counter.core.results.csvsafe.write_csv`: atomic,
text cells from outside escaped for spreadsheets); the figure is drawn with
matplotlib's object API (:class:`~matplotlib.figure.Figure` on the Agg
canvas, no pyplot state), so the napari panel draws the same panels into
its own Qt canvas with :func:`draw_dose_response`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import NullLocator

from ..io.images import atomic_write
from ..results.csvsafe import write_csv
from ..results.integrity import read_run_json, table_entry
from .layouts import LAYOUT_COLUMNS

__all__ = ["OUTPUT_FILES", "DosePanel", "draw_dose_response", "write_outputs"]

#: the files :func:`write_outputs` writes
OUTPUT_FILES = ("wells_annotated.csv", "plates.csv", "conditions.csv", "dose_response.csv",
                "dose_response.png")

#: panels per row of ``dose_response.png``, the size of one panel in inches and its dots per inch
PANEL_COLUMNS = 4
PANEL_SIZE = (3.4, 2.8)
DPI = 100

#: height of ``dose_response.png``'s caption, in inches
CAPTION = 0.35

#: room around each panel's axes, in inches: tick labels and axis labels, the title (two lines)
MARGINS = {"left": 0.6, "right": 0.15, "top": 0.45, "bottom": 0.5}


@dataclass
class DosePanel:
    """One compound's panel of a dose-response figure.

    Attributes
    ----------
    compound : str
    axes : matplotlib.axes.Axes
    points : pandas.DataFrame
        The wells drawn (:meth:`~.analysis.Analysis.points`), in the
        order of ``scatter``'s points.
    scatter : matplotlib.collections.PathCollection
        The wells' points: ``scatter.set_picker(5)``, then a pick event's
        ``ind`` are rows of ``points``.
    """

    compound: str
    axes: object
    points: pd.DataFrame
    scatter: object


def _title(row: pd.Series) -> str:
    moa = row.get("moa", "")
    return f"{row['compound']}\n{moa}" if isinstance(moa, str) and moa else str(row["compound"])


def _status_text(row: pd.Series) -> str:
    status = row["status"]
    if status in ("fit", "ic50_above_range", "ic50_below_range"):
        return f"IC50 {row['ic50_text']} {row['unit']}".rstrip()
    if status == "no_effect":
        return f"no effect (p = {row['p_value']:.2g})"
    return "fit failed"


def draw_dose_response(figure, analysis, compounds=None) -> list[DosePanel]:
    """Draw one panel per compound into a matplotlib Figure (cleared first).

    Each panel shows the compound's wells as points (percent of control
    against concentration, log axis), the fitted curve, the IC50 (a dashed
    line when it is within the tested concentrations, else ``> max`` or
    ``< min`` in words), the negative-control band (the negative wells'
    mean percent of control +- one SD over every plate), and the compound
    with its mechanism when the annotations give one (``moa``).

    The panels are laid out :data:`PANEL_COLUMNS` to a row with fixed
    margins in inches (no layout engine), with ticks at whole decades and
    every 50% (no tick search per panel).

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        E.g. a new ``Figure()`` or the figure of a Qt canvas.
    analysis : Analysis
    compounds : sequence of str, optional
        Which compounds, in this order; every compound of
        ``analysis.dose_response`` when not given.

    Returns
    -------
    list of DosePanel
        One per compound drawn, in order; the figure has no other axes.
    """
    figure.clear()
    layout = _Layout(figure, analysis, compounds)
    panels = []
    for k, name in enumerate(layout.names):
        ax = figure.add_subplot(layout.grid[k // layout.columns, k % layout.columns])
        artists = _PanelArtists(ax, layout.band, labelleft=True, ylabel=True)
        points = artists.show(layout, name)
        panels.append(DosePanel(name, ax, points, artists.scatter))
    return panels


class _Layout:
    """What every panel of a figure shares: the compounds, their grid, the band, the scales.

    Without a compound to draw, says so in the figure; :attr:`names` is
    then empty. With a ``caption`` (inches), a line at the top of the figure
    names the axes (and the unit when every compound has the same one), the
    band and the dashed line; the panels then have no axis labels of their
    own (a compound whose unit differs from the others keeps its x label)
    and share one percent scale, numbered on the first column. Every label
    costs about a millisecond of drawing: a screen's hundred panels draw in
    far less time.
    """

    def __init__(self, figure, analysis, compounds, caption: float = 0.0):
        self.analysis, self.caption = analysis, caption
        self.table = analysis.dose_response.set_index("compound", drop=False)
        table = self.table
        self.names = (list(table.index) if compounds is None
                      else [c for c in compounds if c in table.index])
        if not self.names:
            figure.text(0.5, 0.5, "no compound to fit", ha="center", va="center")
            return
        wells = analysis.wells
        negative = wells.loc[wells["control"] == "negative", "percent_of_control"].dropna()
        self.band = ((negative.mean(), negative.std(ddof=1) if len(negative) > 1 else 0.0)
                     if len(negative) else None)
        units = set(table.loc[self.names, "unit"])
        self.common = units.pop() if caption and len(units) == 1 else None
        if caption:
            width, height = figure.get_size_inches()
            concentration = f"concentration ({self.common})" if self.common else "concentration"
            figure.text(MARGINS["left"] / width, 1 - 0.15 / height,
                        f"% of control against {concentration}, log scale: wells (points), "
                        "fitted curve (red), IC50 (dashed)"
                        + (", negative control mean +- SD (grey band)" if len(negative) else ""),
                        fontsize=9, va="top")
        self.columns = min(PANEL_COLUMNS, len(self.names))
        rows = math.ceil(len(self.names) / self.columns)
        self.grid = figure.add_gridspec(rows, self.columns,
                                        **_margins(figure, self.columns, rows, caption))
        self.points = analysis.all_points()
        self.shared = None
        if caption:  # one percent scale for all: its numbers on the first column only
            values = pd.concat([self.points[c]["percent_of_control"] for c in self.names
                                if c in self.points])
            self.shared = _percent_range(values.to_numpy(dtype=float))


class _PanelArtists:
    """One panel's artists in ``ax``, shown for a compound by :meth:`show` (again and again).

    The band (``(mean, sd)`` of the negative controls, or None) is the same
    for every compound; the curve and the IC50 line are made when a
    compound first needs them and hidden for one that has none.
    """

    def __init__(self, ax, band, *, labelleft: bool, ylabel: bool):
        self.axes = ax
        # before the ticks are made: each is made with these
        ax.tick_params(labelsize=7, labelleft=labelleft)
        ax.set_xscale("log")
        ax.set_autoscale_on(False)  # limits are set for each compound: no autoscaling
        if band is not None:
            ax.axhspan(band[0] - band[1], band[0] + band[1], color="0.85", zorder=0,
                       label="negative control")
            ax.axhline(band[0], color="0.6", lw=0.8, zorder=0)
        self.scatter = ax.scatter([], [], s=16, color="tab:blue", zorder=3)
        self.status = ax.text(0.03, 0.04, "", transform=ax.transAxes, fontsize=8)
        self.curve = self.ic50 = None
        if ylabel:
            ax.set_ylabel("% of control", fontsize=8)

    def show(self, layout: _Layout, name: str) -> pd.DataFrame:
        """Show compound ``name`` of ``layout``; returns its wells (the scatter's points)."""
        ax, analysis = self.axes, layout.analysis
        row = layout.table.loc[name]
        points = layout.points.get(name)
        if points is None:  # no well above 0: the table's columns, no row
            points = analysis.points(name)
        concentration = points["concentration"].to_numpy(dtype=float)
        values = points["percent_of_control"].to_numpy(dtype=float)
        _log_ticks(ax, concentration)
        _percent_ticks(ax, *(layout.shared or _percent_range(values)))
        self.scatter.set_offsets(np.column_stack([concentration, values]))
        x, y = analysis.curve(name)
        if len(x) and self.curve is None:
            self.curve, = ax.plot(x, y, color="tab:red", lw=1.5, zorder=2)
        if self.curve is not None:
            self.curve.set_data(x, y)
            self.curve.set_visible(bool(len(x)))
        fit = row["status"] == "fit"
        if fit and self.ic50 is None:
            self.ic50 = ax.axvline(row["ic50"], color="tab:red", ls="--", lw=0.8)
        if self.ic50 is not None:
            self.ic50.set_xdata([row["ic50"]] * 2)
            self.ic50.set_visible(fit)
        ax.set_title(_title(row), fontsize=9, y=1.0)  # a fixed place: no search for room
        self.status.set_text(_status_text(row))
        unit = row["unit"]
        label = f"concentration ({unit})" if unit else "concentration"
        ax.set_xlabel("" if layout.caption and unit == layout.common else label, fontsize=8)
        return points


def _margins(figure, columns: int, rows: int, caption: float = 0.0) -> dict:
    """Grid spacing for :data:`MARGINS` (inches) around panels filling ``figure``
    below a caption ``caption`` inches high."""
    width, height = figure.get_size_inches()
    left, right, top, bottom = (MARGINS[side] for side in ("left", "right", "top", "bottom"))
    panel_w = max((width - columns * (left + right)) / columns, 1e-3)
    panel_h = max((height - caption - rows * (top + bottom)) / rows, 1e-3)
    return dict(left=left / width, right=1 - right / width, top=1 - (top + caption) / height,
                bottom=bottom / height, wspace=(left + right) / panel_w,
                hspace=(top + bottom) / panel_h)


def _log_ticks(ax, x: np.ndarray) -> None:
    """Limits a twentieth of the decades tested beyond the concentrations; ticks at decades.

    Without a concentration above 0: 0.1 to 10.
    """
    x = x[np.isfinite(x) & (x > 0)]
    if not len(x):
        x = np.array([0.1, 10.0])
    lo, hi = np.log10(x.min()), np.log10(x.max())
    pad = max(0.05 * (hi - lo), 0.25)
    lo, hi = lo - pad, hi + pad
    ticks = 10.0 ** np.arange(math.ceil(lo), math.floor(hi) + 1)
    if len(ticks) < 2:  # less than a decade: its ends
        ticks = np.array([x.min(), x.max()]) if x.max() > x.min() else x[:1]
    ax.set_xlim(10.0 ** lo, 10.0 ** hi)
    ax.set_autoscalex_on(False)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


def _percent_range(values: np.ndarray) -> tuple[float, float]:
    """Limits of a percent axis: 0 to 110% at least, 5% beyond the values."""
    return (min(0.0, float(values.min(initial=0.0))) - 5,
            max(110.0, float(values.max(initial=0.0))) + 5)


def _percent_ticks(ax, low: float, high: float) -> None:
    """Limits ``low`` to ``high``; ticks every 50% (every 100% beyond 250%)."""
    step = 50.0 if high - low <= 250 else 100.0
    ticks = np.arange(math.ceil(low / step), math.floor(high / step) + 1) * step
    ax.set_ylim(low, high)
    ax.set_autoscaley_on(False)
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])


def _write_png(path: Path, analysis) -> None:
    """``dose_response.png``: the panels of :func:`draw_dose_response` under a caption.

    Two Axes (the first column's, which numbers the percent scale, and the
    others') are shown for each compound in turn, moved to its place in the
    grid and drawn onto the Agg canvas the caption is drawn on: a hundred
    panels cost two Axes' making (about 20 ms each) and the drawing.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    n = max(len(analysis.dose_response), 1)
    columns = min(PANEL_COLUMNS, n)
    rows = math.ceil(n / columns)
    figure = Figure(figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + CAPTION), dpi=DPI)
    canvas = FigureCanvasAgg(figure)
    layout = _Layout(figure, analysis, None, CAPTION)
    canvas.draw()  # the background and the caption
    renderer = canvas.get_renderer()
    for left in (True, False):  # the first column numbers the percent scale, the others not
        names = [(k, name) for k, name in enumerate(layout.names)
                 if (k % layout.columns == 0) == left]
        if not names:
            continue
        ax = figure.add_axes((0, 0, 1, 1))
        artists = _PanelArtists(ax, layout.band, labelleft=left, ylabel=False)
        for k, name in names:
            artists.show(layout, name)
            ax.set_position(layout.grid[k // layout.columns, k % layout.columns]
                            .get_position(figure))
            ax.draw(renderer)
    image = Image.fromarray(np.asarray(renderer.buffer_rgba()))
    with atomic_write(path, "wb") as fh:  # the fastest zlib level: a third of the time
        image.save(fh, format="png", compress_level=1, dpi=(DPI, DPI))


def _text_columns(table: pd.DataFrame, extras) -> list[str]:
    """Columns whose cells come from outside (names, extras): escaped in the CSV file."""
    return [c for c in ("plate", "well", "compound", "unit", *extras) if c in table]


def write_outputs(analysis, out, *, results=None) -> dict[str, Path]:
    """Write the analysis' tables and figure into ``out``; record them in ``out/run.json``.

    Files (atomic, text cells escaped as in the other tables):
    ``wells_annotated.csv`` (the wells the layout names), ``plates.csv``,
    ``conditions.csv``, ``dose_response.csv`` (``ic50`` says ``> max`` or
    ``< min`` for a midpoint beyond the tested concentrations) and
    ``dose_response.png``. ``run.json`` gets an ``analysis`` entry: the
    layout's file name, kind and SHA-256, the controls, the warnings and
    each table's rows, bytes and SHA-256; a ``run.json`` already there (a
    results folder) keeps everything else, otherwise one is made.

    Parameters
    ----------
    analysis : Analysis
    out : path-like
        The folder (created if missing).
    results : path-like, optional
        The results folder analysed, recorded when it is not ``out``.

    Returns
    -------
    dict
        File name -> path written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    layout = analysis.layout
    extras = [c for c in analysis.wells.columns
              if c not in ("mean", "std", "total", "images", "timepoint", "concentration",
                           "percent_of_control", "robust_z", "in_layout", *LAYOUT_COLUMNS)]
    wells = analysis.wells[analysis.wells["in_layout"]].drop(columns="in_layout")
    dose = analysis.dose_response.copy()
    bounded = dose["status"].isin(["ic50_above_range", "ic50_below_range"])
    dose["ic50"] = dose["ic50"].astype(object).where(~bounded, dose["ic50_text"])
    dose = dose.drop(columns="ic50_text")
    tables = {"wells_annotated.csv": (wells, _text_columns(wells, extras)),
              "plates.csv": (analysis.plates, ["plate"]),
              "conditions.csv": (analysis.conditions, _text_columns(analysis.conditions, extras)),
              "dose_response.csv": (dose, [*_text_columns(dose, extras), "message"])}
    written, entries = {}, {}
    for name, (table, text) in tables.items():
        write_csv(out / name, table, text=text)
        entries[name] = table_entry(out / name, len(table))
        written[name] = out / name
    _write_png(out / "dose_response.png", analysis)
    written["dose_response.png"] = out / "dose_response.png"
    entries["dose_response.png"] = table_entry(out / "dose_response.png", len(dose))
    entry = {"layout": {"file": layout.path.name, "kind": layout.kind, "sha256": layout.sha256},
             "controls": analysis.controls, "warnings": analysis.warnings, "tables": entries}
    if results is not None and Path(results).resolve() != out.resolve():
        entry["results"] = str(Path(results))
    run_path = out / "run.json"
    run = read_run_json(run_path) if run_path.exists() else {}
    run["analysis"] = entry
    with atomic_write(run_path, encoding="utf-8") as fh:
        json.dump(run, fh, indent=2, default=str)
    return written
