"""The channel, z and time choice of the folder's files (multi-channel and RGB files,
z-stacks, time series).

The first matched file is described in a worker thread by the core's reader
(:func:`napari_nuclei_counter.core.io.images.describe_image`); the picker shows a
channel list only for multi-channel files (red, green, blue for RGB files:
blue, DAPI's colour, first), a z choice only for z-stacks and a time choice
only for time series, and stays hidden for plain 2-D images. By default each
time point of a time series is an image of the run, as each scene is; the
time choice keeps one time point instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

from magicgui.widgets import ComboBox
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Signal

from ..layout import compact_combo
from ..model import DetectorModel

__all__ = ["EVERY_TIME_POINT", "ChannelPicker", "channel_choices", "t_choices", "z_choices"]

log = logging.getLogger(__name__)

#: names of a DNA stain, chosen first when a file has one
_DNA = ("dapi", "hoechst", "dna", "nuclei", "draq5", "sytox")
#: the channel chosen first in an RGB(A) file: DAPI is shown in blue
_RGB_DEFAULT = "blue"
#: the time choice's value for "each time point is an image of the run"
EVERY_TIME_POINT = "every"


def channel_choices(names: list[str], n: int) -> list[tuple[str, int]]:
    """``(text, index)`` for each channel: ``'1: DAPI'`` (index 0-based) or ``'channel 1'``."""
    out = []
    for i in range(n):
        name = names[i] if i < len(names) else ""
        out.append((f"{i}: {name}" if name else f"channel {i}", i))
    return out


def z_choices(n_planes: int) -> list[tuple[str, str]]:
    """``(text, value)`` for the z choice: projections first, then each plane."""
    return ([("maximum projection", "max"), ("mean projection", "mean")]
            + [(f"plane {k}", str(k)) for k in range(n_planes)])


def t_choices(n_times: int) -> list[tuple[str, str]]:
    """``(text, value)`` for the time choice: every time point first, then each one."""
    return ([("every time point", EVERY_TIME_POINT)]
            + [(f"time point {k}", str(k)) for k in range(n_times)])


def _n_times(info) -> int:
    return int(getattr(info, "n_times", 1) or 1)


def _is_rgb(info) -> bool:
    """Whether the channels of a described file are an RGB(A) image's colours."""
    axes = str(getattr(info, "axes", ""))
    return "S" in axes and "C" not in axes


def _describe(path: str, request: int):
    from ....core.io.images import describe_image

    return request, describe_image(path)


class ChannelPicker(QObject):
    """*channel*, *z* and *time* fields, filled from the first file that matches.

    The choice is written to ``model.channel``, ``model.z`` and ``model.t``
    (``None`` where the files need no choice, and for every time point)
    before the signals below.

    Signals
    -------
    changed()
        The user picked another channel, z or time choice.
    described(object)
        The description of the first file (``None`` when it could not be read).
    """

    changed = Signal()
    described = Signal(object)

    def __init__(self, model: DetectorModel, parent=None) -> None:
        super().__init__(parent)
        self.model = model
        self.channel = ComboBox(label="channel", choices=[],
                                tooltip="The channel of the files to detect in (a DNA stain: "
                                        "DAPI, Hoechst)")
        self.z = ComboBox(label="z", choices=z_choices(1),
                          tooltip="For z-stacks: a projection of all planes, or one plane")
        self.t = ComboBox(label="time", choices=t_choices(1), value=EVERY_TIME_POINT,
                          tooltip="For time series: every time point (each an image of "
                                  "the run), or one time point of each file")
        compact_combo(self.channel.native)
        self.info = None  #: the description of the first file, when known
        self._request = 0
        self._path: str | None = None
        for w in self.widgets:
            w.visible = False
            w.changed.connect(self._on_changed)

    @property
    def widgets(self) -> list:
        """The magicgui widgets, for the dock's form."""
        return [self.channel, self.z, self.t]

    def describe(self, path: str | Path | None) -> None:
        """Learn the channels and planes of ``path`` (in a worker); ``None`` hides the picker."""
        self._request += 1
        if path is None:
            self._path = None
            self._show(None)
            return
        if str(path) == self._path and self.info is not None:
            self.described.emit(self.info)  # the same file: the same choices
            return
        self._path = str(path)
        worker = create_worker(_describe, str(path), self._request)
        worker.returned.connect(self._on_described)
        worker.errored.connect(self._on_error)
        worker.start()

    def _on_error(self, exc: Exception) -> None:
        log.info("cannot describe %s: %s", self._path, exc)
        self._show(None)

    def _on_described(self, out) -> None:
        request, info = out
        if request == self._request:
            self._show(info)

    def _show(self, info) -> None:
        self.info = info
        n_channels = int(getattr(info, "n_channels", 1) or 1)
        n_planes = int(getattr(info, "n_planes", 1) or 1)
        n_times = _n_times(info)
        with self.channel.changed.blocked(), self.z.changed.blocked(), \
                self.t.changed.blocked():
            choices = channel_choices(list(getattr(info, "channels", []) or []), n_channels)
            self.channel.choices = choices
            dna = [i for text, i in choices if any(k in text.lower() for k in _DNA)]
            if _is_rgb(info):
                dna = [i for text, i in choices if text.endswith(f": {_RGB_DEFAULT}")]
            if choices:
                self.channel.value = dna[0] if dna else 0
            self.z.choices = z_choices(n_planes)
            self.z.value = "max"
            self.t.choices = t_choices(n_times)
            self.t.value = EVERY_TIME_POINT
        self.channel.visible = n_channels > 1
        self.z.visible = n_planes > 1
        self.t.visible = n_times > 1
        self._write()
        self.described.emit(info)

    def _on_changed(self, *_) -> None:
        self._write()
        self.changed.emit()

    def _write(self) -> None:
        self.model.channel, self.model.z = self.choice()
        self.model.t = self.time_choice()

    def hide(self) -> None:
        """Hide the fields (not a folder run)."""
        for w in self.widgets:
            w.visible = False

    def refresh_visibility(self) -> None:
        """Show the fields the last described file needs."""
        self._show_visible()

    def _show_visible(self) -> None:
        info = self.info
        self.channel.visible = int(getattr(info, "n_channels", 1) or 1) > 1
        self.z.visible = int(getattr(info, "n_planes", 1) or 1) > 1
        self.t.visible = _n_times(info) > 1

    def choice(self) -> tuple[int | None, str | None]:
        """``(channel, z)`` for the core's ``Run``: ``None`` where the files need no choice."""
        info = self.info
        channel = (int(self.channel.value) if info is not None and info.n_channels > 1
                   and self.channel.value is not None else None)
        z = str(self.z.value) if info is not None and info.n_planes > 1 else None
        return channel, z

    def time_choice(self) -> str | None:
        """The time point for the core's ``Run`` (``t=``): ``None`` for every time point."""
        value = self.t.value
        if self.info is None or _n_times(self.info) <= 1 or value in (None, EVERY_TIME_POINT):
            return None
        return str(value)
