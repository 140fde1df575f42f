"""Decoders by file type: one table of readers behind :func:`.io.read_image`.

Each reader turns a file (or an OME-Zarr image folder) into one 2-D plane,
applying the user's :class:`~.planes.PlaneChoice`, and describes a file
without decoding more than it must (:func:`describe`).

- TIFF (tifffile with imagecodecs: every compression, tiles, BigTIFF, OME and
  ImageJ metadata, several series as scenes);
- PNG and JPEG (imagecodecs);
- OME-Zarr images and the fields of NGFF plates (zarr, the ``formats`` extra);
  read with zarr itself rather than bioio because a plate's fields are
  addressed by their own group paths (``plate.ome.zarr/B/3/0``), which bioio
  does not walk;
- ND2, CZI, LIF and the other microscope formats through bioio (the
  ``formats`` extra), each scene one image.

Decoding uses one thread: batch workers already use every core.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .planes import PlaneChoice, check_pixels, sample_names, select_plane

__all__ = ["BIOIO_SUFFIXES", "FORMATS_EXTRA", "IMAGE_SUFFIXES", "ImageInfo", "describe",
           "inside_path", "is_zarr_image", "read_plane", "read_raw", "scene_count", "scene_info",
           "zarr_attrs"]

log = logging.getLogger(__name__)

#: how to install the readers that are not in the core
FORMATS_EXTRA = "pip install 'napari-nuclei-counter[formats]'"
#: file types read through bioio (lower-case suffixes)
BIOIO_SUFFIXES = (".nd2", ".czi", ".lif", ".oib", ".oif", ".vsi", ".ims", ".dv", ".r3d")
_CODECS = {".png": ("png", "PNG"), ".jpg": ("jpeg8", "JPEG"), ".jpeg": ("jpeg8", "JPEG")}
#: every file type read (lower-case suffixes); OME-Zarr images are folders
IMAGE_SUFFIXES = (".tif", ".tiff", *_CODECS, *BIOIO_SUFFIXES)

_local = threading.local()

#: what a decoder gives: the array (an ndarray, or a lazy array that reads what
#: is indexed), its axis letters, its channel names
Raw = tuple[object, str, list[str]]


@dataclass(frozen=True)
class ImageInfo:
    """What a file holds, from its header.

    Attributes
    ----------
    shape : tuple of int
        The array's shape, axes as in ``axes``.
    dtype : numpy.dtype
    axes : str
        Axis letters (``'YX'``, ``'CYX'``, ``'ZCYX'``, ``'IYX'`` for plain pages,
        ``'YXS'`` for RGB, ``'TCZYX'`` for the bioio formats).
    channels : tuple of str
        Channel names from the metadata (``''`` where unnamed); ``red``,
        ``green``, ``blue`` (``alpha``) for an RGB(A) image; empty when the
        file has one channel.
    n_scenes : int
        Scenes (series, positions) in the file; each is one image.
    warnings : tuple of str
        What the header says that the user should know (e.g. scenes that
        repeat another scene's pixels and are not counted).
    """

    shape: tuple
    dtype: np.dtype
    axes: str
    channels: tuple = ()
    n_scenes: int = 1
    warnings: tuple = ()

    @property
    def n_channels(self) -> int:
        """Number of channels: of the C axis, else the colours of an RGB(A) image, else 1."""
        for a in "CS":
            if a in self.axes:
                return self.shape[self.axes.index(a)]
        return 1

    @property
    def n_times(self) -> int:
        """Number of time points (1 without a T axis)."""
        return self.shape[self.axes.index("T")] if "T" in self.axes else 1

    @property
    def n_planes(self) -> int:
        """Number of z planes, or pages without axis metadata (1 for a 2-D image)."""
        return next((self.shape[self.axes.index(a)] for a in "ZIQ" if a in self.axes), 1)

    @property
    def plane_shape(self) -> tuple[int, int]:
        """``(height, width)`` of one plane."""
        return self.shape[self.axes.index("Y")], self.shape[self.axes.index("X")]


def _reusable(shape: tuple, dtype) -> np.ndarray:
    """A per-thread array reused by successive reads of same-sized images."""
    buf = getattr(_local, "buffer", None)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = np.empty(shape, dtype)
        _local.buffer = buf
    return buf


def _pixels(shape, axes: str) -> int:
    """Pixels of an array (its samples axis ``S`` is part of a pixel)."""
    return math.prod(int(n) for n, a in zip(shape, axes.upper(), strict=False) if a != "S")


def inside_path(root: Path, relative) -> Path | None:
    """``root / relative`` when ``relative`` is a plain path below ``root``, else ``None``.

    Metadata (an OME-Zarr plate's wells and fields, an image's datasets)
    names folders inside its own folder; an absolute path, a ``..`` or a
    drive letter would reach outside it, and is refused.
    """
    if not isinstance(relative, str) or not relative.strip() or "\\" in relative:
        return None
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts or ":" in rel.parts[0]:
        return None
    return root.joinpath(*rel.parts)


class _Lazy:
    """An array read only where it is indexed, with the reader's error wording."""

    def __init__(self, array, what: str, read=None):
        self._array = array
        self._what = what
        self._read = read or (lambda a, idx: np.asarray(a[idx]))
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)

    def __getitem__(self, idx) -> np.ndarray:
        try:
            return self._read(self._array, idx)
        except Exception as exc:  # a corrupt chunk or page, a missing codec
            raise ValueError(f"not a readable {self._what} ({type(exc).__name__}: "
                             f"{str(exc)[:200]})") from None


# --- TIFF -----------------------------------------------------------------------------------

def _ome_images(xml: str) -> list[list[str]]:
    """The channel names of each image of an OME-XML document (parsed once per file)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return []
    return [[c.get("Name") or "" for c in image.iter() if c.tag.endswith("}Channel")]
            for image in root if image.tag.endswith("}Image")]


class _Tiff:
    """An open TIFF with its scenes: each series that holds pixels of its own.

    A series that is a reduced-resolution thumbnail is not a scene; neither
    is one whose first page is another scene's (OME-XML can declare any
    number of images on one page): those would be duplicate rows of one
    picture.
    """

    def __init__(self, tf):
        self.tf = tf
        scenes, seen, repeats = [], set(), 0
        for i, s in enumerate(tf.series):
            if getattr(s.keyframe, "is_reduced", False):
                continue
            first = next((p for p in s.pages if p is not None), None)
            key = getattr(first, "offset", None)
            if key is not None and key in seen:
                repeats += 1
                continue
            seen.add(key)
            scenes.append((i, s))
        self.scenes = scenes or [(0, tf.series[0])]
        self.warnings = ()
        if repeats:
            self.warnings = (f"its metadata declares {repeats + len(self.scenes):,} images but "
                             f"{repeats:,} of them repeat the pixels of another; "
                             f"{len(self.scenes):,} read",)
        self._ome = None

    def channel_names(self, index: int) -> list[str]:
        """Channel names of series ``index`` from OME-XML or ImageJ metadata (empty when none)."""
        tf = self.tf
        if tf.is_ome and tf.ome_metadata:
            if self._ome is None:
                self._ome = _ome_images(tf.ome_metadata)
            return self._ome[min(index, len(self._ome) - 1)] if self._ome else []
        if tf.is_imagej and tf.imagej_metadata:
            labels = tf.imagej_metadata.get("Labels")
            if isinstance(labels, (list, tuple)):
                return [str(v) for v in labels]
        return []

    def scene(self, scene: int):
        """``(series index, series)`` of scene ``scene``."""
        return _scene_of(self.scenes, scene)


def _file_key(p: Path) -> tuple:
    st = p.stat()
    return str(p), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@contextmanager
def _open_tiff(p: Path) -> Iterator[_Tiff]:
    """An open TIFF; a file of several scenes stays open in this thread for its next scene.

    The series of an OME-TIFF come from its OME-XML, parsed when the file is
    opened: reading scene after scene of one file parses it once.
    """
    import tifffile

    key = _file_key(p)
    cached = getattr(_local, "tiff", None)
    if cached is not None and cached[0] == key:
        yield cached[1]
        return
    try:
        tf = tifffile.TiffFile(p)
    except Exception as exc:  # tifffile raises many kinds for bad files
        raise ValueError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    try:
        tiff = _Tiff(tf)
    except Exception as exc:  # series metadata that tifffile cannot make sense of
        tf.close()
        raise ValueError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
    keep = len(tiff.scenes) > 1
    if keep:
        if cached is not None:
            cached[1].tf.close()
        _local.tiff = (key, tiff)
    try:
        yield tiff
    finally:
        if not keep:
            tf.close()


def _scene_of(scenes: list, scene: int):
    if not 0 <= scene < len(scenes):
        raise ValueError(f"scene {scene} does not exist: the file holds {len(scenes)}")
    return scenes[scene]


def _read_pages(tf, index: int, series, idx) -> np.ndarray:
    """``series[idx]``, decoding only the pages that ``idx`` selects."""
    shape, page_shape = tuple(series.shape), tuple(series.keyframe.shape)
    k = len(page_shape)
    idx = tuple(idx) + (slice(None),) * (len(shape) - len(tuple(idx)))
    lead = shape[:len(shape) - k]
    if shape[len(shape) - k:] != page_shape or math.prod(lead) != len(series.pages):
        return series.asarray(maxworkers=1)[idx]  # an unusual layout: the whole series
    pages = np.arange(len(series.pages)).reshape(lead)[idx[:len(lead)]]
    data = tf.asarray(key=pages.ravel().tolist(), series=index, maxworkers=1)
    data = data.reshape(pages.shape + page_shape)
    return data[(slice(None),) * pages.ndim + idx[len(lead):]]


@contextmanager
def _raw_tiff(p: Path, scene: int, reuse: bool, max_pixels: int | None) -> Iterator[Raw]:
    with _open_tiff(p) as tiff:
        index, series = tiff.scene(scene)
        axes = series.axes
        names = tiff.channel_names(index) if "C" in axes else []
        if len(series.pages) > 1:  # a stack: pages are read when the plane is chosen
            yield _Lazy(series, "TIFF", lambda s, idx: _read_pages(tiff.tf, index, s, idx)), \
                axes, names
            return
        check_pixels(_pixels(series.shape, axes), max_pixels)
        try:
            out = _reusable(tuple(series.shape), series.dtype) if reuse else None
            data = series.asarray(out=out, maxworkers=1)
        except Exception as exc:  # a corrupt strip, a missing codec
            raise ValueError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
        yield data, axes, names


def _describe_tiff(p: Path) -> ImageInfo:
    with _open_tiff(p) as tiff:
        index, s = tiff.scenes[0]
        names = tiff.channel_names(index) if "C" in s.axes else []
        if "S" in s.axes and "C" not in s.axes:
            names = sample_names(s.shape[s.axes.index("S")])
        return ImageInfo(tuple(s.shape), np.dtype(s.dtype), s.axes, tuple(names),
                         len(tiff.scenes), tiff.warnings)


# --- PNG and JPEG ---------------------------------------------------------------------------

def _codec_header(p: Path) -> tuple[int, int, int, np.dtype]:
    """``(height, width, samples, dtype)`` from a PNG's or JPEG's header, nothing decoded.

    Pillow's plugin classes read the header alone (``Image.open`` would also
    apply Pillow's own size limit; ours is :func:`.planes.check_pixels`).
    """
    from PIL import JpegImagePlugin, PngImagePlugin

    kind = _CODECS[p.suffix.lower()][1]
    cls = PngImagePlugin.PngImageFile if kind == "PNG" else JpegImagePlugin.JpegImageFile
    try:
        with cls(p) as im:
            width, height = im.size
            rawmode = str(im.tile[0].args[0] if im.tile and im.tile[0].args else im.mode)
            wide = ";16" in rawmode or im.mode.startswith("I;16")
            return height, width, len(im.getbands()), np.dtype(np.uint16 if wide else np.uint8)
    except Exception as exc:  # not this format, or a header cut short
        raise ValueError(f"not a readable {kind} (its header: {type(exc).__name__}: "
                         f"{exc})") from None


def _jpeg_complete(p: Path, data: bytes) -> None:
    """Refuse a JPEG cut short: libjpeg fills the missing part with grey and says nothing.

    A whole JPEG ends with its end-of-image marker; one that does not (some
    writers append bytes after it) is decoded by Pillow, which fails on
    missing data.
    """
    if data.rstrip(b"\0\r\n ")[-2:] == b"\xff\xd9":
        return
    from PIL import Image

    try:
        with Image.open(p) as im:
            im.load()
    except Exception as exc:  # "image file is truncated", "broken data stream"
        raise ValueError(f"a damaged or truncated JPEG (its data ends before the image does: "
                         f"{exc})") from None


def _decode_codec(p: Path, max_pixels: int | None) -> np.ndarray:
    import imagecodecs

    kind, name = _CODECS[p.suffix.lower()]
    height, width, _, _ = _codec_header(p)
    check_pixels(height * width, max_pixels)
    data = p.read_bytes()
    try:
        image = getattr(imagecodecs, f"{kind}_decode")(data)
    except Exception as exc:  # a truncated or corrupt file
        raise ValueError(f"not a readable {name} ({type(exc).__name__}: {exc})") from None
    if name == "JPEG":
        _jpeg_complete(p, data)
    return image


@contextmanager
def _raw_codec(p: Path, scene: int, reuse: bool, max_pixels: int | None) -> Iterator[Raw]:
    data = _decode_codec(p, max_pixels)
    yield data, "YXS"[: data.ndim], []


def _describe_codec(p: Path) -> ImageInfo:
    height, width, samples, dtype = _codec_header(p)
    if samples > 1:
        return ImageInfo((height, width, samples), dtype, "YXS", sample_names(samples))
    return ImageInfo((height, width), dtype, "YX")


# --- OME-Zarr (images and plate fields) -------------------------------------------------------

def is_zarr_image(p: Path) -> bool:
    """``True`` for a folder holding an OME-Zarr image (``multiscales`` metadata)."""
    try:
        return p.is_dir() and "multiscales" in zarr_attrs(p)
    except OSError:  # a name too long, no permission: not one that can be read
        return False


def zarr_attrs(p: Path) -> dict:
    """The OME attributes of a Zarr group (NGFF 0.4 ``.zattrs`` or 0.5 ``zarr.json``).

    Empty when there are none, or when they cannot be read or parsed.
    """
    for name, key in ((".zattrs", None), ("zarr.json", "attributes")):
        f = p / name
        try:
            if not f.is_file():
                continue
            attrs = json.loads(f.read_text())
        except (OSError, ValueError, RecursionError):
            return {}
        attrs = attrs.get(key, {}) if key and isinstance(attrs, dict) else attrs
        attrs = attrs.get("ome", attrs) if isinstance(attrs, dict) else {}
        return attrs if isinstance(attrs, dict) else {}
    return {}


def _zarr_level0(p: Path):
    try:
        import zarr
    except ImportError:
        raise ValueError(f"reading OME-Zarr needs the formats extra: {FORMATS_EXTRA}") from None
    attrs = zarr_attrs(p)
    if "multiscales" not in attrs and p.suffix.lower() in IMAGE_SUFFIXES:
        raise ValueError(f"a folder where a {p.suffix} image file was listed (replaced since "
                         "the folder was listed?)")
    try:
        ms = attrs["multiscales"][0]
        rel = ms["datasets"][0]["path"]
    except Exception as exc:
        raise ValueError(f"not a readable OME-Zarr image ({type(exc).__name__}: {exc})") from None
    level_dir = inside_path(p, rel)
    if level_dir is None:
        raise ValueError(f"not a readable OME-Zarr image: its metadata names the dataset "
                         f"{rel!r}, outside the image's folder")
    try:
        level = zarr.open_array(str(level_dir), mode="r")
        axes = "".join((a["name"] if isinstance(a, dict) else str(a))[0]
                       for a in ms.get("axes", [])).upper() or "TCZYX"[-level.ndim:]
        names = [c.get("label", "") for c in attrs.get("omero", {}).get("channels", [])]
    except Exception as exc:
        raise ValueError(f"not a readable OME-Zarr image ({type(exc).__name__}: {exc})") from None
    return level, axes, names


@contextmanager
def _raw_zarr(p: Path, scene: int, reuse: bool, max_pixels: int | None) -> Iterator[Raw]:
    level, axes, names = _zarr_level0(p)
    yield _Lazy(level, "OME-Zarr image"), axes, names


def _describe_zarr(p: Path) -> ImageInfo:
    level, axes, names = _zarr_level0(p)
    return ImageInfo(tuple(level.shape), np.dtype(level.dtype), axes,
                     tuple(names) if "C" in axes else ())


# --- bioio (ND2, CZI, LIF, ...) ---------------------------------------------------------------

def _bioimage(p: Path):
    try:
        from bioio import BioImage
    except ImportError:
        raise ValueError(f"reading {p.suffix} files needs the formats extra: "
                         f"{FORMATS_EXTRA}") from None
    try:
        return BioImage(p)
    except Exception as exc:  # bioio's UnsupportedFileFormatError when no plugin reads it
        if type(exc).__name__ == "UnsupportedFileFormatError":
            why = "no installed reader accepts it: a damaged file, or a variant the readers of"
            raise ValueError(f"cannot read this {p.suffix} file ({why} {FORMATS_EXTRA} "
                             "do not read)") from None
        raise ValueError(f"cannot read this {p.suffix} file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None


def _compute(array, idx) -> np.ndarray:
    return np.asarray(array[idx].compute(scheduler="synchronous"))


@contextmanager
def _raw_bioio(p: Path, scene: int, reuse: bool, max_pixels: int | None) -> Iterator[Raw]:
    img = _bioimage(p)
    _scene_of(list(img.scenes), scene)
    try:
        img.set_scene(scene)
        data = img.get_image_dask_data("TCZYX")  # lazy: the plane is read once chosen
        names = [str(c) for c in img.channel_names or []]
    except Exception as exc:
        raise ValueError(f"not a readable {p.suffix} file ({type(exc).__name__}: {exc})") from None
    yield _Lazy(data, f"{p.suffix} file", _compute), "TCZYX", names


def _describe_bioio(p: Path) -> ImageInfo:
    img = _bioimage(p)
    names = [str(c) for c in img.channel_names or []]
    return ImageInfo(tuple(img.shape), np.dtype(img.dtype), "TCZYX",
                     tuple(names) if len(names) > 1 else (), len(img.scenes))


# --- dispatch ---------------------------------------------------------------------------------

def _kind(p: Path) -> str:
    if p.is_dir():
        return "zarr"
    suffix = p.suffix.lower()
    if suffix in _CODECS:
        return "codec"
    if suffix in BIOIO_SUFFIXES:
        return "bioio"
    return "tiff"


_RAW: dict[str, Callable] = {
    "tiff": _raw_tiff, "codec": _raw_codec, "zarr": _raw_zarr, "bioio": _raw_bioio}
_DESCRIBE = {"tiff": _describe_tiff, "codec": _describe_codec, "zarr": _describe_zarr,
             "bioio": _describe_bioio}


def read_plane(p: Path, choice: PlaneChoice | None = None, scene: int = 0,
               reuse_buffer: bool = False, max_pixels: int | None = None) -> np.ndarray:
    """Decode the plane ``choice`` picks from scene ``scene`` of ``p`` (any supported type).

    Only that plane is decoded where the format allows (the pages of a TIFF
    stack, the chunks of a Zarr array, bioio's lazy arrays), after its size
    is checked against ``max_pixels`` (default :data:`.planes.MAX_PIXELS`).
    """
    with _RAW[_kind(p)](p, scene, reuse_buffer, max_pixels) as (data, axes, names):
        return select_plane(data, axes, choice, names, max_pixels=max_pixels)


def read_raw(p: Path, scene: int = 0, reuse_buffer: bool = False,
             max_pixels: int | None = None) -> tuple[np.ndarray, str, list[str]]:
    """Every pixel of scene ``scene`` of ``p``: ``(data, axes, channel names)``.

    For display (the napari reader shows channels as layers); detection uses
    :func:`read_plane`. The whole scene counts against ``max_pixels``.
    """
    with _RAW[_kind(p)](p, scene, reuse_buffer, max_pixels) as (data, axes, names):
        if not isinstance(data, np.ndarray):
            check_pixels(_pixels(data.shape, axes), max_pixels)
            data = data[(slice(None),) * len(data.shape)]
        return data, axes, names


def describe(p: Path) -> ImageInfo:
    """Shape, axes, channel names and scene count of ``p`` (pixels are not decoded)."""
    return _DESCRIBE[_kind(p)](p)


def scene_count(p: Path) -> int:
    """Scenes in a file that may hold several (OME-TIFF, bioio formats); 1 for all others.

    Only these types are opened to count: a folder of plain TIFFs is listed
    without opening every file.
    """
    return scene_info(p)[0]


def scene_info(p: Path) -> tuple[int, int, tuple]:
    """``(scenes, time points, warnings)`` of a file that may hold several scenes.

    The types of :func:`scene_count` and OME-Zarr images are opened; the time
    points are those of the first scene. ``(1, 1, ())`` for every other file.
    """
    name = p.name.lower()
    if (name.endswith((".ome.tif", ".ome.tiff")) or p.suffix.lower() in BIOIO_SUFFIXES
            or is_zarr_image(p)):
        try:
            info = describe(p)
        except (OSError, ValueError):
            return 1, 1, ()  # the read reports the problem, for this image
        return info.n_scenes, info.n_times, info.warnings
    return 1, 1, ()
