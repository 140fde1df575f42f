"""The plate drawn with ``QPainter``: wells coloured by a value or a category, hover and click.

:class:`PlateCanvas` paints the live plate map of the "Plate map" dock and
knows where every well is. Wells are coloured by a number (a colour map and
its colour bar) or by a category such as the compound a well received (one
colour per category and a legend). It speaks the core's plate vocabulary: row labels,
well names, value formatting and colour-bar labels from
:mod:`~napari_nuclei_counter.core.results.wells`, colours from
:mod:`~napari_nuclei_counter.core.render.pictures` (the colour map, the value -> colour
mapping, the ink on a well, the colour of wells without data), so the dock
and the PNG files of :func:`~napari_nuclei_counter.core.render.pictures.render_plate_map`
read the same.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from qtpy.QtCore import QEvent, QPoint, QRect, QSize, Qt, Signal
from qtpy.QtGui import QColor, QFont, QFontMetrics, QLinearGradient, QPainter, QPalette, QPen
from qtpy.QtWidgets import QSizePolicy, QToolTip, QWidget

from ...core.render.pictures import (
    MISSING_CROSS_RGB,
    MISSING_RGB,
    colormap,
    colour_index,
    text_ink,
)
from ...core.results.wells import (
    colour_bar_labels,
    format_value,
    row_label,
    value_range,
    well_name,
    well_position,
)

__all__ = ["PlateCanvas"]

_LEGEND_TEXT = 150  # widest label of the legend, in pixels (longer ones are elided)


def _qcolor(rgb) -> QColor:
    return QColor(int(rgb[0]), int(rgb[1]), int(rgb[2]))


class PlateCanvas(QWidget):
    """A plate drawn as a grid of wells; knows where every well is.

    Parameters
    ----------
    parent : QWidget, optional
    cmap : str, optional
        Colour map (see :func:`~napari_nuclei_counter.core.render.pictures.colormap`).

    Attributes
    ----------
    grid : ndarray of float, shape (rows, cols)
        One value per well, NaN where there is none.
    names : dict
        ``(row, col) -> well name`` of the wells that have images.
    selected, hovered : str or None
    categories : list of tuple or None
        ``(label, (r, g, b))`` per category when the wells are coloured by
        category (:attr:`grid` then holds indices into it); ``None`` when they
        are coloured by value.
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
        self.categories: list[tuple[str, tuple[int, int, int]]] | None = None
        self.fmt: Callable[[float], str] = format_value
        self.selected: str | None = None
        self.hovered: str | None = None
        self.tooltip_for: Callable[[str], str] = lambda well: ""
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    # ---------------------------------------------------------------- data
    def set_plate(self, grid: np.ndarray, names: dict, title: str, *,
                  fmt: Callable[[float], str] = format_value,
                  categories: list[tuple[str, tuple[int, int, int]]] | None = None) -> None:
        """Show new values.

        Parameters
        ----------
        grid : ndarray, shape (rows, cols)
            One value per well (NaN: none); with ``categories``, the index of
            each well's category.
        names : dict
            ``(row, col) -> well name`` of the wells that have images.
        title : str
        fmt : callable, optional
            Text of a value, on the wells and the colour bar (e.g. a
            concentration coloured on a log scale: ``lambda v: f"{10 ** v:g}"``).
        categories : list of tuple, optional
            ``(label, (r, g, b))`` per category: colour the wells by category
            and draw a legend instead of the colour bar.
        """
        self.grid = np.asarray(grid, dtype=float)
        self.names = dict(names)
        self.title = title
        self.fmt = fmt
        self.categories = list(categories) if categories is not None else None
        self.updateGeometry()
        self.update()

    def set_selected(self, well: str | None) -> None:
        """Outline ``well`` (``None``: no outline)."""
        self.selected = well
        self.update()

    def value_range(self) -> tuple[float, float]:
        """Lowest and highest value shown (NaN when there is none)."""
        return value_range(self.grid)

    def bar_labels(self) -> tuple[str, str]:
        """Texts at the top and the bottom of the colour bar."""
        vmin, vmax = self.value_range()
        if not np.isfinite(vmin):
            return colour_bar_labels(vmin, vmax)
        return self.fmt(vmax), self.fmt(vmin)

    def legend(self) -> list[tuple[str, tuple[int, int, int]]]:
        """``(label, (r, g, b))`` of the categories on the plate, in legend order (``[]``
        when the wells are coloured by value)."""
        if self.categories is None:
            return []
        shown = {int(v) for v in self.grid[np.isfinite(self.grid)]}
        return [entry for i, entry in enumerate(self.categories) if i in shown]

    def colour_of(self, well: str) -> tuple[int, int, int] | None:
        """``(r, g, b)`` a well is painted with; ``None`` for a well without a value."""
        pos = well_position(well)
        rows, cols = self.grid.shape
        if pos is None or not (0 <= pos[0] < rows and 0 <= pos[1] < cols):
            return None
        v = self.grid[pos]
        if not np.isfinite(v):
            return None
        c = self._colour(v, *self.value_range())
        return c.red(), c.green(), c.blue()

    # ------------------------------------------------------------ geometry
    def _margins(self) -> tuple[int, int, int, int]:
        """Left, top, right and bottom space around the grid."""
        fm = self.fontMetrics()
        rows = self.grid.shape[0]
        left = 6 + fm.horizontalAdvance(row_label(rows - 1)) + 6
        top = 2 * fm.height() + 10
        if self.categories is not None:  # the legend goes under the wells
            lines = max(entry[3] for entry in self._legend_layout()) + 1 if self.legend() else 0
            return left, top, 6, 6 + lines * self._legend_line() + 4
        widest = max(fm.horizontalAdvance(t) for t in self.bar_labels())
        return left, top, 12 + 12 + 6 + widest + 6, 6

    def _legend_line(self) -> int:
        return self.fontMetrics().height() + 4

    def _legend_layout(self) -> list[tuple[str, tuple[int, int, int], int, int]]:
        """``(text, rgb, x, line)`` of each legend entry, flowing in lines as wide as the widget."""
        fm = self.fontMetrics()
        out, x, line = [], 6, 0
        for label, rgb in self.legend():
            text = fm.elidedText(label, Qt.TextElideMode.ElideRight, _LEGEND_TEXT)
            width = 12 + 4 + fm.horizontalAdvance(text) + 12
            if x > 6 and x + width > self.width() - 6:
                x, line = 6, line + 1
            out.append((text, rgb, x, line))
            x += width
        return out

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
        return self.names.get(pos, well_name(*pos))

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

    def sizeHint(self) -> QSize:
        """Room for wells of 30 pixels."""
        left, top, right, bottom = self._margins()
        rows, cols = self.grid.shape
        cell = 30 if cols <= 12 else 18
        return QSize(left + right + cols * cell, top + bottom + rows * cell)

    def minimumSizeHint(self) -> QSize:
        """Room for wells of 8 pixels."""
        left, top, right, bottom = self._margins()
        rows, cols = self.grid.shape
        return QSize(left + right + cols * 8, top + bottom + rows * 8)

    # ---------------------------------------------------------------- paint
    def _colour(self, v: float, vmin: float, vmax: float) -> QColor:
        if self.categories is not None:
            return _qcolor(self.categories[int(v)][1])
        return _qcolor(self.lut[int(colour_index(v, vmin, vmax))])

    def paintEvent(self, _event) -> None:
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
                       row_label(r))

        value_font = QFont(self.font())
        value_font.setPixelSize(int(np.clip(cell // 3 + 1, 7, 14)))
        value_metrics = QFontMetrics(value_font)
        radius = max(2.0, cell / 5)
        missing = _qcolor(MISSING_RGB)
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
                    text = "" if self.categories is not None else self.fmt(v)
                    if text and cell >= 16 and value_metrics.horizontalAdvance(text) <= rect.width() - 2:
                        p.setPen(_qcolor(text_ink((colour.red(), colour.green(),
                                                   colour.blue()))))
                        p.setFont(value_font)
                        p.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), text)
                elif (r, c) in self.names:  # imaged, but no result (yet, or failed)
                    p.setPen(Qt.PenStyle.NoPen)
                    p.setBrush(missing)
                    p.drawRoundedRect(rect, radius, radius)
                    p.setPen(QPen(_qcolor(MISSING_CROSS_RGB), 1))
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
            if not rect.isNull():  # red beside a colour map; the text's colour beside categories
                p.setPen(QPen(QColor(255, 60, 60) if self.categories is None else fg, 3))
                p.drawRoundedRect(rect.adjusted(-1, -1, 1, 1), radius, radius)

        if self.categories is not None:
            self._paint_legend(p, o.y() + rows * cell + 6, fg)
            return
        # colour bar
        bar = QRect(o.x() + cols * cell + 12, o.y(), 12, rows * cell)
        if np.isfinite(vmin):
            gradient = QLinearGradient(0, bar.bottom(), 0, bar.top())
            for k in range(0, 256, 15):  # 0, 15, ..., 255
                gradient.setColorAt(k / 255, _qcolor(self.lut[k]))
            p.fillRect(bar, gradient)
            p.setPen(fg)
            p.drawRect(bar)
            x = bar.right() + 6
            top, bottom = self.bar_labels()
            p.drawText(QRect(x, bar.top() - 2, 200, fm.height()),
                       int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop), top)
            p.drawText(QRect(x, bar.bottom() - fm.height() + 2, 200, fm.height()),
                       int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom), bottom)
        else:
            p.setPen(fg)
            p.drawText(QRect(bar.left(), bar.top(), 200, fm.height()),
                       int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop),
                       self.bar_labels()[0])

    def _paint_legend(self, p: QPainter, top: int, fg: QColor) -> None:
        """One swatch and label per category on the plate, in lines under the wells."""
        line = self._legend_line()
        p.setFont(self.font())
        for text, rgb, x, k in self._legend_layout():
            y = top + k * line
            p.setPen(QPen(fg, 1))
            p.setBrush(_qcolor(rgb))
            p.drawRect(QRect(x, y + (line - 12) // 2, 12, 12))
            p.setPen(fg)
            p.drawText(QRect(x + 16, y, self.width() - x - 16, line),
                       int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), text)
        p.setBrush(Qt.BrushStyle.NoBrush)

    # -------------------------------------------------------------- mouse
    def mouseMoveEvent(self, event) -> None:
        """Follow the well under the mouse."""
        pos = event.position()
        self._hover(self.well_at(pos.x(), pos.y()))
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:
        """No well is hovered any more."""
        self._hover(None)
        super().leaveEvent(event)

    def _hover(self, well: str | None) -> None:
        if well != self.hovered:
            self.hovered = well
            self.update()
            self.hovered_changed.emit(well)

    def mousePressEvent(self, event) -> None:
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
