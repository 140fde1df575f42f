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
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .planes import PlaneChoice, select_plane

__all__ = ["BIOIO_SUFFIXES", "FORMATS_EXTRA", "IMAGE_SUFFIXES", "ImageInfo", "describe",
           "is_zarr_image", "read_plane", "read_raw", "scene_count", "zarr_attrs"]

#: how to install the readers that are not in the core
FORMATS_EXTRA = "pip install 'napari-nuclei-counter[formats]'"
#: file types read through bioio (lower-case suffixes)
BIOIO_SUFFIXES = (".nd2", ".czi", ".lif", ".oib", ".oif", ".vsi", ".ims", ".dv", ".r3d")
_CODECS = {".png": ("png", "PNG"), ".jpg": ("jpeg8", "JPEG"), ".jpeg": ("jpeg8", "JPEG")}
#: every file type read (lower-case suffixes); OME-Zarr images are folders
IMAGE_SUFFIXES = (".tif", ".tiff", *_CODECS, *BIOIO_SUFFIXES)

_local = threading.local()

#: what a decoder returns: the array, its axis letters, its channel names
Raw = tuple[np.ndarray, str, list[str]]


@dataclass(frozen=True)
class ImageInfo:
    """What a file holds, from its header.

    Attributes
    ----------
    shape : tuple of int
        The array's shape, axes as in ``axes``.
    dtype : numpy.dtype
    axes : str
        Axis letters (``'YX'``, ``'CYX'``, ``'ZCYX'``, ``'IYX'`` for plain pages).
    channels : tuple of str
        Channel names from the metadata (``''`` where unnamed); empty when
        the file has one channel.
    n_scenes : int
        Scenes (series, positions) in the file; each is one image.
    """

    shape: tuple
    dtype: np.dtype
    axes: str
    channels: tuple = ()
    n_scenes: int = 1

    @property
    def n_channels(self) -> int:
        """Number of channels (1 without a C axis)."""
        return self.shape[self.axes.index("C")] if "C" in self.axes else 1

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


# --- TIFF -----------------------------------------------------------------------------------

def _ome_channel_names(xml: str, scene: int) -> list[str]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return []
    images = [e for e in root if e.tag.endswith("}Image")]
    if not images:
        return []
    image = images[min(scene, len(images) - 1)]
    return [c.get("Name") or "" for c in image.iter() if c.tag.endswith("}Channel")]


def _tiff_channel_names(tf, scene: int) -> list[str]:
    """Channel names from OME-XML or ImageJ metadata (empty when the file has none)."""
    if tf.is_ome and tf.ome_metadata:
        return _ome_channel_names(tf.ome_metadata, scene)
    if tf.is_imagej and tf.imagej_metadata:
        labels = tf.imagej_metadata.get("Labels")
        if isinstance(labels, (list, tuple)):
            return [str(v) for v in labels]
    return []


def _tiff_scenes(tf) -> list:
    """A file's series that are images of their own (not reduced-resolution thumbnails)."""
    return [s for s in tf.series if not getattr(s.keyframe, "is_reduced", False)] or tf.series[:1]


def _open_tiff(p: Path):
    import tifffile

    try:
        return tifffile.TiffFile(p)
    except Exception as exc:  # tifffile raises many kinds for bad files
        raise ValueError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None


def _scene_of(scenes: list, scene: int):
    if not 0 <= scene < len(scenes):
        raise ValueError(f"scene {scene} does not exist: the file holds {len(scenes)}")
    return scenes[scene]


def _raw_tiff(p: Path, scene: int, reuse: bool) -> Raw:
    with _open_tiff(p) as tf:
        series = _scene_of(_tiff_scenes(tf), scene)
        try:
            out = _reusable(tuple(series.shape), series.dtype) if reuse else None
            data = series.asarray(out=out, maxworkers=1)
        except Exception as exc:  # a corrupt strip, a missing codec
            raise ValueError(f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
        axes = series.axes
        names = _tiff_channel_names(tf, scene) if "C" in axes else []
    return data, axes, names


def _describe_tiff(p: Path) -> ImageInfo:
    with _open_tiff(p) as tf:
        scenes = _tiff_scenes(tf)
        s = scenes[0]
        names = _tiff_channel_names(tf, 0) if "C" in s.axes else []
        return ImageInfo(tuple(s.shape), np.dtype(s.dtype), s.axes, tuple(names), len(scenes))


# --- PNG and JPEG ---------------------------------------------------------------------------

def _decode_codec(p: Path) -> np.ndarray:
    import imagecodecs

    kind, name = _CODECS[p.suffix.lower()]
    try:
        return getattr(imagecodecs, f"{kind}_decode")(p.read_bytes())
    except Exception as exc:  # a truncated or corrupt file
        raise ValueError(f"not a readable {name} ({type(exc).__name__}: {exc})") from None


def _raw_codec(p: Path, scene: int, reuse: bool) -> Raw:
    data = _decode_codec(p)
    return data, "YXS"[: data.ndim], []


def _describe_codec(p: Path) -> ImageInfo:
    data = _decode_codec(p)
    return ImageInfo(data.shape, data.dtype, "YXS"[: data.ndim])


# --- OME-Zarr (images and plate fields) -------------------------------------------------------

def is_zarr_image(p: Path) -> bool:
    """``True`` for a folder holding an OME-Zarr image (``multiscales`` metadata)."""
    return p.is_dir() and "multiscales" in zarr_attrs(p)


def zarr_attrs(p: Path) -> dict:
    """The OME attributes of a Zarr group (NGFF 0.4 ``.zattrs`` or 0.5 ``zarr.json``)."""
    for name, key in ((".zattrs", None), ("zarr.json", "attributes")):
        f = p / name
        if f.is_file():
            try:
                attrs = json.loads(f.read_text())
            except (OSError, ValueError):
                return {}
            attrs = attrs.get(key, {}) if key else attrs
            return attrs.get("ome", attrs) if isinstance(attrs, dict) else {}
    return {}


def _zarr_level0(p: Path):
    try:
        import zarr
    except ImportError:
        raise ValueError(f"reading OME-Zarr needs the formats extra: {FORMATS_EXTRA}") from None
    attrs = zarr_attrs(p)
    try:
        ms = attrs["multiscales"][0]
        level = zarr.open_array(str(p / ms["datasets"][0]["path"]), mode="r")
    except Exception as exc:
        raise ValueError(f"not a readable OME-Zarr image ({type(exc).__name__}: {exc})") from None
    axes = "".join((a["name"] if isinstance(a, dict) else str(a))[0]
                   for a in ms.get("axes", [])).upper() or "TCZYX"[-level.ndim:]
    names = [c.get("label", "") for c in attrs.get("omero", {}).get("channels", [])]
    return level, axes, names


def _raw_zarr(p: Path, scene: int, reuse: bool) -> Raw:
    level, axes, names = _zarr_level0(p)
    try:
        data = np.asarray(level[...])
    except Exception as exc:
        raise ValueError(f"not a readable OME-Zarr image ({type(exc).__name__}: {exc})") from None
    return data, axes, names


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


def _raw_bioio(p: Path, scene: int, reuse: bool) -> Raw:
    img = _bioimage(p)
    _scene_of(list(img.scenes), scene)
    try:
        img.set_scene(scene)
        data = np.asarray(img.get_image_data("TCZYX"))
    except Exception as exc:
        raise ValueError(f"not a readable {p.suffix} file ({type(exc).__name__}: {exc})") from None
    return data, "TCZYX", [str(c) for c in img.channel_names or []]


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


_RAW: dict[str, Callable[[Path, int, bool], Raw]] = {
    "tiff": _raw_tiff, "codec": _raw_codec, "zarr": _raw_zarr, "bioio": _raw_bioio}
_DESCRIBE = {"tiff": _describe_tiff, "codec": _describe_codec, "zarr": _describe_zarr,
             "bioio": _describe_bioio}


def read_plane(p: Path, choice: PlaneChoice | None = None, scene: int = 0,
               reuse_buffer: bool = False) -> np.ndarray:
    """Decode the plane ``choice`` picks from scene ``scene`` of ``p`` (any supported type)."""
    data, axes, names = read_raw(p, scene, reuse_buffer)
    return select_plane(data, axes, choice, names)


def read_raw(p: Path, scene: int = 0, reuse_buffer: bool = False) -> Raw:
    """Every pixel of scene ``scene`` of ``p``: ``(data, axes, channel names)``.

    For display (the napari reader shows channels as layers); detection uses
    :func:`read_plane`.
    """
    return _RAW[_kind(p)](p, scene, reuse_buffer)


def describe(p: Path) -> ImageInfo:
    """Shape, axes, channel names and scene count of ``p`` (pixels are not decoded where avoidable)."""
    return _DESCRIBE[_kind(p)](p)


def scene_count(p: Path) -> int:
    """Scenes in a file that may hold several (OME-TIFF, bioio formats); 1 for all others.

    Only these types are opened to count: a folder of plain TIFFs is listed
    without opening every file.
    """
    name = p.name.lower()
    if name.endswith((".ome.tif", ".ome.tiff")) or p.suffix.lower() in BIOIO_SUFFIXES:
        try:
            return describe(p).n_scenes
        except (OSError, ValueError):
            return 1  # the read reports the problem, for this image
    return 1
