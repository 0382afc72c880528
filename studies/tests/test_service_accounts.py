"""Uploads by a service account: its one department, else STUDIES_DEFAULT_DEPARTMENT; a person
without exactly one department is asked to choose."""

import pytest

from accounts.audit import Actor
from accounts.tests.factories import DepartmentFactory, UserFactory
from studies.ingest import StudyFields, ingest_file
from studies.models import Study

from .conftest import dicom_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def gateway_department(settings):
    settings.STUDIES_DEFAULT_DEPARTMENT = "gateway"
    return DepartmentFactory(code="gateway", name="Gateway")


def _upload(user):
    return ingest_file(
        actor=Actor(user=user), data=dicom_bytes(), name="a.dcm", fields=StudyFields()
    )


def test_a_service_account_without_a_department_uploads_to_the_default(gateway_department):
    service = UserFactory(username="pacs", role="Registrar")
    service.is_service_account = True
    service.save()
    result = _upload(service)
    assert result.status == "imported", result.message
    assert Study.objects.get().department == gateway_department


def test_a_person_without_a_department_must_choose(gateway_department):
    person = UserFactory(username="nodept", role="Registrar")
    result = _upload(person)
    assert result.status == "rejected"
    assert "department" in result.message
    assert not Study.objects.exists()


def test_a_service_account_with_one_department_uploads_there(gateway_department, department):
    service = UserFactory(username="pacs", role="Registrar", departments=[department])
    service.is_service_account = True
    service.save()
    assert _upload(service).status == "imported"
    assert Study.objects.get().department == department
