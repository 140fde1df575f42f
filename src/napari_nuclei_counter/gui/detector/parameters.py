"""The detection parameters: sliders, presets, and their saving between sessions."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
from magicgui.widgets import FloatSlider, Slider
from napari.qt.threading import create_worker
from napari.utils.notifications import show_warning
from qtpy.QtCore import QObject, QTimer
from qtpy.QtWidgets import QFileDialog, QPushButton

from ..._reader import META_KEY
from ...core.params import BBBC021_PRESET, DetectionParams
from ..navigation import current_plane
from .layout import button_grid
from .model import DetectorModel
from .settings import save_settings, saved_params

__all__ = ["ParametersPanel"]

log = logging.getLogger(__name__)

#: pause after the last change before the settings file is written, ms
SAVE_DELAY_MS = 500


class ParametersPanel(QObject):
    """Sigma, min distance and threshold, the preset buttons, and their persistence.

    The sliders (:attr:`widgets`, rows of the dock's form) and the preset row
    (:attr:`presets`) show ``model.params`` and set it: moving the threshold
    slider sets a fixed threshold (no threshold method). When the layer under
    the preview changes, its suggested parameters are applied and the
    threshold's range is fitted to it. The settings file follows
    ``model.params`` after a pause, in a worker thread.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    model : DetectorModel
    """

    def __init__(self, viewer, model: DetectorModel, parent=None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.model = model
        p = DetectionParams()
        self.sigma = FloatSlider(label="sigma (px)", min=0.5, max=20.0, step=0.1, value=p.sigma,
                                 tooltip="Blur strength: Gaussian standard deviation in pixels. "
                                         "About a quarter of a nucleus diameter. Larger merges "
                                         "close nuclei, smaller splits textured ones.")
        self.min_distance = Slider(label="min distance (px)", min=1, max=50, value=p.min_distance,
                                   tooltip="Minimum distance between two nucleus centres, in "
                                           "pixels; also the image border where no centre is "
                                           "reported.")
        self.threshold = FloatSlider(label="threshold", min=0.0, max=65535.0, step=1.0,
                                     value=p.threshold_abs,
                                     tooltip="A centre must be brighter than this after "
                                             "blurring, in the image's intensity units "
                                             "(0-65535 for 16-bit, 0-255 for 8-bit images).")
        self.bbbc_button = QPushButton("BBBC021")
        self.bbbc_button.setToolTip("sigma 4 px, min distance 6 px, threshold 1000")
        self.defaults_button = QPushButton("Defaults")
        self.save_preset_button = QPushButton("Save preset…")
        self.load_preset_button = QPushButton("Load preset…")
        #: the preset buttons, two by two
        self.presets = button_grid([self.bbbc_button, self.defaults_button,
                                    self.save_preset_button, self.load_preset_button])
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self._save_now)
        self.sigma.changed.connect(self._on_sigma)
        self.min_distance.changed.connect(self._on_min_distance)
        self.threshold.changed.connect(self._on_threshold)
        self.bbbc_button.clicked.connect(lambda: self._set(BBBC021_PRESET))
        self.defaults_button.clicked.connect(lambda: self._set(DetectionParams()))
        self.save_preset_button.clicked.connect(self._ask_save_preset)
        self.load_preset_button.clicked.connect(self._ask_load_preset)
        # first: the sliders (and a clamped value) before the preview hears of a change
        model.events.params.connect(self._on_params, priority=50)
        model.target_changed.connect(self._on_target)

    @property
    def widgets(self) -> list:
        """The sliders, for the dock's form."""
        return [self.sigma, self.min_distance, self.threshold]

    def restore(self) -> None:
        """Apply the parameters of the last session."""
        self._set(saved_params())

    def _set(self, params: DetectionParams) -> None:
        self.model.params = params

    # ------------------------------------------------------------ sliders
    def _on_sigma(self, value) -> None:
        self.model.params = replace(self.model.params, sigma=float(value))

    def _on_min_distance(self, value) -> None:
        self.model.params = replace(self.model.params, min_distance=int(value))

    def _on_threshold(self, value) -> None:
        # a threshold set by hand is a fixed one
        self.model.params = replace(self.model.params, threshold_abs=float(value),
                                    threshold_method=None)

    def _on_params(self, params: DetectionParams) -> None:
        """Show ``params`` on the sliders (widening the threshold range if needed)."""
        t = params.threshold_abs
        if t > self.threshold.max:
            self.threshold.max = t
        if t < self.threshold.min:
            self.threshold.min = t
        with self.sigma.changed.blocked(), self.min_distance.changed.blocked(), \
                self.threshold.changed.blocked():
            self.sigma.value = min(max(params.sigma, self.sigma.min), self.sigma.max)
            self.min_distance.value = min(max(params.min_distance, self.min_distance.min),
                                          self.min_distance.max)
            self.threshold.value = t
        self._save_timer.start()
        shown = replace(params, sigma=float(self.sigma.value),
                        min_distance=int(self.min_distance.value))
        if shown != params:  # beyond a slider's range: the slider's end is what counts
            self.model.params = shown

    # -------------------------------------------------------- a new image
    def _on_target(self, layer) -> None:
        """The image's own parameters, if it suggests some, and the threshold range around it."""
        if layer is None:
            return
        suggested = layer.metadata.get(META_KEY, {}).get("suggested_params")
        if suggested:
            self.model.params = DetectionParams.from_dict(suggested)
        _, plane = current_plane(self.viewer, layer)
        if plane is not None:
            note = self.fit_threshold_range(np.asarray(plane))
            if note:
                self.model.say_about_params(note)

    def fit_threshold_range(self, plane: np.ndarray) -> str:
        """Fit the threshold slider to an image's range.

        Returns
        -------
        str
            A sentence for the status line when the threshold had to change
            (it meant nothing for this image, e.g. 1000 on an 8-bit image, and
            Otsu's threshold of the blurred plane, rounded down, replaced it),
            else ``''``.
        """
        if plane.dtype.kind in "ui":
            info = np.iinfo(plane.dtype)
            lo, hi = float(min(0, plane.min())), float(max(plane.max(), 1))
            hi = min(hi * 1.2, float(info.max)) if plane.dtype.itemsize > 1 else 255.0
            step = 1.0
        else:
            lo, hi = float(np.min(plane)), float(np.max(plane))
            if hi <= lo:
                hi = lo + 1.0
            step = (hi - lo) / 1000.0
        t = float(self.threshold.value)
        self.threshold.step = step
        self.set_decimals(0 if plane.dtype.kind in "ui" else 2)
        if lo <= t <= hi:
            self.threshold.min, self.threshold.max = lo, hi
            return ""
        if self.model.params.threshold_method is not None:
            # the threshold is computed per image: the slider's value is not used
            with self.threshold.changed.blocked():
                self.threshold.min, self.threshold.max = lo, hi
            return ""
        from ...core.detect.thresholds import check_threshold

        # the value a run suggests for such images: Otsu's threshold of the blurred plane
        suggestion = check_threshold(plane, self.model.params).suggestion
        guess = lo if suggestion is None else suggestion
        self.threshold.min, self.threshold.max = lo, hi
        self.threshold.value = min(max(guess, lo), hi)
        return (f"Threshold {t:g} is outside this image's range; "
                f"set to {self.threshold.value:g} (Otsu).")

    def set_decimals(self, decimals: int) -> None:
        """Digits after the point in the threshold's readout (none for integer images)."""
        slider = self._threshold_slider()
        if slider is not None:
            slider.setDecimals(int(decimals))

    def decimals(self) -> int | None:
        """Digits after the point in the threshold's readout."""
        slider = self._threshold_slider()
        return None if slider is None else slider.decimals()

    def _threshold_slider(self):
        """The slider's readout (a spin box beside magicgui's slider)."""
        from qtpy.QtWidgets import QDoubleSpinBox

        return self.threshold.native.findChild(QDoubleSpinBox)

    def _save_now(self) -> None:
        create_worker(save_settings, params=self.model.params.to_dict(), _start_thread=True)

    def _ask_save_preset(self) -> None:
        path, _ = QFileDialog.getSaveFileName(None, "Save preset", "nuclei-preset.json",
                                              "JSON (*.json)")
        if path:
            self.model.save_preset(path)

    def _ask_load_preset(self) -> None:
        path, _ = QFileDialog.getOpenFileName(None, "Load preset", "", "JSON (*.json)")
        if path:
            try:
                self.model.load_preset(path)
            except (ValueError, TypeError, OSError) as exc:
                show_warning(f"Not a valid preset: {exc}")
