"""The Treatments tab's state, without Qt: a plate layout, its controls and the analysis.

:class:`TreatmentsModel` is a :func:`psygnal.evented` dataclass, like the
detector's model: setting a field emits ``model.events.<field>(new, old)``.
One model per viewer (:func:`~napari_nuclei_counter.gui.registry.treatments_for`)
is shared by the Treatments tab (which loads the layout and runs the
analysis), the plate map (which colours wells by compound, concentration or
percent of control) and the gallery (which filters by compound). The numbers
are the core's (:mod:`napari_nuclei_counter.core.treatments`); this model
only says which image belongs to which well and treatment, in the names the
views use: plates and wells as the results store has them, image indices of
the store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd
from psygnal import evented

from ...core.io.discovery import natural_key
from ...core.results.store import ResultsStore
from ...core.results.tables import ImageResult, images_table
from ...core.results.wells import well_position
from ...core.treatments import Analysis, Layout, LayoutError, analyze, read_layout

__all__ = ["TREATMENT_COLUMNS", "TreatmentsModel", "format_concentration", "run_analysis",
           "summary"]

#: what a well's treatment is told by (the plate map's tooltip and colours)
TREATMENT_COLUMNS = ("compound", "concentration", "unit", "control")


def format_concentration(concentration: float, unit: str = "") -> str:
    """``'0.3 µM'``; ``''`` for no concentration."""
    if concentration is None or not np.isfinite(concentration):
        return ""
    return f"{concentration:g} {unit}".strip()


def run_analysis(results: list[ImageResult], layout: Layout, negative: str,
                 positive: str) -> tuple[Analysis | None, str, tuple]:
    """The core's analysis of a snapshot of results (any thread).

    Parameters
    ----------
    results : list of ImageResult
        In image order (``ResultsStore.ordered()``).
    layout : Layout
    negative, positive : str
        The controls (``''``: the core's defaults).

    Returns
    -------
    analysis : Analysis or None
        ``None`` when the layout does not fit the results.
    error : str
        Why, in one sentence (``''`` with an analysis).
    key : tuple
        ``(layout, negative, positive)`` it was computed for.
    """
    key = (layout, negative, positive)
    images = images_table(results)
    images.index = pd.Index([r.index for r in results])  # image indices of the store
    try:
        analysis = analyze(images, layout, negative=negative or None, positive=positive or None)
    except LayoutError as exc:
        return None, str(exc), key
    return analysis, "", key


def summary(analysis: Analysis) -> str:
    """One line per plate: its Z′ and verdict; then the compounds' fits."""
    lines = []
    for row in analysis.plates.to_dict("records"):
        z = row["z_prime"]
        name = f"plate {row['plate']}" if row["plate"] else "plate"
        if np.isfinite(z):
            lines.append(f"{name}: Z′ {z:.2f} ({row['verdict']}), "
                         f"{row['n_negative']} negative and {row['n_positive']} positive "
                         f"control wells")
        else:
            lines.append(f"{name}: no Z′ ({row['n_negative']} negative, "
                         f"{row['n_positive']} positive control wells)")
    status = analysis.dose_response["status"] if len(analysis.dose_response) else pd.Series()
    if len(status):
        fitted = int((status == "fit").sum())
        flat = int((status == "no_effect").sum())
        out = int(status.isin(["ic50_above_range", "ic50_below_range"]).sum())
        failed = int((status == "failed").sum())
        line = f"{fitted} fitted, {flat} without effect, {out} IC50 out of range"
        lines.append(line + (f", {failed} failed" if failed else ""))
    lines.extend(analysis.warnings)
    return "\n".join(lines)


def _basename(label: str) -> str:
    """File name of an image label (a path, or ``FILE#SCENE``)."""
    return PurePath(str(label).split("#", 1)[0]).name


@evented
@dataclass(eq=False)
class TreatmentsModel:
    """A plate layout, its controls, and the analysis of the store's results.

    Attributes
    ----------
    store : ResultsStore
        The results analysed.
    layout : Layout or None
        The layout loaded (:meth:`load_layout`).
    negative, positive : str
        The negative and positive controls: a compound name, for the positive
        one ``NAME@CONCENTRATION`` too; ``''``: the core's defaults (a
        ``control`` column, or a compound named DMSO).
    analysis : Analysis or None
        The analysis of the store's results with :attr:`layout` and these
        controls; ``None`` before a run, while one goes on, or when the
        layout does not fit (then :attr:`error` says why).
    error : str
        Why the layout could not be read or used (``''``: no problem).
    compound : str or None
        The compound the gallery shows (``None``: all).
    """

    store: ResultsStore = field(default_factory=ResultsStore, repr=False)
    layout: Layout | None = None
    negative: str = ""
    positive: str = ""
    analysis: Any = None
    error: str = ""
    compound: str | None = None

    # ------------------------------------------------------------ changing
    def load_layout(self, path: str | os.PathLike) -> Layout | None:
        """Read a layout file (:func:`~napari_nuclei_counter.core.treatments.read_layout`).

        Returns
        -------
        Layout or None
            ``None`` when it cannot be read; :attr:`error` then says why and
            the previous layout stays.
        """
        try:
            layout = read_layout(Path(path))
        except (LayoutError, OSError) as exc:
            self.error = str(exc) or f"Could not read {Path(path).name}."
            return None
        self.error = ""
        self.analysis = None
        self.compound = None
        self.layout = layout
        return layout

    def clear_layout(self) -> None:
        """Forget the layout and its analysis."""
        self.analysis = None
        self.compound = None
        self.error = ""
        self.layout = None

    def snapshot(self) -> tuple:
        """Arguments of :func:`run_analysis` for the store's results now (GUI thread)."""
        return self.store.ordered(), self.layout, self.negative, self.positive

    def set_analysis(self, outcome: tuple[Analysis | None, str, tuple]) -> bool:
        """Take :func:`run_analysis`'s outcome, unless the layout or a control changed since.

        Returns
        -------
        bool
            Whether it was taken.
        """
        analysis, error, key = outcome
        if key[0] is not self.layout or key[1:] != (self.negative, self.positive):
            return False
        self.error = error
        self.analysis = analysis
        if self.compound not in self.compounds():
            self.compound = None
        return True

    # ------------------------------------------------------------- reading
    def compounds(self) -> list[str]:
        """The compounds of the layout (controls included), in natural order ignoring case,
        the order of the curves."""
        if self.layout is None:
            return []
        names = set(self.layout.wells["compound"].astype(str)) - {""}
        return sorted(names, key=natural_key)

    def image_rows(self) -> dict[int, dict]:
        """Each image's well and treatment: ``index -> {'plate', 'well', 'compound', ...}``.

        From the analysis when there is one (its plates and wells, which a
        per-image layout may have given); otherwise from the layout joined to
        the store's images by file name (per-image layouts) or by plate and
        well.
        """
        if self.analysis is not None:
            images = self.analysis.images
            columns = ["plate", "well", *TREATMENT_COLUMNS]
            return {int(i): row for i, row in zip(images.index, images[columns].to_dict("records"),
                                                  strict=True)}
        if self.layout is None:
            return {}
        wells = self.layout.wells
        by_well = {(str(r["plate"]), well_position(r["well"])): r
                   for r in wells[["plate", "well", *TREATMENT_COLUMNS]].to_dict("records")}
        files = self.layout.files
        by_file = ({} if files is None else
                   {str(f): (str(p), str(w)) for f, p, w in
                    zip(files["file"], files["plate"], files["well"], strict=True)})
        out = {}
        for i, (label, meta) in enumerate(zip(self.store.labels, self.store.meta, strict=True)):
            plate, well = by_file.get(_basename(label), (meta.plate, meta.well))
            pos = well_position(well)
            row = by_well.get((plate, pos)) or by_well.get(("", pos))
            if row is not None:
                out[i] = {**row, "plate": plate, "well": well}
        return out

    def well_rows(self, plate: str) -> dict[tuple[int, int], dict]:
        """Treatment (and analysis) rows of the wells of a plate as the plate map shows it.

        Parameters
        ----------
        plate : str
            A plate of the store's images (as named from the files), or of
            the layout when the store has no images.

        Returns
        -------
        dict
            ``(row, col) -> {'compound', 'concentration', 'unit', 'control'}``
            with ``percent_of_control`` and the well's numbers when analysed.
        """
        out: dict[tuple[int, int], dict] = {}
        if self.layout is None:
            return out
        if not self.store.labels:  # before a run: the layout's own plates
            rows = self.layout.wells
            for r in rows[rows["plate"].astype(str).isin([plate, ""])].to_dict("records"):
                pos = well_position(r["well"])
                if pos is not None and (pos not in out or r["plate"] == plate):
                    out[pos] = r
            return out
        analysed = {}
        if self.analysis is not None:
            wells = self.analysis.wells
            analysed = {(str(r["plate"]), well_position(r["well"])): r
                        for r in wells.to_dict("records")}
        for i, row in self.image_rows().items():
            meta = self.store.meta[i]
            pos = well_position(meta.well)
            if meta.plate != plate or pos is None:
                continue
            out[pos] = analysed.get((str(row["plate"]), well_position(row["well"])), row)
        return out

    def layout_plates(self) -> list[str]:
        """The plates the layout names, in its order (``''``: every plate)."""
        if self.layout is None:
            return []
        return list(dict.fromkeys(self.layout.wells["plate"].astype(str)))

    def images_of_compound(self, compound: str) -> set[int]:
        """Indices of the store's images whose well received ``compound``."""
        return {i for i, row in self.image_rows().items() if row["compound"] == compound}

    def images_of_well(self, plate: str, well: str) -> list[int]:
        """Indices of the store's images of a well, as the analysis names plates and wells."""
        pos = well_position(well)
        return sorted(i for i, row in self.image_rows().items()
                      if str(row["plate"]) == str(plate) and well_position(row["well"]) == pos)
