"""Export (ZIP with DICOMDIR) and removing images, on the study page and in the API."""

import io
import zipfile

import pytest
from django.urls import reverse

from accounts.audit import Actor
from accounts.models import AuditEvent
from patients.tests.factories import PatientFactory
from studies.ingest import IMPORTED, ingest_file
from studies.models import Instance, Study

from .dicom_samples import make_dataset, ramp, to_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def study(registrar, department):
    PatientFactory(mrn="P-001", department=department)
    result = ingest_file(
        actor=Actor(user=registrar), data=to_bytes(make_dataset(ramp())), name="a.dcm"
    )
    assert result.status == IMPORTED
    return Study.objects.get()


def _zip_names(response) -> list[str]:
    body = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return archive.namelist()


@pytest.mark.parametrize("url_name", ["studies:export", "studies:patient-export"])
def test_a_radiologist_downloads_a_cd_zip_and_it_is_audited(client, radiologist, study, url_name):
    client.force_login(radiologist)
    arg = study.pk if url_name == "studies:export" else study.patient_id
    response = client.get(reverse(url_name, args=[arg]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "DICOMDIR" in _zip_names(response)
    assert AuditEvent.objects.filter(action="export", username="radiologist").exists()


def test_export_is_refused_to_a_registrar_and_hidden_from_an_outsider(
    client, registrar, outsider, study
):
    client.force_login(registrar)
    assert client.get(reverse("studies:export", args=[study.pk])).status_code == 403
    client.force_login(outsider)
    assert client.get(reverse("studies:export", args=[study.pk])).status_code in (403, 404)


def test_export_needs_a_login(client, study):
    response = client.get(reverse("studies:export", args=[study.pk]))
    assert response.status_code == 302


def test_an_administrator_removes_images_with_a_reason_and_the_page_says_so(
    client, administrator, study
):
    client.force_login(administrator)
    url = reverse("studies:remove-images", args=[study.pk])
    client.post(url, {"reason": ""})
    assert not Instance.objects.filter(file="").exists()
    response = client.post(url, {"reason": "patient withdrew consent"}, follow=True)
    assert response.status_code == 200
    assert Instance.objects.filter(file="").count() == 1
    study.refresh_from_db()
    assert study.images_removed_reason == "patient withdrew consent"


def test_only_administrators_remove_images(client, radiologist, study):
    client.force_login(radiologist)
    response = client.post(reverse("studies:remove-images", args=[study.pk]), {"reason": "x"})
    assert response.status_code == 403
    assert not Instance.objects.filter(file="").exists()


def test_api_export_and_remove_images(api_client, radiologist, administrator, study):
    api_client.force_authenticate(radiologist)
    response = api_client.get(f"/api/v1/studies/{study.pk}/export/")
    assert response.status_code == 200
    assert "DICOMDIR" in _zip_names(response)
    response = api_client.post(f"/api/v1/studies/{study.pk}/remove-images/", {"reason": "x"})
    assert response.status_code == 403
    api_client.force_authenticate(administrator)
    response = api_client.post(
        f"/api/v1/studies/{study.pk}/remove-images/", {"reason": ""}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["status"] == "error"
    response = api_client.post(
        f"/api/v1/studies/{study.pk}/remove-images/", {"reason": "duplicate upload"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["images_removed_reason"] == "duplicate upload"
