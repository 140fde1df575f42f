"""The "Nuclei detector" dock: tune on a live preview, run a plate, see the results.

The dock holds the detector's state in one Qt-free model
(:class:`~.model.DetectorModel`) and composes the parts that show and change
it, each owning its widgets and observing the model: the parameters
(:mod:`.parameters`), the source (:mod:`.source`: the image layer or the
folder, its channel and its file preview), the live preview
(:mod:`.preview`), the run (:mod:`.run_panel`, the core's run pipeline in a
worker thread), the results (:mod:`.results`: table, ``nuclei`` layer,
saving, the views) and *Are my counts right?* (:mod:`..scoring.panel`).
Everything slow runs off the GUI thread; the GUI thread only moves numbers
into widgets and layers.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING

from magicgui.widgets import Container
from napari.qt.threading import create_worker
from qtpy.QtWidgets import QVBoxLayout, QWidget
from superqt import QCollapsible

from ..registry import store_for
from ..scoring.panel import ScoringPanel
from ..views.shared import stop_on_close
from .model import DetectorModel
from .parameters import ParametersPanel
from .points import RESULTS_LAYER
from .preview import PREVIEW_LAYER, PreviewPanel
from .results import ResultsPanel
from .run_panel import RunPanel
from .source import SourcePanel

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
        self._lay_out()
        stop_on_close(self, self.scoring.stop)
        points = self.results_panel.points  # plain callables: the dock is half gone when they run
        self.destroyed.connect(lambda *_: _close(model, points))
        create_worker(_import_distributed, _start_thread=True)

    def _lay_out(self) -> None:
        """One form of the parts' rows (labels aligned), then the sections under it."""
        controls = Container(widgets=[
            *self.source_panel.top_widgets, *self.parameters.widgets, *self.preview.widgets,
            *self.source_panel.widgets, *self.run_panel.widgets,
        ], labels=True)
        controls.margins = (4, 4, 4, 0)
        #: scores the preview's detections (or the run's result of the image on screen)
        #: against a Labels or Points layer, suggests and estimates parameters
        self.scoring_box = QCollapsible("Are my counts right?", expandedIcon="▾",
                                        collapsedIcon="▸")
        self.scoring_box.addWidget(self.scoring)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(controls.native)
        layout.addWidget(self.run_panel.advanced)
        layout.addLayout(self.parameters.presets)
        layout.addWidget(self.scoring_box)
        layout.addWidget(self.results_panel.table, stretch=1)
        layout.addLayout(self.results_panel.buttons)
        layout.addStretch(0)
        self.controls = controls

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
