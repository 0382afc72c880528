"""Frames to 8-bit images: modality LUT, windows, MONOCHROME1, colour, multi-frame, errors."""

import io

import numpy as np
import pytest
from PIL import Image

from studies.dicom.errors import FrameIndexError, NoPixelDataError, PixelDecodeError
from studies.dicom.render import (
    apply_window,
    read_frame,
    render_frame,
    render_png,
    render_thumbnail,
)
from studies.tests.dicom_samples import TEST_FILES, make_dataset, ramp, to_bytes


def ct_bytes(**elements):
    stored = np.array([[0, 1000], [1040, 2000]], dtype=np.uint16)
    return to_bytes(make_dataset(stored, RescaleSlope=1, RescaleIntercept=-1024, **elements))


def test_full_depth_values_are_after_the_modality_lut():
    frame = read_frame(ct_bytes(WindowCenter=40, WindowWidth=400))
    assert frame.pixels.tolist() == [[-1024, -24], [16, 976]]
    assert frame.rescale_type == "HU" and frame.windows == ((40.0, 400.0),)
    assert frame.value_range == (-1024.0, 976.0)
    assert not frame.is_color and not frame.invert


def test_the_header_window_is_applied():
    image = render_frame(ct_bytes(WindowCenter=40, WindowWidth=400))
    assert image.dtype == np.uint8
    # -1024 HU is below the window (black), 976 above (white), 16 HU just under the centre
    assert image[0, 0] == 0 and image[1, 1] == 255
    assert 110 < image[1, 0] < 128


def test_an_explicit_window_overrides_the_header():
    image = render_frame(ct_bytes(WindowCenter=40, WindowWidth=400), window=(-600, 1500))
    assert 0 < image[0, 0] < 60  # lung window: air is no longer clipped to black


def test_without_a_window_the_full_range_is_used():
    image = render_frame(to_bytes(make_dataset(ramp(4, 4))))
    assert image.min() == 0 and image.max() == 255


def test_monochrome1_is_inverted():
    normal = render_frame(to_bytes(make_dataset(ramp(4, 4))))
    inverted = render_frame(
        to_bytes(make_dataset(ramp(4, 4), PhotometricInterpretation="MONOCHROME1"))
    )
    assert (inverted == 255 - normal).all()
    assert read_frame(
        to_bytes(make_dataset(ramp(), PhotometricInterpretation="MONOCHROME1"))
    ).invert


@pytest.mark.parametrize(
    ("function", "low", "centre", "high"),
    [("LINEAR", 0, 128, 255), ("LINEAR_EXACT", 0, 128, 255), ("SIGMOID", 5, 128, 250)],
)
def test_voi_lut_functions(function, low, centre, high):
    out = apply_window(np.array([-1000.0, 40.0, 1000.0]), (40, 400), function)
    assert out[0] <= low and abs(int(out[1]) - centre) <= 1 and out[2] >= high


def test_a_frame_of_a_multi_frame_instance():
    frames = np.stack([np.full((4, 4), value, np.uint16) for value in (0, 100, 200)])
    frames[:, 0, 0] = 300  # a bright pixel so that min–max keeps each frame's level visible
    data = to_bytes(make_dataset(frames))
    assert read_frame(data, frame=2).pixels[1, 1] == 200
    assert read_frame(data, frame=2).frames == 3
    with pytest.raises(FrameIndexError, match="Frame 3 does not exist: the instance has 3"):
        render_frame(data, frame=3)


def test_a_path_decodes_only_its_frame(tmp_path):
    frames = np.arange(3 * 16, dtype=np.uint16).reshape(3, 4, 4)
    path = tmp_path / "multi.dcm"
    path.write_bytes(to_bytes(make_dataset(frames)))
    assert read_frame(path, frame=1).pixels.tolist() == frames[1].tolist()


def test_palette_colour_becomes_rgb():
    image = render_frame(TEST_FILES / "examples_palette.dcm")
    assert image.shape == (350, 800, 3) and image.dtype == np.uint8
    assert read_frame(TEST_FILES / "examples_palette.dcm").is_color


@pytest.mark.parametrize(
    "name",
    ["SC_ybr_full_422_uncompressed.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_jpeg_dcmtk.dcm"],
)
def test_ybr_is_converted_to_the_same_rgb(name):
    image = render_frame(TEST_FILES / name).astype(int)
    reference = render_frame(TEST_FILES / "SC_rgb_dcmtk_+eb+cr.dcm").astype(int)
    assert image.shape == (100, 100, 3)
    assert np.abs(image - reference).mean() < 8  # lossy JPEG and 4:2:2 subsampling


def test_16_bit_rgb_is_scaled_to_8_bits():
    image = render_frame(TEST_FILES / "SC_rgb_rle_16bit.dcm")
    reference = render_frame(TEST_FILES / "SC_rgb_rle.dcm")
    assert np.abs(image.astype(int) - reference.astype(int)).max() <= 1


def test_max_size_keeps_the_aspect_ratio():
    image = render_frame(TEST_FILES / "JPEG2000.dcm", max_size=128)  # 1024 × 256
    assert image.shape == (128, 32)


def test_png_and_thumbnail_bytes():
    png = render_png(TEST_FILES / "CT_small.dcm")
    assert Image.open(io.BytesIO(png)).size == (128, 128)
    thumb = render_thumbnail(TEST_FILES / "examples_ybr_color.dcm", size=64, frame=10)
    with Image.open(io.BytesIO(thumb)) as picture:
        assert picture.format == "PNG" and picture.size == (64, 48) and picture.mode == "RGB"
    jpeg = render_thumbnail(TEST_FILES / "CT_small.dcm", size=32, image_format="JPEG")
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"


def test_undecodable_pixel_data_names_the_transfer_syntax():
    with pytest.raises(PixelDecodeError, match=r"JPEG Extended \(Process 2 and 4\)"):
        render_frame(TEST_FILES / "JPEG-lossy.dcm")


def test_a_document_has_no_image():
    with pytest.raises(NoPixelDataError, match="holds no image"):
        render_frame(TEST_FILES / "test-SR.dcm")


def test_a_file_object_is_left_where_it_was():
    stream = io.BytesIO((TEST_FILES / "MR_small.dcm").read_bytes())
    assert render_frame(stream).shape == (64, 64)
    assert stream.tell() == 0


def test_windowing_integers_through_a_lookup_table_matches_the_formula():
    from studies.dicom.render import apply_window

    values = np.arange(-3000, 30000, 3, dtype=np.int32).reshape(-1, 1)
    for function in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        expected = apply_window(values.astype(np.float64), (40.0, 400.0), function)
        assert np.array_equal(apply_window(values, (40.0, 400.0), function), expected)
