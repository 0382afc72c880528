"""One frame at full bit depth as little-endian bytes plus the metadata a browser viewer needs
to window it itself (no new image per window change).

Grey frames are sent as modality values (Hounsfield units for CT): ``int16``/``uint16`` when
every value is an integer that fits, ``int32`` for wider integers, ``float32`` otherwise.
Colour frames are 8-bit RGB, three bytes a pixel. A frame larger than ``max_size`` on a side is
downsampled by an integer factor with an area mean, and the metadata says by how much, so
coordinates (measurements, annotations) stay in the original image's pixels.
"""

from __future__ import annotations

import math
from typing import BinaryIO

import numpy as np

from studies.dicom.parse import Source
from studies.dicom.render import FrameData, _colour_to_8bit, read_frame

FORMAT_VERSION = 1


def raw_frame(
    source: Source | BinaryIO, frame: int = 0, *, max_size: int | None = None
) -> tuple[bytes | memoryview, dict]:
    """Decode one frame and return ``(pixel bytes, metadata)``.

    Parameters
    ----------
    source : path, bytes or binary file object
        The DICOM file.
    frame : int
        Frame index, from 0.
    max_size : int, optional
        Downsample by the smallest integer factor that brings both sides to at most this.

    Returns
    -------
    (bytes or memoryview, dict)
        Little-endian pixels, row by row, and a JSON-ready dict: ``rows``, ``columns`` (of the
        bytes sent), ``original_rows``, ``original_columns``, ``scale`` (original pixels per
        pixel sent), ``dtype`` (``int16``, ``uint16``, ``int32``, ``float32`` or ``rgb8``),
        ``min``, ``max``, ``bits_stored``, ``signed``, ``rescale_slope``, ``rescale_intercept``,
        ``rescale_type``, ``windows`` (list of [centre, width]), ``window`` (the default),
        ``voi_lut_function``, ``photometric``, ``invert``, ``pixel_spacing`` ([row, column] mm
        of the original pixels, or null), ``frame``, ``frames``.

    Raises
    ------
    NoPixelDataError, FrameIndexError, PixelDecodeError, NotDicomError, DicomCorruptError
        As :func:`studies.dicom.render.read_frame`.
    """
    data = read_frame(source, frame)
    pixels = data.pixels
    rows, columns = int(pixels.shape[0]), int(pixels.shape[1])
    factor = 1
    if max_size and max(rows, columns) > max_size:
        factor = math.ceil(max(rows, columns) / max_size)
    if data.is_color:
        array = _colour_to_8bit(pixels, data.bits_stored, data.photometric_interpretation)
        if factor > 1:
            array = np.rint(_area_mean(array, factor)).astype(np.uint8)
        dtype, low, high = "rgb8", 0.0, 255.0
        body = np.ascontiguousarray(array).tobytes()
    else:
        if factor > 1:
            pixels = _area_mean(pixels, factor)
        array, dtype = _narrow(pixels, integral=_integral(data) and factor == 1)
        low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        array = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))
        body = memoryview(array).cast("B")  # the pixels' own buffer, not a copy
    windows = [[c, w] for c, w in data.windows]
    default = windows[0] if windows else [(low + high) / 2.0, max(high - low, 1.0)]
    return body, {
        "version": FORMAT_VERSION,
        "rescaled": True,  # modality values (studies.dicom.native sends stored ones)
        "rows": int(array.shape[0]),
        "columns": int(array.shape[1]),
        "original_rows": rows,
        "original_columns": columns,
        "scale": factor,
        "dtype": dtype,
        "min": low,
        "max": high,
        "bits_stored": data.bits_stored,
        "signed": low < 0,
        "rescale_slope": data.rescale_slope,
        "rescale_intercept": data.rescale_intercept,
        "rescale_type": data.rescale_type,
        "windows": windows,
        "window": default,
        "header_window": bool(windows),
        "voi_lut_function": data.voi_lut_function,
        "photometric": data.photometric_interpretation,
        "is_color": data.is_color,
        "invert": data.invert,
        "pixel_spacing": list(data.pixel_spacing) if data.pixel_spacing else None,
        "frame": data.frame,
        "frames": data.frames,
    }


def _integral(data: FrameData) -> bool:
    if data.pixels.dtype.kind in "iub":
        return True
    return float(data.rescale_slope).is_integer() and float(data.rescale_intercept).is_integer()


def _narrow(pixels: np.ndarray, *, integral: bool) -> tuple[np.ndarray, str]:
    if not integral:
        return pixels.astype(np.float32, copy=False), "float32"
    low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
    if pixels.dtype.name in ("int16", "uint16"):
        return pixels, pixels.dtype.name  # already 16 bits: sent without a copy
    if low >= -32768 and high <= 32767:
        return pixels.astype(np.int16, copy=False), "int16"
    if low >= 0 and high <= 65535:
        return pixels.astype(np.uint16, copy=False), "uint16"
    if low >= -(2**31) and high < 2**31:
        return pixels.astype(np.int32, copy=False), "int32"
    return pixels.astype(np.float32, copy=False), "float32"


def _area_mean(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each ``factor``×``factor`` block (the last partial blocks are edge-padded)."""
    rows, columns = pixels.shape[:2]
    out_rows, out_columns = math.ceil(rows / factor), math.ceil(columns / factor)
    pad = [(0, out_rows * factor - rows), (0, out_columns * factor - columns)]
    pad += [(0, 0)] * (pixels.ndim - 2)
    padded = np.pad(pixels, pad, mode="edge") if any(p[1] for p in pad) else pixels
    shape = (out_rows, factor, out_columns, factor) + pixels.shape[2:]
    return padded.reshape(shape).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
