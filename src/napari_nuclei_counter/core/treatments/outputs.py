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

import pandas as pd

from ..io.images import atomic_write
from ..results.csvsafe import write_csv
from ..results.integrity import read_run_json, table_entry
from .layouts import LAYOUT_COLUMNS

__all__ = ["OUTPUT_FILES", "DosePanel", "draw_dose_response", "write_outputs"]

#: the files :func:`write_outputs` writes
OUTPUT_FILES = ("wells_annotated.csv", "plates.csv", "conditions.csv", "dose_response.csv",
                "dose_response.png")

#: panels per row of ``dose_response.png``, and the size of one panel in inches
PANEL_COLUMNS = 4
PANEL_SIZE = (3.4, 2.8)


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
    """
    figure.clear()
    table = analysis.dose_response.set_index("compound", drop=False)
    names = list(table.index) if compounds is None else [c for c in compounds if c in table.index]
    if not names:
        figure.text(0.5, 0.5, "no compound to fit", ha="center", va="center")
        return []
    wells = analysis.wells
    negative = wells.loc[wells["control"] == "negative", "percent_of_control"].dropna()
    band = (negative.mean(), negative.std(ddof=1) if len(negative) > 1 else 0.0)
    columns = min(PANEL_COLUMNS, len(names))
    rows = math.ceil(len(names) / columns)
    axes = figure.subplots(rows, columns, squeeze=False)
    panels = []
    for ax, name in zip(axes.flat, names, strict=False):
        row = table.loc[name]
        points = analysis.points(name)
        if len(negative):
            ax.axhspan(band[0] - band[1], band[0] + band[1], color="0.85", zorder=0,
                       label="negative control")
            ax.axhline(band[0], color="0.6", lw=0.8, zorder=0)
        scatter = ax.scatter(points["concentration"], points["percent_of_control"], s=16,
                             color="tab:blue", zorder=3)
        x, y = analysis.curve(name)
        if len(x):
            ax.plot(x, y, color="tab:red", lw=1.5, zorder=2)
        if row["status"] == "fit":
            ax.axvline(row["ic50"], color="tab:red", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.minorticks_off()  # decades only: minor ticks cost most of a big figure's drawing
        ax.set_title(_title(row), fontsize=9)
        ax.text(0.03, 0.04, _status_text(row), transform=ax.transAxes, fontsize=8)
        unit = row["unit"]
        ax.set_xlabel(f"concentration ({unit})" if unit else "concentration", fontsize=8)
        ax.set_ylabel("% of control", fontsize=8)
        ax.tick_params(labelsize=7)
        values = points["percent_of_control"].to_numpy(dtype=float)
        ax.set_ylim(min(0.0, float(values.min(initial=0.0))) - 5,
                    max(110.0, float(values.max(initial=0.0)) + 5))
        panels.append(DosePanel(name, ax, points, scatter))
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    # fixed spacing: a layout engine takes seconds for a screen's hundred panels
    width, height = figure.get_size_inches()
    figure.subplots_adjust(left=0.6 / width, right=1 - 0.15 / width, bottom=0.55 / height,
                           top=1 - 0.45 / height, wspace=0.35, hspace=0.9 * PANEL_SIZE[1] /
                           max(height / rows, 1e-9) if rows > 1 else 0.0)
    return panels


def _write_png(path: Path, analysis) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(len(analysis.dose_response), 1)
    columns = min(PANEL_COLUMNS, n)
    rows = math.ceil(n / columns)
    figure = Figure(figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows))
    FigureCanvasAgg(figure)
    draw_dose_response(figure, analysis)
    with atomic_write(path, "wb") as fh:
        figure.savefig(fh, format="png", dpi=100)


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
