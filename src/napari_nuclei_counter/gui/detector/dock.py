"""The "Nuclei detector" dock: tune on a live preview, run a plate, see the results.

The dock holds the detector's state in one Qt-free model
(:class:`~.model.DetectorModel`) and composes the parts that show and change
it, each owning its widgets and observing the model: the parameters
(:mod:`.parameters`), the source (:mod:`.source`: the image layer or the
folder, its channel and its file preview), the live preview
(:mod:`.preview`), the run (:mod:`.run_panel`, the core's run pipeline in a
worker thread), the results (:mod:`.results`: table, ``nuclei`` layer,
saving, the views), *Are my counts right?* (:mod:`..scoring.panel`) and the
plate layout's analysis (:mod:`..treatments.panel`, the *Treatments* tab).
Everything slow runs off the GUI thread; the GUI thread only moves numbers
into widgets and layers.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from typing import TYPE_CHECKING

from magicgui.widgets import Container
from napari.qt.threading import create_worker
from qtpy.QtCore import QSize
from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from ..registry import store_for, treatments_for
from ..scoring.panel import ScoringPanel
from ..treatments.panel import TreatmentsPanel
from ..views.shared import stop_on_close
from .layout import FitWidthScrollArea, collapsible
from .model import DetectorModel
from .parameters import ParametersPanel
from .preview import PREVIEW_LAYER, PreviewPanel
from .results.panel import ResultsPanel
from .results.points import RESULTS_LAYER
from .run.panel import RunPanel
from .source.panel import SourcePanel

if TYPE_CHECKING:
    import napari

__all__ = ["NucleiCounterWidget", "PREVIEW_LAYER", "RESULTS_LAYER"]

log = logging.getLogger(__name__)


class NucleiCounterWidget(QWidget):
    """Tune the detection parameters on a live preview and run the whole plate.

    Attributes
    ----------
    model : DetectorModel
        The detector's state, shared by the parts.
    store : ResultsStore
        The last run's results, shared with the gallery and plate map of this viewer.
    parameters : ParametersPanel
    source_panel : SourcePanel
    preview : PreviewPanel
    run_panel : RunPanel
    results_panel : ResultsPanel
    scoring : ScoringPanel
    treatments_panel : TreatmentsPanel
        The parts, in the order they are made.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        Injected by napari.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.store = store_for(napari_viewer)
        self.model = model = DetectorModel()
        self.parameters = ParametersPanel(napari_viewer, model, self)
        self.parameters.restore()
        self.preview = PreviewPanel(napari_viewer, model, self)
        self.source_panel = SourcePanel(napari_viewer, model, self)
        self.run_panel = RunPanel(napari_viewer, model, self.store, self)
        self.results_panel = ResultsPanel(napari_viewer, model, self.store, self)
        self.scoring = ScoringPanel(napari_viewer, model, self.store, parent=self)
        self.treatments_panel = TreatmentsPanel(napari_viewer, model, self.store,
                                                treatments_for(napari_viewer), self)
        self._lay_out()
        stop_on_close(self, self.scoring.stop)
        points = self.results_panel.points  # plain callables: the dock is half gone when they run
        self.destroyed.connect(lambda *_: _close(model, points))
        create_worker(_import_distributed, _start_thread=True)

    def _lay_out(self) -> None:
        """Tabs over a footer: *Detect* (scrolls), *Results* and *Treatments*; *Run* and the
        status under them.

        The dock is as narrow as its widest row and as short as a few rows, so
        that napari's canvas keeps most of a laptop's window: the *Detect* tab
        (the form of the parts' rows, the presets, *Advanced* and *Are my
        counts right?*) scrolls; the results table has a tab of its own, the
        dock's full height; *Run*, the progress and the status line stay in
        sight under both tabs.
        """
        controls = Container(widgets=[
            *self.source_panel.top_widgets, *self.parameters.widgets, *self.preview.widgets,
            *self.source_panel.widgets,
        ], labels=True)
        controls.margins = (0, 0, 0, 0)
        #: scores the preview's detections (or the run's result of the image on screen)
        #: against a Labels or Points layer, suggests and estimates parameters
        self.scoring_box = collapsible("Are my counts right?", self.scoring)
        detect = QWidget()
        column = QVBoxLayout(detect)
        column.setContentsMargins(4, 4, 4, 4)
        column.addWidget(controls.native)
        column.addLayout(self.parameters.presets)
        column.addWidget(self.run_panel.advanced)
        column.addWidget(self.scoring_box)
        column.addStretch(1)
        results = QWidget()
        column = QVBoxLayout(results)
        column.setContentsMargins(4, 4, 4, 4)
        column.addWidget(self.results_panel.empty)
        column.addWidget(self.results_panel.table, stretch=1)
        column.addLayout(self.results_panel.buttons)
        #: *Detect* and *Results*
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.detect_tab = FitWidthScrollArea(detect)
        self.tabs.addTab(self.detect_tab, "Detect")
        self.results_tab = results
        self.tabs.addTab(results, "Results")
        self.tabs.addTab(self.treatments_panel, "Treatments")
        footer = Container(widgets=self.run_panel.widgets, labels=False)
        footer.margins = (4, 0, 4, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.addWidget(self.tabs, stretch=1)
        layout.addWidget(footer.native)
        self.controls = controls
        self.footer = footer
        self.store.subscribe(self._on_store_event)
        self.destroyed.connect(functools.partial(self.store.unsubscribe, self._on_store_event))
        self._on_store_event("reset", None)

    def _on_store_event(self, event: str, indices) -> None:
        """The *Results* tab's title counts the images; a new run's table comes to the front."""
        if event != "reset":
            return
        n = len(self.store.labels)
        self.tabs.setTabText(self.tabs.indexOf(self.results_tab),
                             f"Results ({n})" if n else "Results")
        if n:
            self.tabs.setCurrentWidget(self.results_tab)

    def sizeHint(self) -> QSize:
        """As narrow as the widest row: the dock opens at its minimum width."""
        hint = super().sizeHint()
        return QSize(self.minimumSizeHint().width(), hint.height())

    @property
    def settled(self) -> bool:
        """Whether no run is going on and the ``nuclei`` layer holds all its results."""
        return not self.model.running and not self.model.layer_building


def _close(model: DetectorModel, points) -> None:
    """The dock is destroyed: nobody listens any more, and no build of the layer lands."""
    model.events.block()
    model.target_changed.block()
    model.target_reloaded.block()
    points.cancel_build()


def _import_distributed() -> None:
    """Import dask.distributed, if installed, off the window's thread.

    dask looks for a distributed client before every compute, and the first
    look imports the package; without this, that import would land on the
    window's thread when napari shows the first plane of a lazy stack.
    """
    try:
        if importlib.util.find_spec("distributed") is not None:
            import distributed  # noqa: F401
    except Exception as exc:  # only a head start; dask imports it anyway
        log.debug("distributed not imported ahead: %s", exc)
