"""The gallery's model: rows are image indices, tiles are made on demand off the GUI thread.

:class:`ThumbnailModel` is a ``QAbstractListModel`` with no widgets: the
gallery's ``QListView`` asks it for the rows it paints, and only those tiles
are made, by the core's gallery pipeline
(:func:`~napari_nuclei_counter.core.render.gallery.items_of_results`, then
:func:`~napari_nuclei_counter.core.render.gallery.gallery_tile`: uint8 arrays,
the command line's tiles), in a background thread that runs while there is
work (a few at a time, the most recently asked-for first). Captions are the
core's (:func:`~napari_nuclei_counter.core.render.gallery.result_caption`). A
tile becomes a ``QPixmap`` only here, and at most ``cache_size`` of them are
kept (least recently used out first), so memory stays bounded on a plate of
10,000 images.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict

import numpy as np
from qtpy.QtCore import QAbstractListModel, QModelIndex, QObject, Qt
from qtpy.QtGui import QColor, QImage, QPainter, QPen, QPixmap

from ...core.render.gallery import UNREADABLE, Tile, gallery_tile, items_of_results, result_caption
from ...core.render.thumbnails import blank_tile
from ...core.results.store import ResultsStore
from .background import BackgroundQueue

__all__ = ["ThumbnailModel", "layer_data", "to_pixmap"]

log = logging.getLogger(__name__)


def layer_data(layer):
    """The pixels of a run's image layer (its full resolution when multiscale), or ``None``."""
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


def _placeholder(size: int) -> QPixmap:
    """The tile shown while an image's tile is made: a dark square with an ellipsis."""
    pix = QPixmap(size, size)
    pix.fill(QColor(45, 45, 48))
    painter = QPainter(pix)
    painter.setPen(QPen(QColor(150, 150, 150)))
    painter.drawText(pix.rect(), int(Qt.AlignmentFlag.AlignCenter), "…")
    painter.end()
    return pix


class ThumbnailModel(QAbstractListModel):
    """Rows are image indices in display order; thumbnails are made on demand.

    ``data(index, DecorationRole)`` returns the cached pixmap of the image, or
    :attr:`placeholder` while its tile is made in the background (the most
    recently asked-for first, a few at a time); ``dataChanged`` follows when
    it is ready. At most ``cache_size`` pixmaps are kept. An image that cannot
    be read shows :attr:`broken` (the core's grey tile) and its caption says
    ``(unreadable)``, as in the command line's gallery.

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
        self.placeholder = _placeholder(self.size)
        self.broken = to_pixmap(blank_tile(self.size))
        self.made = 0  #: thumbnails made so far, unreadable images not counted (for tests and diagnostics)
        self.flags: dict[int, str] = {}  #: QC flags by image index, for tooltips
        self._rows: list[int] = []
        self._row_of: dict[int, int] = {}
        self._cache: OrderedDict[int, tuple[int, QPixmap]] = OrderedDict()
        self._waiting: OrderedDict[tuple, None] = OrderedDict()
        self._handed: set[tuple] = set()
        self._versions: dict[int, int] = {}
        self._unreadable: set[int] = set()
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
        """Caption of an image: ``'B02 s1: 214 nuclei'`` (``' (edited)'`` after a correction,
        ``' (unreadable)'`` when its pixels cannot be read)."""
        r = self.store.results.get(int(image))
        if r is None:
            return ""
        text = result_caption(r, mark_edited=True)
        return text + UNREADABLE if int(image) in self._unreadable else text

    def tooltip_of(self, image: int) -> str:
        """Tooltip of an image: caption, position in the run, file, QC flags."""
        r = self.store.results.get(int(image))
        if r is None:
            return ""
        lines = [self.caption_of(image), f"image {r.index} (of 0-{len(self.store.labels) - 1})"]
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
        data = layer_data(self.store.source)
        make = functools.partial(gallery_tile, size=self.size, dot_radius=self.dot_radius,
                                 plane=self.store.plane)
        for key in reversed(keys):  # in the order they were asked for
            _, image, _ = key
            r = self.store.results.get(image)
            if r is None or not r.ok:
                continue
            self._handed.add(key)
            (item,) = items_of_results(self.store.results, [image], data)
            self.queue.submit(make, (item,), functools.partial(self._on_tile, key))

    def _on_tile(self, key: tuple, tile: Tile | None, error, _seconds: float) -> None:
        self._handed.discard(key)
        generation, image, version = key
        if generation == self._generation:
            if error is not None:
                log.warning("gallery: no thumbnail for image %d: %s", image, error)
                readable = False
            else:
                readable = tile.readable
            self.made += readable
            pix = to_pixmap(tile.picture) if readable else self.broken
            current = self._cache.get(image)
            if current is None or current[0] <= version:
                self._cache[image] = (version, pix)
                self._cache.move_to_end(image)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
                caption_changed = readable == (image in self._unreadable)
                if readable:
                    self._unreadable.discard(image)
                else:
                    self._unreadable.add(image)
                row = self._row_of.get(image)
                if row is not None:
                    idx = self.index(row)
                    roles = [Qt.ItemDataRole.DecorationRole]
                    if caption_changed:
                        roles += [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole]
                    self.dataChanged.emit(idx, idx, roles)
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
        self._unreadable.clear()
        self.flags = {}

    @property
    def cached(self) -> int:
        """Number of pixmaps in the cache."""
        return len(self._cache)
