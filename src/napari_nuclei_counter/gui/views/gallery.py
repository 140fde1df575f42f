"""The "Nuclei gallery" dock: every processed image as a thumbnail, sorted by nuclei count.

The dock is the GUI end of the core's gallery pipeline
(:mod:`napari_nuclei_counter.core.render.gallery`): which images pass the
filter bar (:class:`~.gallery_filters.GalleryFilters`) and their order are
:func:`~napari_nuclei_counter.core.render.gallery.gallery_order`'s, captions
and tiles are the core's, and only turning tiles into pixmaps and painting
them is done here. The gallery is virtualised: a ``QListView`` in icon mode
over a :class:`~.thumbnail_model.ThumbnailModel` (tiles made off the GUI
thread, a bounded cache).

The gallery shows the :class:`~napari_nuclei_counter.core.results.store.ResultsStore`
it is given, or the viewer's (:func:`~napari_nuclei_counter.gui.registry.store_for`):
it fills in while a batch runs (refreshes are throttled), follows hand
corrections and the well picked on the plate map, and moves the viewer to the
image of a clicked thumbnail. Once a plate layout is loaded (the detector's
*Treatments* tab, shared through
:class:`~napari_nuclei_counter.gui.treatments.model.TreatmentsModel`), it
can show the images of one compound. "Export PNG…" writes the core's mosaic in a
background thread (:class:`~.gallery_export.GalleryExporter`).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from napari.utils.notifications import show_warning
from qtpy.QtCore import QModelIndex, QSize, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...core.render.gallery import ANY_FLAG, gallery_order
from ...core.results.store import ResultsStore
from ..navigation import current_image, show_image
from ..registry import store_for, treatments_for
from ..treatments.model import TreatmentsModel
from .background import REFRESH_MS, TableRefresher
from .gallery_export import GalleryExporter
from .gallery_filters import GalleryFilters
from .shared import (
    stop_on_close,
    store_snapshot,
    store_tables,
    teardown,
    weak_method,
)
from .thumbnail_model import ThumbnailModel

if TYPE_CHECKING:
    import napari

__all__ = ["GalleryWidget"]

log = logging.getLogger(__name__)


class GalleryWidget(QWidget):
    """Thumbnails of every processed image of the last run, sorted by nuclei count.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.
    store : ResultsStore, optional
        The results to show; by default the viewer's
        (:func:`~napari_nuclei_counter.gui.registry.store_for`, which docks the detector if the viewer
        has no results store yet).
    thumbnail_size : int, optional
        Longest side of a thumbnail on screen, in pixels.
    cache_size : int, optional
        Thumbnails kept in memory.
    treatments : TreatmentsModel, optional
        The plate layout whose compounds the gallery can filter by; by
        default the viewer's (:func:`~napari_nuclei_counter.gui.registry.treatments_for`).

    Attributes
    ----------
    model : ThumbnailModel
    view : QListView
    filters : GalleryFilters
    treatments : TreatmentsModel
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, store: ResultsStore | None = None,
                 *, thumbnail_size: int = 160, cache_size: int = 400,
                 treatments: TreatmentsModel | None = None) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.store: ResultsStore = (store if store is not None
                                    else store_for(napari_viewer, dock_detector=True))
        self.treatments = (treatments if treatments is not None
                           else treatments_for(napari_viewer, self.store))
        self._compound_images: set[int] | None = None  # images of the compound shown
        self._closed = threading.Event()
        self._syncing = False
        self.refresh_seconds = 0.0  #: duration of the last refresh
        self.model = ThumbnailModel(self.store, size=thumbnail_size, cache_size=cache_size,
                                    closed=self._closed, parent=self)
        self.flags: dict[int, str] = {}  #: QC flags by image index (computed in the background)
        self._flag_table = TableRefresher(
            self._closed, functools.partial(store_snapshot, self.store, False), store_tables,
            weak_method(self, "_on_flags"), parent=self)
        self.exporter = GalleryExporter(
            self.store, shown=self.order, ascending=lambda: self.filters.ascending.isChecked(),
            closed=self._closed, parent=self)
        self._build(thumbnail_size)
        self._connect()
        self._follow_well(self.store.selected_well)
        self._on_treatments()

    # ------------------------------------------------------------------ build
    def _build(self, size: int) -> None:
        self.filters = GalleryFilters(self)
        view = QListView()
        view.setViewMode(QListView.ViewMode.IconMode)
        view.setMovement(QListView.Movement.Static)
        view.setResizeMode(QListView.ResizeMode.Adjust)
        view.setWrapping(True)
        view.setUniformItemSizes(True)
        view.setWordWrap(True)
        view.setIconSize(QSize(size, size))
        view.setGridSize(QSize(size + 14, size + 44))
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        view.verticalScrollBar().setSingleStep(24)
        view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        view.setMinimumSize(size + 40, (size + 44) // 2)
        view.setModel(self.model)
        self.view = view

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.export_n = QSpinBox()
        self.export_n.setRange(0, 100000)
        self.export_n.setValue(16)
        self.export_n.setSpecialValueText("all")
        self.export_n.setToolTip("Images in the exported mosaic: a reproducible random sample "
                                 "of the images shown, sorted by count (0: all of them)")
        self.export_button = QPushButton("Export PNG…")
        self.export_button.setToolTip("Save a mosaic of the images shown as a PNG file")

        row3 = QHBoxLayout()
        row3.addWidget(self.status, 1)
        row3.addWidget(QLabel("export"))
        row3.addWidget(self.export_n)
        row3.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.filters)
        layout.addWidget(view, 1)
        layout.addLayout(row3)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)

    def _connect(self) -> None:
        self.filters.changed.connect(self.on_filter_changed)
        self.filters.well_picked.connect(self.on_well_picked)
        self.filters.compound_picked.connect(self.set_compound)
        self.view.clicked.connect(self.on_clicked)
        self.view.selectionModel().currentChanged.connect(self.on_current_changed)
        self.export_button.clicked.connect(self.on_export_clicked)
        listener = weak_method(self, "_on_store_event")
        self.store.subscribe(listener)
        step_event = self.viewer.dims.events.current_step
        on_step = weak_method(self, "_on_current_step")
        step_event.connect(on_step)
        on_treatments = weak_method(self, "_on_treatments")
        events = self.treatments.events
        treatment_events = (events.layout, events.analysis, events.compound)
        for signal in treatment_events:
            signal.connect(on_treatments)
        # when Qt deletes the widget, or Python lets go of an undocked one
        self._stop = weakref.finalize(
            self, teardown, closed=self._closed, store=self.store, listener=listener,
            jobs=[self.model.queue.jobs, self._flag_table.queue.jobs, self.exporter.queue.jobs],
            disconnect=[functools.partial(step_event.disconnect, on_step),
                        *(functools.partial(signal.disconnect, on_treatments)
                          for signal in treatment_events)])
        self.destroyed.connect(self._stop)
        stop_on_close(self, self._stop)

    # ---------------------------------------------------------------- reading
    def order(self) -> list[int]:
        """Image indices in display order."""
        return self.model.rows

    def caption_of(self, index: int) -> str:
        """Caption of image ``index``, e.g. ``'B02 s1: 214 nuclei'``."""
        return self.model.caption_of(index)

    def thumbnail_ready(self, index: int) -> bool:
        """Whether the thumbnail of image ``index`` is made and cached."""
        return self.model.is_ready(index)

    def well_filter(self) -> str | None:
        """The well shown, ``None`` for all wells."""
        return self.filters.well()

    def qc_filter(self) -> str:
        """The QC filter: ``'any'``, ``'flagged'`` or one name of ``core.qc.FLAGS``."""
        return self.filters.qc()

    def compound_filter(self) -> str | None:
        """The compound shown, ``None`` for all compounds."""
        return self.treatments.compound

    def count_range(self) -> tuple[int, int | None]:
        """``(min, max)`` nuclei shown; ``max`` is ``None`` when there is no upper limit."""
        return self.filters.count_range()

    # ---------------------------------------------------------------- filters
    def set_count_range(self, low: int = 0, high: int | None = None) -> None:
        """Show only images with ``low <= count <= high`` nuclei (``None``: no upper limit)."""
        self.filters.set_count_range(low, high)
        self.refresh()

    def set_well(self, well: str | None) -> None:
        """Show only the images of ``well`` (``None``: all wells); the plate map follows."""
        if well != self.store.selected_well:
            self.store.select_well(well)  # comes back as a "select_well" event
        else:
            self._follow_well(well)

    def set_compound(self, compound: str | None) -> None:
        """Show only the images of the wells that received ``compound`` (``None``: all).

        The compound is the treatments model's, so the *Treatments* tab and
        every gallery of the viewer agree.
        """
        self.treatments.compound = compound or None

    def _on_treatments(self, *_) -> None:
        """The layout, its analysis or the compound shown changed."""
        if self._closed.is_set():
            return
        compound = self.treatments.compound
        self.filters.set_compounds(self.treatments.compounds(), compound)
        self._compound_images = (self.treatments.images_of_compound(compound)
                                 if compound is not None else None)
        self.refresh()

    def set_qc_filter(self, name: str) -> None:
        """Filter on QC flags: ``'any'``, ``'flagged'`` or a flag name."""
        self.filters.set_qc(name)

    def on_filter_changed(self, kind: str = "") -> None:
        """The order, the count range or the QC filter changed by hand."""
        if kind == "qc" and self.qc_filter() != ANY_FLAG:
            self._flag_table.request(now=True)  # flags are computed in the background
        self.refresh()

    def on_well_picked(self, well: str | None) -> None:
        """A well was picked in the combo: tell the store (the plate map follows)."""
        if well != self.store.selected_well:
            self.store.select_well(well)
        else:
            self.refresh()

    def _follow_well(self, well: str | None) -> None:
        self.filters.show_well(well)
        self.refresh()
        self.view.scrollToTop()

    def _offer_wells(self) -> None:
        wells = {m.well for m in self.store.meta if m.well}
        wells.update(r.meta.well for r in self.store.results.values() if r.meta.well)
        self.filters.set_wells(wells)

    # ---------------------------------------------------------------- refresh
    def schedule_refresh(self) -> None:
        """Refresh soon: at most once per 300 ms (longer if refreshing is slow)."""
        if not self._timer.isActive():
            self._timer.start(max(REFRESH_MS, int(5000 * self.refresh_seconds)))

    def refresh(self) -> None:
        """Recompute the images shown and their order from the store and the filters."""
        if self._closed.is_set():
            return
        t0 = time.perf_counter()
        self._timer.stop()
        low, high = self.count_range()
        qc = self.qc_filter()
        results = self.store.results
        if self._compound_images is not None:
            results = {i: r for i, r in results.items() if i in self._compound_images}
        found = gallery_order(results, low=low, high=high, well=self.well_filter(),
                              qc=qc, flags=self.flags,
                              ascending=self.filters.ascending.isChecked())
        self.filters.set_top(found.top)
        self._offer_wells()
        self._set_rows(found.rows)
        text = f"{len(found.rows)} of {found.successful} images"
        if self._compound_images is not None:
            text += f" of {self.treatments.compound}"
        if found.failed:
            text += f" ({found.failed} failed, not shown)"
        if qc != ANY_FLAG and self._flag_table.busy:
            text += "; QC flags being computed…"
        self.status.setText(text)
        self.refresh_seconds = time.perf_counter() - t0

    def _set_rows(self, rows: list[int]) -> None:
        current = self._current_image()
        bar = self.view.verticalScrollBar()
        position = bar.value()
        if self.model.set_rows(rows):
            bar.setValue(position)
            row = self.model.row_of(current) if current is not None else None
            if row is not None:
                self._select_row(row, scroll=False)

    def _current_image(self) -> int | None:
        idx = self.view.currentIndex()
        return self.model.data(idx, ThumbnailModel.IndexRole) if idx.isValid() else None

    def _on_store_event(self, event: str, indices) -> None:
        if self._closed.is_set():
            return
        if event == "reset":
            self.model.clear()
            self.flags = {}
            self.filters.forget_wells()
            self._follow_well(self.store.selected_well)
            self._on_treatments()  # the compound's images among the new run's
            if self.qc_filter() != ANY_FLAG:
                self._flag_table.request()
            return
        if event == "select_well":
            self._follow_well(self.store.selected_well)
            return
        if event in ("result", "edited"):
            self.model.invalidate(indices)  # a new result for an image replaces its tile
            if self.qc_filter() != ANY_FLAG:
                self._flag_table.request()
            self.schedule_refresh()

    def _on_flags(self, tables) -> None:
        images, _ = tables
        self.flags = dict(zip(images["index"].tolist(), images["qc_flags"].tolist(), strict=True))
        self.model.flags = self.flags
        self.refresh()

    # ----------------------------------------------------------- the viewer
    def on_clicked(self, row) -> None:
        """A thumbnail was clicked: show its image in the viewer.

        Parameters
        ----------
        row : int or QModelIndex
            The row in the gallery.
        """
        row = row.row() if isinstance(row, QModelIndex) else int(row)
        if 0 <= row < len(self.model.rows):
            self.activate(self.model.rows[row])

    def on_current_changed(self, current: QModelIndex, _previous: QModelIndex = None) -> None:
        """Browsing the gallery with the keyboard moves the viewer too."""
        if not self._syncing and current.isValid():
            self.on_clicked(current)

    def activate(self, index: int) -> bool:
        """Move the viewer to image ``index`` and select its thumbnail.

        Returns
        -------
        bool
            Whether the viewer moved.
        """
        moved = show_image(self.viewer, self.store, index)
        row = self.model.row_of(index)
        if row is not None:
            self._select_row(row, scroll=False)
        return moved

    def _select_row(self, row: int, scroll: bool = True) -> None:
        idx = self.model.index(row)
        self._syncing = True
        try:
            self.view.setCurrentIndex(idx)
            if scroll:
                self.view.scrollTo(idx, QAbstractItemView.ScrollHint.EnsureVisible)
        finally:
            self._syncing = False

    def _on_current_step(self, _event=None) -> None:
        if self._closed.is_set() or self._syncing:
            return
        image = current_image(self.viewer, self.store)
        row = self.model.row_of(image) if image is not None else None
        if row is None:
            self._syncing = True
            try:
                self.view.clearSelection()
            finally:
                self._syncing = False
        elif row != self.view.currentIndex().row():
            self._select_row(row)

    # ----------------------------------------------------------------- export
    def export_selection(self, n: int = 16, seed: int = 11) -> list[int]:
        """Images an export shows: all those shown, or a seeded sample of ``n``
        (:meth:`GalleryExporter.selection <.gallery_export.GalleryExporter.selection>`)."""
        return self.exporter.selection(n, seed)

    def export_png(self, path: str | os.PathLike, n: int = 16, seed: int = 11, *,
                   size: int = 200, columns: int = 4) -> Path:
        """Save a captioned mosaic of the images shown as a PNG file, now (blocks).

        See :meth:`GalleryExporter.export_png <.gallery_export.GalleryExporter.export_png>`;
        *Export PNG…* does the same in a background thread (:meth:`start_export`).
        """
        return self.exporter.export_png(path, n, seed, size=size, columns=columns)

    def start_export(self, path: str | os.PathLike, n: int = 16, seed: int = 11) -> bool:
        """Export in a background thread; a notification tells the outcome."""
        return self.exporter.start(path, n, seed)

    def on_export_clicked(self, *_) -> None:
        """Ask for a file name and export the mosaic (in a background thread)."""
        if not self.order():
            show_warning("The gallery shows no image: nothing to export.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export gallery as PNG", "gallery.png",
                                              "PNG image (*.png)")
        if not path:
            return
        if not path.lower().endswith(".png"):
            path += ".png"
        self.start_export(path, n=self.export_n.value())
