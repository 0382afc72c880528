"""API gaps closed for integrators: remove the images of one series or instance, export all of a
patient's studies."""

import io
import zipfile

import pytest

from accounts.models import AuditEvent
from studies.models import Instance

pytestmark = pytest.mark.django_db


def _image(study):
    return Instance.objects.filter(series__study=study, document_kind="").order_by("id").first()


def test_an_administrator_removes_one_instances_image(api_client, administrator, study):
    target = _image(study)
    api_client.force_authenticate(administrator)
    url = f"/api/v1/instances/{target.pk}/remove-images/"
    assert api_client.post(url, {}, format="json").status_code == 400  # the reason is required
    response = api_client.post(url, {"reason": "wrong patient"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["id"] == study.pk
    target.refresh_from_db()
    assert not target.file
    assert Instance.objects.filter(series__study=study).exclude(file="").count() == 2
    assert AuditEvent.objects.filter(action="remove_images").count() == 1


def test_an_administrator_removes_a_series_images(api_client, administrator, study):
    series = _image(study).series
    api_client.force_authenticate(administrator)
    response = api_client.post(
        f"/api/v1/series/{series.pk}/remove-images/", {"reason": "duplicate"}, format="json"
    )
    assert response.status_code == 200
    assert not series.instances.exclude(file="").exists()


@pytest.mark.parametrize("role", ["radiologist", "clinician", "registrar"])
def test_other_roles_cannot_remove_images(api_client, request, role, study):
    api_client.force_authenticate(request.getfixturevalue(role))
    target = _image(study)
    response = api_client.post(
        f"/api/v1/instances/{target.pk}/remove-images/", {"reason": "x"}, format="json"
    )
    assert response.status_code == 403
    target.refresh_from_db()
    assert target.file


def test_a_patients_studies_export_as_one_zip(api_client, clinician, study):
    api_client.force_authenticate(clinician)
    response = api_client.get("/api/v1/studies/patient-export/", {"patient": study.patient_id})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    content = b"".join(response.streaming_content)
    names = zipfile.ZipFile(io.BytesIO(content)).namelist()
    assert "DICOMDIR" in names
    assert AuditEvent.objects.filter(action="export", patient_id=study.patient_id).exists()


def test_a_patient_export_out_of_scope_or_missing_is_404_in_json(api_client, outsider, study):
    api_client.force_authenticate(outsider)
    response = api_client.get("/api/v1/studies/patient-export/", {"patient": study.patient_id})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    bad = api_client.get("/api/v1/studies/patient-export/", {"patient": "x"})
    assert bad.status_code == 400
