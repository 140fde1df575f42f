"""Real microscope files: every TIFF compression, PNG and JPEG, through the one reader."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
import tifffile

from napari_nuclei_counter import DetectionParams, detect
from napari_nuclei_counter.core.io.images import read_image
from napari_nuclei_counter.core.run.pipeline import Run
from napari_nuclei_counter.core.sample import make_nuclei_image

P16 = DetectionParams(4.0, 6, 1000.0)
P8 = DetectionParams(4.0, 6, 4.0)

#: lossless TIFF variants as acquisition programs and Fiji write them
LOSSLESS = {
    "uncompressed": {},
    "lzw": {"compression": "lzw"},
    "lzw-predictor": {"compression": "lzw", "predictor": True},
    "zstd": {"compression": "zstd"},
    "deflate-predictor": {"compression": "deflate", "predictor": True},
    "packbits": {"compression": "packbits"},
    "lzw-tiles": {"compression": "lzw", "tile": (256, 256)},
    "bigtiff-zstd": {"compression": "zstd", "bigtiff": True},
    "big-endian-lzw": {"compression": "lzw", "byteorder": ">"},
    "jpeg2000-lossless": {"compression": "jpeg2000", "compressionargs": {"reversible": True}},
}


@pytest.fixture(scope="module")
def image16():
    return make_nuclei_image(21, n_nuclei=120, shape=(512, 640))[0]


@pytest.mark.parametrize("variant", sorted(LOSSLESS))
def test_lossless_tiffs_give_the_uncompressed_count(tmp_path, image16, variant):
    path = tmp_path / f"{variant}_w1.tif"
    tifffile.imwrite(path, image16, **LOSSLESS[variant])
    got = read_image(path)
    np.testing.assert_array_equal(got, image16)
    np.testing.assert_array_equal(detect(got, P16).coords, detect(image16, P16).coords)


def test_lossy_jpeg_tiff_reads(tmp_path, image16):
    image8 = (image16 // 32).clip(0, 255).astype(np.uint8)
    path = tmp_path / "jpeg_w1.tif"
    tifffile.imwrite(path, image8, compression="jpeg")
    got = read_image(path)
    assert got.shape == image8.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - image8).mean() < 3  # lossy, but the same picture
    assert abs(detect(got, P8).count - detect(image8, P8).count) <= 0.1 * detect(image8, P8).count


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_of_8_and_16_bits(tmp_path, image16, dtype):
    image = image16 if dtype == np.uint16 else (image16 // 32).clip(0, 255).astype(np.uint8)
    path = tmp_path / "nuclei.PNG"
    path.write_bytes(imagecodecs.png_encode(image))
    got = read_image(path)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, image)


def test_jpeg_of_8_bits_reads(tmp_path, image16):
    image8 = (image16 // 32).clip(0, 255).astype(np.uint8)
    path = tmp_path / "nuclei.jpg"
    path.write_bytes(imagecodecs.jpeg8_encode(image8, level=95))
    got = read_image(path)
    assert got.shape == image8.shape and np.abs(got.astype(int) - image8).mean() < 3


def test_a_corrupt_compressed_file_is_one_row_error(tmp_path, image16):
    good = tmp_path / "a_w1.tif"
    tifffile.imwrite(good, image16, compression="lzw")
    bad = tmp_path / "b_w1.tif"
    data = bytearray(good.read_bytes())
    bad.write_bytes(bytes(data[: len(data) // 3]))  # a strip cut short
    png = tmp_path / "c_w1.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    results = {r.path: r for r in Run([good, bad, png], P16, workers=0)}
    assert results[str(good)].ok and results[str(good)].count == detect(image16, P16).count
    assert not results[str(bad)].ok and "not a readable TIFF" in results[str(bad)].error
    assert not results[str(png)].ok and "not a readable PNG" in results[str(png)].error
