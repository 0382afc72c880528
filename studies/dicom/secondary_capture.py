"""Wrap a JPEG or PNG (8- or 16-bit, grey or colour) into a DICOM Secondary Capture instance.

The image's size is read from its header and checked against a pixel limit *before* any pixel
is decoded, so a 100-megapixel PNG costs a few bytes of reading, not gigabytes of memory.
Pixels are stored uncompressed (Explicit VR Little Endian): every viewer reads them, and a JPEG
source is marked as lossy-compressed once (Lossy Image Compression ``01``). A phone photo's EXIF
orientation is applied, so the film is stored the way it was seen.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studies.dicom.errors import ImageError, ImageTooLargeError

SECONDARY_CAPTURE_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
#: Default refusal threshold: a chest film scanned at 300 dpi is about 20 megapixels.
DEFAULT_MAX_PIXELS = 60_000_000
FORMATS = ("PNG", "JPEG")


@dataclass(frozen=True)
class ImageInfo:
    """What an image's header says, read without decoding pixels."""

    format: str  # "PNG" or "JPEG"
    width: int
    height: int
    mode: str  # Pillow's mode: "L", "I;16", "RGB", "RGBA", "P"…

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class CaptureInfo:
    """Patient and study fields of the new instance; empty UIDs are generated.

    ``patient_name`` is in DICOM form (``Family^Given^Middle``); ``study_datetime`` should be
    aware and is written in its own zone with ``TimezoneOffsetFromUTC``.
    """

    patient_id: str
    patient_name: str = ""
    issuer_of_patient_id: str = ""
    birth_date: dt.date | None = None
    sex: str = ""
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    sop_instance_uid: str = ""
    study_datetime: dt.datetime | None = None
    study_description: str = ""
    series_description: str = ""
    accession_number: str = ""
    referring_physician: str = ""
    institution: str = ""
    body_part: str = ""
    view_position: str = ""
    modality: str = "OT"
    conversion_type: str = "WSD"  # "DF" digitised film, "DI" digitised image, "WSD" workstation
    series_number: int = 1
    instance_number: int = 1


def probe_image(source: bytes | str | os.PathLike[str]) -> ImageInfo:
    """Read a PNG's or JPEG's format, size and mode from its header only.

    Raises
    ------
    ImageError
        The file is neither a PNG nor a JPEG Pillow can read.
    ImageTooLargeError
        The image is so large that Pillow's decompression-bomb guard refuses even to open it.
    """
    with _open_image(source) as image:
        return ImageInfo(image.format or "", image.width, image.height, image.mode)


def wrap_image(
    source: bytes | str | os.PathLike[str],
    info: CaptureInfo,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
):
    """Build a Secondary Capture dataset holding a PNG's or JPEG's pixels.

    Parameters
    ----------
    source : bytes or path
        The PNG or JPEG file.
    info : CaptureInfo
        Patient and study fields; UIDs left empty are generated with ``generate_uid``.
    max_pixels : int
        Refuse images with more pixels than this (width × height), before decoding.

    Returns
    -------
    pydicom.dataset.FileDataset
        Ready for :func:`to_bytes` (or ``save_as(..., enforce_file_format=True)``).

    Raises
    ------
    ImageTooLargeError
        The image has more than ``max_pixels`` pixels.
    ImageError
        The file is no PNG/JPEG, or its pixels cannot be decoded.
    """
    from PIL import ImageOps

    with _open_image(source) as image:
        if image.width * image.height > max_pixels:
            raise ImageTooLargeError(_too_large(image.width, image.height, max_pixels))
        image_format = image.format
        try:
            image.load()
            image = ImageOps.exif_transpose(image) or image
            pixels, photometric = _pixels(image)
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(
                f"The {image_format} image is damaged and cannot be read: {exc}"
            ) from exc
    return _dataset(pixels, photometric, image_format, info)


def to_bytes(dataset) -> bytes:
    """Encode a dataset as a DICOM Part 10 file (preamble, file meta) in memory."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# --- internals ----------------------------------------------------------------------------------


class _open_image:
    def __init__(self, source):
        self.source = source
        self.image = None

    def __enter__(self):
        from PIL import Image, UnidentifiedImageError

        stream = (
            io.BytesIO(bytes(self.source))
            if isinstance(self.source, (bytes, bytearray, memoryview))
            else Path(self.source)
        )
        try:
            # reads the header only; Pillow warns above ~89 MP, refuses above ~179 MP
            self.image = Image.open(stream, formats=FORMATS)
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(
                f"The image is far too large to import ({exc}). Reduce its resolution."
            ) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ImageError(
                "The file is neither a PNG nor a JPEG image that can be read."
            ) from exc
        return self.image

    def __exit__(self, *exc):
        if self.image is not None:
            self.image.close()


def _too_large(width: int, height: int, limit: int) -> str:
    return (
        f"The image is {width}×{height} pixels ({width * height / 1e6:.1f} megapixels); the "
        f"limit is {limit / 1e6:.1f} megapixels. Reduce its resolution and upload it again."
    )


def _pixels(image) -> tuple[np.ndarray, str]:
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(image).astype("<u2"), "MONOCHROME2"
    if mode in ("I", "F"):  # 16-bit PNGs open as 32-bit "I" in some Pillow versions
        array = np.asarray(image)
        return np.clip(array, 0, 65535).astype("<u2"), "MONOCHROME2"
    if mode in ("1", "L", "LA") or (mode == "P" and _palette_is_grey(image)):
        return np.asarray(image.convert("L"), dtype=np.uint8), "MONOCHROME2"
    return np.asarray(image.convert("RGB"), dtype=np.uint8), "RGB"


def _palette_is_grey(image) -> bool:
    palette = image.getpalette() or []
    triples = [palette[i : i + 3] for i in range(0, len(palette), 3)]
    return all(r == g == b for r, g, b in triples)


def _dataset(pixels: np.ndarray, photometric: str, image_format: str, info: CaptureInfo):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_instance_uid = info.sop_instance_uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)

    now = dt.datetime.now().astimezone()
    when = info.study_datetime or now
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: Cyrillic names as typed
    ds.SOPClassUID = SECONDARY_CAPTURE_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = _da(now), _tm(now)
    if when.tzinfo is not None:
        ds.TimezoneOffsetFromUTC = when.strftime("%z")
    # Patient
    ds.PatientName = info.patient_name
    ds.PatientID = info.patient_id
    if info.issuer_of_patient_id:
        ds.IssuerOfPatientID = info.issuer_of_patient_id
    ds.PatientBirthDate = info.birth_date.strftime("%Y%m%d") if info.birth_date else ""
    ds.PatientSex = info.sex
    # General study
    ds.StudyInstanceUID = info.study_instance_uid or generate_uid()
    ds.StudyDate, ds.StudyTime = _da(when), _tm(when)
    ds.ReferringPhysicianName = info.referring_physician
    ds.StudyID = ""
    ds.AccessionNumber = info.accession_number
    ds.StudyDescription = info.study_description
    # General series, equipment
    ds.Modality = info.modality or "OT"
    ds.SeriesInstanceUID = info.series_instance_uid or generate_uid()
    ds.SeriesNumber = info.series_number
    ds.SeriesDescription = info.series_description
    if info.body_part:
        ds.BodyPartExamined = info.body_part.upper()[:16]
    if info.view_position:
        ds.ViewPosition = info.view_position
    if info.institution:
        ds.InstitutionName = info.institution
    ds.ConversionType = info.conversion_type
    # General and SC image
    ds.InstanceNumber = info.instance_number
    ds.PatientOrientation = ""
    ds.ContentDate, ds.ContentTime = _da(now), _tm(now)
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = f"Converted from a {image_format} image"
    ds.LossyImageCompression = "01" if image_format == "JPEG" else "00"
    if image_format == "JPEG":
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    # Image pixel
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 3 if photometric == "RGB" else 1
    ds.PhotometricInterpretation = photometric
    if photometric == "RGB":
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def _da(value: dt.datetime) -> str:
    return value.strftime("%Y%m%d")


def _tm(value: dt.datetime) -> str:
    return value.strftime("%H%M%S")
