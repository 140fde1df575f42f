"""The "Plate map" dock: the plate's wells coloured by their nuclei count.

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

from ...core.render.pictures import render_plate_map, save_png
from ...core.results.store import ResultsStore
from ...core.results.wells import (
    MAP_VALUES,
    WELL_COLUMNS,
    infer_plate_format,
    plate_map_title,
    plate_map_values,
    well_position,
)
from ..navigation import show_image
from ..registry import store_for
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

    Attributes
    ----------
    canvas : PlateCanvas
        The painted plate; :meth:`well_at` and :meth:`rect_of` use its
        coordinates.
    wells : pandas.DataFrame
        The per-well table shown (``ResultsStore.wells_table()``), updated in
        the background.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, store: ResultsStore | None = None,
                 *, cmap: str = "viridis") -> None:
        super().__init__()
        import pandas as pd

        self.viewer = napari_viewer
        self.store: ResultsStore = (store if store is not None
                                    else store_for(napari_viewer, dock_detector=True))
        self.cmap = cmap
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
                                    "by the well's total")
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
        self._stop = weakref.finalize(
            self, teardown, closed=self._closed, store=self.store, listener=listener,
            jobs=[self._tables.queue.jobs, self._exports.jobs])
        self.destroyed.connect(self._stop)
        stop_on_close(self, self._stop)

    # ---------------------------------------------------------------- reading
    @property
    def busy(self) -> bool:
        """Whether the wells table is being recomputed."""
        return self._tables.busy

    def value(self) -> str:
        """``'mean'`` (per site) or ``'total'`` (per well)."""
        return VALUES[self.value_combo.currentText()]

    def set_value(self, value: str) -> None:
        """Colour by ``'mean'`` or ``'total'``."""
        for text, v in VALUES.items():
            if v == value:
                self.value_combo.setCurrentText(text)
                return
        raise ValueError(f"value must be one of {sorted(MAP_VALUES)}, got {value!r}")

    def plates(self) -> list[str]:
        """The plates of the run, in table order."""
        plates = dict.fromkeys(self.wells["plate"].astype(str)) if len(self.wells) else {}
        for m in self.store.meta:
            plates.setdefault(m.plate, None)
        return list(plates)

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
        """The numbers of a well: images, total, mean and std of the nuclei counts."""
        if not well:
            return ""
        plate = self.plate()
        row = self.well_row(well)
        imaged = self._indices(well)
        head = well + (f"  (plate {plate})" if plate else "")
        if row is None:
            if not imaged:
                return f"{head}\nno images"
            return f"{head}\n{len(imaged)} images, no result yet"
        images = int(row["images"])
        if images == 0:
            return f"{head}\nno image processed successfully"
        total = row["total"]
        lines = [head, f"images: {images}", f"total: {int(total)} nuclei",
                 f"mean: {row['mean']:.1f} nuclei per site"]
        std = row["std"]
        lines.append(f"std: {std:.1f}" if np.isfinite(std) else "std: n/a (one image)")
        return "\n".join(lines)

    def _indices(self, well: str) -> list[int]:
        """Image indices of a well of the plate shown."""
        plate = self.plate()
        pos = well_position(well)
        return [i for i, m in enumerate(self.store.meta)
                if m.plate == plate and (m.well == well or (
                    pos is not None and well_position(m.well) == pos))]

    # ---------------------------------------------------------------- updates
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
        """``(rows, columns)`` of a plate, from every well imaged (96 or 384 wells...)."""
        wells = [m.well for m in self.store.meta if m.plate == plate and m.well]
        if len(self.wells):
            sub = self.wells[self.wells["plate"].astype(str) == plate]
            wells += list(sub["well"])
        return infer_plate_format(wells)

    def redraw(self) -> None:
        """Lay the current values out on the plate and repaint."""
        plate, value = self.plate(), self.value()
        layout = self.layout_of(plate)
        has_plate = len(self.wells) and (self.wells["plate"].astype(str) == plate).any()
        if has_plate:
            grid = plate_map_values(self.wells, value=value, plate=plate, layout=layout)
        else:
            grid = np.full(layout, np.nan)
        names = {}
        for m in self.store.meta:
            pos = well_position(m.well) if m.plate == plate else None
            if pos is not None:
                names[pos] = m.well
        for (p, pos), row in self._by_well.items():
            if p == plate:
                names[pos] = row["well"]
        title = plate_map_title(value, plate)
        self.canvas.set_plate(grid, names, title)
        self.canvas.set_selected(self.store.selected_well)
        self._show_info()

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
        the map waits for its next refresh.

        Returns
        -------
        Path
            ``path``.
        """
        return _write_plate_map(path, *self.export_args(cell=cell))

    def start_export(self, path: str | os.PathLike, *, cell: int = 36) -> None:
        """Export like :meth:`export_png` in a background thread; a notification tells the outcome."""
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
