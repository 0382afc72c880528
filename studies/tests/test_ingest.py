"""The ingest service: imported / duplicate / rejected, patient matching, nothing half-stored."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from PIL import Image

from accounts.audit import Actor
from accounts.models import AuditEvent
from patients.models import IdentityStatus, Patient
from patients.tests.factories import PatientFactory
from studies.ingest import DUPLICATE, IMPORTED, REJECTED, StudyFields, ingest_file
from studies.models import Category, Instance, Study

from .dicom_samples import TEST_FILES, make_dataset, ramp, to_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }


def _dicom(**elements) -> bytes:
    return to_bytes(make_dataset(ramp(16, 16), **elements))


def test_a_dicom_file_is_imported_onto_the_patient_its_patient_id_names(registrar, department):
    patient = PatientFactory(
        mrn="P-001", department=department, last_name="Иванов", first_name="Иван"
    )
    result = ingest_file(actor=Actor(user=registrar), data=_dicom(), name="a.dcm")
    assert result.status == IMPORTED, result.message
    study = Study.objects.get(pk=result.study_id)
    assert study.patient == patient
    assert study.department == department
    assert study.category == Category.CT
    instance = Instance.objects.get(pk=result.instance_id)
    assert default_storage.exists(instance.file.name)
    assert len(instance.sha256) == 64
    assert AuditEvent.objects.filter(
        action="create", object_id=str(instance.pk), patient_id=patient.pk
    ).exists()


def test_the_same_file_again_is_a_duplicate_and_changes_nothing(registrar, department):
    PatientFactory(mrn="P-001", department=department)
    data = _dicom()
    first = ingest_file(actor=Actor(user=registrar), data=data, name="a.dcm")
    second = ingest_file(actor=Actor(user=registrar), data=data, name="a-again.dcm")
    assert second.status == DUPLICATE
    assert second.instance_id == first.instance_id
    assert Instance.objects.count() == 1


def test_the_same_uid_with_other_content_is_rejected_and_the_stored_file_kept(
    registrar, department
):
    PatientFactory(mrn="P-001", department=department)
    dataset = make_dataset(ramp(16, 16))
    ingest_file(actor=Actor(user=registrar), data=to_bytes(dataset), name="a.dcm")
    stored = Instance.objects.get()
    original = default_storage.open(stored.file.name).read()
    dataset.PatientName = "Петров^Пётр"
    result = ingest_file(actor=Actor(user=registrar), data=to_bytes(dataset), name="b.dcm")
    assert result.status == REJECTED
    assert "different content" in result.message
    assert default_storage.open(stored.file.name).read() == original


def test_an_unknown_patient_id_registers_a_provisional_patient(registrar, department):
    result = ingest_file(actor=Actor(user=registrar), data=_dicom(PatientID="EXT-77"), name="a.dcm")
    assert result.status == IMPORTED
    patient = Patient.objects.get(pk=result.patient_id)
    assert patient.identity_status == IdentityStatus.PROVISIONAL
    assert patient.last_name == "Иванов"
    assert "EXT-77" in patient.notes
    assert any("provisional" in w for w in result.warnings)
    # the sender's PatientID is kept as an identifier: its next file finds the same patient
    assert patient.identifiers.get().value == "EXT77"  # normalised like every identifier
    again = ingest_file(actor=Actor(user=registrar), data=_dicom(PatientID="EXT-77"), name="b.dcm")
    assert again.status == IMPORTED
    assert again.patient_id == patient.pk
    assert Patient.objects.count() == 1


def test_a_disagreeing_name_warns_and_never_overwrites(registrar, department):
    patient = PatientFactory(
        mrn="P-001", department=department, last_name="Сидоров", first_name="Сидор"
    )
    result = ingest_file(actor=Actor(user=registrar), data=_dicom(), name="a.dcm")
    assert result.status == IMPORTED
    assert any("differs" in w for w in result.warnings)
    patient.refresh_from_db()
    assert patient.last_name == "Сидоров"
    assert Study.objects.get().warnings


def test_a_transliterated_name_matches_without_warning(registrar, department):
    PatientFactory(
        mrn="P-001",
        department=department,
        last_name="Иванов",
        first_name="Иван",
        middle_name="Иванович",
        birth_date="1980-01-02",
    )
    result = ingest_file(
        actor=Actor(user=registrar), data=_dicom(PatientName="IVANOV^IVAN^IVANOVICH"), name="a.dcm"
    )
    assert result.status == IMPORTED
    assert result.warnings == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"%PDF-1.7 renamed", "Not a DICOM, PNG or JPEG"),
        (b"", "empty"),
    ],
)
def test_bad_files_are_rejected_with_a_reason(registrar, department, data, message):
    result = ingest_file(actor=Actor(user=registrar), data=data, name="x.dcm")
    assert result.status == REJECTED
    assert message in result.message
    assert not Study.objects.exists()


def test_a_truncated_dicom_is_rejected_and_leaves_no_file(registrar, department, settings):
    data = _dicom()
    result = ingest_file(actor=Actor(user=registrar), data=data[: len(data) - 100], name="t.dcm")
    assert result.status == REJECTED
    assert not any(Path(settings.MEDIA_ROOT).rglob("*.dcm"))


def test_a_file_over_the_limit_is_rejected(registrar, department, settings):
    settings.STUDIES_MAX_FILE_BYTES = 1000
    result = ingest_file(actor=Actor(user=registrar), data=_dicom(), name="big.dcm")
    assert result.status == REJECTED
    assert "larger than the limit" in result.message


def test_a_png_needs_patient_category_body_part_and_view(registrar, department):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(buffer, format="PNG")
    result = ingest_file(actor=Actor(user=registrar), data=buffer.getvalue(), name="x.png")
    assert result.status == REJECTED
    assert "needs these fields" in result.message
    patient = PatientFactory(department=department)
    fields = StudyFields(
        patient=patient, category=Category.CHEST_XRAY, body_part="CHEST", view_position="PA"
    )
    result = ingest_file(
        actor=Actor(user=registrar), data=buffer.getvalue(), name="x.png", fields=fields
    )
    assert result.status == IMPORTED, result.message
    study = Study.objects.get()
    assert (study.patient, study.category, study.view_position) == (
        patient,
        Category.CHEST_XRAY,
        "PA",
    )
    assert Instance.objects.get().source_format == "png"


def test_a_user_without_exactly_one_department_must_choose_one(department, other_department):
    from accounts.roles import REGISTRAR
    from accounts.tests.factories import UserFactory

    for departments in ([], [department, other_department]):
        user = UserFactory(role=REGISTRAR, departments=departments)
        result = ingest_file(actor=Actor(user=user), data=_dicom(), name="a.dcm")
        assert result.status == REJECTED
        assert "performing department" in result.message


def test_a_user_who_may_not_upload_is_refused(researcher, department):
    result = ingest_file(
        actor=Actor(user=researcher),
        data=_dicom(),
        name="a.dcm",
        fields=StudyFields(department=department),
    )
    assert result.status == REJECTED
    assert not Study.objects.exists()


def test_a_file_of_a_merged_patient_lands_on_the_survivor(registrar, department):
    from patients.merge import patient_merge

    survivor = PatientFactory(department=department)
    duplicate = PatientFactory(mrn="P-001", department=department)
    patient_merge(
        actor=Actor(user=registrar), survivor=survivor, duplicate=duplicate, reason="same person"
    )
    result = ingest_file(actor=Actor(user=registrar), data=_dicom(), name="a.dcm")
    assert result.status == IMPORTED
    assert Study.objects.get().patient == survivor


def test_import_dicom_imports_a_zip_with_good_and_bad_members(
    registrar, department, tmp_path, capsys
):
    PatientFactory(mrn="P-001", department=department)
    archive = tmp_path / "cd.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/one.dcm", _dicom())
        zf.writestr("a/two.dcm", _dicom())
        zf.writestr("a/notes.pdf", b"%PDF-1.4 not an image")
        zf.writestr("../escape.dcm", _dicom())
    call_command("import_dicom", str(archive), "--user", registrar.username)
    out = capsys.readouterr().out
    assert "2 imported, 0 duplicate, 2 rejected" in out
    assert Instance.objects.count() == 2


def test_import_dicom_reads_a_dicomdir(registrar, department, capsys):
    folder = TEST_FILES / "dicomdirtests"
    call_command(
        "import_dicom",
        str(folder / "DICOMDIR"),
        "--user",
        registrar.username,
        "--department",
        department.code,
    )
    out = capsys.readouterr().out
    assert "imported" in out
    assert Instance.objects.exists()


def test_a_lost_race_on_the_same_instance_never_deletes_the_winners_file(
    registrar, department, monkeypatch
):
    """The loser of two concurrent uploads of one instance discards only its own file."""
    from studies import ingest

    PatientFactory(mrn="P-001", department=department)
    data = _dicom()
    first = ingest_file(actor=Actor(user=registrar), data=data, name="a.dcm")
    winner = Instance.objects.get(pk=first.instance_id)
    # the second upload does not see the first (as if it checked before the first committed)
    real_filter = Instance.objects.filter
    calls = {"n": 0}

    def blind_filter(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            return Instance.objects.none()
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(ingest.Instance.objects, "filter", blind_filter)
    second = ingest_file(actor=Actor(user=registrar), data=data, name="a-again.dcm")
    assert second.status == DUPLICATE
    assert default_storage.exists(winner.file.name)
    assert len(list(Path(default_storage.path("dicom")).rglob("*.dcm"))) == 1


def test_instance_imported_is_sent_inside_the_transaction_once_per_new_instance(
    registrar, department
):
    from django.db import connection

    from studies.signals import instance_imported

    PatientFactory(mrn="P-001", department=department)
    seen = []

    def receiver(sender, instance, study, actor, **kwargs):
        seen.append((instance.pk, study.pk, actor.user_id, connection.in_atomic_block))

    instance_imported.connect(receiver)
    try:
        data = _dicom()
        result = ingest_file(actor=Actor(user=registrar), data=data, name="a.dcm")
        ingest_file(actor=Actor(user=registrar), data=data, name="again.dcm")  # a duplicate
    finally:
        instance_imported.disconnect(receiver)
    assert seen == [(result.instance_id, result.study_id, registrar.pk, True)]


def test_finding_codes_are_seeded_and_name_model_labels():
    from studies.models import FindingCode

    assert FindingCode.code_for_label("Pleural_Thickening") == "pleural-thickening"
    assert FindingCode.code_for_label("Enlarged Cardiomediastinum") == "enlarged-cardiomediastinum"
    assert FindingCode.objects.filter(code="pneumonia", name_ru="Пневмония").exists()
    chest = {c.code for c in FindingCode.offered_for(Category.CHEST_XRAY)}
    assert {"pneumonia", "normal", "fracture"} <= chest
    assert "scoliosis" not in chest
