"""The dock's per-image table: a Qt model over the :class:`ResultsStore`.

A ``QTableWidget`` holds one item object per cell and, with columns sized to
their contents, measures every row again whenever a cell changes: its cost
per result grows with the size of the run. This model holds nothing; the
view asks for the text of the rows it shows, when it shows them, so the cost
of a result does not grow with the size of the run.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from ....core.io.discovery import ImageMeta

if TYPE_CHECKING:
    from ....core.results.store import ResultsStore

__all__ = ["COLUMNS", "ImageTableModel", "make_image_table"]

#: column titles, in order
COLUMNS = ("image", "well", "site", "nuclei", "error")
_NUMBERS = {0, 3}


class ImageTableModel(QAbstractTableModel):
    """One row per image of the store's run; the text is read from the store on demand.

    Parameters
    ----------
    store : ResultsStore
        Followed through its listener interface: a new run resets the model,
        a result or a hand edit refreshes that image's row.
    """

    def __init__(self, store: ResultsStore, parent=None) -> None:
        super().__init__(parent)
        self._store = store
        self._rows = len(store.labels)
        self._resetting = False
        listener = self._on_store_event
        store.subscribe(listener)
        # a plain callable: the store may outlive this model
        self.destroyed.connect(functools.partial(store.unsubscribe, listener))

    # -- store events ------------------------------------------------------
    def _on_store_event(self, event: str, indices) -> None:
        if event == "resetting":  # Qt wants to hear before the data changes
            self.beginResetModel()
            self._resetting = True
        elif event == "reset":
            if not self._resetting:
                self.beginResetModel()
            self._rows = len(self._store.labels)
            self._resetting = False
            self.endResetModel()
        elif event in ("result", "edited") and indices:
            rows = [i for i in indices if 0 <= i < self._rows]
            if rows:
                self.dataChanged.emit(self.index(min(rows), 0),
                                      self.index(max(rows), len(COLUMNS) - 1))

    # -- Qt model interface ----------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Number of images in the run."""
        return 0 if parent.isValid() else self._rows

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Number of columns (:data:`COLUMNS`)."""
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):
        """Column titles."""
        if (role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal
                and 0 <= section < len(COLUMNS)):
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        """Text, tooltip and alignment of one cell."""
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(row, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            r = self._store.results.get(row)
            if r is not None:
                return r.error or r.path
            labels = self._store.labels
            return labels[row] if row < len(labels) else None
        if role == Qt.ItemDataRole.TextAlignmentRole and col in _NUMBERS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def text(self, row: int, col: int) -> str:
        """What the table shows for image ``row`` in column ``col``."""
        store = self._store
        r = store.results.get(row)
        if col == 0:
            return str(row)  # napari's slider counts from 0 too
        if col in (1, 2):
            meta = r.meta if r is not None else (
                store.meta[row] if row < len(store.meta) else ImageMeta())
            return meta.well if col == 1 else meta.site
        if r is None:
            return ""
        if col == 3:
            if r.count is None:
                return ""
            return f"{r.count} (edited)" if r.edited else str(r.count)
        return r.error


def make_image_table(store: ResultsStore, parent=None) -> QTableView:
    """A read-only, row-selecting table view of ``store`` (model: :class:`ImageTableModel`)."""
    view = QTableView(parent)
    view.setModel(ImageTableModel(store, view))
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.verticalHeader().setVisible(False)
    # every row the same height: the view never measures rows it does not show
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(True)
    metrics = view.fontMetrics()
    for col, sample in enumerate(("00000", "W00", "s00", "0000 (edited)")):
        view.setColumnWidth(col, metrics.horizontalAdvance(sample) + 16)
    view.setToolTip("One row per image; click a row to show that image")
    return view
