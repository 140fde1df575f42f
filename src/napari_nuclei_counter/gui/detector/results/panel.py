"""The results shown: the per-image table, the ``nuclei`` layer, saving, clearing, the views."""

from __future__ import annotations

import functools
from pathlib import Path

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QObject, Qt, QTimer
from qtpy.QtWidgets import QFileDialog, QLabel, QPushButton

from ....core.results.store import ResultsStore
from ....core.results.writer import run_command, write_results
from ...navigation import show_image
from ..layout import button_grid, wrap_label
from ..model import DetectorModel
from ..run.panel import confirm_replace
from ..run.run_thread import save_in_worker
from .points import PointsSync
from .table import make_image_table

__all__ = ["GALLERY", "PLATE_MAP", "POINTS_INTERVAL_MS", "ResultsPanel"]

#: how often the ``nuclei`` layer is looked at during a run (may it follow the results?), ms
POINTS_INTERVAL_MS = 250
#: the names of the views' docks; they open as tabs beside the detector
GALLERY, PLATE_MAP = "Nuclei gallery", "Plate map"


class ResultsPanel(QObject):
    """The table of the results shown, the ``nuclei`` layer, and the *Gallery*, *Plate map*,
    *Save tables…* and *Clear* buttons.

    Everything here shows the store; the buttons follow the store and
    ``model.running``; the ``nuclei`` layer (:attr:`points`) is updated
    during a run and completed when it ends. Saving clears ``model.unsaved``
    and ``model.edited``.

    Attributes
    ----------
    table : QTableView
        One row per image of the run; a click shows that image.
    empty : QLabel
        Says there is nothing to show yet (in the table's place).
    buttons : QGridLayout
        The buttons under it, two by two.
    points : PointsSync

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    model : DetectorModel
    store : ResultsStore
    parent : QWidget
        The dock: the table's parent, and the dialogs'.
    """

    def __init__(self, viewer, model: DetectorModel, store: ResultsStore, parent=None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.model = model
        self.store = store
        self.table = make_image_table(store, parent)
        self.table.setVisible(False)  # until there is something to show
        self.save_button = QPushButton("Save tables…")
        self.save_button.setToolTip("Write images.csv, nuclei.csv, wells.csv and run.json into "
                                    "a folder")
        self.save_button.setEnabled(False)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Forget the results shown (the table and the nuclei layer)")
        self.clear_button.setEnabled(False)
        self.gallery_button = QPushButton("Gallery")
        self.gallery_button.setToolTip("Thumbnails of every image sorted by nuclei count "
                                       "(a tab beside this one)")
        self.plate_button = QPushButton("Plate map")
        self.plate_button.setToolTip("Wells coloured by nuclei count (a tab beside this one)")
        self.buttons = button_grid([self.gallery_button, self.plate_button, self.save_button,
                                    self.clear_button])
        self.empty = QLabel("No results yet: tune on the Detect tab, then press Run.", parent)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        wrap_label(self.empty)
        self.empty.setVisible(not store.labels)
        self.points = PointsSync(viewer, store, model)
        self._points_timer = QTimer(self)
        self._points_timer.setInterval(POINTS_INTERVAL_MS)
        self._points_timer.timeout.connect(self.points.flush)
        self.save_button.clicked.connect(self._ask_save_tables)
        self.clear_button.clicked.connect(self.clear_results)
        self.gallery_button.clicked.connect(self.open_gallery)
        self.plate_button.clicked.connect(self.open_plate_map)
        self.table.clicked.connect(self._on_table_clicked)
        listener = self._on_store_event
        store.subscribe(listener)
        # plain callables: the store may outlive the panel
        self.destroyed.connect(functools.partial(store.unsubscribe, listener))
        store.subscribe(self.points.on_store_event)
        self.destroyed.connect(functools.partial(store.unsubscribe, self.points.on_store_event))
        model.events.running.connect(self._on_running)

    # -------------------------------------------------------------- following
    def _on_store_event(self, event: str, indices) -> None:
        if event == "reset":
            self._update_buttons()

    def _on_running(self, running: bool) -> None:
        if running:
            self._points_timer.start()
        else:
            self._points_timer.stop()
            self.points.finish()
        self._update_buttons()

    def _update_buttons(self) -> None:
        has = bool(self.store.results)
        self.save_button.setEnabled(has)
        self.clear_button.setEnabled(has and not self.model.running)
        self.table.setVisible(bool(self.store.labels))
        self.empty.setVisible(not self.store.labels)

    def _on_table_clicked(self, index) -> None:
        show_image(self.viewer, self.store, index.row())

    # ------------------------------------------------------------------ clear
    def clear_results(self, *_, ask: bool = True) -> bool:
        """Forget the results shown (table, ``nuclei`` layer, views); asks if they are unsaved."""
        if self.model.running:
            show_warning("Cancel the run first.")
            return False
        if ask and not confirm_replace(self.parent(), self.model, self.store):
            return False
        self.store.reset([], None, None, None)  # the layer and the buttons follow
        self.model.unsaved = self.model.edited = False
        self.model.status = "Cleared."
        return True

    # ------------------------------------------------------------------- save
    def _write_tables(self, folder: str | Path) -> Path:
        results = self.store.ordered()
        info = {"command": run_command("widget"),
                "source": getattr(self.store.source, "name", "")}
        params = self.store.params or self.model.params
        return write_results(folder, results, params, info)

    def save_tables(self, folder: str | Path) -> Path:
        """Write ``images.csv``, ``nuclei.csv``, ``wells.csv`` and ``run.json`` of the last run.

        Blocks while it writes; *Save tables…* writes in a worker thread.
        """
        out = self._write_tables(folder)
        self.model.unsaved = self.model.edited = False
        return out

    def _ask_save_tables(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.parent(), "Save tables into folder")
        if folder:
            save_in_worker(self._write_tables, folder, done=self._on_saved,
                           error=lambda exc: show_warning(f"Could not save the tables: {exc}"))

    def _on_saved(self, out) -> None:
        self.model.unsaved = self.model.edited = False
        show_info(f"Tables saved in {out}")

    # ------------------------------------------------------------------ views
    def _open_view(self, name: str, factory):
        """Dock a view as a tab beside the detector and the other view (or raise its tab)."""
        docked = self.viewer.window.dock_widgets
        if name in docked:
            widget = docked[name]
            dock = widget.parent()
            if dock is not None:
                dock.show()
                dock.raise_()
            else:
                widget.show()
            return widget
        widget = factory(self.viewer, store=self.store)
        dock = self.viewer.window.add_dock_widget(widget, name=name, area="right", tabify=True)
        dock.raise_()
        return widget

    def open_gallery(self, *_):
        """Dock the gallery of this run's images (or show it if docked)."""
        from ...views.gallery import GalleryWidget

        return self._open_view(GALLERY, GalleryWidget)

    def open_plate_map(self, *_):
        """Dock the plate map of this run (or show it if docked)."""
        from ...views.plate_map import PlateMapWidget

        return self._open_view(PLATE_MAP, PlateMapWidget)
