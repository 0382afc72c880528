"""Read any image a hospital has into one grey float array in [0, 1].

DICOM of any bit depth and photometric interpretation (MONOCHROME1 is inverted, colour is
converted to grey), multi-frame DICOM (the middle frame), and PNG or JPEG in 8 or 16 bits, grey
or colour. The DICOM windowing used is recorded in the model card as ``dicom_windowing``:

``"voi"``
    the header's VOI LUT or first window centre/width when present, otherwise the full range
    of the modality-LUT output (min–max).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageReadError

DICOM_MAGIC_OFFSET = 128


@dataclass(frozen=True)
class GreyImage:
    """A grey image as float32 in [0, 1], row-major, with where it came from."""

    pixels: np.ndarray
    source_format: str  # "dicom", "png", "jpeg", ...

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape  # type: ignore[return-value]


def looks_like_dicom(head: bytes) -> bool:
    return len(head) >= DICOM_MAGIC_OFFSET + 4 and head[128:132] == b"DICM"


def read_image(source: str | Path | bytes) -> GreyImage:
    """Read a DICOM, PNG or JPEG file (path or bytes) as a grey image in [0, 1].

    Raises
    ------
    ImageReadError
        With a message a user can act on when the file is no readable image.
    """
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    if not data:
        raise ImageReadError("The file is empty.")
    if looks_like_dicom(data[:132]):
        return GreyImage(dicom_to_grey(data), "dicom")
    return _raster_to_grey(data)


def _raster_to_grey(data: bytes) -> GreyImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            fmt = (image.format or "raster").lower()
            pixels = pil_to_grey(image)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageReadError(
            "The file is neither DICOM nor a PNG or JPEG image that can be decoded."
        ) from exc
    return GreyImage(pixels, fmt)


def pil_to_grey(image) -> np.ndarray:
    """A Pillow image of any mode (1, L, I;16, I, F, RGB, RGBA, P…) as grey float32 in [0, 1]."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float32)
        if image.mode.startswith("I;16"):
            return array / 65535.0
        return _min_max(array)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.float32) / 255.0
    if array.ndim == 3:
        array = _rgb_to_grey(array)
    return array


def dicom_to_grey(data: bytes) -> np.ndarray:
    """Decode DICOM bytes to grey float32 in [0, 1] with modality and VOI LUTs applied."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
        raise ImageReadError("The DICOM file is damaged and cannot be read.") from exc
    if "PixelData" not in dataset and "FloatPixelData" not in dataset:
        raise ImageReadError("This DICOM file holds no image (a report or document?).")
    try:
        array = dataset.pixel_array
    except Exception as exc:  # decoders raise many kinds: all mean "cannot decode"
        syntax = getattr(dataset.file_meta, "TransferSyntaxUID", None)
        name = getattr(syntax, "name", str(syntax))
        raise ImageReadError(
            f"The DICOM pixel data cannot be decoded (transfer syntax: {name})."
        ) from exc

    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    samples = int(getattr(dataset, "SamplesPerPixel", 1) or 1)
    if frames > 1:
        array = array[frames // 2]
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    if samples > 1:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            array = convert_color_space(array, photometric, "RGB")
        return _min_max(_rgb_to_grey(np.asarray(array, dtype=np.float32)))
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        return _min_max(_rgb_to_grey(np.asarray(apply_color_lut(array, dataset), np.float32)))

    values = apply_modality_lut(array, dataset)
    has_voi = "VOILUTSequence" in dataset or "WindowCenter" in dataset
    if has_voi:
        try:
            values = apply_voi_lut(values, dataset, index=0)
        except (ValueError, IndexError, TypeError):
            pass  # a broken VOI header falls back to the full range
    grey = _min_max(np.asarray(values, dtype=np.float32))
    if photometric == "MONOCHROME1":
        grey = 1.0 - grey
    return grey


def _rgb_to_grey(array: np.ndarray) -> np.ndarray:
    if array.shape[-1] == 4:
        array = array[..., :3]
    return (array[..., 0] * 0.299 + array[..., 1] * 0.587 + array[..., 2] * 0.114).astype(
        np.float32
    )


def _min_max(array: np.ndarray) -> np.ndarray:
    array = array.astype(np.float32, copy=False)
    low, high = float(np.min(array)), float(np.max(array))
    if high <= low:
        return np.zeros_like(array, dtype=np.float32)
    return ((array - low) / (high - low)).astype(np.float32)
