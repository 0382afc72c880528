"""Removing images keeps the record; storage_check finds what is wrong; export makes a CD."""

import io
import zipfile
from pathlib import Path

import pydicom
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from accounts.audit import Actor
from accounts.models import AuditEvent
from patients.tests.factories import PatientFactory
from studies.export import export_zip
from studies.ingest import IMPORTED, ingest_file
from studies.models import Instance, Study
from studies.services import images_remove
from studies.storage_check import storage_check

from .dicom_samples import make_dataset, ramp, to_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def study(registrar, department):
    PatientFactory(mrn="P-001", department=department)
    dataset = make_dataset(ramp(16, 16))
    for number in range(3):
        dataset.SOPInstanceUID = pydicom.uid.generate_uid()
        dataset.InstanceNumber = number + 1
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        result = ingest_file(actor=Actor(user=registrar), data=to_bytes(dataset), name="x.dcm")
        assert result.status == IMPORTED, result.message
    return Study.objects.get()


def test_removing_images_keeps_the_record_and_says_who_when_why(study, administrator, settings):
    names = [i.file.name for i in Instance.objects.all()]
    removed = images_remove(actor=Actor(user=administrator), target=study, reason="consent")
    assert removed == 3
    study.refresh_from_db()
    assert study.images_removed_by == administrator
    assert study.images_removed_reason == "consent"
    assert Instance.objects.count() == 3
    assert not Instance.objects.exclude(file="").exists()
    assert not any(default_storage.exists(name) for name in names)
    assert AuditEvent.objects.filter(action="remove_images", reason="consent").exists()
    assert storage_check().ok


def test_removing_images_needs_a_reason_and_the_permission(study, administrator, radiologist):
    with pytest.raises(ValidationError):
        images_remove(actor=Actor(user=administrator), target=study, reason=" ")
    with pytest.raises(PermissionDenied):
        images_remove(actor=Actor(user=radiologist), target=study, reason="why")
    assert not Instance.objects.filter(file="").exists()


def test_storage_check_reports_missing_corrupted_and_orphaned_files(study, settings, capsys):
    first, second, _third = Instance.objects.order_by("pk")
    default_storage.delete(first.file.name)
    Path(default_storage.path(second.file.name)).write_bytes(b"changed")
    default_storage.save("dicom/stray/file.dcm", io.BytesIO(b"stray"))
    report = storage_check()
    assert [line.split(":")[0] for line in report.missing] == [f"instance {first.pk}"]
    assert [line.split(":")[0] for line in report.corrupted] == [f"instance {second.pk}"]
    assert report.orphaned == ["dicom/stray/file.dcm"]
    with pytest.raises(CommandError, match="does not match"):
        call_command("storage_check")
    assert "1 missing, 1 corrupted, 1 orphaned" in capsys.readouterr().out


def test_export_writes_a_zip_with_a_dicomdir_that_lists_every_instance(
    study, radiologist, tmp_path
):
    buffer = io.BytesIO()
    counts = export_zip(actor=Actor(user=radiologist), studies=[study], out=buffer)
    assert counts["instances"] == 3
    with zipfile.ZipFile(buffer) as archive:
        archive.extractall(tmp_path / "cd")
    dicomdir = pydicom.dcmread(tmp_path / "cd" / "DICOMDIR")
    images = [r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    assert len(images) == 3
    assert AuditEvent.objects.filter(action="export", object_id=str(study.pk)).exists()
    # the CD imports again, as duplicates
    call_command("import_dicom", str(tmp_path / "cd" / "DICOMDIR"), "--user", radiologist.username)


def test_export_needs_the_permission(study, registrar):
    with pytest.raises(PermissionDenied):
        export_zip(actor=Actor(user=registrar), studies=[study], out=io.BytesIO())
