"""The three detection parameters: sliders, presets, and their saving between sessions."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from magicgui.widgets import FloatSlider, Slider
from napari.qt.threading import create_worker
from napari.utils.notifications import show_warning
from qtpy.QtCore import QObject, QTimer, Signal
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QPushButton

from ...core.params import BBBC021_PRESET, DetectionParams
from .settings import save_settings, saved_params

__all__ = ["ParametersPanel"]

log = logging.getLogger(__name__)

#: pause after the last slider move before the settings file is written, ms
SAVE_DELAY_MS = 500


class ParametersPanel(QObject):
    """Sigma, min distance and threshold, the preset buttons, and their persistence.

    The magicgui sliders (:attr:`sigma`, :attr:`min_distance`,
    :attr:`threshold`) and the preset row (:attr:`presets`) are placed by the
    dock. :attr:`changed` fires on every change; the settings file is written
    after a pause, in a worker thread.
    """

    changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
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
        self.presets = QHBoxLayout()
        self.bbbc_button = QPushButton("BBBC021")
        self.bbbc_button.setToolTip("sigma 4 px, min distance 6 px, threshold 1000")
        self.defaults_button = QPushButton("Defaults")
        self.save_preset_button = QPushButton("Save preset…")
        self.load_preset_button = QPushButton("Load preset…")
        for b in (self.bbbc_button, self.defaults_button, self.save_preset_button,
                  self.load_preset_button):
            self.presets.addWidget(b)
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(SAVE_DELAY_MS)
        self._save_timer.timeout.connect(self._save_now)
        for w in (self.sigma, self.min_distance, self.threshold):
            w.changed.connect(self._on_changed)
        self.bbbc_button.clicked.connect(lambda: self.apply(BBBC021_PRESET))
        self.defaults_button.clicked.connect(lambda: self.apply(DetectionParams()))
        self.save_preset_button.clicked.connect(self._ask_save_preset)
        self.load_preset_button.clicked.connect(self._ask_load_preset)

    def restore(self) -> None:
        """Apply the parameters of the last session."""
        self.apply(saved_params())

    def params(self) -> DetectionParams:
        """The parameters currently set."""
        return DetectionParams(sigma=float(self.sigma.value),
                               min_distance=int(self.min_distance.value),
                               threshold_abs=float(self.threshold.value))

    def apply(self, params: DetectionParams) -> None:
        """Set the sliders (widening the threshold range if needed); emits :attr:`changed` once."""
        t = params.threshold_abs
        if t > self.threshold.max:
            self.threshold.max = t
        if t < self.threshold.min:
            self.threshold.min = t
        with self.sigma.changed.blocked(), self.min_distance.changed.blocked():
            self.sigma.value = min(max(params.sigma, self.sigma.min), self.sigma.max)
            self.min_distance.value = min(max(params.min_distance, self.min_distance.min),
                                          self.min_distance.max)
        self.threshold.value = t  # emits once: preview and persistence follow
        if self.threshold.value == t:
            self._on_changed()

    def fit_threshold_range(self, plane: np.ndarray) -> str:
        """Fit the threshold slider to an image's range.

        Returns
        -------
        str
            A sentence for the status line when the threshold had to change
            (it meant nothing for this image, e.g. 1000 on an 8-bit image, and
            Otsu's threshold of the plane replaced it), else ``''``.
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
        from skimage.filters import threshold_otsu

        guess = float(threshold_otsu(plane)) if plane.max() > plane.min() else lo
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

    def save_preset(self, path: str | Path) -> None:
        """Write the current parameters as a JSON preset."""
        Path(path).write_text(json.dumps(self.params().to_dict(), indent=2), encoding="utf-8")

    def load_preset(self, path: str | Path) -> DetectionParams:
        """Read a JSON preset and apply it.

        Raises
        ------
        ValueError
            For a file that is not a valid preset (nothing is changed).
        """
        params = DetectionParams.from_json(Path(path).read_text(encoding="utf-8"))
        self.apply(params)
        return params

    def flush(self) -> None:
        """Write pending settings now (e.g. when the dock closes)."""
        if self._save_timer.isActive():
            self._save_timer.stop()
            save_settings(params=self.params().to_dict())

    def _on_changed(self, *_) -> None:
        self._save_timer.start()
        self.changed.emit()

    def _save_now(self) -> None:
        create_worker(save_settings, params=self.params().to_dict(), _start_thread=True)

    def _ask_save_preset(self) -> None:
        path, _ = QFileDialog.getSaveFileName(None, "Save preset", "nuclei-preset.json",
                                              "JSON (*.json)")
        if path:
            self.save_preset(path)

    def _ask_load_preset(self) -> None:
        path, _ = QFileDialog.getOpenFileName(None, "Load preset", "", "JSON (*.json)")
        if path:
            try:
                self.load_preset(path)
            except (ValueError, TypeError, OSError) as exc:
                show_warning(f"Not a valid preset: {exc}")
