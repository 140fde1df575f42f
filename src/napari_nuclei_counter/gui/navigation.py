"""Which image of a stack the viewer shows, and moving it to another one.

One implementation for every dock: the detector (its preview, scoring and
table) and the views (gallery, plate map) that follow a run's results. A
stack is a layer of 2-D images whose first axis is the image index;
napari's viewer may have more leading axes than the layer (another layer
with more dimensions), which the layer lacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import napari
    import numpy as np

    from ..core.results.store import ResultsStore

__all__ = ["current_image", "current_index", "current_plane", "show_image", "show_index"]


def _stack_axis(viewer: napari.viewer.Viewer, layer) -> int | None:
    """The viewer's axis of ``layer``'s image index, or ``None`` when it is no stack."""
    if layer is None or getattr(layer, "ndim", 0) < 3:
        return None
    axis = viewer.dims.ndim - layer.ndim  # leading world axes the layer lacks
    return axis if 0 <= axis < len(viewer.dims.current_step) else None


def current_index(viewer: napari.viewer.Viewer, layer) -> int | None:
    """Index of the image of the stack ``layer`` that the viewer shows.

    Returns
    -------
    int or None
        Within the layer's images; ``None`` for no layer or a 2-D image.
    """
    axis = _stack_axis(viewer, layer)
    if axis is None:
        return None
    step = viewer.dims.current_step[axis]
    return int(min(max(step, 0), layer.data.shape[0] - 1))


def show_index(viewer: napari.viewer.Viewer, layer, index: int) -> bool:
    """Move the viewer to image ``index`` of the stack ``layer``.

    Returns
    -------
    bool
        ``False`` when there is nothing to move (no layer, a 2-D image, or the
        layer is no longer in the viewer).
    """
    axis = _stack_axis(viewer, layer)
    if axis is None or layer not in viewer.layers:
        return False
    viewer.dims.set_current_step(axis, int(index))
    return True


def current_plane(viewer: napari.viewer.Viewer, layer) -> tuple[int, np.ndarray | None]:
    """``(index, plane)``: the displayed 2-D image of ``layer`` and its index (0 for a 2-D layer).

    The plane is ``None`` for a layer that is neither a 2-D image nor a stack of them.
    """
    data = layer.data
    index = current_index(viewer, layer) or 0
    if data.ndim == 2:
        return index, data
    if data.ndim == 3:
        return index, data[index]
    return index, None


def show_image(viewer: napari.viewer.Viewer, store: ResultsStore, index: int) -> bool:
    """Move the viewer to image ``index`` of the store's run (its ``source`` layer).

    Returns
    -------
    bool
        ``False`` when there is nothing to move (see :func:`show_index`).
    """
    return show_index(viewer, store.source, index)


def current_image(viewer: napari.viewer.Viewer, store: ResultsStore) -> int | None:
    """Index of the image of the store's run that the viewer shows, if any."""
    return current_index(viewer, store.source)
