"""Files with several scenes, formats read through bioio, and what happens without the extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_nuclei_counter import DetectionParams, detect
from napari_nuclei_counter.cli.app import main
from napari_nuclei_counter.core.io.images import describe_image, read_image, split_scene
from napari_nuclei_counter.core.sample import make_nuclei_image

P = DetectionParams(4.0, 6, 1000.0)
ARGS = ["--sigma", "4", "--min-distance", "6", "--threshold", "1000", "--quiet", "--workers", "0"]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _image(seed: int) -> np.ndarray:
    return make_nuclei_image(seed, n_nuclei=20 + 10 * seed, shape=(128, 160))[0]


def test_each_scene_of_a_multi_series_ome_tiff_is_one_image(tmp_path):
    scenes = [_image(1), _image(2), _image(3)]
    path = tmp_path / "positions_w1.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        for image in scenes:
            tw.write(image, compression="zlib")
    (tmp_path / "plain_w1.tif").write_bytes(b"")  # another file of the folder, failing alone
    assert describe_image(path).n_scenes == 3
    assert split_scene(f"{path}#2") == (path, 2)
    np.testing.assert_array_equal(read_image(f"{path}#1"), scenes[1])
    out = tmp_path / "out"
    assert main(["detect", str(tmp_path), "--out", str(out), *ARGS]) == 1
    images = pd.read_csv(out / "images.csv", keep_default_na=False, dtype=str)
    assert [Path(p).name for p in images["path"]] == [
        "plain_w1.tif", "positions_w1.ome.tif#0", "positions_w1.ome.tif#1",
        "positions_w1.ome.tif#2"]
    assert images["scene"].tolist() == ["", "0", "1", "2"]
    assert images["n_nuclei"].tolist()[1:] == [
        str(len(detect(s, P, engine="reference")[0])) for s in scenes]
    assert images["error"].tolist()[0] == "empty file (0 bytes)"
    with pytest.raises(ValueError, match="scene 3 does not exist: the file holds 3"):
        read_image(f"{path}#3")


def test_a_file_named_with_a_hash_is_read_as_it_is(tmp_path):
    path = tmp_path / "odd#2"
    tifffile.imwrite(path, _image(1))
    assert split_scene(path) == (path, None)
    np.testing.assert_array_equal(read_image(path), _image(1))


def test_a_corrupt_microscope_file_is_one_row_error(tmp_path):
    (tmp_path / "broken.nd2").write_bytes(b"not an nd2 file at all" * 10)
    tifffile.imwrite(tmp_path / "good.tif", _image(2))
    out = tmp_path / "out"
    assert main(["detect", str(tmp_path), "--pattern", "*", "--out", str(out), *ARGS]) == 1
    rows = pd.read_csv(out / "images.csv", keep_default_na=False, dtype=str)
    rows = rows.set_index(rows["path"].map(lambda p: Path(p).name))
    assert rows.loc["broken.nd2", "error"] == (
        "cannot read this .nd2 file (no installed reader accepts it: a damaged file, or a variant "
        "the readers of pip install 'napari-nuclei-counter[formats]' do not read)")
    assert rows.loc["good.tif", "n_nuclei"] == str(len(detect(_image(2), P,
                                                              engine="reference")[0]))


def test_without_the_formats_extra_the_message_names_the_install_command(tmp_path):
    (tmp_path / "cells.nd2").write_bytes(b"x" * 100)
    code = (
        "import sys; sys.modules['bioio'] = None\n"  # as if bioio were not installed
        "from napari_nuclei_counter.core.io.images import read_image\n"
        f"read_image({str(tmp_path / 'cells.nd2')!r})\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert ("ValueError: reading .nd2 files needs the formats extra: "
            "pip install 'napari-nuclei-counter[formats]'") in done.stderr


def test_matched_files_with_several_channels_by_name_warn(tmp_path, caplog):
    for ch in ("w1", "w2"):
        tifffile.imwrite(tmp_path / f"Week1_22123_B02_s1_{ch}ABC.tif", _image(1))
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        assert main(["detect", str(tmp_path), "--pattern", "*.tif", "--out", str(out), *ARGS]) == 0
    assert ("the matched files hold 2 channels by name (w1, w2): every channel is counted as an "
            "image of its own; to count one, choose it in the pattern, e.g. --pattern '*w1*' "
            "(now '*.tif')") in caplog.text
    assert json.loads((out / "run.json").read_text())["names"] == "BBBC021"


def _samples(suffix: str) -> list[Path]:
    where = [Path(os.environ["NUCLEI_COUNTER_SAMPLES"])] if "NUCLEI_COUNTER_SAMPLES" in os.environ \
        else [SHARED]
    return [p for d in where if d.is_dir() for p in sorted(d.rglob(f"*{suffix}"))]


@pytest.mark.parametrize("suffix", [".nd2", ".czi", ".lif"])
def test_microscope_files_through_bioio(suffix):
    """A real ND2/CZI/LIF file, when one is at hand (``NUCLEI_COUNTER_SAMPLES`` or ../shared/data)."""
    pytest.importorskip("bioio")
    files = _samples(suffix)
    if not files:
        pytest.skip(f"no {suffix} sample file at hand")
    info = describe_image(files[0])
    assert len(info.plane_shape) == 2 and info.n_scenes >= 1
    channel = "0" if info.n_channels > 1 else None
    from napari_nuclei_counter.core.io.images import PlaneChoice

    image = read_image(files[0], plane=PlaneChoice(channel, "max" if info.n_planes > 1 else None))
    assert image.shape == info.plane_shape


def test_a_resumed_run_keeps_the_scenes_it_did(tmp_path):
    path = tmp_path / "positions_w1.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        for seed in (1, 2):
            tw.write(_image(seed))
    out = tmp_path / "out"
    assert main(["detect", str(tmp_path), "--out", str(out), *ARGS]) == 0
    images = pd.read_csv(out / "images.csv")
    assert images["file_size"].tolist() == [path.stat().st_size] * 2
    before = (out / "nuclei.csv").read_text()
    assert main(["detect", str(tmp_path), "--out", str(out), "--resume", *ARGS]) == 0
    assert (out / "nuclei.csv").read_text() == before
    # not redone: the times measured by the first run stay
    assert pd.read_csv(out / "images.csv")["seconds"].tolist() == images["seconds"].tolist()
    assert json.loads((out / "run.json").read_text())["n_images"] == 2


def test_a_fifo_among_the_images_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "b_w1.tif")
    tifffile.imwrite(tmp_path / "a_w1.tif", _image(1))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "napari_nuclei_counter.cli.app", "detect",
                           str(tmp_path), "--out", str(out), *ARGS], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    rows = pd.read_csv(out / "images.csv", keep_default_na=False)
    assert rows["error"].tolist() == ["", "not a regular file but a named pipe (FIFO): not read"]
