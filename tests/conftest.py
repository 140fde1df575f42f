"""Shared fixtures: real images from ../shared/data when present, generated ones always."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The folder of real nuclei images beside the repository, if it is there."""
    env = os.environ.get("NUCLEI_COUNTER_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


def real_images() -> list[Path]:
    """Real DAPI/DNA images shipped by other packages (see their READMEs)."""
    root = shared_data_dir()
    if root is None:
        return []
    out = sorted((root / "bbbc007").rglob("*.tif"))
    out = [p for p in out if not p.name.endswith("_labels.tif")]
    out += [root / "dsb2018" / "img2d.tif"]
    out += sorted((root / "examplefly").glob("*_D.TIF"))
    return [p for p in out if p.exists()]


def mnfinder_images() -> list[Path]:
    """Real 16-bit widefield and 8-bit confocal nuclei images (mnfinder, see its README)."""
    root = shared_data_dir()
    return [] if root is None else sorted((root / "mnfinder").glob("*/*/images/*.tif"))


@pytest.fixture
def mnfinder_image_paths():
    paths = mnfinder_images()
    if not paths:
        pytest.skip("mnfinder images (../shared/data/mnfinder) not present")
    return paths


@pytest.fixture
def real_image_paths():
    paths = real_images()
    if not paths:
        pytest.skip("real images (../shared/data) not present")
    return paths


@pytest.fixture
def sample_images(tmp_path):
    """Six small generated BBBC021-named TIFFs in a folder (fast to process)."""
    from napari_nuclei_counter.core.sample import write_sample_plate

    return write_sample_plate(tmp_path / "plate", rows="BC", columns=range(2, 5), sites=1,
                              seed=3, shape=(256, 320))


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    """Every test gets its own settings and sample-plate folders, and fresh notifications."""
    monkeypatch.setenv("NUCLEI_COUNTER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NUCLEI_COUNTER_SAMPLE_DIR", str(tmp_path / "sample-cache"))
    notifications = sys.modules.get("napari.utils.notifications")
    if notifications is not None:  # only GUI tests import napari
        monkeypatch.setattr(notifications.notification_manager, "records", [])
