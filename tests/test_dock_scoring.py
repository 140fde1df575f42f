"""The scoring panel: exact scores and markers, suggested and estimated parameters, cancel, close.

Real napari viewer in a real window (Xvfb), images with known centres.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from helpers import PLUGIN
from napari_nuclei_counter.core.params import DetectionParams
from napari_nuclei_counter.core.results.store import ResultsStore
from napari_nuclei_counter.core.results.tables import ImageResult
from napari_nuclei_counter.core.sample import make_nuclei_image
from napari_nuclei_counter.core.scoring.estimate import estimate_params
from napari_nuclei_counter.core.scoring.evaluate import Truth, evaluate_image
from napari_nuclei_counter.gui.detector.model import DetectorModel
from napari_nuclei_counter.gui.scoring import jobs as _scoring_jobs
from napari_nuclei_counter.gui.scoring.jobs import COLOURS
from napari_nuclei_counter.gui.scoring.panel import SCORE_LAYER, ScoringPanel
from napari_nuclei_counter.gui.scoring.view import RESULTS

pytestmark = pytest.mark.gui

GOOD = DetectionParams(3.0, 5, 1000.0)


class Host:
    """What a dock gives the panel: its model (the image, the parameters) and its results.

    ``coords``: a run's detections of image 0 of ``layer`` (a store of that run
    is handed to the panel).
    """

    def __init__(self, viewer, layer, params=GOOD, coords=None):
        self.viewer = viewer
        self.model = DetectorModel(params=params)
        self.model.image_layer = layer
        self.store = None
        if coords is not None:
            self.store = ResultsStore()
            self.store.reset(["image 0"], params=params, source=layer)
            self.store.add(ImageResult(0, "image 0", coords=np.asarray(coords).astype(np.intp),
                                       intensities=np.zeros(len(coords))))
        self.applied: list[tuple[DetectionParams, str]] = []

    @property
    def layer(self):
        return self.model.image_layer

    @layer.setter
    def layer(self, layer):
        self.model.image_layer = layer

    def panel(self, with_detections=False):
        panel = ScoringPanel(self.viewer, self.model, self.store if with_detections else None)
        panel.params_set.connect(lambda params, label: self.applied.append((params, label)))
        self.viewer.window.add_dock_widget(panel, name="Scoring", area="right")
        return panel


def _wait(qtbot, panel, timeout=60000):
    # not waitSignal: a quick job may end before a spy could connect
    qtbot.waitUntil(lambda: not panel.busy, timeout=timeout)


def _kinds(viewer):
    layer = viewer.layers[SCORE_LAYER]
    return layer, list(layer.features["kind"].astype(str))


def test_points_truth_exact_counts_and_markers(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy()
    img = np.zeros((100, 100), np.uint16)
    layer = viewer.add_image(img)
    # 3 detections near clicked nuclei, 2 far from any; 1 clicked nucleus missed
    det = np.array([[10, 10], [30, 30], [50, 52], [80, 10], [10, 80]], float)
    viewer.add_points(np.array([[11, 10], [30, 32], [50, 50], [90, 90]], float), name="clicked")
    host = Host(viewer, layer, coords=det)
    panel = host.panel(with_detections=True)
    assert panel.truth_combo.currentText() == "clicked"
    panel.source_combo.setCurrentText(RESULTS)
    panel.match_radius = 3.0
    assert panel.score() is not None
    _wait(qtbot, panel)
    s = panel.last_score.score
    assert (s.tp, s.fp, s.fn) == (3, 2, 1)
    assert "tp 3 · fp 2 · fn 1" in panel.result_label.text()
    assert f"F1 {6 / 9:.3f}" in panel.result_label.text()
    pts, kinds = _kinds(viewer)
    assert kinds == ["matched", "matched", "matched", "false", "false", "missed"]
    np.testing.assert_allclose(pts.data[-1], [90, 90])
    np.testing.assert_allclose(pts.face_color[0], COLOURS["matched"])
    np.testing.assert_allclose(pts.face_color[3], COLOURS["false"])
    np.testing.assert_allclose(pts.face_color[5], COLOURS["missed"])
    # a re-score replaces the layer (radius 1: only the exact-ish match remains)
    panel.match_radius = 1.0
    panel.score()
    _wait(qtbot, panel)
    assert (panel.last_score.score.tp, panel.last_score.score.fn) == (1, 3)
    assert [ly.name for ly in viewer.layers].count(SCORE_LAYER) == 1
    assert _kinds(viewer)[1].count("missed") == 3


def test_labels_truth_counts_a_nucleus_hit_twice_once(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((60, 60), np.uint16), scale=(2, 2))
    lab = np.zeros((60, 60), np.int32)
    lab[5:15, 5:15], lab[30:40, 30:40], lab[45:55, 5:15] = 1, 2, 3
    viewer.add_labels(lab, name="mask", scale=(2, 2))
    det = np.array([[8, 8], [12, 12], [35, 35], [25, 50]], float)  # twice in 1, once in 2, bg
    host = Host(viewer, layer, coords=det)
    panel = host.panel(with_detections=True)
    panel.source_combo.setCurrentText(RESULTS)
    panel.score()
    _wait(qtbot, panel)
    s = panel.last_score.score
    assert (s.tp, s.fp, s.fn, s.n_true) == (2, 2, 1, 3)
    assert "inside the labels" in panel.result_label.text()
    pts, kinds = _kinds(viewer)
    assert sorted(kinds) == ["false", "false", "matched", "matched", "missed"]
    np.testing.assert_allclose(pts.scale, (2, 2))  # markers sit on the scaled image


def test_region_limits_the_score(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((100, 100), np.uint16))
    det = np.array([[10, 10], [20, 20], [10, 80], [80, 80]], float)
    viewer.add_points(np.array([[10, 10], [30, 30], [12, 80], [60, 90]], float), name="clicked")
    viewer.add_shapes([np.array([[0, 0], [50, 50]])], shape_type="rectangle", name="corner")
    host = Host(viewer, layer, coords=det)
    panel = host.panel(with_detections=True)
    panel.source_combo.setCurrentText(RESULTS)
    panel.match_radius = 3.0
    assert panel.region_combo.count() == 2
    panel.region_layer = viewer.layers["corner"]
    panel.score()
    _wait(qtbot, panel)
    s = panel.last_score.score
    assert (s.tp, s.fp, s.fn) == (1, 1, 1)  # only the top-left quarter counts
    assert sorted(_kinds(viewer)[1]) == ["false", "matched", "missed"]


def test_sliders_score_equals_the_core_on_a_generated_image(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    img, centres = make_nuclei_image(4, 40, (256, 256))
    layer = viewer.add_image(img)
    viewer.add_points(centres, name="truth")
    host = Host(viewer, layer)
    panel = host.panel()
    panel.score()
    _wait(qtbot, panel)
    want, _ = evaluate_image(img, Truth(points=centres), GOOD)
    s = panel.last_score.score
    assert (s.tp, s.fp, s.fn) == (want.tp, want.fp, want.fn)
    assert _kinds(viewer)[1].count("matched") == want.tp


def test_problems_are_told_not_raised(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    host = Host(viewer, None)
    panel = host.panel()
    outcomes = []
    panel.job_done.connect(outcomes.append)
    assert panel.estimate() is None and "open an image first" in panel.result_label.text()
    host.layer = viewer.add_image(np.zeros((20, 20), np.uint16))
    viewer.add_labels(np.zeros((20, 20), np.int32), name="empty")
    assert panel.score() is not None  # the empty mask is found out in the worker
    _wait(qtbot, panel)
    assert "layer 'empty' has no nuclei on image 0" in panel.result_label.text()
    assert outcomes == ["failed", "failed"] and SCORE_LAYER not in viewer.layers
    assert panel.score_button.isEnabled()


def test_truth_choices_follow_the_layers(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((20, 20), np.uint16))
    panel = Host(viewer, layer).panel()
    assert panel.truth_combo.count() == 0 and not panel.score_button.isEnabled()
    pts = viewer.add_points(np.array([[5.0, 5.0]]), name="clicked")
    lab = viewer.add_labels(np.zeros((20, 20), int), name="mask")
    assert [panel.truth_combo.itemText(i) for i in range(2)] == ["clicked", "mask"]
    assert panel.score_button.isEnabled()
    panel.truth_layer = lab
    pts.name = "my nuclei"
    assert panel.truth_combo.itemText(0) == "my nuclei"
    assert panel.truth_layer is lab
    viewer.layers.remove(lab)
    assert panel.truth_combo.count() == 1 and panel.truth_layer is pts


def test_suggest_on_an_annotated_stack_sets_the_params(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    pairs = [make_nuclei_image(seed, 40, (512, 512)) for seed in (10, 11)]
    stack = np.stack([p[0] for p in pairs])
    layer = viewer.add_image(stack)
    points = np.concatenate([np.column_stack([np.full(len(c), k), c])
                             for k, (_, c) in enumerate(pairs)])
    viewer.add_points(points, name="truth")
    host = Host(viewer, layer, params=DetectionParams())  # defaults: F1 far below
    panel = host.panel()
    seen = []
    panel._relay.progress.connect(lambda done, total: seen.append((done, total)))
    panel.suggest()
    assert panel.busy and not panel.score_button.isEnabled()
    _wait(qtbot, panel, 120000)
    assert panel.last_tune.score.f1 >= 0.95
    params, label = host.applied[-1]
    assert params == panel.last_tune.best
    assert label == f"tuned (F1 {panel.last_tune.score.f1:.2f})"
    assert "on 2 images" in panel.result_label.text()
    assert seen and seen[-1][0] == len(panel.last_tune.table)  # one report per set tried
    # the new parameters are scored at once on the displayed image, marked on its plane
    assert panel.last_score is not None and panel.last_score.score.f1 >= 0.9
    assert set(viewer.layers[SCORE_LAYER].data[:, 0]) == {0.0}
    viewer.dims.set_current_step(0, 1)  # the second image, scored against its own points
    panel.score()
    _wait(qtbot, panel)
    assert panel.last_score.score.n_true == 40
    assert set(viewer.layers[SCORE_LAYER].data[:, 0]) == {1.0}


def test_estimate_sets_suggested_params(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    img, _ = make_nuclei_image(5, 40, (256, 256))
    layer = viewer.add_image(img)
    host = Host(viewer, layer)
    panel = host.panel()
    assert panel.estimate_button.isEnabled()  # no annotations needed
    panel.estimate()
    _wait(qtbot, panel)
    assert host.applied == [(estimate_params(img).params, "suggested")]
    assert "Suggested from the image" in panel.result_label.text()


@pytest.fixture
def gated_tune(monkeypatch):
    """``tune`` that scores its first set whatever happens, then waits for the gate.

    The first cancel check says "go on" and the first progress report waits
    until the test opens the gate: a cancel or a close made meanwhile is
    seen by the next check, so the search stops after exactly one set.
    """
    gate, results = threading.Event(), []
    real = _scoring_jobs.tune

    def tune(*args, progress=None, cancel=None, **kwargs):
        asked = []

        def check():
            asked.append(1)
            return len(asked) > 1 and cancel()

        def report(done, total):
            gate.wait(30)
            progress(done, total)

        res = real(*args, progress=report, cancel=check, **kwargs)
        results.append(res)
        return res

    monkeypatch.setattr(_scoring_jobs, "tune", tune)
    return gate, results


def _annotated(viewer):
    img, centres = make_nuclei_image(6, 40, (256, 256))
    layer = viewer.add_image(img)
    viewer.add_points(centres, name="truth")
    return layer


def test_cancel_stops_the_search_and_leaves_the_params(make_napari_viewer, qtbot, gated_tune):
    gate, results = gated_tune
    viewer = make_napari_viewer()
    host = Host(viewer, _annotated(viewer))
    panel = host.panel()
    outcomes = []
    panel.job_done.connect(outcomes.append)
    panel.suggest()
    assert panel.cancel_button.isEnabled()
    assert panel.cancel()
    gate.set()
    _wait(qtbot, panel)
    assert results and results[0].cancelled and len(results[0].table) == 1
    assert outcomes == ["cancelled"] and host.applied == []
    assert "Cancelled" in panel.result_label.text() and "not applied" in panel.result_label.text()
    assert panel.suggest_button.isEnabled() and not panel.cancel_button.isEnabled()


@pytest.mark.parametrize("how", ["delete", "close viewer"])
def test_closing_stops_the_work(make_napari_viewer, qtbot, gated_tune, how):
    gate, results = gated_tune
    viewer = make_napari_viewer()
    host = Host(viewer, _annotated(viewer))
    panel = host.panel()
    panel.suggest()
    if how == "delete":
        with qtbot.waitSignal(panel.destroyed):
            viewer.window.remove_dock_widget(panel)
            panel.deleteLater()
    else:
        viewer.close()
    gate.set()
    qtbot.waitUntil(lambda: bool(results), timeout=30000)
    assert results[0].cancelled and len(results[0].table) == 1
    qtbot.wait(50)  # the worker's last signals arrive with nobody to call
    assert host.applied == []


def _embed(dock):
    """The panel the detector dock embeds under *Are my counts right?*."""
    assert dock.scoring_box.isAncestorOf(dock.scoring)
    return dock.scoring


def test_in_the_real_dock_with_hand_corrected_results_as_truth(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    img, centres = make_nuclei_image(7, 40, (256, 256))
    viewer.add_image(img, name="dapi")
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "Nuclei detector")
    panel = _embed(dock)
    dock.model.params = GOOD
    dock.run_panel.workers.value = 0
    assert dock.run_panel.start_run(ask=False) is not None
    qtbot.waitUntil(lambda: not dock.run_panel.running, timeout=60000)
    assert "nuclei" in [ly.name for ly in viewer.layers]
    # the run's result scored against the nuclei layer after a hand correction
    nuclei = viewer.layers["nuclei"]
    n = len(nuclei.data)
    nuclei.data = nuclei.data[1:]  # one detection deleted by hand
    qtbot.waitUntil(lambda: len(dock.store.results[0].coords) == n - 1, timeout=10000)
    panel.truth_layer = nuclei
    panel.source_combo.setCurrentText(RESULTS)
    panel.score()
    _wait(qtbot, panel)
    s = panel.last_score.score
    assert (s.tp, s.fp, s.fn) == (n - 1, 0, 0)
    # the sliders against the corrected nuclei: the deleted one is a false detection
    panel.source_combo.setCurrentIndex(0)
    panel.score()
    _wait(qtbot, panel)
    assert (panel.last_score.score.tp, panel.last_score.score.fp) == (n - 1, 1)
    panel.estimate()
    _wait(qtbot, panel)
    assert dock.model.params == estimate_params(img).params
    assert dock.run_panel.status.value == "Parameters: suggested"
