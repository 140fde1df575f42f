"""What the preview shows and a run goes over: an image layer, or the files of a folder."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import ComboBox, RadioButtons
from qtpy.QtCore import QObject

from ..layout import compact_combo
from ..model import SOURCES, DetectorModel
from .channels import ChannelPicker
from .folder import FolderPicker
from .folder_preview import FOLDER_PREVIEW_LAYER, FolderPreview

__all__ = ["SourcePanel"]


class SourcePanel(QObject):
    """The *image* choice, *run on*, and folder mode's fields, channel picker and file preview.

    Sets ``model.image_layer`` (a newly opened image becomes it),
    ``model.source``, and through its parts ``model.folder``,
    ``model.pattern``, ``model.channel``, ``model.z``, ``model.t`` and
    ``model.folder_layer``; shows what the model holds.

    Attributes
    ----------
    image_combo : magicgui.widgets.ComboBox
        The first row of the dock's form (:attr:`top_widgets`).
    source : magicgui.widgets.RadioButtons
    folder_picker : FolderPicker
    channels : ChannelPicker
    folder_preview : FolderPreview
        With :attr:`source`, the rows of :attr:`widgets`.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    model : DetectorModel
    """

    def __init__(self, viewer, model: DetectorModel, parent=None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.model = model
        self.image_combo = ComboBox(label="image", choices=self._image_layer_choices,
                                    tooltip="The image layer to preview and to run on")
        self.source = RadioButtons(label="run on", choices=list(SOURCES), value=model.source,
                                   orientation="horizontal",
                                   tooltip="Every image of the chosen layer (a stack), or every "
                                           "matching file of a folder")
        self.folder_picker = FolderPicker(model, self)
        self.channels = ChannelPicker(model, self)
        self.folder_preview = FolderPreview(viewer, model, self)
        compact_combo(self.image_combo.native)
        self.image_combo.changed.connect(self._on_combo)
        self.source.changed.connect(self._on_source_field)
        self.folder_picker.matched.connect(self._on_folder_matched)
        self.channels.changed.connect(self.folder_preview.load)
        self.channels.described.connect(self.folder_preview.load)  # read with the choice
        model.events.source.connect(self._on_source)
        model.events.image_layer.connect(self._on_image_layer)
        viewer.layers.events.inserted.connect(self._on_layers_changed)
        viewer.layers.events.removed.connect(self._on_layers_changed)
        self._show_source(model.source)
        model.image_layer = self.image_combo.value

    @property
    def top_widgets(self) -> list:
        """The rows above the parameters: the image choice."""
        return [self.image_combo]

    @property
    def widgets(self) -> list:
        """The rows under the preview: *run on*, the folder's fields, channel and file."""
        return [self.source, *self.folder_picker.widgets, *self.channels.widgets,
                *self.folder_preview.widgets]

    # ----------------------------------------------------------- layers
    def _image_layer_choices(self, *_):
        from napari.layers import Image

        return [(layer.name, layer) for layer in self.viewer.layers
                if isinstance(layer, Image) and not layer.rgb
                and layer.name != FOLDER_PREVIEW_LAYER]

    def _on_layers_changed(self, event=None) -> None:
        self.image_combo.reset_choices()
        layer = getattr(event, "value", None)
        if (event is not None and event.type == "inserted" and layer is not None
                and layer in [c[1] for c in self._image_layer_choices()]):
            self.image_combo.value = layer  # a newly opened image becomes the target

    def _on_combo(self, layer) -> None:
        self.model.image_layer = layer

    def _on_image_layer(self, layer) -> None:
        if layer is None or self.image_combo.value is layer:
            return
        if layer not in self.image_combo.choices:
            self.image_combo.reset_choices()  # e.g. a run's stack, renamed from the preview's
        with self.image_combo.changed.blocked():
            self.image_combo.value = layer

    # ----------------------------------------------------------- source
    def _on_source_field(self, value: str) -> None:
        self.model.source = value

    def _on_source(self, value: str) -> None:
        self._show_source(value)

    def _show_source(self, value: str) -> None:
        with self.source.changed.blocked():
            self.source.value = value
        folder = value == "folder"
        self.folder_picker.set_visible(folder)
        self.image_combo.visible = not folder
        if folder:
            self.channels.refresh_visibility()
        else:
            self.channels.hide()
        self.folder_preview.set_active(folder)

    # ----------------------------------------------------------- folder
    def _on_folder_matched(self, paths: list[Path]) -> None:
        self.folder_preview.set_paths(paths, load=False)  # once the channels are known
        self.channels.describe(paths[0] if paths else None)
        if not paths and self.model.folder_run:
            self.model.preview_text = "No file matches: check the folder and the pattern."

    def update_match_count(self, *_) -> int:
        """Match the folder's files now, in this thread, and show the count."""
        return self.folder_picker.update_match_count()
