"""Every DICOM file pydicom installs parses (and, if an image, renders) or is refused clearly.

The files are globbed from the installed package: nothing is downloaded.
"""

import random

import pytest

from studies.dicom.errors import (
    DicomCorruptError,
    DicomError,
    NotDicomError,
    PixelDecodeError,
)
from studies.dicom.parse import parse_instance
from studies.dicom.render import render_frame
from studies.tests.dicom_samples import PYDICOM_DATA, TEST_FILES

ALL_DCM = sorted(PYDICOM_DATA.rglob("*.dcm"))
CD_FILES = sorted(
    path
    for path in (TEST_FILES / "dicomdirtests").rglob("*")
    if path.is_file() and "DICOMDIR" not in path.name and not path.name.startswith("README")
)


def ingest_like(source):
    """What ingest does with a file: parse, then render the first and last frame of images."""
    try:
        header = parse_instance(source, default_zone="Europe/Moscow")
    except DicomError as exc:
        assert str(exc)
        return "refused"
    if header.is_image:
        for frame in {0, header.frames - 1}:
            try:
                image = render_frame(source, frame, max_size=64)
            except DicomError as exc:
                assert str(exc)
                return "stored, not rendered"
            assert image.dtype.name == "uint8" and max(image.shape[:2]) <= 64
    return "imported"


def test_the_installed_files_are_there():
    assert len(ALL_DCM) > 70 and (TEST_FILES / "CT_small.dcm").exists()


@pytest.mark.parametrize("path", ALL_DCM, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_each_installed_dcm_imports_or_is_refused_clearly(path):
    assert ingest_like(path) in ("imported", "refused", "stored, not rendered")
    assert ingest_like(path.read_bytes()) in ("imported", "refused", "stored, not rendered")


def test_the_files_of_the_dicomdir_tests_import_or_are_refused_clearly():
    outcomes = {path: ingest_like(path) for path in CD_FILES}
    real = [path for path in outcomes if "TINY_ALPHA" not in str(path)]
    assert len(real) == 31 and {outcomes[path] for path in real} == {"imported"}
    # TINY_ALPHA's "CT images" are header-only stubs (see its README): refused as truncated
    stubs = [path for path in outcomes if "TINY_ALPHA" in str(path)]
    assert len(stubs) == 50 and {outcomes[path] for path in stubs} == {"refused"}


@pytest.mark.parametrize(
    ("name", "error", "when"),
    [
        ("MR_truncated.dcm", DicomCorruptError, "parse"),
        ("rtplan_truncated.dcm", DicomCorruptError, "parse"),
        ("no_meta.dcm", NotDicomError, "parse"),
        ("JPEG-lossy.dcm", PixelDecodeError, "render"),
    ],
)
def test_known_bad_files_get_the_right_error(name, error, when):
    with pytest.raises(error):
        parse_instance(TEST_FILES / name, default_zone="UTC")
        if when == "render":
            render_frame(TEST_FILES / name)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm"])
def test_a_file_cut_anywhere_is_refused_or_read_never_a_crash(name):
    data = (TEST_FILES / name).read_bytes()
    outcomes = [ingest_like(data[:cut]) for cut in range(0, len(data), max(len(data) // 60, 1))]
    assert outcomes[0] == "refused" and outcomes.count("refused") >= len(outcomes) - 1


@pytest.mark.parametrize("name", ["CT_small.dcm", "SC_rgb_jpeg_dcmtk.dcm", "test-SR.dcm"])
def test_flipped_bytes_are_refused_or_read_never_a_crash(name):
    original = (TEST_FILES / name).read_bytes()
    rng = random.Random(name)
    for _ in range(40):
        data = bytearray(original)
        for _ in range(4):
            position = rng.randrange(128, min(len(data), 2048))  # the header, where parsing is
            data[position] = rng.randrange(256)
        ingest_like(bytes(data))
