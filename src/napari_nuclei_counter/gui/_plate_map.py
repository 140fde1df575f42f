"""The "Plate map" dock: the plate's wells coloured by their nuclei count.

The map is painted with ``QPainter`` from the per-well table of the
detector's :class:`~napari_nuclei_counter.core.store.ResultsStore`
(:func:`~napari_nuclei_counter.core.gallery.well_table`, laid out by
:func:`~napari_nuclei_counter.core.gallery.plate_map_values`), recomputed in a
background thread while results stream in. Hovering a well tells its numbers;
clicking one selects it (the gallery shows its images) and moves the viewer
to its first image; clicking beside the wells clears the selection. "Export
PNG…" writes :func:`~napari_nuclei_counter.core.gallery.render_plate_map`.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QEvent, QPoint, QRect, QSize, Qt, Signal
from qtpy.QtGui import QColor, QFont, QFontMetrics, QLinearGradient, QPainter, QPalette, QPen
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from ..core.gallery import (
    MISSING_RGB,
    WELL_COLUMNS,
    colormap,
    infer_plate_format,
    plate_map_values,
    render_plate_map,
    save_png,
    well_position,
)
from ..core.store import ResultsStore
from ._views import (
    TableRefresher,
    store_snapshot,
    blocked_signals,
    find_store,
    show_image,
    store_tables,
    teardown,
    unwrap_proxy,
    weak_method,
)

if TYPE_CHECKING:
    import napari

__all__ = ["PlateCanvas", "PlateMapWidget"]

log = logging.getLogger(__name__)

#: combo text -> column of the wells table
VALUES = {"mean per site": "mean", "total per well": "total"}
TITLES = {"mean": "mean nuclei per site", "total": "total nuclei per well"}
_HINT = "Hover a well for its numbers; click it to see its images."


def _row_label(row: int) -> str:
    if row < 26:
        return chr(ord("A") + row)
    return chr(ord("A") + row // 26 - 1) + chr(ord("A") + row % 26)


def _well_name(row: int, col: int) -> str:
    return f"{_row_label(row)}{col + 1:02d}"


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return ""
    return f"{v:.0f}" if abs(v) >= 10 or float(v).is_integer() else f"{v:.1f}"


class PlateCanvas(QWidget):
    """A plate drawn as a grid of wells; knows where every well is.

    Parameters
    ----------
    parent : QWidget, optional
    cmap : str, optional
        Colour map (see :func:`~napari_nuclei_counter.core.gallery.colormap`).

    Attributes
    ----------
    grid : ndarray of float, shape (rows, cols)
        One value per well, NaN where there is none.
    names : dict
        ``(row, col) -> well name`` of the wells that have images.
    selected, hovered : str or None
    tooltip_for : callable
        ``tooltip_for(well) -> str``.
    """

    #: a click: the well under the mouse, or ``None`` beside the wells
    clicked = Signal(object)
    #: the well under the mouse changed (``None``: none)
    hovered_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None, *, cmap: str = "viridis") -> None:
        super().__init__(parent)
        self.lut = colormap(cmap)
        self.grid = np.full((8, 12), np.nan)
        self.names: dict[tuple[int, int], str] = {}
        self.title = ""
        self.selected: str | None = None
        self.hovered: str | None = None
        self.tooltip_for: Callable[[str], str] = lambda well: ""
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    # ---------------------------------------------------------------- data
    def set_plate(self, grid: np.ndarray, names: dict, title: str) -> None:
        """Show new values."""
        self.grid = np.asarray(grid, dtype=float)
        self.names = dict(names)
        self.title = title
        self.updateGeometry()
        self.update()

    def set_selected(self, well: str | None) -> None:
        """Outline ``well`` (``None``: no outline)."""
        self.selected = well
        self.update()

    def value_range(self) -> tuple[float, float]:
        """Lowest and highest value shown (NaN when there is none)."""
        finite = self.grid[np.isfinite(self.grid)]
        if not finite.size:
            return np.nan, np.nan
        return float(finite.min()), float(finite.max())

    # ------------------------------------------------------------ geometry
    def _margins(self) -> tuple[int, int, int, int]:
        """Left, top, right and bottom space around the grid."""
        fm = self.fontMetrics()
        rows = self.grid.shape[0]
        vmin, vmax = self.value_range()
        labels = [_fmt(vmax), _fmt(vmin)] if np.isfinite(vmin) else ["no data"]
        left = 6 + fm.horizontalAdvance(_row_label(rows - 1)) + 6
        top = 2 * fm.height() + 10
        right = 12 + 12 + 6 + max(fm.horizontalAdvance(t) for t in labels) + 6
        return left, top, right, 6

    def cell_size(self) -> int:
        """Side of a well's square, in pixels."""
        left, top, right, bottom = self._margins()
        rows, cols = self.grid.shape
        return max(6, min((self.width() - left - right) // cols,
                          (self.height() - top - bottom) // rows))

    def origin(self) -> QPoint:
        """Top-left corner of well A01's square."""
        left, top, _, _ = self._margins()
        return QPoint(left, top)

    def position_at(self, x: float, y: float) -> tuple[int, int] | None:
        """``(row, col)`` of the well at a point of this widget, or ``None``."""
        o, cell = self.origin(), self.cell_size()
        c = int(np.floor((x - o.x()) / cell))
        r = int(np.floor((y - o.y()) / cell))
        rows, cols = self.grid.shape
        if not (0 <= r < rows and 0 <= c < cols):
            return None
        return (r, c) if self._rect_at(r, c).contains(int(x), int(y)) else None

    def well_at(self, x: float, y: float) -> str | None:
        """Name of the well at a point of this widget, or ``None`` beside the wells."""
        pos = self.position_at(x, y)
        if pos is None:
            return None
        return self.names.get(pos, _well_name(*pos))

    def _rect_at(self, r: int, c: int) -> QRect:
        o, cell = self.origin(), self.cell_size()
        return QRect(o.x() + c * cell + 1, o.y() + r * cell + 1, cell - 2, cell - 2)

    def rect_of(self, well: str) -> QRect:
        """Rectangle of a well in this widget (an empty ``QRect`` if it is not on the plate)."""
        pos = well_position(well)
        rows, cols = self.grid.shape
        if pos is None or not (0 <= pos[0] < rows and 0 <= pos[1] < cols):
            return QRect()
        return self._rect_at(*pos)

    def sizeHint(self) -> QSize:  # noqa: N802
        """Room for wells of 30 pixels."""
        left, top, right, bottom = self._margins()
        rows, cols = self.grid.shape
        cell = 30 if cols <= 12 else 18
        return QSize(left + right + cols * cell, top + bottom + rows * cell)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        """Room for wells of 8 pixels."""
        left, top, right, bottom = self._margins()
        rows, cols = self.grid.shape
        return QSize(left + right + cols * 8, top + bottom + rows * 8)

    # ---------------------------------------------------------------- paint
    def _colour(self, v: float, vmin: float, vmax: float) -> QColor:
        t = (v - vmin) / (vmax - vmin) if vmax > vmin else 0.5
        rgb = self.lut[int(np.clip(round(t * 255), 0, 255))]
        return QColor(int(rgb[0]), int(rgb[1]), int(rgb[2]))

    def paintEvent(self, _event) -> None:  # noqa: N802
        """Draw the title, labels, wells and colour bar."""
        painter = QPainter(self)
        try:
            self._paint(painter)
        finally:
            painter.end()

    def _paint(self, p: QPainter) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fg = self.palette().color(QPalette.ColorRole.WindowText)
        fm = self.fontMetrics()
        rows, cols = self.grid.shape
        o, cell = self.origin(), self.cell_size()
        vmin, vmax = self.value_range()

        p.setPen(fg)
        bold = QFont(self.font())
        bold.setBold(True)
        p.setFont(bold)
        p.drawText(QRect(6, 2, self.width() - 12, fm.height() + 2),
                   int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), self.title)
        p.setFont(self.font())
        step = 1 if cell >= fm.horizontalAdvance("24") + 2 else 2
        for c in range(0, cols, step):
            p.drawText(QRect(o.x() + c * cell, o.y() - fm.height() - 2, cell, fm.height()),
                       int(Qt.AlignmentFlag.AlignCenter), str(c + 1))
        for r in range(rows):
            p.drawText(QRect(0, o.y() + r * cell, o.x() - 6, cell),
                       int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                       _row_label(r))

        value_font = QFont(self.font())
        value_font.setPixelSize(int(np.clip(cell // 3 + 1, 7, 14)))
        value_metrics = QFontMetrics(value_font)
        radius = max(2.0, cell / 5)
        missing = QColor(*MISSING_RGB)
        missing.setAlpha(110)
        faint = QColor(fg)
        faint.setAlpha(60)
        for r in range(rows):
            for c in range(cols):
                rect = self._rect_at(r, c)
                v = self.grid[r, c]
                if np.isfinite(v):
                    colour = self._colour(v, vmin, vmax)
                    p.setPen(Qt.PenStyle.NoPen)
                    p.setBrush(colour)
                    p.drawRoundedRect(rect, radius, radius)
                    text = _fmt(v)
                    if cell >= 16 and value_metrics.horizontalAdvance(text) <= rect.width() - 2:
                        luminance = (0.299 * colour.red() + 0.587 * colour.green()
                                     + 0.114 * colour.blue())
                        p.setPen(QColor(0, 0, 0) if luminance > 128 else QColor(255, 255, 255))
                        p.setFont(value_font)
                        p.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), text)
                elif (r, c) in self.names:  # imaged, but no result (yet, or failed)
                    p.setPen(Qt.PenStyle.NoPen)
                    p.setBrush(missing)
                    p.drawRoundedRect(rect, radius, radius)
                    p.setPen(QPen(QColor(150, 150, 150), 1))
                    inset = rect.width() // 4
                    a = rect.adjusted(inset, inset, -inset, -inset)
                    p.drawLine(a.topLeft(), a.bottomRight())
                    p.drawLine(a.bottomLeft(), a.topRight())
                else:  # not imaged
                    p.setPen(QPen(faint, 1))
                    p.setBrush(Qt.BrushStyle.NoBrush)
                    p.drawRoundedRect(rect, radius, radius)
        p.setFont(self.font())
        p.setBrush(Qt.BrushStyle.NoBrush)
        if self.hovered is not None and self.hovered != self.selected:
            rect = self.rect_of(self.hovered)
            if not rect.isNull():
                p.setPen(QPen(fg, 2))
                p.drawRoundedRect(rect, radius, radius)
        if self.selected is not None:
            rect = self.rect_of(self.selected)
            if not rect.isNull():
                p.setPen(QPen(QColor(255, 60, 60), 3))
                p.drawRoundedRect(rect.adjusted(-1, -1, 1, 1), radius, radius)

        # colour bar
        bar = QRect(o.x() + cols * cell + 12, o.y(), 12, rows * cell)
        if np.isfinite(vmin):
            gradient = QLinearGradient(0, bar.bottom(), 0, bar.top())
            for k in range(0, 256, 15):
                rgb = self.lut[k]
                gradient.setColorAt(k / 255, QColor(int(rgb[0]), int(rgb[1]), int(rgb[2])))
            rgb = self.lut[255]
            gradient.setColorAt(1.0, QColor(int(rgb[0]), int(rgb[1]), int(rgb[2])))
            p.fillRect(bar, gradient)
            p.setPen(fg)
            p.drawRect(bar)
            x = bar.right() + 6
            p.drawText(QRect(x, bar.top() - 2, 200, fm.height()),
                       int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop), _fmt(vmax))
            p.drawText(QRect(x, bar.bottom() - fm.height() + 2, 200, fm.height()),
                       int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom),
                       _fmt(vmin))
        else:
            p.setPen(fg)
            p.drawText(QRect(bar.left(), bar.top(), 200, fm.height()),
                       int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop), "no data")

    # -------------------------------------------------------------- mouse
    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        """Follow the well under the mouse."""
        pos = event.position()
        self._hover(self.well_at(pos.x(), pos.y()))
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802
        """No well is hovered any more."""
        self._hover(None)
        super().leaveEvent(event)

    def _hover(self, well: str | None) -> None:
        if well != self.hovered:
            self.hovered = well
            self.update()
            self.hovered_changed.emit(well)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        """A left click picks the well under the mouse (``None`` beside the wells)."""
        if event.button() == Qt.MouseButton.LeftButton:
            pos = event.position()
            self.clicked.emit(self.well_at(pos.x(), pos.y()))
            event.accept()
            return
        super().mousePressEvent(event)

    def event(self, event) -> bool:
        """Tooltips: the numbers of the well under the mouse."""
        if event.type() == QEvent.Type.ToolTip:
            pos = event.pos()
            well = self.well_at(pos.x(), pos.y())
            text = self.tooltip_for(well) if well else ""
            if text:
                QToolTip.showText(event.globalPos(), text, self, self.rect_of(well))
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)


class PlateMapWidget(QWidget):
    """The plate's wells coloured by nuclei count; click a well to see its images.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.
    store : ResultsStore, optional
        The results to show; by default those of the viewer's "Nuclei
        detector" dock (docked if missing).
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
        self.store: ResultsStore = unwrap_proxy(store) if store is not None else find_store(
            napari_viewer)
        self.cmap = cmap
        self._closed = threading.Event()
        self.wells: pd.DataFrame = pd.DataFrame(columns=WELL_COLUMNS)
        self._by_well: dict[tuple[str, tuple[int, int]], dict] = {}
        self._tables = TableRefresher(
            self._closed, functools.partial(store_snapshot, self.store, True), store_tables,
            weak_method(self, "_on_tables"), parent=self)
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
        self.destroyed.connect(weakref.finalize(
            self, teardown, closed=self._closed, store=self.store, listener=listener,
            jobs=[self._tables.queue.jobs]))

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
        raise ValueError(f"value must be one of {sorted(TITLES)}, got {value!r}")

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

    def refresh_now(self) -> None:
        """Recompute the wells table on this thread (the background one is usually better)."""
        self._on_tables((None, self.store.wells_table()))

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
        title = (f"plate {plate}: " if plate else "") + TITLES[value]
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
    def export_png(self, path: str | os.PathLike, *, cell: int = 36) -> Path:
        """Save the plate map as a PNG file (``core.gallery.render_plate_map``).

        The table is recomputed now, so the file is up to date even while
        the map waits for its next refresh.

        Returns
        -------
        Path
            ``path``.
        """
        wells = self.store.wells_table()
        plate = self.plate()
        plates = wells["plate"].astype(str)
        if not (plates == plate).any():
            plate = plates.iloc[0] if len(wells) else plate
        rgb = render_plate_map(wells, value=self.value(), plate=plate if len(wells) else None,
                               cmap=self.cmap, cell=cell, layout=self.layout_of(plate))
        return save_png(rgb, path)

    def on_export_clicked(self, *_) -> None:
        """Ask for a file name and export the plate map."""
        if not self.store.results:
            show_warning("No results yet: run the detector first.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export plate map as PNG", "platemap.png",
                                              "PNG image (*.png)")
        if not path:
            return
        if not path.lower().endswith(".png"):
            path += ".png"
        try:
            out = self.export_png(path)
        except (OSError, ValueError) as exc:
            show_warning(f"Could not export the plate map: {exc}")
        else:
            show_info(f"Plate map saved as {out}")
