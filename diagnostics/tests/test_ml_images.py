"""Every model reads what hospitals have: DICOM of any kind, PNG and JPEG, grey or colour."""

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from diagnostics.ml.errors import ImageReadError
from diagnostics.ml.images import read_image


def _png(array, mode=None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",  # 16-bit signed, modality LUT
        "MR_small_bigendian.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "JPGExtended.dcm",
        "JPEGLSNearLossless_16.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",  # colour JPEG baseline
        "SC_ybr_full_422_uncompressed.dcm",
        "SC_rgb_rle_16bit_2frame.dcm",  # multi-frame colour
        "examples_palette.dcm",
        "liver_1frame.dcm",
    ],
)
def test_it_reads_dicom_of_every_transfer_syntax_as_grey_in_unit_range(name):
    image = read_image(get_testdata_file(name))
    assert image.source_format == "dicom"
    assert image.pixels.ndim == 2
    assert image.pixels.dtype == np.float32
    assert 0.0 <= image.pixels.min() < image.pixels.max() <= 1.0


def test_monochrome1_is_inverted_so_bone_is_bright_in_both(tmp_path):
    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    normal = read_image(get_testdata_file("CT_small.dcm")).pixels
    dataset.PhotometricInterpretation = "MONOCHROME1"
    for keyword in ("WindowCenter", "WindowWidth"):
        if keyword in dataset:
            delattr(dataset, keyword)
    path = tmp_path / "mono1.dcm"
    dataset.save_as(path)
    inverted = read_image(path).pixels
    assert np.corrcoef(normal.ravel(), inverted.ravel())[0, 1] < -0.9


def test_multiframe_dicom_gives_the_middle_frame():
    image = read_image(get_testdata_file("SC_rgb_rle_16bit_2frame.dcm"))
    assert image.shape == (100, 100)


def test_16_bit_png_keeps_its_depth():
    array = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).astype(np.uint16)
    image = read_image(_png(array))
    assert image.source_format == "png"
    assert len(np.unique(image.pixels)) > 256  # more levels than 8 bits could hold


def test_rgb_jpeg_becomes_grey():
    rgb = np.zeros((40, 30, 3), np.uint8)
    rgb[..., 0] = 200
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG")
    image = read_image(buffer.getvalue())
    assert image.shape == (40, 30)
    assert image.source_format == "jpeg"
    assert abs(float(image.pixels.mean()) - 200 * 0.299 / 255) < 0.02


def test_a_pdf_renamed_dcm_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "scan.dcm"
    path.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF")
    with pytest.raises(ImageReadError, match="neither DICOM nor a PNG or JPEG"):
        read_image(path)


def test_a_truncated_dicom_is_refused():
    data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    with pytest.raises(ImageReadError, match="DICOM"):
        read_image(data[: len(data) // 2])


def test_a_dicom_without_pixels_says_it_holds_no_image():
    with pytest.raises(ImageReadError, match="holds no image"):
        read_image(get_testdata_file("test-SR.dcm"))


def test_an_empty_file_is_refused():
    with pytest.raises(ImageReadError, match="empty"):
        read_image(b"")


def test_undecodable_pixel_data_names_its_transfer_syntax():
    # pydicom's own example of a non-conformant JPEG stream
    with pytest.raises(ImageReadError, match="cannot be decoded .transfer syntax: JPEG"):
        read_image(get_testdata_file("JPEG-lossy.dcm"))
