"""The wheel carries the npe2 manifest, and the top-level napari.yaml is the same file."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_top_level_manifest_is_a_link_to_the_package_one():
    top = REPO / "napari.yaml"
    assert top.is_symlink()
    assert top.resolve() == (REPO / "src" / "napari_nuclei_counter" / "napari.yaml").resolve()


def test_installed_manifest_validates():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-nuclei-counter")
    assert pm.name == "napari-nuclei-counter"
    out = subprocess.run([str(Path(sys.executable).parent / "npe2"), "validate",
                          "napari-nuclei-counter"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_wheel_contains_a_valid_manifest(tmp_path):
    from npe2 import PluginManifest

    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(REPO)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("napari_nuclei_counter-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "napari_nuclei_counter/napari.yaml" in names
        text = zf.read("napari_nuclei_counter/napari.yaml").decode()
        ep = next(n for n in names if n.endswith("entry_points.txt"))
        entry_points = zf.read(ep).decode()
    assert "[napari.manifest]" in entry_points
    assert "napari_nuclei_counter:napari.yaml" in entry_points
    assert "nuclei-counter = napari_nuclei_counter.cli.app:entry" in entry_points
    assert text == (REPO / "napari.yaml").read_text()
    (tmp_path / "napari.yaml").write_text(text)
    assert PluginManifest.from_file(tmp_path / "napari.yaml").name == "napari-nuclei-counter"
