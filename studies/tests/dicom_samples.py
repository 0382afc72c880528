"""Small DICOM files built in memory for the Django-free tests (no downloads, no fixtures)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

PYDICOM_DATA = Path(pydicom.__file__).parent / "data"
TEST_FILES = PYDICOM_DATA / "test_files"

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"


def make_dataset(pixels: np.ndarray | None = None, **elements) -> Dataset:
    """A valid little-endian instance; ``pixels`` (rows×cols, or frames×rows×cols) optional."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "P-001"
    ds.PatientName = "Иванов^Иван^Иванович"
    ds.PatientBirthDate = "19800102"
    ds.PatientSex = "M"
    ds.Modality = "CT"
    ds.StudyDate = "20261122"
    ds.StudyTime = "093000"
    if pixels is not None:
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            ds.NumberOfFrames = pixels.shape[0]
        ds.Rows, ds.Columns = pixels.shape[-2:]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = pixels.dtype.itemsize * 8
        ds.BitsStored = ds.BitsAllocated
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
        ds.PixelData = pixels.tobytes()
    for keyword, value in elements.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ramp(rows: int = 8, columns: int = 8, dtype=np.uint16) -> np.ndarray:
    return np.arange(rows * columns, dtype=dtype).reshape(rows, columns)
