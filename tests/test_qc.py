"""Image metrics and QC flags (core.qc) on generated images."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from napari_nuclei_counter.core.detect.qc import FLAGS, METRIC_COLUMNS, image_metrics, qc_flags
from napari_nuclei_counter.core.sample import make_nuclei_image

SHAPE = (256, 320)


def _image(seed: int, n: int = 150) -> np.ndarray:
    return make_nuclei_image(seed, n, SHAPE)[0]


def _table(rows: list[dict], index=None) -> pd.DataFrame:
    """An images table with metrics; rows give n_nuclei, plate and optionally the rest."""
    df = pd.DataFrame([{"path": f"img{i}.tif", "plate": "P1", "error": "",
                        "saturated_fraction": 0.0, "sharpness": 1.0, **r}
                       for i, r in enumerate(rows)], index=index)
    df["n_nuclei"] = df["n_nuclei"].astype("Int64")
    return df


# ----------------------------------------------------------------------------- metrics


def test_metrics_keys_and_types():
    m = image_metrics(_image(0))
    assert set(m) == set(METRIC_COLUMNS)
    assert all(type(v) is float for v in m.values())
    assert m["saturated_fraction"] == 0.0
    assert m["sharpness"] > 0
    assert 150 < m["mean_intensity"] < 5000


def test_saturated_fraction_is_exact_for_integer_images():
    img = _image(1)
    rng = np.random.default_rng(0)
    flat = img.reshape(-1)
    idx = rng.choice(flat.size, size=flat.size // 20, replace=False)  # 5 %
    flat[idx] = 65535
    assert image_metrics(img)["saturated_fraction"] == pytest.approx(len(idx) / flat.size,
                                                                     abs=0)
    u8 = np.zeros((10, 10), np.uint8)
    u8[0, :3] = 255
    u8[1, 0] = 254  # bright but not at the dtype maximum
    assert image_metrics(u8)["saturated_fraction"] == 0.03


def test_saturated_fraction_of_float_images_uses_the_image_maximum():
    img = np.zeros((10, 10), np.float32)
    img[0, :4] = 2.5
    img[1, 0] = 1.0
    assert image_metrics(img)["saturated_fraction"] == 0.04
    assert image_metrics(np.full((5, 5), 3.0))["saturated_fraction"] == 0.0


@pytest.mark.parametrize("value", [0, 7, 65535])
def test_constant_images_do_not_crash(value):
    m = image_metrics(np.full((64, 80), value, np.uint16))
    assert m["sharpness"] == 0.0
    assert m["mean_intensity"] == value
    assert m["saturated_fraction"] == (1.0 if value == 65535 else 0.0)
    assert all(np.isfinite(v) for v in m.values())


def test_sharpness_drops_with_blur_and_ignores_exposure():
    img = _image(2)
    sharp = image_metrics(img)["sharpness"]
    blurred = image_metrics(cv2.GaussianBlur(img, (0, 0), 6))["sharpness"]
    assert blurred < 0.05 * sharp
    brighter = image_metrics(img.astype(np.float32) * 4)["sharpness"]
    assert brighter == pytest.approx(sharp, rel=1e-5)


def test_metrics_reject_non_2d():
    with pytest.raises(ValueError, match="2-D"):
        image_metrics(np.zeros((3, 4, 4), np.uint16))
    with pytest.raises(ValueError, match="2-D"):
        image_metrics(np.zeros((0, 4), np.uint16))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 3), (64, 80), (65, 80), (130, 7),
                                   (1024, 1280)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_banded_metrics_equal_whole_image_formulas(shape, dtype):
    """Bands with one row of context give the whole-image Laplacian's numbers."""
    rng = np.random.default_rng(sum(shape))
    img = (rng.random(shape) * 1000).astype(dtype)
    f64 = img.astype(np.float64)
    lap = cv2.Laplacian(f64, cv2.CV_64F, ksize=1)  # same 3x3 kernel and border, float64
    mean = f64.mean()
    m = image_metrics(img)
    assert m["mean_intensity"] == pytest.approx(mean, rel=1e-6)
    assert m["sharpness"] == pytest.approx(lap.var() / (mean * mean + 1e-12), rel=1e-5)



# ----------------------------------------------------------------------------- flags


def test_flags_on_generated_images_of_one_plate():
    """A blank, a saturated and a blurred image among sharp ones; one failed image."""
    images, counts = [], []
    for seed in range(6):
        images.append(_image(seed, 150 + seed))
        counts.append(150 + seed)
    blank = _image(10, 0)
    saturated = _image(11, 152)
    saturated.reshape(-1)[np.random.default_rng(1).choice(saturated.size, saturated.size // 20,
                                                           replace=False)] = 65535
    blurred = cv2.GaussianBlur(_image(12, 151), (0, 0), 6)
    images += [blank, saturated, blurred]
    counts += [0, 152, 151]
    rows = [{"n_nuclei": n, **image_metrics(img)} for n, img in zip(counts, images, strict=True)]
    rows.append({"n_nuclei": None, "error": "not a readable TIFF", "saturated_fraction": np.nan,
                 "sharpness": np.nan, "mean_intensity": np.nan})
    flags = qc_flags(_table(rows))
    assert flags.tolist() == [""] * 6 + ["no_nuclei;count_outlier", "saturated", "out_of_focus",
                                         ""]
    assert flags.name == "qc"


def test_no_nuclei_flag():
    blank = _image(4, 0)
    rows = [{"n_nuclei": 0, **image_metrics(blank)}, {"n_nuclei": 3}]
    assert qc_flags(_table(rows)).tolist() == ["no_nuclei", ""]


def test_saturation_limit():
    df = _table([{"n_nuclei": 5, "saturated_fraction": 0.05},
                 {"n_nuclei": 5, "saturated_fraction": 0.01}])
    assert qc_flags(df).tolist() == ["saturated", ""]  # at the limit is fine
    assert qc_flags(df, saturation_limit=0.1).tolist() == ["", ""]


def test_out_of_focus_against_the_plate_median():
    sharp = [1.0, 1.1, 0.9, 0.19, 0.21]  # median 0.9 -> limit 0.18
    df = _table([{"n_nuclei": 10, "sharpness": s} for s in sharp])
    assert qc_flags(df).tolist() == ["", "", "", "", ""]
    df.loc[3, "sharpness"] = 0.17
    assert qc_flags(df).tolist() == ["", "", "", "out_of_focus", ""]
    assert qc_flags(df, focus_ratio=0.1).tolist() == [""] * 5


def test_out_of_focus_needs_three_images_on_the_plate():
    df = _table([{"n_nuclei": 10, "sharpness": 1.0}, {"n_nuclei": 10, "sharpness": 0.01}])
    assert qc_flags(df).tolist() == ["", ""]
    # failed images and images without a sharpness do not count towards the three
    df = _table([{"n_nuclei": 10, "sharpness": 1.0}, {"n_nuclei": 10, "sharpness": 0.01},
                 {"n_nuclei": None, "error": "boom", "sharpness": 1.0},
                 {"n_nuclei": 10, "sharpness": np.nan}])
    assert qc_flags(df).tolist() == ["", "", "", ""]


def test_plates_are_judged_separately():
    rows = [{"n_nuclei": 10, "plate": "X", "sharpness": 1.0} for _ in range(3)]
    rows += [{"n_nuclei": 10, "plate": "Y", "sharpness": 0.1} for _ in range(3)]
    assert qc_flags(_table(rows)).tolist() == [""] * 6
    rows[5]["plate"] = "X"  # a blurry image moved onto the sharp plate
    assert qc_flags(_table(rows)).tolist() == [""] * 5 + ["out_of_focus"]


def test_count_outlier_among_eight_similar_counts():
    counts = [100, 102, 98, 101, 99, 100, 103, 400]  # median 100.5, MAD 1.5
    df = _table([{"n_nuclei": n} for n in counts])
    assert qc_flags(df).tolist() == [""] * 7 + ["count_outlier"]
    low = _table([{"n_nuclei": n} for n in counts[:7] + [80]])  # z = -9.0: also flagged
    assert qc_flags(low).tolist() == [""] * 7 + ["count_outlier"]
    # median 100, MAD 1.5: |z| of 95 is 0.6745 * 5 / 1.5 = 2.25, fine at 3.5, an outlier at 2
    near = _table([{"n_nuclei": n} for n in counts[:7] + [95]])
    assert qc_flags(near).tolist() == [""] * 8
    assert qc_flags(near, outlier_z=2.0).tolist() == [""] * 7 + ["count_outlier"]


def test_count_outlier_skipped_for_small_plates_and_zero_mad():
    four = _table([{"n_nuclei": n} for n in (100, 101, 99, 400)])
    assert qc_flags(four).tolist() == [""] * 4
    same = _table([{"n_nuclei": n} for n in (100,) * 7 + (500,)])  # MAD 0
    assert qc_flags(same).tolist() == [""] * 8


def test_failed_rows_get_no_flag():
    rows = [{"n_nuclei": n} for n in (100, 102, 98, 101, 99)]
    rows += [{"n_nuclei": None, "error": "empty file (0 bytes)", "saturated_fraction": 0.9,
              "sharpness": 0.0},
             {"n_nuclei": 0, "error": "file not found", "saturated_fraction": 0.9}]
    flags = qc_flags(_table(rows, index=[10, 11, 12, 13, 14, 20, 30]))
    assert flags.tolist() == [""] * 7
    assert flags.index.tolist() == [10, 11, 12, 13, 14, 20, 30]


def test_flags_are_joined_in_a_fixed_order_and_metrics_may_be_missing():
    df = _table([{"n_nuclei": 0, "saturated_fraction": 0.5}]
                + [{"n_nuclei": n} for n in (48, 49, 50, 51, 52)])
    assert qc_flags(df).tolist() == ["no_nuclei;saturated;count_outlier"] + [""] * 5
    bare = df[["n_nuclei", "error"]]  # no metrics, no plate: count checks only
    assert qc_flags(bare).tolist() == ["no_nuclei;count_outlier"] + [""] * 5
    assert list(FLAGS) == ["no_nuclei", "saturated", "out_of_focus", "count_outlier"]


def test_flags_on_an_empty_table():
    df = _table([{"n_nuclei": 1}]).iloc[:0]
    out = qc_flags(df)
    assert out.empty and out.name == "qc"
