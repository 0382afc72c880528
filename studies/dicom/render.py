"""Frames of a DICOM instance as 8-bit images (PNG, thumbnails) or full-depth values.

The display pipeline follows PS3.3 C.11 for grey images: stored values → modality LUT (rescale
slope/intercept or a Modality LUT Sequence) → VOI (an explicit window, else the header's first
window or VOI LUT, else the frame's full range) → MONOCHROME1 inverted. Colour images are
converted to RGB (YBR by pydicom, PALETTE COLOR through its lookup tables) and scaled to 8 bits.

Only the asked-for frame is decoded; a path is decoded straight from disk so a large
multi-frame file is never held whole.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from studies.dicom.errors import FrameIndexError, NoPixelDataError, PixelDecodeError
from studies.dicom.parse import PIXEL_TAGS, Source, pixel_spacing_of, read_dataset

Window = tuple[float, float]  # (center, width)


@dataclass(frozen=True)
class FrameData:
    """One decoded frame at full bit depth, with what a viewer needs to display it.

    ``pixels`` is ``(rows, columns)`` for grey images, holding modality-LUT output (Hounsfield
    units for CT; int32 for a whole-number rescale of integer pixels, float for another), or
    ``(rows, columns, 3)`` RGB for colour.
    """

    pixels: np.ndarray
    frame: int
    frames: int
    photometric_interpretation: str
    is_color: bool
    invert: bool  # MONOCHROME1: low values are white
    bits_stored: int
    rescale_slope: float
    rescale_intercept: float
    rescale_type: str  # "HU", "US" (unspecified), …
    windows: tuple[Window, ...]  # every (center, width) pair of the header
    voi_lut_function: str  # "LINEAR", "LINEAR_EXACT" or "SIGMOID"
    has_voi_lut_sequence: bool
    pixel_spacing: tuple[float, float] | None

    @property
    def value_range(self) -> tuple[float, float]:
        """Smallest and largest value of the frame (for a viewer's window sliders)."""
        return float(np.min(self.pixels)), float(np.max(self.pixels))


def read_frame(source: Source | BinaryIO, frame: int = 0) -> FrameData:
    """Decode one frame at full bit depth, after the modality LUT.

    Parameters
    ----------
    source : path, bytes or binary file object
        The DICOM file.
    frame : int
        Frame index, from 0.

    Returns
    -------
    FrameData

    Raises
    ------
    NotDicomError, DicomCorruptError
        As :func:`studies.dicom.parse.read_dataset`.
    NoPixelDataError
        The instance holds no image (a report, a PDF).
    FrameIndexError
        ``frame`` is outside the instance's frames.
    PixelDecodeError
        The pixel data cannot be decoded; the message names the transfer syntax.
    """
    return _read(source, frame)[0]


def _read(source, frame: int):
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    dataset, array = _decode(source, frame)
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    bits_stored = int(dataset.get("BitsStored", 0) or dataset.get("BitsAllocated", 8) or 8)
    slope = _float(dataset.get("RescaleSlope"), 1.0)
    intercept = _float(dataset.get("RescaleIntercept"), 0.0)
    is_color = samples > 1 or photometric == "PALETTE COLOR"
    try:
        if photometric == "PALETTE COLOR" and samples == 1:
            pixels = apply_color_lut(array, dataset)
        elif is_color:
            pixels = array[..., :3]
        elif _integer_rescale(array, dataset, slope, intercept):
            # Integers stay integers (int32): windowing then runs through a lookup table.
            pixels = array.astype(np.int32) * int(slope) + int(intercept)
        else:
            pixels = apply_modality_lut(array, dataset)
    except Exception as exc:  # a broken LUT in the header
        raise PixelDecodeError(f"The image's lookup table is damaged: {exc}") from exc
    data = FrameData(
        pixels=pixels,
        frame=frame,
        frames=_frames(dataset),
        photometric_interpretation=photometric,
        is_color=is_color,
        invert=photometric == "MONOCHROME1",
        bits_stored=bits_stored,
        rescale_slope=slope,
        rescale_intercept=intercept,
        rescale_type=str(dataset.get("RescaleType", "") or "").strip()
        or ("HU" if str(dataset.get("Modality", "")).upper() == "CT" else ""),
        windows=_windows(dataset),
        voi_lut_function=str(dataset.get("VOILUTFunction", "") or "LINEAR").strip().upper(),
        has_voi_lut_sequence="VOILUTSequence" in dataset,
        pixel_spacing=pixel_spacing_of(dataset)[0],
    )
    return data, dataset


def render_frame(
    source: Source | BinaryIO,
    frame: int = 0,
    *,
    window: Window | None = None,
    max_size: int | None = None,
) -> np.ndarray:
    """Render one frame to 8 bits for display.

    Parameters
    ----------
    source : path, bytes or binary file object
        The DICOM file.
    frame : int
        Frame index, from 0.
    window : (center, width), optional
        A window in modality-LUT units (e.g. ``(40, 400)`` HU) that overrides the header's.
    max_size : int, optional
        Downsample (keeping the aspect ratio) so neither side exceeds this many pixels.

    Returns
    -------
    numpy.ndarray
        ``uint8``, ``(rows, columns)`` for grey or ``(rows, columns, 3)`` RGB.

    Raises
    ------
    NoPixelDataError, FrameIndexError, PixelDecodeError, NotDicomError, DicomCorruptError
        As :func:`read_frame`.
    """
    data, dataset = _read(source, frame)
    if data.is_color:
        image = _colour_to_8bit(data.pixels, data.bits_stored, data.photometric_interpretation)
    else:
        image = _grey_to_8bit(data, dataset, window)
    if max_size:
        image = _downsample(image, max_size)
    return image


def render_png(
    source: Source | BinaryIO,
    frame: int = 0,
    *,
    window: Window | None = None,
    max_size: int | None = None,
) -> bytes:
    """:func:`render_frame` encoded as PNG bytes (the API's "rendered 8-bit PNG frame")."""
    return encode_png(render_frame(source, frame, window=window, max_size=max_size))


def render_thumbnail(
    source: Source | BinaryIO, *, size: int = 256, frame: int = 0, image_format: str = "PNG"
) -> bytes:
    """A thumbnail no larger than ``size`` on either side, as PNG (or ``"JPEG"``) bytes."""
    image = render_frame(source, frame, max_size=size)
    return encode_png(image) if image_format.upper() == "PNG" else _encode(image, "JPEG")


def encode_png(image: np.ndarray) -> bytes:
    """Encode an 8-bit grey or RGB array as PNG."""
    return _encode(image, "PNG")


def apply_window(values: np.ndarray, window: Window, function: str = "LINEAR") -> np.ndarray:
    """Map modality-LUT values through a window to ``uint8`` (PS3.3 C.11.2.1.2).

    Parameters
    ----------
    values : numpy.ndarray
        Modality-LUT output.
    window : (center, width)
        Window centre and width in the same units.
    function : str
        VOI LUT Function: ``LINEAR`` (default), ``LINEAR_EXACT`` or ``SIGMOID``.
    """
    center, width = float(window[0]), float(window[1])
    values = np.asarray(values)
    if values.dtype.kind in "iu" and values.size > 4096:
        low, high = int(values.min()), int(values.max())
        if high - low < 1 << 20:  # integers: window each distinct value once, then look up
            lut = apply_window(np.arange(low, high + 1, dtype=np.float64), window, function)
            return lut[values - low] if low else lut[values]
    values = np.asarray(values, dtype=np.float64)
    if function == "SIGMOID":
        scaled = 1.0 / (1.0 + np.exp(-4.0 * (values - center) / max(width, 1e-6)))
    elif function == "LINEAR_EXACT":
        scaled = (values - center) / max(width, 1e-6) + 0.5
    else:
        width = max(width, 1.0)
        scaled = (values - (center - 0.5)) / max(width - 1.0, 1e-6) + 0.5
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


# --- decoding ---------------------------------------------------------------------------------


def _decode(source, frame: int):
    from pydicom.pixels import pixel_array

    header = read_dataset(source)
    if not any(tag in header for tag in PIXEL_TAGS):
        raise NoPixelDataError(
            "This DICOM instance holds no image (a report, a PDF or another document): it is "
            "listed, not rendered."
        )
    frames = _frames(header)
    if not 0 <= frame < frames:
        raise FrameIndexError(
            f"Frame {frame} does not exist: the instance has {frames} frame(s), "
            f"numbered 0 to {frames - 1}."
        )
    syntax = getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", None)
    array = None
    if isinstance(source, (str, os.PathLike)) and syntax is not None and not syntax.is_deflated:
        try:
            array = pixel_array(Path(source), index=frame)  # from disk, only this frame
        except Exception:  # the streaming reader is stricter: retry with the whole dataset
            array = None
    try:
        if array is None:  # bytes are in memory anyway; a bare dataset needs pydicom's force
            header = _full_dataset(source)
            syntax = header.file_meta.TransferSyntaxUID
            array = pixel_array(header, index=frame)
    except Exception as exc:  # decoders raise many kinds: all mean "cannot decode"
        name = f"{syntax.name} ({syntax})" if syntax is not None else "unknown"
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise PixelDecodeError(
            f"The pixel data cannot be decoded (transfer syntax: {name}): {reason}. The "
            "instance can be stored but not displayed; re-export it from the modality or PACS "
            "in an uncompressed transfer syntax to view it."
        ) from exc
    if frames > 1 and array.ndim > (3 if int(header.get("SamplesPerPixel", 1) or 1) > 1 else 2):
        array = array[0]
    return header, array


def _full_dataset(source):
    import pydicom

    if isinstance(source, (bytes, bytearray, memoryview)):
        fileobj = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        fileobj = io.BytesIO(Path(source).read_bytes())
    else:
        fileobj = source
    start = fileobj.tell()
    bare = fileobj.read(132)[128:132] != b"DICM"
    fileobj.seek(start)
    try:
        dataset = pydicom.dcmread(fileobj, force=bare)
    finally:
        fileobj.seek(start)
    if "TransferSyntaxUID" not in getattr(dataset, "file_meta", {}):
        # a bare dataset: pydicom worked out the encoding while reading it
        from pydicom.uid import (
            ExplicitVRBigEndian,
            ExplicitVRLittleEndian,
            ImplicitVRLittleEndian,
        )

        if not dataset.original_encoding[1]:
            syntax = ExplicitVRBigEndian
        elif dataset.original_encoding[0]:
            syntax = ImplicitVRLittleEndian
        else:
            syntax = ExplicitVRLittleEndian
        from pydicom.dataset import FileMetaDataset

        meta = FileMetaDataset()
        meta.TransferSyntaxUID = syntax
        dataset.file_meta = meta
    return dataset


# --- to 8 bits ----------------------------------------------------------------------------------


def _grey_to_8bit(data: FrameData, dataset, window: Window | None) -> np.ndarray:
    values = data.pixels
    if window is not None:
        image = apply_window(values, window, "LINEAR")
    elif data.has_voi_lut_sequence:
        from pydicom.pixels import apply_voi_lut

        try:
            image = _min_max(apply_voi_lut(values, dataset, index=0, prefer_lut=True))
        except Exception:  # a broken VOI LUT: the full range still shows the image
            image = _min_max(values)
    elif data.windows:
        image = apply_window(values, data.windows[0], data.voi_lut_function)
    else:
        image = _min_max(values)
    if data.invert:
        image = 255 - image
    return image


def _colour_to_8bit(pixels: np.ndarray, bits_stored: int, photometric: str) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return np.ascontiguousarray(pixels)
    if photometric == "PALETTE COLOR":
        top = 65535.0 if pixels.max(initial=0) > 255 else 255.0
    else:
        top = float(2 ** min(bits_stored, 32) - 1)
    scaled = np.asarray(pixels, dtype=np.float64) * (255.0 / top)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _min_max(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    low, high = float(np.min(values)), float(np.max(values))
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)


def _downsample(image: np.ndarray, max_size: int) -> np.ndarray:
    from PIL import Image

    if max(image.shape[:2]) <= max_size:
        return image
    picture = Image.fromarray(image)
    picture.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    return np.asarray(picture)


def _encode(image: np.ndarray, image_format: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    # zlib level 1: a 5-megapixel radiograph encodes about 3× faster than at the default 6 for
    # some 15 % more bytes; a viewer waits on the encoder, not on the local network.
    options = {"compress_level": 1} if image_format == "PNG" else {}
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format=image_format, **options)
    return buffer.getvalue()


# --- header values ---------------------------------------------------------------------------


def _integer_rescale(array: np.ndarray, dataset, slope: float, intercept: float) -> bool:
    """A linear rescale with whole slope and intercept on integer pixels (most CT)."""
    return (
        array.dtype.kind in "iu"
        and array.dtype.itemsize <= 2
        and "ModalityLUTSequence" not in dataset
        and float(slope).is_integer()
        and float(intercept).is_integer()
    )


def _frames(dataset) -> int:
    try:
        return max(int(dataset.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def _windows(dataset) -> tuple[Window, ...]:
    centers, widths = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if centers is None or widths is None:
        return ()
    try:
        centers = [float(value) for value in _as_list(centers)]
        widths = [float(value) for value in _as_list(widths)]
    except (TypeError, ValueError):
        return ()
    return tuple((c, w) for c, w in zip(centers, widths, strict=False) if w > 0)


def _as_list(value) -> list:
    return [value] if isinstance(value, (str, int, float)) else list(value)


def _float(value, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default
