"""The "Nuclei gallery" dock: every processed image as a thumbnail, sorted by nuclei count.

The gallery is virtualised: a ``QListView`` in icon mode over a
:class:`ThumbnailModel` whose rows are image indices. A thumbnail is made only
when its row is painted, in numpy (``core.gallery.thumbnail``) and off the GUI
thread, in a background thread that runs while there is work (a few tiles at a
time, the most recently painted first); it becomes a ``QImage``/``QPixmap``
only here, in the view, and at most ``cache_size`` of them are kept (least
recently used out first), so memory stays bounded on a plate of 10,000 images.

The gallery listens to the detector's :class:`~napari_nuclei_counter.core.store.ResultsStore`:
it fills in while a batch runs (refreshes are throttled), follows hand
corrections and the well picked on the plate map, and moves the viewer to
the image of a clicked thumbnail.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QAbstractListModel, QModelIndex, QObject, QSize, Qt, QTimer
from qtpy.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
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

from ..core.batch import read_image
from ..core.gallery import (
    caption,
    gallery_selection,
    render_gallery,
    save_png,
    thumbnail,
)
from ..core.qc import FLAGS
from ..core.store import ResultsStore
from ._views import (
    BackgroundQueue,
    TableRefresher,
    blocked_signals,
    current_image,
    find_store,
    show_image,
    store_snapshot,
    store_tables,
    teardown,
    unwrap_proxy,
    weak_method,
    well_key,
)

if TYPE_CHECKING:
    import napari

__all__ = ["GalleryWidget", "ThumbnailModel"]

log = logging.getLogger(__name__)

PLUGIN = "napari-nuclei-counter"
DETECTOR = "Nuclei detector"
#: shortest time between two refreshes of a view while results stream in (ms)
REFRESH_MS = 300
ALL_WELLS = "all wells"
ANY_FLAG = "any"
FLAGGED = "flagged"
_IDLE_S = 0.02  # a background thread without work for this long ends


def load_image(path: str, data, index: int) -> np.ndarray:
    """The pixels of one image of a run: its file, or its plane of an in-memory layer.

    Parameters
    ----------
    path : str
        The result's path; read with :func:`~napari_nuclei_counter.core.batch.read_image`
        when it is a file.
    data : array_like or None
        The run's image layer data (``(N, rows, cols)`` or ``(rows, cols)``).
    index : int
        Image index in the run.

    Returns
    -------
    ndarray, shape (rows, cols)
    """
    if path and os.path.isfile(path):
        return read_image(path)
    if data is None:
        raise FileNotFoundError(f"{path}: not a file, and the image layer is gone")
    if getattr(data, "ndim", 0) >= 3:
        return np.asarray(data[index])
    return np.asarray(data)


def make_thumbnail(path: str, data, index: int, coords: np.ndarray, size: int,
                   dot_radius: int = 2) -> np.ndarray:
    """Read one image and draw its thumbnail with its nuclei (background thread).

    Parameters
    ----------
    path, data, index :
        See :func:`load_image`.
    coords : ndarray, shape (N, 2)
        Nucleus centres in image pixels.
    size : int
        Longest side of the thumbnail.
    dot_radius : int, optional
        Radius of the nucleus dots in thumbnail pixels.

    Returns
    -------
    ndarray of uint8, shape (h, w, 3)
    """
    return thumbnail(load_image(path, data, index), coords, size=size, dot_radius=dot_radius)


def _layer_data(layer):
    if layer is None:
        return None
    data = getattr(layer, "data", None)
    if getattr(layer, "multiscale", False) and data is not None:
        data = data[0]
    return data


def to_pixmap(rgb: np.ndarray) -> QPixmap:
    """A ``QPixmap`` of a ``uint8`` RGB array (GUI thread only)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    buffer = rgb.tobytes()
    image = QImage(buffer, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image)


def _tile(size: int, text: str, cross: bool = False) -> QPixmap:
    pix = QPixmap(size, size)
    pix.fill(QColor(45, 45, 48))
    painter = QPainter(pix)
    painter.setPen(QPen(QColor(150, 150, 150)))
    if cross:
        painter.drawLine(size // 4, size // 4, 3 * size // 4, 3 * size // 4)
        painter.drawLine(size // 4, 3 * size // 4, 3 * size // 4, size // 4)
    painter.drawText(pix.rect(), int(Qt.AlignmentFlag.AlignCenter), text)
    painter.end()
    return pix


class ThumbnailModel(QAbstractListModel):
    """Rows are image indices in display order; thumbnails are made on demand.

    ``data(index, DecorationRole)`` returns the cached pixmap of the image, or
    :attr:`placeholder` while its thumbnail is made in the background (the
    most recently asked-for first, a few at a time); ``dataChanged`` follows
    when it is ready. At most ``cache_size`` pixmaps are kept.

    Parameters
    ----------
    store : ResultsStore
    size : int, optional
        Longest side of a thumbnail in pixels.
    cache_size : int, optional
        Pixmaps kept (least recently used out first).
    batch_size : int, optional
        Thumbnails handed to the background thread at a time.
    closed : threading.Event, optional
    parent : QObject, optional
    """

    #: role of the image index of a row
    IndexRole = Qt.ItemDataRole.UserRole + 1
    #: requests waiting beyond this many are dropped (oldest first): they
    #: were for rows scrolled past; rows on screen ask again when painted
    MAX_WAITING = 256

    def __init__(self, store: ResultsStore, *, size: int = 160, cache_size: int = 400,
                 batch_size: int = 8, closed: threading.Event | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.size = int(size)
        self.cache_size = max(1, int(cache_size))
        self.batch_size = max(1, int(batch_size))
        #: small dots on small thumbnails, so that the nuclei still show
        self.dot_radius = 1 if self.size < 240 else 2
        self.closed = closed or threading.Event()
        self.queue = BackgroundQueue(self.closed, self)
        self.placeholder = _tile(self.size, "…")
        self.broken = _tile(self.size, "unreadable", cross=True)
        self.made = 0  #: thumbnails made so far (for tests and diagnostics)
        self.flags: dict[int, str] = {}  #: QC flags by image index, for tooltips
        self._rows: list[int] = []
        self._row_of: dict[int, int] = {}
        self._cache: OrderedDict[int, tuple[int, QPixmap]] = OrderedDict()
        self._waiting: OrderedDict[tuple, None] = OrderedDict()
        self._handed: set[tuple] = set()
        self._versions: dict[int, int] = {}
        self._generation = 0

    # -- Qt model --------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Number of images shown."""
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        """Caption, thumbnail, tooltip or image index of a row."""
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        i = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.caption_of(i)
        if role == Qt.ItemDataRole.DecorationRole:
            return self.pixmap(i)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip_of(i)
        if role == self.IndexRole:
            return i
        return None

    # -- rows ------------------------------------------------------------
    @property
    def rows(self) -> list[int]:
        """Image indices in display order."""
        return list(self._rows)

    def row_of(self, image: int) -> int | None:
        """Row of an image index, ``None`` if it is not shown."""
        return self._row_of.get(int(image))

    def set_rows(self, rows: list[int]) -> bool:
        """Show these images in this order.

        Returns
        -------
        bool
            ``True`` when the rows changed (the model was reset).
        """
        rows = [int(i) for i in rows]
        if rows == self._rows:
            if rows:  # captions may have changed (counts, edits)
                self.dataChanged.emit(self.index(0), self.index(len(rows) - 1),
                                      [Qt.ItemDataRole.DisplayRole,
                                       Qt.ItemDataRole.ToolTipRole])
            return False
        self.beginResetModel()
        self._rows = rows
        self._row_of = {i: r for r, i in enumerate(rows)}
        self.endResetModel()
        return True

    # -- texts -----------------------------------------------------------
    def caption_of(self, image: int) -> str:
        """Caption of an image: ``'B02 s1: 214 nuclei'`` (``' (edited)'`` after a correction)."""
        r = self.store.results.get(int(image))
        if r is None:
            return ""
        if not r.ok:
            return f"{Path(r.path).stem}: failed"
        text = caption({"n_nuclei": r.count, "well": r.meta.well, "site": r.meta.site,
                        "path": r.path})
        return text + (" (edited)" if r.edited else "")

    def tooltip_of(self, image: int) -> str:
        """Tooltip of an image: caption, position in the run, file, QC flags."""
        r = self.store.results.get(int(image))
        if r is None:
            return ""
        lines = [self.caption_of(image), f"image {r.index + 1} of {len(self.store.labels)}"]
        if r.meta.plate:
            lines.append(f"plate {r.meta.plate}")
        lines.append(str(r.path))
        flags = self.flags.get(int(image))
        if flags:
            lines.append("QC: " + flags.replace(";", ", "))
        if r.edited:
            lines.append("nuclei corrected by hand")
        lines.append("click: show this image in the viewer")
        return "\n".join(lines)

    # -- thumbnails ------------------------------------------------------
    def is_ready(self, image: int) -> bool:
        """Whether the current thumbnail of an image is cached."""
        entry = self._cache.get(int(image))
        return entry is not None and entry[0] == self._versions.get(int(image), 0)

    def pixmap(self, image: int) -> QPixmap:
        """The thumbnail of an image, or :attr:`placeholder` (then it is made)."""
        image = int(image)
        version = self._versions.get(image, 0)
        entry = self._cache.get(image)
        if entry is not None:
            self._cache.move_to_end(image)
            if entry[0] != version:
                self._request(image, version)  # the old one meanwhile
            return entry[1]
        self._request(image, version)
        return self.placeholder

    def _request(self, image: int, version: int) -> None:
        key = (self._generation, image, version)
        if key in self._handed:
            return
        self._waiting[key] = None
        self._waiting.move_to_end(key)
        while len(self._waiting) > self.MAX_WAITING:
            self._waiting.popitem(last=False)
        self._hand_over()

    def _hand_over(self) -> None:
        """Give the background thread the most recent requests, a few at a time."""
        free = self.batch_size - self.queue.outstanding
        if free <= 0 or not self._waiting or self.closed.is_set():
            return
        keys = []
        while self._waiting and len(keys) < free:
            keys.append(self._waiting.popitem(last=True)[0])
        data = _layer_data(self.store.source)
        for key in reversed(keys):  # in the order they were asked for
            _, image, _ = key
            r = self.store.results.get(image)
            if r is None or not r.ok:
                continue
            self._handed.add(key)
            coords = np.array(r.coords, copy=True)
            self.queue.submit(make_thumbnail,
                              (r.path, data, image, coords, self.size, self.dot_radius),
                              functools.partial(self._on_thumbnail, key))

    def _on_thumbnail(self, key: tuple, rgb, error, _seconds: float) -> None:
        self._handed.discard(key)
        generation, image, version = key
        if generation == self._generation:
            if error is not None:
                log.warning("gallery: no thumbnail for image %d: %s", image, error)
                pix = self.broken
            else:
                pix = to_pixmap(rgb)
                self.made += 1
            current = self._cache.get(image)
            if current is None or current[0] <= version:
                self._cache[image] = (version, pix)
                self._cache.move_to_end(image)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
                row = self._row_of.get(image)
                if row is not None:
                    idx = self.index(row)
                    self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])
        self._hand_over()

    def invalidate(self, images) -> None:
        """Make these images' thumbnails again when next shown (their nuclei changed)."""
        for i in images or ():
            i = int(i)
            if i not in self._cache and not any(k[1] == i for k in self._handed):
                continue  # never made: nothing to redo
            self._versions[i] = self._versions.get(i, 0) + 1
            row = self._row_of.get(i)
            if row is not None:
                idx = self.index(row)
                self.dataChanged.emit(idx, idx)

    def clear(self) -> None:
        """Forget every thumbnail (a new run)."""
        self._generation += 1
        self._cache.clear()
        self._waiting.clear()
        self._handed.clear()
        self._versions.clear()
        self.flags = {}

    @property
    def cached(self) -> int:
        """Number of pixmaps in the cache."""
        return len(self._cache)


# ------------------------------------------------------------------------- the dock


class GalleryWidget(QWidget):
    """Thumbnails of every processed image of the last run, sorted by nuclei count.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.
    store : ResultsStore, optional
        The results to show; by default those of the viewer's "Nuclei
        detector" dock (docked if missing).
    thumbnail_size : int, optional
        Longest side of a thumbnail on screen, in pixels.
    cache_size : int, optional
        Thumbnails kept in memory.

    Attributes
    ----------
    model : ThumbnailModel
    view : QListView
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, store: ResultsStore | None = None,
                 *, thumbnail_size: int = 160, cache_size: int = 400) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.store: ResultsStore = unwrap_proxy(store) if store is not None else find_store(
            napari_viewer)
        self._closed = threading.Event()
        self._syncing = False
        self._wells: list[str] = []
        self._top = 0  # largest count of the run
        self._open_max = True  # the maximum count is "no limit"
        self.refresh_seconds = 0.0  #: duration of the last refresh
        self.model = ThumbnailModel(self.store, size=thumbnail_size, cache_size=cache_size,
                                    closed=self._closed, parent=self)
        self.flags: dict[int, str] = {}  #: QC flags by image index (computed in the background)
        self._flag_table = TableRefresher(
            self._closed, functools.partial(store_snapshot, self.store, False), store_tables,
            weak_method(self, "_on_flags"), parent=self)
        self._build(thumbnail_size)
        self._connect()
        self._follow_well(self.store.selected_well)
        self.refresh()

    # ------------------------------------------------------------------ build
    def _build(self, size: int) -> None:
        self.ascending = QCheckBox("ascending")
        self.ascending.setToolTip("Fewest nuclei first (default: most nuclei first)")
        self.min_count = QSpinBox()
        self.max_count = QSpinBox()
        for spin, tip in ((self.min_count, "Show images with at least this many nuclei"),
                          (self.max_count, "Show images with at most this many nuclei "
                                           "(the largest count: no upper limit)")):
            spin.setRange(0, 0)
            spin.setToolTip(tip)
            spin.setKeyboardTracking(False)
        self.well_combo = QComboBox()
        self.well_combo.addItem(ALL_WELLS, None)
        self.well_combo.setToolTip("Show the images of one well (also set by the plate map)")
        self.qc_combo = QComboBox()
        self.qc_combo.addItem(ANY_FLAG, ANY_FLAG)
        self.qc_combo.setItemData(0, "Do not filter on quality flags",
                                  Qt.ItemDataRole.ToolTipRole)
        self.qc_combo.addItem(FLAGGED, FLAGGED)
        self.qc_combo.setItemData(1, "Images with any quality flag", Qt.ItemDataRole.ToolTipRole)
        for name, meaning in FLAGS.items():
            self.qc_combo.addItem(name, name)
            self.qc_combo.setItemData(self.qc_combo.count() - 1, meaning,
                                      Qt.ItemDataRole.ToolTipRole)
        self.qc_combo.setToolTip("Show only the images with a quality-control flag")

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

        row1 = QHBoxLayout()
        row1.addWidget(QLabel("nuclei"))
        row1.addWidget(self.min_count)
        row1.addWidget(QLabel("to"))
        row1.addWidget(self.max_count)
        row1.addStretch(1)
        row1.addWidget(self.ascending)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("well"))
        row2.addWidget(self.well_combo, 1)
        row2.addWidget(QLabel("QC"))
        row2.addWidget(self.qc_combo, 1)
        row3 = QHBoxLayout()
        row3.addWidget(self.status, 1)
        row3.addWidget(QLabel("export"))
        row3.addWidget(self.export_n)
        row3.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addWidget(view, 1)
        layout.addLayout(row3)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)

    def _connect(self) -> None:
        self.ascending.toggled.connect(self.on_sort_changed)
        self.min_count.valueChanged.connect(self.on_count_changed)
        self.max_count.valueChanged.connect(self.on_count_changed)
        self.well_combo.currentIndexChanged.connect(self.on_well_changed)
        self.qc_combo.currentIndexChanged.connect(self.on_qc_changed)
        self.view.clicked.connect(self.on_clicked)
        self.view.selectionModel().currentChanged.connect(self.on_current_changed)
        self.export_button.clicked.connect(self.on_export_clicked)
        listener = weak_method(self, "_on_store_event")
        self.store.subscribe(listener)
        step_event = self.viewer.dims.events.current_step
        on_step = weak_method(self, "_on_current_step")
        step_event.connect(on_step)
        # when Qt deletes the widget, or Python lets go of an undocked one
        self.destroyed.connect(weakref.finalize(
            self, teardown, closed=self._closed, store=self.store, listener=listener,
            jobs=[self.model.queue.jobs, self._flag_table.queue.jobs],
            disconnect=[functools.partial(step_event.disconnect, on_step)]))

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
        return self.well_combo.currentData()

    def qc_filter(self) -> str:
        """The QC filter: ``'any'``, ``'flagged'`` or one name of ``core.qc.FLAGS``."""
        return self.qc_combo.currentData() or ANY_FLAG

    def count_range(self) -> tuple[int, int | None]:
        """``(min, max)`` nuclei shown; ``max`` is ``None`` when there is no upper limit."""
        return self.min_count.value(), (None if self._open_max else self.max_count.value())

    # ---------------------------------------------------------------- filters
    def set_count_range(self, low: int = 0, high: int | None = None) -> None:
        """Show only images with ``low <= count <= high`` nuclei (``None``: no upper limit)."""
        low = max(0, int(low))
        top = max(self._top, low, int(high) if high is not None else 0)
        self._open_max = high is None
        with blocked_signals(self.min_count, self.max_count):
            self.min_count.setMaximum(top)
            self.max_count.setMaximum(top)
            self.min_count.setValue(low)
            self.max_count.setValue(top if high is None else max(int(high), 0))
        self.refresh()

    def set_well(self, well: str | None) -> None:
        """Show only the images of ``well`` (``None``: all wells); the plate map follows."""
        if well != self.store.selected_well:
            self.store.select_well(well)  # comes back as a "select_well" event
        else:
            self._follow_well(well)

    def set_qc_filter(self, name: str) -> None:
        """Filter on QC flags: ``'any'``, ``'flagged'`` or a flag name."""
        i = self.qc_combo.findData(name)
        if i < 0:
            raise ValueError(f"unknown QC filter {name!r}; use 'any', 'flagged' or one of "
                             f"{list(FLAGS)}")
        self.qc_combo.setCurrentIndex(i)

    def on_sort_changed(self, *_) -> None:
        """The ascending box was toggled."""
        self.refresh()

    def on_count_changed(self, *_) -> None:
        """A count spin box changed (a maximum at the largest count means no limit)."""
        self._open_max = self.max_count.value() >= self.max_count.maximum()
        self.refresh()

    def on_well_changed(self, _i: int = 0) -> None:
        """The well combo changed: tell the store (the plate map follows)."""
        well = self.well_filter()
        if well != self.store.selected_well:
            self.store.select_well(well)
        else:
            self.refresh()

    def on_qc_changed(self, _i: int = 0) -> None:
        """The QC combo changed: the flags are (re)computed in the background."""
        if self.qc_filter() != ANY_FLAG:
            self._flag_table.request(now=True)
        self.refresh()

    def _follow_well(self, well: str | None) -> None:
        i = self.well_combo.findData(well) if well is not None else 0
        with blocked_signals(self.well_combo):
            if i < 0:
                self.well_combo.addItem(well, well)
                i = self.well_combo.count() - 1
            self.well_combo.setCurrentIndex(i)
        self.refresh()
        self.view.scrollToTop()

    def _update_wells(self) -> None:
        wells = {m.well for m in self.store.meta if m.well}
        wells.update(r.meta.well for r in self.store.results.values() if r.meta.well)
        selected = self.well_filter()
        if selected:
            wells.add(selected)
        wells = sorted(wells, key=well_key)
        if wells == self._wells:
            return
        self._wells = wells
        with blocked_signals(self.well_combo):
            self.well_combo.clear()
            self.well_combo.addItem(ALL_WELLS, None)
            for w in wells:
                self.well_combo.addItem(w, w)
            self.well_combo.setCurrentIndex(max(0, self.well_combo.findData(selected))
                                            if selected else 0)

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
        lo, hi = self.count_range()
        well = self.well_filter()
        qc = self.qc_filter()
        items = []
        n_ok = failed = top = 0
        for i, r in self.store.results.items():
            if not r.ok:
                failed += 1
                continue
            n = len(r.coords)
            n_ok += 1
            top = max(top, n)
            if n < lo or (hi is not None and n > hi):
                continue
            if well is not None and r.meta.well != well:
                continue
            if qc != ANY_FLAG:
                flags = self.flags.get(i)
                if flags is None or not flags or (qc != FLAGGED and qc not in flags.split(";")):
                    continue
            items.append((n, i))
        if self.ascending.isChecked():
            items.sort()
        else:
            items.sort(key=lambda t: (-t[0], t[1]))
        self._update_count_spins(top)
        self._update_wells()
        self._set_rows([i for _, i in items])
        text = f"{len(items)} of {n_ok} images"
        if failed:
            text += f" ({failed} failed, not shown)"
        if qc != ANY_FLAG and self._flag_table.busy:
            text += "; QC flags being computed…"
        self.status.setText(text)
        self.refresh_seconds = time.perf_counter() - t0

    def _update_count_spins(self, top: int) -> None:
        """Let the spin boxes reach the largest count; an open maximum follows it."""
        self._top = top
        with blocked_signals(self.min_count, self.max_count):
            if self._open_max:
                new_max = max(top, self.min_count.value())
                self.max_count.setMaximum(new_max)
                self.max_count.setValue(new_max)
            else:
                new_max = max(top, self.max_count.value(), self.min_count.value())
                self.max_count.setMaximum(new_max)
            self.min_count.setMaximum(new_max)

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
            self._wells = []
            self._follow_well(self.store.selected_well)
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
        self.flags = dict(zip(images["index"].tolist(), images["qc_flags"].tolist()))
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
    def make_thumbnail(self, index: int, size: int = 200) -> np.ndarray:
        """The thumbnail of image ``index`` with its nuclei, made now (for exports).

        An image that cannot be read gives a grey square.

        Returns
        -------
        ndarray of uint8, shape (h, w, 3)
        """
        r = self.store.results[int(index)]
        try:
            return make_thumbnail(r.path, _layer_data(self.store.source), int(index),
                                  r.coords, size)
        except (OSError, ValueError, TypeError, IndexError) as exc:
            log.warning("gallery: cannot read image %d: %s", index, exc)
            return np.full((size, size, 3), 90, np.uint8)

    def export_selection(self, n: int = 16, seed: int = 11) -> list[int]:
        """Images of :meth:`export_png`: those shown, or a sample of ``n`` of them.

        The sample is :func:`~napari_nuclei_counter.core.gallery.gallery_selection`'s:
        ``numpy.random.default_rng(seed).choice`` without replacement among
        the images shown in image order, then sorted by count like the
        gallery.
        """
        import pandas as pd

        shown = sorted(self.order())
        table = pd.DataFrame(
            {"n_nuclei": pd.array([self.store.results[i].count for i in shown], dtype="Int64"),
             "error": ""}, index=shown)
        chosen = gallery_selection(table, int(n), seed=int(seed),
                                   ascending=self.ascending.isChecked())
        return [int(i) for i in chosen.index]

    def export_png(self, path: str | os.PathLike, n: int = 16, seed: int = 11, *,
                   size: int = 200, columns: int = 4) -> Path:
        """Save a captioned mosaic of the images shown as a PNG file.

        Parameters
        ----------
        path : str or PathLike
        n : int, optional
            All images shown when ``n <= 0`` or they are at most ``n``;
            otherwise a reproducible random sample of ``n``
            (:meth:`export_selection`), sorted by count.
        seed : int, optional
            Seed of the sample.
        size : int, optional
            Longest side of each thumbnail.
        columns : int, optional
            Thumbnails per row.

        Returns
        -------
        Path
            ``path``.

        Raises
        ------
        ValueError
            If the gallery shows no image.
        """
        chosen = self.export_selection(n, seed)
        if not chosen:
            raise ValueError("the gallery shows no image: nothing to export")
        tiles = [(self.make_thumbnail(i, size), self.caption_of(i)) for i in chosen]
        return save_png(render_gallery(tiles, columns=columns), path)

    def on_export_clicked(self, *_) -> None:
        """Ask for a file name and export the mosaic."""
        if not self.order():
            show_warning("The gallery shows no image: nothing to export.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export gallery as PNG", "gallery.png",
                                              "PNG image (*.png)")
        if not path:
            return
        if not path.lower().endswith(".png"):
            path += ".png"
        try:
            out = self.export_png(path, n=self.export_n.value())
        except (OSError, ValueError) as exc:
            show_warning(f"Could not export the gallery: {exc}")
        else:
            show_info(f"Gallery saved as {out}")
