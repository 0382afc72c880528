"""JPEG and PNG wrapped into DICOM Secondary Capture; oversized images refused before decoding."""

import datetime as dt
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from studies.dicom.errors import ImageError, ImageTooLargeError
from studies.dicom.parse import parse_instance
from studies.dicom.render import read_frame, render_frame
from studies.dicom.secondary_capture import (
    SECONDARY_CAPTURE_IMAGE_STORAGE,
    CaptureInfo,
    probe_image,
    to_bytes,
    wrap_image,
)

INFO = CaptureInfo(
    patient_id="MRN-42",
    patient_name="Сидорова^Анна^Петровна",
    birth_date=dt.date(1990, 5, 17),
    sex="F",
    study_datetime=dt.datetime(2026, 11, 22, 10, 15, tzinfo=dt.timezone(dt.timedelta(hours=3))),
    study_description="ТРГ",
    body_part="skull",
    view_position="LL",
)


def encode(array: np.ndarray, image_format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def roundtrip(dataset):
    data = to_bytes(dataset)
    return parse_instance(data, default_zone="UTC"), read_frame(data), data


def test_an_8_bit_grey_png_keeps_its_pixels():
    pixels = np.arange(35, dtype=np.uint8).reshape(5, 7)  # odd length: padded on write
    header, frame, _ = roundtrip(wrap_image(encode(pixels), INFO))
    assert header.sop_class_uid == SECONDARY_CAPTURE_IMAGE_STORAGE and header.is_image
    assert (header.rows, header.columns, header.bits_allocated) == (5, 7, 8)
    assert header.photometric_interpretation == "MONOCHROME2"
    assert frame.pixels.tolist() == pixels.tolist()


def test_a_16_bit_grey_png_stays_16_bit():
    pixels = (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)
    header, frame, _ = roundtrip(wrap_image(encode(pixels), INFO))
    assert header.bits_stored == 16
    assert frame.pixels.tolist() == pixels.tolist()


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_a_colour_png_becomes_rgb(mode):
    pixels = np.zeros((4, 6, len(mode)), np.uint8)
    pixels[..., 0] = 200
    if mode == "RGBA":
        pixels[..., 3] = 255
    header, frame, _ = roundtrip(wrap_image(encode(pixels), INFO))
    assert header.photometric_interpretation == "RGB" and header.samples_per_pixel == 3
    assert frame.pixels[0, 0].tolist() == [200, 0, 0]


def test_a_jpeg_is_marked_lossy_and_renders():
    pixels = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (16, 1))
    dataset = wrap_image(encode(pixels, "JPEG", quality=95), INFO)
    assert dataset.LossyImageCompression == "01"
    header, _, data = roundtrip(dataset)
    assert header.photometric_interpretation == "MONOCHROME2"
    assert np.abs(render_frame(data).astype(int) - pixels).max() < 12


def test_a_colour_jpeg():
    pixels = np.full((8, 8, 3), (10, 120, 240), np.uint8)
    header, frame, _ = roundtrip(wrap_image(encode(pixels, "JPEG", quality=95), INFO))
    assert header.photometric_interpretation == "RGB"
    assert np.abs(frame.pixels[4, 4].astype(int) - [10, 120, 240]).max() < 8


def test_exif_orientation_is_applied():
    picture = Image.fromarray(np.zeros((10, 20), np.uint8))
    exif = picture.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", exif=exif)
    dataset = wrap_image(buffer.getvalue(), INFO)
    assert (dataset.Rows, dataset.Columns) == (20, 10)


def test_patient_and_study_fields_are_written():
    header, _, _ = roundtrip(wrap_image(encode(np.zeros((2, 2), np.uint8)), INFO))
    assert header.patient.patient_id == "MRN-42"
    assert header.patient.name == "Сидорова^Анна^Петровна"
    assert header.patient.birth_date == dt.date(1990, 5, 17) and header.patient.sex == "F"
    assert header.study_datetime == INFO.study_datetime
    assert header.body_part == "SKULL" and header.view_position == "LL"
    assert header.study_description == "ТРГ" and header.modality == "OT"


def test_given_uids_are_kept_and_missing_ones_generated():
    given = CaptureInfo(patient_id="1", study_instance_uid="1.2.3.4", sop_instance_uid="1.2.3.5")
    dataset = wrap_image(encode(np.zeros((2, 2), np.uint8)), given)
    assert dataset.StudyInstanceUID == "1.2.3.4" and dataset.SOPInstanceUID == "1.2.3.5"
    assert dataset.file_meta.MediaStorageSOPInstanceUID == "1.2.3.5"
    other = wrap_image(encode(np.zeros((2, 2), np.uint8)), INFO)
    again = wrap_image(encode(np.zeros((2, 2), np.uint8)), INFO)
    assert other.SeriesInstanceUID != again.SeriesInstanceUID


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares its size but holds almost no data: cheap to build and to probe."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_a_100_megapixel_png_is_refused_before_decoding():
    data = png_header_only(10_000, 10_000)
    assert probe_image(data).pixels == 100_000_000
    with pytest.raises(ImageTooLargeError, match=r"10000×10000 pixels \(100.0 megapixels\)"):
        wrap_image(data, INFO, max_pixels=50_000_000)


def test_an_absurd_png_is_refused_by_pillows_guard_too():
    with pytest.raises(ImageTooLargeError, match="too large"):
        probe_image(png_header_only(60_000, 60_000))


def test_the_limit_is_configurable():
    with pytest.raises(ImageTooLargeError, match="limit is 0.0 megapixels"):
        wrap_image(encode(np.zeros((10, 10), np.uint8)), INFO, max_pixels=99)


@pytest.mark.parametrize("data", [b"%PDF-1.4 hello", b"", b"GIF89a" + b"\0" * 20])
def test_a_file_that_is_no_png_or_jpeg_is_refused(data):
    with pytest.raises(ImageError, match="neither a PNG nor a JPEG"):
        wrap_image(data, INFO)


def test_a_truncated_png_is_a_clear_error():
    data = encode(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    with pytest.raises(ImageError, match="damaged"):
        wrap_image(data[: len(data) // 2], INFO)
