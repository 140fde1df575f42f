"""The detector dock's form: every control with its tooltip, in the order the user sees them.

:func:`build_form` puts the controls on the dock as attributes (the dock's
other modules and the tests use those names) and lays them out; it holds no
logic.
"""

from __future__ import annotations

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    Label,
    LineEdit,
    PushButton,
    RadioButtons,
    SpinBox,
)
from qtpy.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout
from superqt import QCollapsible

from ...core.run.backends import default_workers
from .channels import ChannelPicker
from .folder import FolderPicker
from .folder_preview import FolderPreview
from .progress import RunProgress
from .table import make_image_table

__all__ = ["build_form"]


def build_form(dock) -> None:
    """Make the dock's controls (as attributes of ``dock``) and lay them out.

    Parameters
    ----------
    dock : NucleiCounterWidget
        Has ``viewer``, ``store``, ``parameters`` and the three sliders already.
    """
    dock.image_combo = ComboBox(label="image", choices=dock._image_layer_choices,
                                tooltip="The image layer to preview and to run on")
    dock.preview_check = CheckBox(text="Live preview", value=True,
                                  tooltip="Show the detections on the image on screen "
                                          "while you move the sliders")
    dock.preview_label = Label(value="")
    dock.source = RadioButtons(label="run on", choices=["image layer", "folder"],
                               value="image layer", orientation="horizontal",
                               tooltip="Every image of the chosen layer (a stack), or every "
                                       "matching file of a folder")
    dock.folder_picker = FolderPicker(dock)
    dock.folder = dock.folder_picker.folder
    dock.pattern = dock.folder_picker.pattern
    dock.match_label = dock.folder_picker.match_label
    dock.channels = ChannelPicker(dock)
    dock.folder_preview = FolderPreview(dock.viewer, dock.channels.choice, dock)
    dock.run_button = PushButton(text="Run")
    dock.progress = RunProgress()
    dock.status = Label(value="")
    dock.controls = Container(widgets=[
        dock.image_combo, dock.sigma, dock.min_distance, dock.threshold, dock.preview_check,
        dock.preview_label, dock.source, dock.folder, dock.pattern, dock.match_label,
        *dock.channels.widgets, *dock.folder_preview.widgets,
        dock.run_button, dock.progress.widget, dock.status,
    ], labels=True)
    dock.controls.margins = (4, 4, 4, 0)

    # Advanced: where the work runs
    dock.workers = SpinBox(label="workers", min=0, max=max(64, default_workers()),
                           value=default_workers(),
                           tooltip="Worker processes (default: all cores); 0 = in this "
                                   "process, for debugging")
    dock.backend = RadioButtons(label="run with", choices=["local processes", "Dask"],
                                value="local processes", orientation="horizontal",
                                tooltip="Worker processes on this computer, or a Dask "
                                        "cluster (for images on a shared file system)")
    dock.scheduler = LineEdit(label="scheduler", value="",
                              tooltip="Address of a running Dask scheduler, e.g. "
                                      "tcp://10.0.0.5:8786; empty: a local Dask cluster")
    dock.output = FileEdit(label="write tables to", mode="d",
                           tooltip="Optional: a folder where the tables are written as the "
                                   "run goes (like the command line), so a long run can be "
                                   "resumed")
    dock.resume_check = CheckBox(text="resume: skip images already done there",
                                 tooltip="Skip images already processed in that folder with "
                                         "the same parameters (same file size and time)")
    dock.advanced_controls = Container(widgets=[dock.workers, dock.backend, dock.scheduler,
                                                dock.output, dock.resume_check], labels=True)
    dock.advanced = QCollapsible("Advanced", expandedIcon="▾", collapsedIcon="▸")
    dock.advanced.addWidget(dock.advanced_controls.native)

    #: one row per image of the run, a view of the store (see ``_table.py``)
    dock.table = make_image_table(dock.store, dock)
    dock.table.setVisible(False)  # until there is something to show
    dock.save_button = QPushButton("Save tables…")
    dock.save_button.setToolTip("Write images.csv, nuclei.csv, wells.csv and run.json into "
                                "a folder")
    dock.save_button.setEnabled(False)
    dock.clear_button = QPushButton("Clear")
    dock.clear_button.setToolTip("Forget the results shown (the table and the nuclei layer)")
    dock.clear_button.setEnabled(False)
    dock.gallery_button = QPushButton("Gallery")
    dock.gallery_button.setToolTip("Thumbnails of every image sorted by nuclei count "
                                   "(a tab beside this one)")
    dock.plate_button = QPushButton("Plate map")
    dock.plate_button.setToolTip("Wells coloured by nuclei count (a tab beside this one)")
    views = QHBoxLayout()
    for b in (dock.gallery_button, dock.plate_button, dock.save_button, dock.clear_button):
        views.addWidget(b)

    layout = QVBoxLayout(dock)
    layout.setContentsMargins(4, 4, 4, 4)
    layout.addWidget(dock.controls.native)
    layout.addWidget(dock.advanced)
    layout.addLayout(dock.parameters.presets)
    layout.addWidget(dock.table, stretch=1)
    layout.addLayout(views)
    layout.addStretch(0)


def add_scoring(dock) -> None:
    """Embed the *Are my counts right?* panel (:class:`~._scoring.ScoringPanel`) in the dock.

    Collapsed under the presets; it scores the preview's detections (or the
    run's result of the image on screen) against a Labels or Points layer,
    suggests parameters from annotations and estimates them from the image.
    Its background work stops when napari closes the dock.
    """
    from ..scoring.panel import ScoringPanel
    from ..views.shared import stop_on_close

    def set_params(params, label: str) -> None:
        dock.apply_params(params)
        dock.status.value = f"Parameters: {label}"

    def detections():
        result = dock.store.results.get(dock.current_index())
        if result is None or dock.store.source is not dock.preview_layer:
            return None
        return result.coords

    dock.scoring = ScoringPanel(dock.viewer, layer=lambda: dock.preview_layer,
                                plane=dock._current_plane, params=dock.params,
                                set_params=set_params, detections=detections, parent=dock)
    dock.scoring_box = QCollapsible("Are my counts right?", expandedIcon="▾", collapsedIcon="▸")
    dock.scoring_box.addWidget(dock.scoring)
    layout = dock.layout()
    layout.insertWidget(layout.indexOf(dock.table), dock.scoring_box)
    stop_on_close(dock, dock.scoring.stop)
