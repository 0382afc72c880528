"""Several files of one request recorded in one transaction (``ingest_files``): the same
per-file results as one by one, one audit row per new row, one thumbnail job, the
``instance_imported`` signal per new instance; a file that fails inside the transaction sends
every file of the batch through the one-by-one path, so it never spoils the others."""

import pytest

from accounts.audit import Actor
from accounts.models import AuditEvent
from studies.ingest import ingest_file, ingest_files
from studies.models import Instance, Series, Study
from studies.signals import instance_imported
from studies.storage_check import storage_check

from .conftest import dicom_bytes, pdf_dicom_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def signalled():
    sent = []

    def receiver(sender, instance, study, actor, **kwargs):
        sent.append(instance.pk)

    instance_imported.connect(receiver)
    yield sent
    instance_imported.disconnect(receiver)


def test_a_batch_gives_each_file_its_result_in_order(
    registrar, patient, signalled, django_capture_on_commit_callbacks
):
    actor = Actor(user=registrar)
    stored = ingest_file(actor=actor, data=dicom_bytes(), name="earlier.dcm")
    earlier = Instance.objects.get(pk=stored.instance_id)
    signalled.clear()
    same_study = {"StudyInstanceUID": "1.2.9", "SeriesInstanceUID": "1.2.9.1"}
    files = [
        (dicom_bytes(**same_study), "a.dcm"),
        (b"%PDF-1.4 renamed", "report.dcm"),
        (dicom_bytes(**same_study), "b.dcm"),
        (pdf_dicom_bytes(), "doc.dcm"),
        (_bytes_of(earlier), "earlier-again.dcm"),
    ]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        results = ingest_files(actor=actor, items=files)
    assert [r.name for r in results] == [name for _data, name in files]
    assert [r.status for r in results] == [
        "imported",
        "rejected",
        "imported",
        "imported",
        "duplicate",
    ]
    assert "PDF" in results[1].message
    assert results[0].study_id == results[2].study_id
    assert Study.objects.get(pk=results[0].study_id).series.count() == 1
    new = [r.instance_id for r in results if r.status == "imported"]
    assert sorted(signalled) == sorted(new)
    audited = AuditEvent.objects.filter(action="create", object_type="studies.instance")
    assert sorted(int(e.object_id) for e in audited if int(e.object_id) in new) == sorted(new)
    assert AuditEvent.objects.filter(action="create", object_type="studies.study").count() == 3
    assert len(callbacks) == 1  # one thumbnail job for the batch's images (not the document)
    (job,) = callbacks
    assert sorted(job.args[0]) == sorted([results[0].instance_id, results[2].instance_id])


def test_a_batch_keeps_where_each_images_pixels_lie(registrar, patient):
    from studies.dicom.native import NativeFrames, locate

    results = ingest_files(
        actor=Actor(user=registrar),
        items=[(dicom_bytes(), "a.dcm"), (dicom_bytes(), "b.dcm"), (pdf_dicom_bytes(), "d.dcm")],
    )
    images, document = (Instance.objects.get(pk=r.instance_id) for r in results[:2]), results[2]
    for image in images:
        assert image.pixel_layout is not None
        assert NativeFrames.from_dict(image.pixel_layout) == locate(image.file.path)
    assert Instance.objects.get(pk=document.instance_id).pixel_layout is None


def test_the_same_instance_twice_in_a_batch_is_imported_then_a_duplicate(registrar, patient):
    data = dicom_bytes()
    results = ingest_files(
        actor=Actor(user=registrar), items=[(data, "a.dcm"), (data, "a-again.dcm")]
    )
    assert [r.status for r in results] == ["imported", "duplicate"]
    assert Instance.objects.count() == 1


def test_a_file_refused_inside_the_transaction_spoils_nothing(registrar, patient):
    actor = Actor(user=registrar)
    first = ingest_file(actor=actor, data=dicom_bytes(SeriesInstanceUID="9.9.1"), name="x.dcm")
    # Its series belongs to the first file's study: refused only once the rows are looked at.
    stray = dicom_bytes(StudyInstanceUID="9.8", SeriesInstanceUID="9.9.1")
    results = ingest_files(
        actor=actor,
        items=[(dicom_bytes(), "good-1.dcm"), (stray, "stray.dcm"), (dicom_bytes(), "good-2.dcm")],
    )
    assert [r.status for r in results] == ["imported", "rejected", "imported"]
    assert "another study" in results[1].message
    assert Instance.objects.count() == 3
    assert not Series.objects.exclude(pk__in=Instance.objects.values("series")).exists()
    assert Study.objects.filter(pk=first.study_id).exists()
    assert not Study.objects.filter(study_uid="9.8").exists()
    report = storage_check(verify_hashes=True)
    assert report.ok, report


def _bytes_of(instance) -> bytes:
    with instance.file.open("rb") as handle:
        return handle.read()


def test_a_batch_resolves_each_patient_id_as_patient_resolve_does(registrar, department):
    from patients.merge import patient_merge
    from patients.models import Patient
    from patients.tests.factories import PatientFactory, PatientIdentifierFactory

    actor = Actor(user=registrar)
    by_mrn = PatientFactory(mrn="X-1", department=department)
    PatientIdentifierFactory(patient=PatientFactory(department=department), value="X1")
    by_identifier = PatientIdentifierFactory(
        patient=PatientFactory(department=department), value="ID7"
    ).patient
    survivor = PatientFactory(department=department)
    merged = PatientFactory(mrn="OLD-1", department=department)
    patient_merge(actor=actor, survivor=survivor, duplicate=merged, reason="same person")
    files = [
        (dicom_bytes(PatientID="X-1"), "mrn-beats-identifier.dcm"),
        (dicom_bytes(PatientID="ID-7"), "identifier.dcm"),
        (dicom_bytes(PatientID="OLD-1"), "merged.dcm"),
        (dicom_bytes(PatientID="NEW-9", PatientName="Новиков^Олег"), "new-a.dcm"),
        (dicom_bytes(PatientID="NEW-9", PatientName="Новиков^Олег"), "new-b.dcm"),
    ]
    before = Patient.objects.count()
    results = ingest_files(actor=actor, items=files)
    assert [r.status for r in results] == ["imported"] * 5
    patients = [r.patient_id for r in results]
    assert patients[:3] == [by_mrn.pk, by_identifier.pk, survivor.pk]
    assert patients[3] == patients[4]  # registered once, found for the other file
    assert Patient.objects.count() == before + 1
    told = [any("provisional" in w for w in r.warnings) for r in results[3:]]
    assert sorted(told) == [False, True]


def test_a_batch_takes_the_same_statements_for_three_files_as_for_six(registrar, patient):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def ours(count: int) -> int:
        files = [(dicom_bytes(), f"f{i}.dcm") for i in range(count)]
        with CaptureQueriesContext(connection) as queries:
            results = ingest_files(actor=Actor(user=registrar), items=files)
        assert {r.status for r in results} == {"imported"}
        # Every statement, the receivers of instance_imported (diagnostics) included.
        return len(queries.captured_queries)

    ours(1)  # the first ingest of the test looks up a few things once (the identifier type)
    assert ours(3) == ours(6)


def test_a_batch_adds_its_modalities_and_warnings_to_a_stored_study(registrar, patient):
    from patients.tests.factories import PatientFactory

    PatientFactory(mrn="P-002", department=patient.department)
    actor = Actor(user=registrar)
    first = ingest_file(actor=actor, data=dicom_bytes(StudyInstanceUID="7.7"), name="ct.dcm")
    assert first.status == "imported"
    results = ingest_files(
        actor=actor,
        items=[
            (dicom_bytes(StudyInstanceUID="7.7", Modality="MR"), "mr.dcm"),
            (dicom_bytes(StudyInstanceUID="7.7", PatientID="P-002"), "other.dcm"),
        ],
    )
    assert [r.status for r in results] == ["imported", "imported"]
    assert "another patient" in " ".join(results[1].warnings)
    study = Study.objects.get(study_uid="7.7")
    assert study.modalities == "CT\\MR"
    assert study.patient == patient
    assert any("another patient" in w for w in study.warnings)
    assert Instance.objects.filter(series__study=study).count() == 3


def test_a_file_that_cannot_be_stored_leaves_none_of_the_batchs_files(settings, tmp_path):
    from pathlib import Path

    from studies.ingest import store_many

    (Path(settings.MEDIA_ROOT) / "dicom").mkdir(parents=True)
    (Path(settings.MEDIA_ROOT) / "dicom" / "blocked").write_bytes(b"a file, not a folder")
    items = [("dicom/a/1.dcm", b"1"), ("dicom/blocked/2.dcm", b"2"), ("dicom/b/3.dcm", b"3")]
    with pytest.raises(OSError):
        store_many(items)
    assert sorted(p.name for p in Path(settings.MEDIA_ROOT).rglob("*.dcm")) == []
    assert store_many([items[0], items[2]]) == ["dicom/a/1.dcm", "dicom/b/3.dcm"]
    assert (Path(settings.MEDIA_ROOT) / "dicom" / "b" / "3.dcm").read_bytes() == b"3"


@pytest.mark.django_db(transaction=True)
def test_a_file_that_cannot_be_written_during_the_transaction_leaves_no_row_and_no_file(
    registrar, patient, settings
):
    """The batch's files are written while its rows are inserted; one that cannot be written
    rolls the rows back and the others' files are removed again."""
    from pathlib import Path

    (Path(settings.MEDIA_ROOT) / "dicom").mkdir(parents=True, exist_ok=True)
    (Path(settings.MEDIA_ROOT) / "dicom" / "7.7").write_bytes(b"a file, not a folder")
    items = [(dicom_bytes(), "a.dcm"), (dicom_bytes(StudyInstanceUID="7.7"), "b.dcm")]
    items.append((dicom_bytes(), "c.dcm"))
    with pytest.raises(OSError):
        ingest_files(actor=Actor(user=registrar), items=items)
    assert not Instance.objects.exists() and not Study.objects.exists()
    assert not AuditEvent.objects.filter(object_type__startswith="studies").exists()
    assert sorted(p.name for p in Path(settings.MEDIA_ROOT).rglob("*.dcm")) == []
