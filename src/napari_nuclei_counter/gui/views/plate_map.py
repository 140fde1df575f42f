"""The "Plate map" dock: the plate's wells coloured by their nuclei count or their treatment.

The map (:class:`~.plate_canvas.PlateCanvas`) is painted from the per-well
table of a :class:`~napari_nuclei_counter.core.results.store.ResultsStore` (the one it
is given, or the viewer's, :func:`~napari_nuclei_counter.gui.registry.store_for`):
:func:`~napari_nuclei_counter.core.results.wells.well_table`, laid out by
:func:`~napari_nuclei_counter.core.results.wells.plate_map_values`, recomputed in a
background thread while results stream in. Hovering a well tells its numbers;
clicking one selects it (the gallery shows its images) and moves the viewer
to its first image; clicking beside the wells clears the selection. "Export
PNG…" writes :func:`~napari_nuclei_counter.core.render.pictures.render_plate_map`, the
renderer of the command line's plate maps, in a background thread.

Once a plate layout is loaded (the detector's *Treatments* tab, shared
through :class:`~napari_nuclei_counter.gui.treatments.model.TreatmentsModel`),
the wells can also be coloured by compound (a legend names the colours),
concentration (log scale) or percent of control, and a well's tooltip tells
its compound, concentration, control and percent of control.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QRect
from qtpy.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ...core.render.pictures import MISSING_RGB, render_plate_map, save_png
from ...core.results.store import ResultsStore
from ...core.results.wells import (
    MAP_VALUES,
    WELL_COLUMNS,
    infer_plate_format,
    plate_map_title,
    plate_map_values,
    well_name,
    well_position,
)
from ..navigation import show_image
from ..registry import store_for, treatments_for
from ..treatments.model import TreatmentsModel, format_concentration
from .background import BackgroundQueue, TableRefresher
from .plate_canvas import PlateCanvas
from .shared import (
    blocked_signals,
    stop_on_close,
    store_snapshot,
    store_tables,
    teardown,
    weak_method,
)

if TYPE_CHECKING:
    import napari

__all__ = ["PlateMapWidget"]

log = logging.getLogger(__name__)

#: combo text -> column of the wells table
VALUES = {"mean per site": "mean", "total per well": "total"}
#: combo text -> what a well is coloured by, once a plate layout is loaded
TREATMENT_VALUES = {"compound": "compound", "concentration": "concentration",
                    "percent of control": "percent_of_control"}
#: matplotlib's qualitative colour maps for compounds: the first that has enough colours
#: (beyond the last one's, colours repeat)
COMPOUND_COLOURS = ("tab10", "tab20")
#: legend text of a well the layout names without a compound
NO_COMPOUND = "(no compound)"
_HINT = "Hover a well for its numbers; click it to see its images."


class PlateMapWidget(QWidget):
    """The plate's wells coloured by nuclei count; click a well to see its images.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.
    store : ResultsStore, optional
        The results to show; by default the viewer's
        (:func:`~napari_nuclei_counter.gui.registry.store_for`, which docks the detector if the viewer
        has no results store yet).
    cmap : str, optional
        Colour map of the wells.
    treatments : TreatmentsModel, optional
        The plate layout and its analysis; by default the viewer's
        (:func:`~napari_nuclei_counter.gui.registry.treatments_for`).

    Attributes
    ----------
    canvas : PlateCanvas
        The painted plate; :meth:`well_at` and :meth:`rect_of` use its
        coordinates.
    wells : pandas.DataFrame
        The per-well table shown (``ResultsStore.wells_table()``), updated in
        the background.
    treatments : TreatmentsModel
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, store: ResultsStore | None = None,
                 *, cmap: str = "viridis", treatments: TreatmentsModel | None = None) -> None:
        super().__init__()
        import pandas as pd

        self.viewer = napari_viewer
        self.store: ResultsStore = (store if store is not None
                                    else store_for(napari_viewer, dock_detector=True))
        self.cmap = cmap
        self.treatments = (treatments if treatments is not None
                           else treatments_for(napari_viewer, self.store))
        self._treated: dict[tuple[int, int], dict] = {}  # treatment rows of the plate shown
        self._closed = threading.Event()
        self.wells: pd.DataFrame = pd.DataFrame(columns=WELL_COLUMNS)
        self._by_well: dict[tuple[str, tuple[int, int]], dict] = {}
        self._tables = TableRefresher(
            self._closed, functools.partial(store_snapshot, self.store, True), store_tables,
            weak_method(self, "_on_tables"), parent=self)
        self._exports = BackgroundQueue(self._closed, self)
        self._build()
        self._connect()
        self.redraw()
        if self.store.results:
            self._tables.request(now=True)

    # ------------------------------------------------------------------ build
    def _build(self) -> None:
        self.plate_combo = QComboBox()
        self.plate_combo.setToolTip("Which plate to show")
        self.plate_label = QLabel("plate")
        self.value_combo = QComboBox()
        self.value_combo.addItems(list(VALUES))
        self.value_combo.setToolTip("Colour the wells by the mean count per image (site) or "
                                    "by the well's total; with a plate layout (Treatments tab) "
                                    "also by compound, concentration or percent of control")
        self.export_button = QPushButton("Export PNG…")
        self.export_button.setToolTip("Save the plate map as a PNG file")
        self.canvas = PlateCanvas(self, cmap=self.cmap)
        self.canvas.tooltip_for = weak_method(self, "tooltip_for")
        self.info = QLabel(_HINT)
        self.info.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(self.plate_label)
        top.addWidget(self.plate_combo, 1)
        top.addWidget(self.value_combo, 1)
        top.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.info)
        self.plate_label.setVisible(False)
        self.plate_combo.setVisible(False)

    def _connect(self) -> None:
        self.plate_combo.currentIndexChanged.connect(self.on_plate_changed)
        self.value_combo.currentIndexChanged.connect(self.on_value_changed)
        self.export_button.clicked.connect(self.on_export_clicked)
        self.canvas.clicked.connect(self.on_well_clicked)
        self.canvas.hovered_changed.connect(self.on_hovered)
        listener = weak_method(self, "_on_store_event")
        self.store.subscribe(listener)
        on_treatments = weak_method(self, "_on_treatments")
        events = self.treatments.events
        for signal in (events.layout, events.analysis):
            signal.connect(on_treatments)
        self._update_values()
        self._stop = weakref.finalize(
            self, teardown, closed=self._closed, store=self.store, listener=listener,
            jobs=[self._tables.queue.jobs, self._exports.jobs],
            disconnect=[functools.partial(signal.disconnect, on_treatments)
                        for signal in (events.layout, events.analysis)])
        self.destroyed.connect(self._stop)
        stop_on_close(self, self._stop)

    # ---------------------------------------------------------------- reading
    @property
    def busy(self) -> bool:
        """Whether the wells table is being recomputed."""
        return self._tables.busy

    def value(self) -> str:
        """``'mean'`` (per site), ``'total'`` (per well) or, with a plate layout,
        ``'compound'``, ``'concentration'`` or ``'percent_of_control'``."""
        text = self.value_combo.currentText()
        return VALUES.get(text) or TREATMENT_VALUES.get(text, "mean")

    def set_value(self, value: str) -> None:
        """Colour by ``'mean'``, ``'total'``, or (with a layout) a treatment value."""
        for text, v in {**VALUES, **TREATMENT_VALUES}.items():
            if v == value and self.value_combo.findText(text) >= 0:
                self.value_combo.setCurrentText(text)
                return
        offered = sorted(MAP_VALUES) + (sorted(TREATMENT_VALUES.values())
                                        if self.treatments.layout is not None else [])
        raise ValueError(f"value must be one of {offered}, got {value!r}")

    def plates(self) -> list[str]:
        """The plates of the run, in table order (before a run: the layout's)."""
        plates = dict.fromkeys(self.wells["plate"].astype(str)) if len(self.wells) else {}
        for m in self.store.meta:
            plates.setdefault(m.plate, None)
        if not plates:
            plates = dict.fromkeys(self.treatments.layout_plates())
        return list(plates)

    def legend(self) -> list[tuple[str, tuple[int, int, int]]]:
        """``(compound, (r, g, b))`` of the plate shown when coloured by compound (else ``[]``)."""
        return self.canvas.legend()

    def plate(self) -> str:
        """The plate shown (``''`` when the images have no plate)."""
        data = self.plate_combo.currentData()
        if data is not None:
            return data
        plates = self.plates()
        return plates[0] if plates else ""

    def well_at(self, x: float, y: float) -> str | None:
        """Name of the well at ``(x, y)`` of :attr:`canvas`, ``None`` beside the wells."""
        return self.canvas.well_at(x, y)

    def rect_of(self, well: str) -> QRect:
        """Rectangle of a well in :attr:`canvas` coordinates (empty if not on the plate)."""
        return self.canvas.rect_of(well)

    def well_row(self, well: str, plate: str | None = None) -> dict | None:
        """The wells-table row of a well of the plate shown, or ``None``."""
        pos = well_position(well)
        if pos is None:
            return None
        return self._by_well.get((self.plate() if plate is None else plate, pos))

    def tooltip_for(self, well: str | None) -> str:
        """The numbers of a well: images, total, mean and std of the nuclei counts; with a
        plate layout, its compound, concentration, control and percent of control."""
        if not well:
            return ""
        plate = self.plate()
        row = self.well_row(well)
        imaged = self._indices(well)
        head = well + (f"  (plate {plate})" if plate else "")
        if row is None:
            lines = [head, f"{len(imaged)} images, no result yet" if imaged else "no images"]
        elif int(row["images"]) == 0:
            lines = [head, "no image processed successfully"]
        else:
            std = row["std"]
            lines = [head, f"images: {int(row['images'])}", f"total: {int(row['total'])} nuclei",
                     f"mean: {row['mean']:.1f} nuclei per site",
                     f"std: {std:.1f}" if np.isfinite(std) else "std: n/a (one image)"]
        pos = well_position(well)
        treated = self._treated.get(pos) if pos is not None else None
        if treated is not None:
            lines += _treatment_lines(treated, plate)
        return "\n".join(lines)

    def _indices(self, well: str) -> list[int]:
        """Image indices of a well of the plate shown."""
        plate = self.plate()
        pos = well_position(well)
        return [i for i, m in enumerate(self.store.meta)
                if m.plate == plate and (m.well == well or (
                    pos is not None and well_position(m.well) == pos))]

    # ---------------------------------------------------------------- updates
    def _on_treatments(self, *_) -> None:
        """The layout or its analysis changed: offer its values and repaint."""
        if self._closed.is_set():
            return
        self._update_values()
        self._update_plates()
        self.redraw()

    def _update_values(self) -> None:
        """Offer the treatment values while there is a layout (keeping the value shown)."""
        texts = list(VALUES) + (list(TREATMENT_VALUES) if self.treatments.layout is not None
                                else [])
        if [self.value_combo.itemText(i) for i in range(self.value_combo.count())] == texts:
            return
        current = self.value_combo.currentText()
        with blocked_signals(self.value_combo):
            self.value_combo.clear()
            self.value_combo.addItems(texts)
            self.value_combo.setCurrentIndex(max(self.value_combo.findText(current), 0))

    def _on_store_event(self, event: str, _indices) -> None:
        if self._closed.is_set():
            return
        if event == "reset":
            import pandas as pd

            self.wells = pd.DataFrame(columns=WELL_COLUMNS)
            self._by_well = {}
            self._update_plates()
            self.redraw()
        elif event == "select_well":
            self.canvas.set_selected(self.store.selected_well)
            self._show_info()
        elif event in ("result", "edited"):
            self._tables.request()

    def _on_tables(self, tables) -> None:
        _, wells = tables
        self.wells = wells
        self._by_well = {}
        for row in wells.to_dict("records"):
            pos = well_position(row["well"])
            if pos is not None:
                self._by_well[(str(row["plate"]), pos)] = row
        self._update_plates()
        self.redraw()

    def _update_plates(self) -> None:
        plates = self.plates()
        current = self.plate_combo.currentData()
        if [self.plate_combo.itemData(i) for i in range(self.plate_combo.count())] != plates:
            with blocked_signals(self.plate_combo):
                self.plate_combo.clear()
                for p in plates:
                    self.plate_combo.addItem(p or "(no plate)", p)
                i = self.plate_combo.findData(current) if current is not None else 0
                self.plate_combo.setCurrentIndex(max(i, 0))
        several = len(plates) > 1
        self.plate_combo.setVisible(several)
        self.plate_label.setVisible(several)

    def layout_of(self, plate: str) -> tuple[int, int]:
        """``(rows, columns)`` of a plate, from every well imaged or in the layout (96 or 384
        wells...)."""
        wells = [m.well for m in self.store.meta if m.plate == plate and m.well]
        wells += [well_name(*pos) for pos in self._treated]
        if len(self.wells):
            sub = self.wells[self.wells["plate"].astype(str) == plate]
            wells += list(sub["well"])
        return infer_plate_format(wells)

    def redraw(self) -> None:
        """Lay the current values out on the plate and repaint."""
        plate, value = self.plate(), self.value()
        self._treated = self.treatments.well_rows(plate)
        layout = self.layout_of(plate)
        has_plate = len(self.wells) and (self.wells["plate"].astype(str) == plate).any()
        if value in TREATMENT_VALUES.values():
            grid, title, style = self._treatment_grid(value, plate, layout)
        else:
            grid = (plate_map_values(self.wells, value=value, plate=plate, layout=layout)
                    if has_plate else np.full(layout, np.nan))
            title, style = plate_map_title(value, plate), {}
        names = {}
        for m in self.store.meta:
            pos = well_position(m.well) if m.plate == plate else None
            if pos is not None:
                names[pos] = m.well
        for (p, pos), row in self._by_well.items():
            if p == plate:
                names[pos] = row["well"]
        self.canvas.set_plate(grid, names, title, **style)
        self.canvas.set_selected(self.store.selected_well)
        self._show_info()

    def _treatment_grid(self, value: str, plate: str, layout: tuple[int, int]) -> tuple:
        """``(grid, title, canvas options)`` of a plate coloured by a treatment value."""
        grid = np.full(layout, np.nan)
        rows = {pos: r for pos, r in self._treated.items()
                if pos[0] < layout[0] and pos[1] < layout[1]}
        # a per-image layout names the plate, and its name wins over the files'
        named = {str(r.get("plate") or "") for r in rows.values()} - {""}
        shown = named.pop() if len(named) == 1 else plate
        head = f"plate {shown}: " if shown else ""
        if value == "compound":
            names = [_compound(r) for r in rows.values()]
            order = [c for c in self.treatments.compounds() if c in names]
            order += [c for c in dict.fromkeys(names) if c not in order]
            categories = [(c, _compound_colour(k, len(order)) if c != NO_COMPOUND else MISSING_RGB)
                          for k, c in enumerate(order)]
            for pos, r in rows.items():
                grid[pos] = order.index(_compound(r))
            return grid, head + "compound", {"categories": categories}
        if value == "concentration":
            units = set()
            for pos, r in rows.items():
                c = _float(r.get("concentration"))
                if c > 0:
                    grid[pos] = np.log10(c)
                    units.add(str(r.get("unit") or ""))
            unit = f" ({units.pop()})" if len(units) == 1 and "" not in units else ""
            return (grid, f"{head}concentration{unit}, log scale",
                    {"fmt": lambda v: f"{10 ** v:.3g}"})
        for pos, r in rows.items():
            grid[pos] = _float(r.get("percent_of_control"))
        return grid, head + "percent of control", {}

    def on_plate_changed(self, _i: int = 0) -> None:
        """Another plate was picked."""
        self.redraw()

    def on_value_changed(self, _i: int = 0) -> None:
        """Mean per site or total per well."""
        self.redraw()

    def on_hovered(self, well: str | None) -> None:
        """Tell the hovered well's numbers under the map."""
        self._show_info(well)

    def _show_info(self, hovered: str | None = None) -> None:
        if hovered:
            self.info.setText(self.tooltip_for(hovered).replace("\n", " · "))
        elif self.store.selected_well:
            self.info.setText(f"Selected: {self.store.selected_well}; the gallery shows its "
                              "images. Click beside the wells to show all.")
        else:
            self.info.setText(_HINT)

    # ------------------------------------------------------------------ click
    def on_well_clicked(self, well: str | None) -> None:
        """Select a well (the gallery shows its images) and show its first image.

        ``None`` (a click beside the wells) clears the selection.
        """
        if well is None:
            if self.store.selected_well is not None:
                self.store.select_well(None)
            return
        self.store.select_well(well)
        indices = self._indices(well)
        if indices:
            show_image(self.viewer, self.store, indices[0])

    # ----------------------------------------------------------------- export
    def export_args(self, *, cell: int = 36) -> tuple:
        """Arguments of :func:`render_plate_map` for the plate shown (GUI thread, cheap)."""
        plate = self.plate()
        layout = self.layout_of(plate)
        return self.store.ordered(), self.value(), plate, self.cmap, cell, layout

    def export_png(self, path: str | os.PathLike, *, cell: int = 36) -> Path:
        """Save the plate map as a PNG file, now (blocks; *Export PNG…* uses a thread).

        The core's rendering (:func:`~napari_nuclei_counter.core.render.pictures.render_plate_map`)
        of a wells table recomputed now, so the file is up to date even while
        the map waits for its next refresh. A map coloured by a treatment
        value is saved as the picture of the map shown, legend included.

        Returns
        -------
        Path
            ``path``.
        """
        if self.value() not in MAP_VALUES:
            return self._save_canvas(path)
        return _write_plate_map(path, *self.export_args(cell=cell))

    def _save_canvas(self, path: str | os.PathLike) -> Path:
        if not self.canvas.grab().save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
        return Path(path)

    def start_export(self, path: str | os.PathLike, *, cell: int = 36) -> None:
        """Export like :meth:`export_png` in a background thread; a notification tells the outcome.

        A map coloured by a treatment value is grabbed from the screen at once.
        """
        if self.value() not in MAP_VALUES:
            try:
                out, error = self._save_canvas(path), None
            except OSError as exc:
                out, error = None, exc
            self._on_exported(out, error, 0.0)
            return
        self._exports.submit(_write_plate_map, (path, *self.export_args(cell=cell)),
                             self._on_exported)

    def _on_exported(self, out, error, _seconds: float) -> None:
        if error is not None:
            show_warning(f"Could not export the plate map: {error}")
        else:
            show_info(f"Plate map saved as {out}")

    def on_export_clicked(self, *_) -> None:
        """Ask for a file name and export the plate map (in a background thread)."""
        if not self.store.results:
            show_warning("No results yet: run the detector first.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export plate map as PNG", "platemap.png",
                                              "PNG image (*.png)")
        if not path:
            return
        if not path.lower().endswith(".png"):
            path += ".png"
        self.start_export(path)


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def _compound(row: dict) -> str:
    c = row.get("compound")
    return c if isinstance(c, str) and c else NO_COMPOUND


def _compound_colour(k: int, n: int) -> tuple[int, int, int]:
    """Colour of the ``k``-th of ``n`` compounds on a plate (matplotlib's tab10 or tab20).

    The compounds are numbered in the order of ``TreatmentsModel.compounds()``
    (natural order, ignoring case) among those on the plate shown.
    """
    import matplotlib

    name = next((m for m in COMPOUND_COLOURS if len(matplotlib.colormaps[m].colors) >= n),
                COMPOUND_COLOURS[-1])
    colours = matplotlib.colormaps[name].colors
    r, g, b = colours[k % len(colours)][:3]
    return round(r * 255), round(g * 255), round(b * 255)


def _treatment_lines(row: dict, plate: str) -> list[str]:
    """Tooltip lines of a well's treatment: compound, concentration, control, percent of
    control; first the layout's name of the plate when it is not ``plate``."""
    lines = []
    named = str(row.get("plate") or "")
    if named and named != plate:
        lines.append(f"plate in the layout: {named}")
    compound = row.get("compound")
    lines.append(f"compound: {compound if isinstance(compound, str) and compound else '—'}")
    conc = format_concentration(_float(row.get("concentration")), str(row.get("unit") or ""))
    lines.append(f"concentration: {conc or '—'}")
    control = row.get("control")
    lines.append(f"control: {control if isinstance(control, str) and control else '—'}")
    pct = _float(row.get("percent_of_control"))
    if "percent_of_control" in row:
        lines.append(f"percent of control: {pct:.1f} %" if np.isfinite(pct)
                     else "percent of control: —")
    return lines


def _write_plate_map(path, results, value: str, plate: str, cmap: str, cell: int,
                     layout: tuple[int, int]) -> Path:
    """The wells table of ``results``, drawn by the core and saved as a PNG (any thread)."""
    _, wells = store_tables(results, wells=True)
    plates = wells["plate"].astype(str)
    if not (plates == plate).any():
        plate = plates.iloc[0] if len(wells) else plate
    rgb = render_plate_map(wells, value=value, plate=plate if len(wells) else None,
                           cmap=cmap, cell=cell, layout=layout)
    return save_png(rgb, path)
