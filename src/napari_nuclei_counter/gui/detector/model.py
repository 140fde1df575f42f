"""The detector dock's state, without Qt: what the parts show, change and observe.

:class:`DetectorModel` is a :func:`psygnal.evented` dataclass (napari's own
models use psygnal): setting a field emits ``model.events.<field>(new, old)``
when the value changes. The dock hands one model to each of its parts (the
parameters, the source, the preview, the run, the results, the scoring
panel); a part writes what its widgets set and observes the fields it shows,
so no part reaches into another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from psygnal import Signal, evented

from ...core.io.discovery import BBBC021_PATTERN
from ...core.params import DetectionParams, read_preset
from ...core.results.store import ResultsStore
from ...core.run.backends import default_workers

__all__ = ["BACKENDS", "DetectorModel", "SOURCES"]

#: what a run goes over: every image of a layer (a stack), or the files of a folder
SOURCES = ("image layer", "folder")
#: where a run's work is done
BACKENDS = ("local processes", "Dask")


@evented
@dataclass(eq=False)
class DetectorModel:
    """Everything the detector dock's parts share.

    Attributes
    ----------
    params : DetectionParams
        The detection parameters, the threshold method included (``None``: the
        fixed ``threshold_abs``). One value: a preset changes it in one event.
    preview : bool
        The live preview is switched on.
    preview_text : str
        The sentence that describes the last preview (or why there is none).
    threshold_offer : float or None
        A fixed threshold offered because the one set finds nothing in the
        image on screen: it is at or above every smoothed value there (e.g.
        1000, a threshold for 16-bit images, on an 8-bit one). The image's
        own suggestion (its Otsu threshold after blurring, rounded down);
        ``None`` otherwise, and as soon as the parameters change.
    source : {'image layer', 'folder'}
        What a run goes over.
    image_layer : napari.layers.Image or None
        The image layer to preview and to run on (``source == 'image layer'``).
    folder_layer : napari.layers.Image or None
        The layer that shows the folder (``source == 'folder'``): one file of
        it, or after a run on the folder the run's stack of its files.
    folder : pathlib.Path or None
        The folder of images.
    pattern : str
        The file-name pattern (every TIFF when empty, see :meth:`glob`).
    channel : int or None
        The channel of the folder's files (``None``: they have one).
    z : str or None
        ``'max'``, ``'mean'`` or a plane number for z-stacks (``None``: not a stack).
    t : str or None
        One time point of time series (its number); ``None``: every time point,
        each an image of the run (and files without a time axis).
    workers : int
        Worker processes (0: in this process).
    backend : {'local processes', 'Dask'}
    scheduler : str
        Address of a Dask scheduler; empty for a local Dask cluster.
    output : pathlib.Path or None
        A folder the tables are written to as a run goes.
    resume_run : bool
        Skip the images already done in :attr:`output`.
    running : bool
        A run is going on.
    layer_building : bool
        The ``nuclei`` layer is being built off the window's thread.
    layer_deferred : bool
        The ``nuclei`` layer is not updated during this run (too big to update
        live); it is completed when the run ends.
    unsaved : bool
        The results shown were never saved (no output folder, no *Save tables…*).
    edited : bool
        The results shown were corrected by hand since they were last saved.
    status : str
        The dock's status line. A line about the parameters (:meth:`say_about_params`)
        is cleared when they change afterwards.

    Signals
    -------
    target_changed(object)
        :attr:`target`, the layer the preview and the scoring work on, is
        another one (or ``None``), or the source changed.
    target_reloaded()
        The target kept its layer but shows another image (the folder
        preview's next file): nothing computed for it before is current.
    """

    params: DetectionParams = field(default_factory=DetectionParams)
    preview: bool = True
    preview_text: str = ""
    threshold_offer: float | None = None
    source: str = SOURCES[0]
    image_layer: Any = None
    folder_layer: Any = None
    folder: Path | None = None
    pattern: str = BBBC021_PATTERN
    channel: int | None = None
    z: str | None = None
    t: str | None = None
    workers: int = field(default_factory=default_workers)
    backend: str = BACKENDS[0]
    scheduler: str = ""
    output: Path | None = None
    resume_run: bool = False
    running: bool = False
    layer_building: bool = False
    layer_deferred: bool = False
    unsaved: bool = False
    edited: bool = False
    status: str = ""

    target_changed = Signal(object)
    target_reloaded = Signal()

    def __post_init__(self) -> None:
        # first, so that the parts hear of the new target after the field itself
        self.events.source.connect(self._on_source, priority=100)
        self.events.image_layer.connect(self._on_image_layer, priority=100)
        self.events.folder_layer.connect(self._on_folder_layer, priority=100)
        self._params_note = ""  # the status line while it speaks of the parameters shown
        self.events.params.connect(self._on_params_changed, priority=100)

    # ------------------------------------------------------------ the target
    @property
    def target(self):
        """The layer the preview and the scoring work on: the folder's file in folder mode."""
        return self.folder_layer if self.folder_run else self.image_layer

    def _on_source(self) -> None:
        self.target_changed.emit(self.target)  # the preview's words depend on the source too

    def _on_image_layer(self) -> None:
        if not self.folder_run:
            self.target_changed.emit(self.target)

    def _on_folder_layer(self) -> None:
        if self.folder_run:
            self.target_changed.emit(self.target)

    # ---------------------------------------------------------------- status
    def say_about_params(self, text: str) -> None:
        """Put ``text``, a sentence about the current :attr:`params`, in the status line.

        It stays until the parameters change (a slider, a typed value, a
        preset): then it would describe values no longer shown, and the
        status line is cleared.
        """
        self.status = text
        self._params_note = text

    def _on_params_changed(self) -> None:
        note, self._params_note = self._params_note, ""
        if note and self.status == note:
            self.status = ""
        self.threshold_offer = None  # it was for other parameters

    def use_threshold_offer(self) -> None:
        """Set :attr:`threshold_offer` as the (fixed) threshold, when there is one."""
        if self.threshold_offer is not None:
            self.params = replace(self.params, threshold_abs=float(self.threshold_offer),
                                  threshold_method=None)

    # ----------------------------------------------------------- run options
    @property
    def folder_run(self) -> bool:
        """Whether a run goes over the files of :attr:`folder`."""
        return self.source == "folder"

    @property
    def dask(self) -> bool:
        """Whether runs go to a Dask cluster."""
        return self.backend == "Dask"

    def glob(self) -> str:
        """The file-name pattern (every TIFF when empty)."""
        return self.pattern or "*.tif"

    def resumes(self) -> bool:
        """Whether a run skips the images done before (needs an output folder)."""
        return bool(self.output is not None and self.resume_run)

    # ---------------------------------------------------------------- presets
    def save_preset(self, path: str | Path) -> None:
        """Write :attr:`params` as a JSON preset (every field, the threshold method included)."""
        Path(path).write_text(json.dumps(self.params.to_dict(), indent=2), encoding="utf-8")

    def load_preset(self, path: str | Path) -> DetectionParams:
        """Read a JSON preset into :attr:`params` and return it.

        Only a regular file of at most 64 KiB is read, as for the command
        line's ``--preset`` (:func:`~napari_nuclei_counter.core.params.read_preset`).

        Raises
        ------
        OSError
            For a file that cannot be opened (nothing is changed).
        ValueError
            For a file that is not a valid preset (nothing is changed).
        """
        params = read_preset(path)
        self.params = params
        return params

    # ---------------------------------------------------------------- results
    def replace_question(self, store: ResultsStore) -> str:
        """What to ask before a run replaces the results of ``store``, or ``''`` when it need not."""
        n = len(store.results)
        if not n or not (self.unsaved or self.edited):
            return ""
        edited = sum(1 for r in store.results.values() if r.edited)
        parts = [f"The results shown ({n} images) are not saved."] if self.unsaved else []
        if self.edited and edited:
            parts.append(f"{edited} image{'s' if edited != 1 else ''} were corrected by hand"
                         + (" after saving." if not self.unsaved else "."))
        parts.append("The new run replaces them when its first result arrives. Run anyway?")
        return " ".join(parts)
