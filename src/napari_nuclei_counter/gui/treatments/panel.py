"""The detector dock's *Treatments* tab: a plate layout, its controls, curves and tables.

The person loads a layout file (before or after a run) and may name the
negative and positive controls; the tab then shows, for the store's
results, each plate's Z′, the dose-response curves
(:func:`~napari_nuclei_counter.core.treatments.draw_dose_response` drawn in
matplotlib's Qt canvas), the conditions table and the plates table. Clicking
a point of a curve shows that well's images: the gallery filters to the well
and the viewer goes to its first image. The analysis is the core's
(:func:`~napari_nuclei_counter.core.treatments.analyze`), run in a background
thread when a layout or a control changes, when a run ends and when hand
corrections change counts; its outcome goes into the shared
:class:`~.model.TreatmentsModel`, which the plate map and the gallery follow.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...core.results.store import ResultsStore
from ...core.treatments import draw_dose_response
from ..detector.layout import ElidedText, FitWidthScrollArea, compact_combo, wrap_label
from ..detector.model import DetectorModel
from ..navigation import show_image
from ..views.background import TableRefresher
from ..views.shared import blocked_signals, weak_method
from .model import TreatmentsModel, format_concentration, run_analysis, summary

__all__ = ["CONDITION_HEADERS", "PLATE_HEADERS", "TreatmentsPanel"]

#: the conditions table's columns
CONDITION_HEADERS = ("compound", "concentration", "control", "wells", "images", "% of control",
                     "SD")
#: the plates table's columns
PLATE_HEADERS = ("plate", "Z′", "robust Z′", "verdict", "negative", "positive")
#: height of one row of dose-response panels in the dock, and the least width of a panel, px
PANEL_ROW_PX = 190
PANEL_MIN_WIDTH = 230
#: the most dose-response panels drawn at once (a screen's hundred compounds would take
#: seconds to draw on the window's thread); the compound combo shows any other
MAX_PANELS = 12
#: room around a panel's axes for its title (top), tick labels and axis labels, px
_PAD = {"top": 24, "bottom": 40, "left": 48, "right": 10}
_DEFAULT = "default"
_HINT = ("Load a plate layout: a CSV or TSV with one row per well (well, compound, "
         "concentration, control), a per-image metadata table such as BBBC021_v1_image.csv, a "
         "Cell Painting Gallery barcode_platemap.csv or a wellmap TOML file.")
_LAYOUT_FILTER = ("Plate layouts (*.csv *.tsv *.txt *.toml);;All files (*)")


def _item(text: str) -> QTableWidgetItem:
    """A read-only table cell."""
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    return item


def _number(v, digits: int = 1) -> str:
    """``'85.2'``; ``''`` for NaN."""
    return f"{v:.{digits}f}" if v is not None and np.isfinite(v) else ""


def _table(headers) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.verticalHeader().setVisible(False)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    table.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
    return table


class TreatmentsPanel(QWidget):
    """Load a plate layout and see percent of control, Z′ and dose-response curves.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    model : DetectorModel
        The detector's state: a run ending (``running`` turning false) starts
        the analysis.
    store : ResultsStore
        The results analysed; hand corrections (its ``edited`` events) start
        the analysis again.
    treatments : TreatmentsModel
        The layout, controls and analysis, shared with the plate map and the gallery.
    parent : QWidget, optional

    Attributes
    ----------
    figure : matplotlib.figure.Figure
    canvas : FigureCanvasQTAgg
        The dose-response curves, one panel per compound: the compound the
        views show (:attr:`TreatmentsModel.compound <.model.TreatmentsModel>`), or
        the first :data:`MAX_PANELS` of them.
    curves : QScrollArea
        The canvas, scrolling.
    curve_combo : QComboBox
        Which compound's curve to draw (all: the first :data:`MAX_PANELS`).
    panels : list of DosePanel
        The panels drawn (:func:`~napari_nuclei_counter.core.treatments.draw_dose_response`).
    conditions, plates : QTableWidget
    """

    def __init__(self, viewer, model: DetectorModel, store: ResultsStore,
                 treatments: TreatmentsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.model = model
        self.store = store
        self.treatments = treatments
        self.panels: list = []
        self._geometry: tuple = ()  # (panels, columns, width, height) the curves are laid out for
        self._closed = threading.Event()
        self._refresher = TableRefresher(self._closed, treatments.snapshot, run_analysis,
                                         weak_method(self, "_on_analysed"), parent=self)
        self._build()
        self._connect()
        self._on_layout()
        self._on_analysis()

    # ------------------------------------------------------------------ build
    def _build(self) -> None:
        self.load_button = QPushButton("Load layout…")
        self.load_button.setToolTip(_HINT)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Forget the plate layout")
        self.file_label = QLabel("no layout")
        self._file_text = ElidedText(self.file_label)
        self.negative = self._control_combo(
            "The negative control (solvent): a compound name; default: the layout's control "
            "column, or a compound named DMSO")
        self.positive = self._control_combo(
            "The positive control: a compound name or NAME@CONCENTRATION (e.g. taxol@0.3); "
            "default: the layout's control column")
        self.summary = QLabel(_HINT)
        wrap_label(self.summary)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.figure = Figure(figsize=(4, 3))  # no layout engine: the panels are laid out here
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.canvas.setMinimumWidth(200)
        self.curves = FitWidthScrollArea(self.canvas)
        self.curve_combo = QComboBox()
        self.curve_combo.setToolTip("The compound whose curve is drawn; the gallery shows its "
                                    "images too")
        compact_combo(self.curve_combo, 12)
        self.curve_note = QLabel("")
        wrap_label(self.curve_note)
        self.curves_page = QWidget()
        page = QVBoxLayout(self.curves_page)
        page.setContentsMargins(0, 2, 0, 0)
        pick = QHBoxLayout()
        pick.addWidget(QLabel("compound"))
        pick.addWidget(self.curve_combo, 1)
        page.addLayout(pick)
        page.addWidget(self.curve_note)
        page.addWidget(self.curves, 1)
        self.conditions = _table(CONDITION_HEADERS)
        self.conditions.setToolTip("Click a row: the gallery shows that compound's images")
        self.plates = _table(PLATE_HEADERS)
        self.views = QTabWidget()
        self.views.setDocumentMode(True)
        self.views.addTab(self.curves_page, "Curves")
        self.views.addTab(self.conditions, "Conditions")
        self.views.addTab(self.plates, "Plates")
        self.info = QLabel("")
        wrap_label(self.info)

        file_row = QHBoxLayout()
        file_row.addWidget(self.load_button)
        file_row.addWidget(self.clear_button)
        file_row.addWidget(self.file_label, 1)
        controls = QFormLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        controls.addRow("negative control", self.negative)
        controls.addRow("positive control", self.positive)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(file_row)
        layout.addLayout(controls)
        layout.addWidget(self.summary)
        layout.addWidget(self.views, 1)
        layout.addWidget(self.info)

    def _control_combo(self, tip: str) -> QComboBox:
        combo = QComboBox()
        combo.setEditable(True)
        combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        combo.lineEdit().setPlaceholderText(_DEFAULT)
        combo.setToolTip(tip)
        compact_combo(combo)
        return combo

    def _connect(self) -> None:
        self.load_button.clicked.connect(self.on_load_clicked)
        self.clear_button.clicked.connect(self.treatments.clear_layout)
        for combo in (self.negative, self.positive):
            combo.activated.connect(self.on_controls_edited)
            combo.lineEdit().editingFinished.connect(self.on_controls_edited)
        self.canvas.mpl_connect("pick_event", weak_method(self, "on_pick"))
        self.canvas.mpl_connect("resize_event", weak_method(self, "_on_canvas_resized"))
        self.conditions.cellClicked.connect(self.on_condition_clicked)
        self.curve_combo.activated.connect(self.on_curve_picked)
        t = self.treatments.events
        hooks = [(t.layout, weak_method(self, "_on_layout")),
                 (t.negative, weak_method(self, "_on_controls")),
                 (t.positive, weak_method(self, "_on_controls")),
                 (t.analysis, weak_method(self, "_on_analysis")),
                 (t.compound, weak_method(self, "_on_compound")),
                 (t.error, weak_method(self, "_show_summary")),
                 (self.model.events.running, weak_method(self, "_on_running"))]
        for signal, slot in hooks:
            signal.connect(slot)
        listener = weak_method(self, "_on_store_event")
        self.store.subscribe(listener)
        stop = weakref.finalize(self, _teardown, self._closed, self.store, listener,
                                self._refresher.queue.jobs, hooks)
        self.destroyed.connect(lambda *_: stop())

    # ---------------------------------------------------------------- reading
    @property
    def busy(self) -> bool:
        """Whether an analysis is asked for or running."""
        return self._refresher.busy

    # ----------------------------------------------------------- by the person
    def on_load_clicked(self, *_) -> None:
        """Ask for a layout file and load it."""
        path, _ = QFileDialog.getOpenFileName(self, "Load a plate layout", "", _LAYOUT_FILTER)
        if path:
            self.load_layout(path)

    def load_layout(self, path) -> bool:
        """Load a layout file (the analysis follows when there are results).

        Returns
        -------
        bool
            Whether it was read; if not, the summary line says why.
        """
        return self.treatments.load_layout(path) is not None

    def on_controls_edited(self, *_) -> None:
        """A control combo was edited: tell the model (the analysis follows)."""
        self.treatments.negative = self.negative.currentText().strip()
        self.treatments.positive = self.positive.currentText().strip()

    def on_pick(self, event) -> bool:
        """A point of a dose-response panel was clicked: show that well's images.

        Parameters
        ----------
        event : matplotlib.backend_bases.PickEvent
            Its ``artist`` is a panel's ``scatter``, its ``ind`` the points under the mouse.

        Returns
        -------
        bool
            Whether a well was shown.
        """
        for panel in self.panels:
            if event.artist is panel.scatter and len(event.ind):
                row = panel.points.iloc[int(event.ind[0])]
                return self.show_well(str(row["plate"]), str(row["well"]))
        return False

    def show_well(self, plate: str, well: str) -> bool:
        """Filter the gallery to a well and move the viewer to its first image.

        Parameters
        ----------
        plate, well : str
            As the analysis names them.

        Returns
        -------
        bool
            Whether the well has images.
        """
        indices = self.treatments.images_of_well(plate, well)
        head = f"{well} (plate {plate})" if plate else well
        if not indices:
            self.info.setText(f"{head}: no images.")
            return False
        self.store.select_well(self.store.meta[indices[0]].well)
        show_image(self.viewer, self.store, indices[0])
        n = len(indices)
        self.info.setText(f"{head}: {n} image{'s' if n != 1 else ''}; the viewer shows the first, "
                          "the gallery all of them.")
        return True

    def on_curve_picked(self, _i: int = 0) -> None:
        """A compound was picked above the curves: draw its curve, the gallery shows its images."""
        self.treatments.compound = self.curve_combo.currentData()

    def on_condition_clicked(self, row: int, _column: int = 0) -> None:
        """A row of the conditions table: the gallery shows that compound's images."""
        item = self.conditions.item(row, 0)
        compound = item.text() if item is not None else ""
        if compound:
            self.treatments.compound = compound
            self.info.setText(f"The gallery shows the images of {compound}.")

    # ----------------------------------------------------------------- updates
    def request_analysis(self, now: bool = False) -> bool:
        """Analyse the store's results with the layout (in the background).

        Returns
        -------
        bool
            ``False`` when there is nothing to analyse: no layout, no results
            or a run going on.
        """
        if self.treatments.layout is None or not self.store.results or self.model.running:
            return False
        self._refresher.request(now=now)
        self._show_summary()
        return True

    def _on_analysed(self, outcome) -> None:
        if not self._closed.is_set():
            self.treatments.set_analysis(outcome)
            self._show_summary()

    def _on_layout(self, *_) -> None:
        layout = self.treatments.layout
        self._file_text.set_text(layout.path.name if layout is not None else "no layout")
        self.clear_button.setEnabled(layout is not None)
        compounds = self.treatments.compounds()
        for combo in (self.negative, self.positive):
            text = combo.currentText()
            with blocked_signals(combo):
                combo.clear()
                combo.addItems(compounds)
                combo.setCurrentIndex(-1)
                combo.setEditText(text)
        self._on_controls()
        if not self.request_analysis(now=True):
            self._show_summary()

    def _on_controls(self, *_) -> None:
        for combo, text in ((self.negative, self.treatments.negative),
                            (self.positive, self.treatments.positive)):
            if combo.currentText() != text:
                with blocked_signals(combo):
                    combo.setEditText(text)
        self.request_analysis(now=True)

    def _on_running(self, running: bool, *_) -> None:
        if not running:
            self.request_analysis(now=True)

    def _on_store_event(self, event: str, _indices) -> None:
        if self._closed.is_set():
            return
        if event == "reset":
            self.treatments.analysis = None
            self._show_summary()
        elif event == "edited":
            self.request_analysis()

    def _show_summary(self, *_) -> None:
        t = self.treatments
        if t.error:
            text = t.error
        elif t.layout is None:
            text = _HINT
        elif t.analysis is not None:
            text = summary(t.analysis)
        elif self.busy:
            text = "Analysing…"
        elif self.model.running:
            text = "The analysis follows when the run ends."
        else:
            n = len(t.layout.wells)
            text = (f"{n} well{'s' if n != 1 else ''}, {len(t.compounds())} compounds; "
                    "run the detector to analyse them.")
        self.summary.setText(text)

    def _on_analysis(self, *_) -> None:
        analysis = self.treatments.analysis
        self._fill_conditions(analysis)
        self._fill_plates(analysis)
        fitted = [] if analysis is None else list(analysis.dose_response["compound"])
        with blocked_signals(self.curve_combo):
            self.curve_combo.clear()
            self.curve_combo.addItem("all compounds", None)
            for compound in fitted:
                self.curve_combo.addItem(compound, compound)
        self._on_compound()
        self._show_summary()

    def _on_compound(self, *_) -> None:
        """Draw the curve of the compound the views show, or all of them (up to a limit)."""
        compound = self.treatments.compound
        with blocked_signals(self.curve_combo):
            self.curve_combo.setCurrentIndex(max(0, self.curve_combo.findData(compound))
                                             if compound is not None else 0)
        self._draw(self.treatments.analysis, self.curve_combo.currentData())

    def _draw(self, analysis, compound: str | None = None) -> None:
        self.figure.clear()
        self.panels = []
        note = ""
        if analysis is not None:
            fitted = list(analysis.dose_response["compound"])
            names = [compound] if compound in fitted else fitted[:MAX_PANELS]
            if 1 < len(names) < len(fitted) or len(names) == MAX_PANELS < len(fitted):
                note = (f"The first {len(names)} of {len(fitted)} compounds; pick one above "
                        "to see another.")
            self.panels = draw_dose_response(self.figure, analysis, names)
        self.curve_note.setText(note)
        self.curve_note.setVisible(bool(note))
        for panel in self.panels:
            panel.scatter.set_picker(5)
        for ax in list(self.figure.axes):  # the core's grid may have spare, hidden axes
            if not ax.get_visible():
                self.figure.delaxes(ax)
        self._geometry = ()
        self._grid_panels()

    def _grid_panels(self) -> None:
        """Lay the panels out in as many columns as the dock's width holds, each row
        :data:`PANEL_ROW_PX` high, with fixed room in pixels for the labels (no layout
        engine: it would take seconds for a screen's hundred compounds)."""
        n = len(self.panels)
        width = max(self.canvas.width(), 1)
        columns = max(1, min(n, width // PANEL_MIN_WIDTH)) if n else 1
        rows = -(-n // columns) if n else 1
        height = rows * PANEL_ROW_PX
        if (n, columns, width, height) == self._geometry:
            return
        self._geometry = (n, columns, width, height)
        if self.canvas.height() != height:
            self.canvas.setFixedHeight(height)
        if n:
            across = _PAD["left"] + _PAD["right"]
            down = _PAD["top"] + _PAD["bottom"]
            grid = self.figure.add_gridspec(
                rows, columns, left=_PAD["left"] / width, right=1 - _PAD["right"] / width,
                top=1 - _PAD["top"] / height, bottom=_PAD["bottom"] / height,
                wspace=across / max(width / columns - across, 1),
                hspace=down / max(PANEL_ROW_PX - down, 1))
            for k, panel in enumerate(self.panels):
                panel.axes.set_subplotspec(grid[k // columns, k % columns])
        self.canvas.draw_idle()

    def _on_canvas_resized(self, _event=None) -> None:
        """A wider or narrower dock: as many panels per row as fit."""
        self._grid_panels()

    def _fill_conditions(self, analysis) -> None:
        table = self.conditions
        records = [] if analysis is None else analysis.conditions.to_dict("records")
        table.setRowCount(len(records))
        for r, row in enumerate(records):
            conc = row["concentration"]
            pct, sd = row["percent_of_control_mean"], row["percent_of_control_sd"]
            cells = [str(row["compound"]), format_concentration(conc, str(row["unit"])),
                     str(row["control"]), str(int(row["n_wells"])), str(int(row["n_images"])),
                     _number(pct), _number(sd)]
            for c, text in enumerate(cells):
                table.setItem(r, c, _item(text))

    def _fill_plates(self, analysis) -> None:
        table = self.plates
        records = [] if analysis is None else analysis.plates.to_dict("records")
        table.setRowCount(len(records))
        for r, row in enumerate(records):
            cells = [str(row["plate"]), _number(row["z_prime"], 2),
                     _number(row["robust_z_prime"], 2), str(row["verdict"]),
                     _number(row["negative_mean"]), _number(row["positive_mean"])]
            for c, text in enumerate(cells):
                table.setItem(r, c, _item(text))


def _teardown(closed: threading.Event, store: ResultsStore, listener, jobs, hooks) -> None:
    """The panel is gone: stop its thread, and nobody calls it any more."""
    closed.set()
    store.unsubscribe(listener)
    jobs.put(None)
    for signal, slot in hooks:
        signal.disconnect(slot)
