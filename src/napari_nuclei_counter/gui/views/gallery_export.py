"""The gallery's "Export PNG": a captioned mosaic of the images shown, written off the GUI thread.

The core's gallery pipeline end to end, like the command line's ``gallery``:
the images are chosen by
:func:`~napari_nuclei_counter.core.render.gallery.gallery_sample`, taken from
the store with their captions by
:func:`~napari_nuclei_counter.core.render.gallery.items_of_results` on the GUI
thread, and read, drawn and written by
:func:`~napari_nuclei_counter.core.render.gallery.save_gallery` in a background
thread.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from pathlib import Path

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QObject

from ...core.render.gallery import GalleryItem, gallery_sample, items_of_results, save_gallery
from ...core.results.store import ResultsStore
from .background import BackgroundQueue
from .thumbnail_model import layer_data

__all__ = ["GalleryExporter"]


class GalleryExporter(QObject):
    """Mosaics of a gallery's images as PNG files.

    Parameters
    ----------
    store : ResultsStore
    shown : callable
        ``shown() -> list of int``: the image indices the gallery shows.
    ascending : callable
        ``ascending() -> bool``: the gallery's order.
    closed : threading.Event
    parent : QObject, optional
    """

    def __init__(self, store: ResultsStore, *, shown: Callable[[], list[int]],
                 ascending: Callable[[], bool], closed: threading.Event,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._shown, self._ascending = shown, ascending
        self.queue = BackgroundQueue(closed, self)

    def selection(self, n: int = 16, seed: int = 11) -> list[int]:
        """Images of :meth:`export_png`: those shown, or a seeded sample of ``n`` of them.

        :func:`~napari_nuclei_counter.core.render.gallery.gallery_sample`: the
        command line's rule applied to the images shown, sorted like the gallery.
        """
        return gallery_sample(self.store.results, self._shown(), int(n), seed=int(seed),
                              ascending=self._ascending())

    def items(self, n: int = 16, seed: int = 11) -> list[GalleryItem]:
        """What :meth:`export_png` draws, taken from the store now (GUI thread, no file work)."""
        return items_of_results(self.store.results, self.selection(n, seed),
                                layer_data(self.store.source))

    def export_png(self, path: str | os.PathLike, n: int = 16, seed: int = 11, *,
                   size: int = 200, columns: int = 4) -> Path:
        """Save a captioned mosaic of the images shown as a PNG file, now.

        Reads the images on the calling thread; *Export PNG…* runs the same
        in a background thread (:meth:`start`).

        Parameters
        ----------
        path : str or PathLike
        n : int, optional
            All images shown when ``n <= 0`` or they are at most ``n``;
            otherwise a reproducible random sample of ``n``
            (:meth:`selection`), sorted by count.
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
        items = self.items(n, seed)
        if not items:
            raise ValueError("the gallery shows no image: nothing to export")
        return save_gallery(items, path, size=size, columns=columns, plane=self.store.plane)

    def start(self, path: str | os.PathLike, n: int = 16, seed: int = 11) -> bool:
        """Export like :meth:`export_png` in a background thread; tell the outcome when done.

        Returns
        -------
        bool
            ``False`` (and a warning) when the gallery shows no image.
        """
        items = self.items(n, seed)
        if not items:
            show_warning("The gallery shows no image: nothing to export.")
            return False
        write = functools.partial(save_gallery, plane=self.store.plane)
        self.queue.submit(write, (items, path), self._on_exported)
        return True

    def _on_exported(self, out, error, _seconds: float) -> None:
        if error is not None:
            show_warning(f"Could not export the gallery: {error}")
        else:
            show_info(f"Gallery saved as {out}")
