"""Reading what ingest needs from a DICOM header, and refusing bad files with clear errors."""

import datetime as dt

import numpy as np
import pytest

from studies.dicom.errors import (
    DicomCorruptError,
    MissingUIDError,
    NotAnInstanceError,
    NotDicomError,
)
from studies.dicom.parse import format_person_name, parse_instance, sniff_format
from studies.tests.dicom_samples import (
    ENCAPSULATED_PDF_STORAGE,
    TEST_FILES,
    make_dataset,
    ramp,
    to_bytes,
)


def parse(source):
    return parse_instance(source, default_zone="Europe/Moscow")


def test_a_header_becomes_plain_values():
    ds = make_dataset(
        ramp(4, 6),
        IssuerOfPatientID="MOSCOW-CITY",
        BodyPartExamined="CHEST",
        ViewPosition="PA",
        StudyDescription="ОГК",
        InstitutionName="ГКБ №1",
        ReferringPhysicianName="Петров^Пётр",
        AccessionNumber="A-17",
        PixelSpacing=[0.5, 0.25],
        WindowCenter=[40, 400],
        WindowWidth=[400, 2000],
        SeriesNumber="3",
        AcquisitionDateTime="20261122093512.5+0700",
    )
    header = parse(to_bytes(ds))

    assert header.sop_instance_uid == ds.SOPInstanceUID
    assert header.study_instance_uid == ds.StudyInstanceUID
    assert header.series_instance_uid == ds.SeriesInstanceUID
    assert header.sop_class_name == "CT Image Storage"
    assert header.is_image and header.document_kind == ""
    assert header.patient.patient_id == "P-001"
    assert header.patient.issuer == "MOSCOW-CITY"
    assert header.patient.name == "Иванов^Иван^Иванович"
    assert header.patient.family_name == "Иванов" and header.patient.middle_name == "Иванович"
    assert header.patient.name_raw == "Иванов^Иван^Иванович".encode()
    assert header.patient.specific_character_set == ("ISO_IR 192",)
    assert header.patient.birth_date == dt.date(1980, 1, 2)
    assert header.patient.sex == "M"
    assert header.study_datetime == dt.datetime(2026, 11, 22, 6, 30, tzinfo=dt.UTC).astimezone(
        header.study_datetime.tzinfo
    )
    assert header.acquisition_datetime.utcoffset() == dt.timedelta(hours=7)
    assert header.acquisition_datetime.second == 12
    assert (header.rows, header.columns, header.frames) == (4, 6, 1)
    assert header.bits_allocated == 16 and header.photometric_interpretation == "MONOCHROME2"
    assert header.transfer_syntax_name == "Explicit VR Little Endian"
    assert header.pixel_spacing == (0.5, 0.25) and header.pixel_spacing_source == "PixelSpacing"
    assert (header.window_center, header.window_width) == (40.0, 400.0)
    assert header.referring_physician == "Петров Пётр"
    assert header.institution == "ГКБ №1" and header.accession_number == "A-17"
    assert header.series_number == 3
    assert header.body_part == "CHEST" and header.view_position == "PA"
    assert header.warnings == ()


def test_a_path_works_as_well_as_bytes(tmp_path):
    path = tmp_path / "one.dcm"
    path.write_bytes(to_bytes(make_dataset(ramp())))
    assert parse(path).rows == 8 and parse(str(path)).columns == 8


def test_imager_pixel_spacing_is_the_fallback():
    header = parse(to_bytes(make_dataset(ramp(), ImagerPixelSpacing=[0.143, 0.143])))
    assert header.pixel_spacing == (0.143, 0.143)
    assert header.pixel_spacing_source == "ImagerPixelSpacing"


def test_pixels_are_not_loaded(tmp_path):
    path = tmp_path / "big.dcm"
    path.write_bytes(to_bytes(make_dataset(np.zeros((3, 256, 256), np.uint16))))
    from studies.dicom.parse import read_dataset

    dataset = read_dataset(path)
    assert dataset.get_item("PixelData", keep_deferred=True).value is None  # deferred, never read
    assert parse(path).frames == 3


def test_a_malformed_birth_date_is_a_warning_not_a_refusal():
    header = parse(to_bytes(make_dataset(ramp(), PatientBirthDate="19801399")))
    assert header.patient.birth_date is None
    assert "PatientBirthDate" in header.warnings[0]


@pytest.mark.parametrize(
    ("sop_class", "kind"),
    [
        (ENCAPSULATED_PDF_STORAGE, "encapsulated_document"),
        ("1.2.840.10008.5.1.4.1.1.88.67", "structured_report"),  # X-ray radiation dose SR
        ("1.2.840.10008.5.1.4.1.1.88.11", "structured_report"),
    ],
)
def test_documents_are_instances_but_not_images(sop_class, kind):
    ds = make_dataset(SOPClassUID=sop_class, Modality="DOC")
    if sop_class == ENCAPSULATED_PDF_STORAGE:
        ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
        ds.EncapsulatedDocument = b"%PDF-1.4 " + b"x" * 100_001
    header = parse(to_bytes(ds))
    assert not header.is_image and header.document_kind == kind
    assert header.frames == 0 and header.rows is None


def test_pydicom_structured_report_is_a_document():
    header = parse(TEST_FILES / "test-SR.dcm")
    assert header.document_kind == "structured_report" and not header.is_image


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"%PDF-1.7\n" + b"0" * 400, "looks like a PDF document"),
        (b"\x89PNG\r\n\x1a\n" + b"0" * 400, "looks like a PNG image"),
        (b"PK\x03\x04" + b"0" * 400, "looks like a ZIP archive"),
        (b"hello, this is text " * 20, "not DICOM"),
        (b"", "empty"),
    ],
)
def test_a_file_that_is_not_dicom_says_what_it_looks_like(content, message):
    with pytest.raises(NotDicomError, match=message):
        parse(content)


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(NotDicomError, match="is a folder"):
        parse(tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_a_file_cut_in_its_pixel_data_is_truncated(keep):
    data = to_bytes(make_dataset(ramp(64, 64)))
    with pytest.raises(DicomCorruptError, match="truncated"):
        parse(data[: int(len(data) * keep)])


def test_a_compressed_file_cut_in_its_fragments_is_truncated():
    data = (TEST_FILES / "JPEG2000.dcm").read_bytes()
    parse(data)  # whole: fine
    with pytest.raises(DicomCorruptError, match="truncated"):
        parse(data[:-10])


def test_pydicoms_truncated_files_are_refused():
    for name in ("MR_truncated.dcm", "rtplan_truncated.dcm"):
        with pytest.raises(DicomCorruptError, match="truncated"):
            parse(TEST_FILES / name)


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
def test_a_missing_uid_is_named(keyword):
    ds = make_dataset(ramp())
    delattr(ds, keyword)
    data = to_bytes(ds) if keyword != "SOPInstanceUID" else _without_meta(ds)
    with pytest.raises(MissingUIDError, match=f"lacks {keyword}"):
        parse(data)


def _without_meta(ds):
    import io

    del ds.file_meta.MediaStorageSOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def test_a_file_without_preamble_is_read():
    header = parse((TEST_FILES / "ExplVR_LitEndNoMeta.dcm").read_bytes())
    assert not header.has_file_meta and header.sop_class_name == "RT Ion Plan Storage"


def test_a_dicomdir_is_not_an_instance():
    with pytest.raises(NotAnInstanceError, match="DICOMDIR"):
        parse(TEST_FILES / "dicomdirtests" / "DICOMDIR")


def test_sniff_format():
    assert sniff_format(b"\0" * 128 + b"DICM") == "dicom"
    assert sniff_format(b"\xff\xd8\xff\xe0") == "jpeg"
    assert sniff_format(b"\x08\x00\x05\x00CS\n\x00") == "dicom-bare"
    assert sniff_format(b"") == "empty"


def test_format_person_name():
    assert format_person_name("Иванов^Иван^^^") == "Иванов Иван"
    assert format_person_name("Yamada^Tarou=山田^太郎") == "Yamada Tarou"
