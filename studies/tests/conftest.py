import pytest

from accounts.audit import Actor
from patients.tests.factories import PatientFactory
from studies.ingest import StudyFields, ingest_file

from .dicom_samples import ENCAPSULATED_PDF_STORAGE, make_dataset, ramp, to_bytes


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }


@pytest.fixture(autouse=True)
def eager_tasks():
    """Tasks enqueued on commit run in the test's process (no broker)."""
    from mis.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def dicom_bytes(**elements) -> bytes:
    return to_bytes(make_dataset(ramp(32, 32), **elements))


def pdf_dicom_bytes(**elements) -> bytes:
    ds = make_dataset(
        SOPClassUID=ENCAPSULATED_PDF_STORAGE,
        Modality="DOC",
        MIMETypeOfEncapsulatedDocument="application/pdf",
        EncapsulatedDocument=b"%PDF-1.4\n%%EOF\n",
        **elements,
    )
    return to_bytes(ds)


@pytest.fixture
def import_file(registrar):
    def _import(data: bytes, name: str = "a.dcm", user=None, **fields):
        result = ingest_file(
            actor=Actor(user=user or registrar), data=data, name=name, fields=StudyFields(**fields)
        )
        assert result.status in ("imported", "duplicate"), result.message
        return result

    return _import


@pytest.fixture
def patient(department):
    return PatientFactory(mrn="P-001", department=department, last_name="Иванов", first_name="Иван")


@pytest.fixture
def study(patient, import_file):
    """A CT study of two instances in one series, and a PDF document in another."""
    from studies.models import Study

    first = import_file(dicom_bytes(StudyInstanceUID="1.2.3.4", SeriesInstanceUID="1.2.3.4.1"))
    import_file(dicom_bytes(StudyInstanceUID="1.2.3.4", SeriesInstanceUID="1.2.3.4.1"))
    import_file(pdf_dicom_bytes(StudyInstanceUID="1.2.3.4", SeriesInstanceUID="1.2.3.4.2"))
    return Study.objects.get(pk=first.study_id)
