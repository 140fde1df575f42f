"""The scoring panel's sentences and its ``score`` layer (no logic of its own).

:func:`score_text`, :func:`tune_text` and :func:`estimate_text`
say what a job found; :func:`show_markers` replaces the ``score`` Points
layer (features ``kind``: matched, false or missed; a face colour and a
symbol per kind).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from qtpy.QtWidgets import QComboBox

from .jobs import COLOURS, KINDS, SYMBOLS

__all__ = ["RESULTS", "SCORE_LAYER", "SLIDERS", "estimate_text", "refill",
           "score_text", "show_markers", "tune_text"]

#: the Points layer that marks matched, false and missed nuclei
SCORE_LAYER = "score"
#: what is scored: the sliders' detections, or the run's result of the image
SLIDERS, RESULTS = "sliders (preview)", "run results"


def score_text(outcome) -> str:
    """Two lines: the ratios, then the counts and how nuclei were matched."""
    s = outcome.score
    how = (f"within {outcome.match_radius:.1f} px" if outcome.match_radius is not None
           else "inside the labels")
    return (f"precision {s.precision:.3f} · recall {s.recall:.3f} · F1 {s.f1:.3f}\n"
            f"tp {s.tp} · fp {s.fp} · fn {s.fn} ({s.n_true} true, {s.n_detected} detected, "
            f"matched {how})")


def _params_text(p) -> str:
    return f"sigma {p.sigma:g}, min distance {p.min_distance}, threshold {p.threshold_abs:g}"


def tune_text(result, n_images: int, cancelled: bool) -> str:
    """The search's best set and F1 (and the runners-up), or why it was not applied."""
    f1 = result.score.f1
    if cancelled:
        return f"Cancelled: best so far F1 {f1:.3f} ({_params_text(result.best)}), not applied."
    where = f"{n_images} images" if n_images > 1 else "this image"
    text = f"Best F1 {f1:.3f} on {where}: {_params_text(result.best)}."
    runners = "; ".join(f"{q.sigma:g}/{q.min_distance}/{q.threshold_abs:g}: {g:.3f}"
                        for q, g in result.runners_up[:3])
    if runners:
        text += f"\nRunners-up (sigma/min distance/threshold: F1): {runners}"
    return text


def estimate_text(est) -> str:
    """The nucleus size measured and the parameters suggested from it."""
    return (f"Suggested from the image: nuclei about {est.diameter:.1f} px across; "
            f"{_params_text(est.params)} ({est.threshold_method} threshold).")


def show_markers(viewer, outcome, image_layer, index: int = 0):
    """Replace the ``score`` layer with the markers of ``outcome``, over ``image_layer``.

    Parameters
    ----------
    outcome : ScoreOutcome
    image_layer : napari.layers.Image
        The layer scored; the markers take its transform.
    index : int, optional
        The image of its stack that was scored.

    Returns
    -------
    napari.layers.Points
        With ``features['kind']`` one of :data:`KINDS` per marker.
    """
    coords = np.asarray(outcome.markers, float).reshape(-1, 2)
    scale, translate = tuple(image_layer.scale[-2:]), tuple(image_layer.translate[-2:])
    if image_layer.data.ndim == 3:
        coords = np.column_stack([np.full(len(coords), float(index)), coords])
        scale, translate = tuple(image_layer.scale), tuple(image_layer.translate)
    kinds = list(outcome.kinds)
    colours = np.array([COLOURS[k] for k in kinds], float).reshape(-1, 4)
    if SCORE_LAYER in viewer.layers:
        viewer.layers.remove(viewer.layers[SCORE_LAYER])
    layer = viewer.add_points(
        coords, ndim=coords.shape[1], name=SCORE_LAYER, scale=scale, translate=translate,
        features=pd.DataFrame({"kind": pd.Categorical(kinds, categories=list(KINDS))}),
        face_color=colours if len(kinds) else "white",
        symbol=[SYMBOLS[k] for k in kinds] if kinds else "disc",
        size=9, border_color="black", border_width=0.1)
    if image_layer in viewer.layers:  # keep the image selected
        viewer.layers.selection.active = image_layer
    return layer


def refill(combo: QComboBox, items: list[tuple[str, object]]) -> None:
    """Replace a combo's items, keeping the current one when it is still there."""
    current = combo.currentData()
    combo.blockSignals(True)
    try:
        combo.clear()
        for name, obj in items:
            combo.addItem(name, obj)
        found = next((i for i, (_, obj) in enumerate(items) if obj is current), 0)
        combo.setCurrentIndex(found if items else -1)
    finally:
        combo.blockSignals(False)
