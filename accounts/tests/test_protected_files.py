import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.test import RequestFactory

from accounts.models import AuditEvent
from accounts.protected_files import protected_file_response

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(tmp_path):
    storage = FileSystemStorage(location=tmp_path)
    name = storage.save("1.2.3/image.dcm", ContentFile(b"DICM-bytes"))
    return storage, name


def _request(user):
    request = RequestFactory().get("/download", REMOTE_ADDR="10.0.0.9")
    request.user = user
    return request


def test_it_audits_then_streams_the_file(clinician, stored):
    storage, name = stored
    response = protected_file_response(
        _request(clinician),
        name=name,
        object_type="studies.instance",
        object_id=7,
        patient_id=42,
        download_name="image.dcm",
        storage=storage,
    )
    assert b"".join(response.streaming_content) == b"DICM-bytes"
    assert response["Cache-Control"] == "private, no-store"
    assert "attachment" in response["Content-Disposition"]
    event = AuditEvent.objects.get(action="download")
    assert (event.action, event.patient_id, event.object_id, event.ip) == (
        "download",
        42,
        "7",
        "10.0.0.9",
    )


def test_behind_nginx_it_hands_the_file_over_with_x_accel_redirect(clinician, stored, settings):
    settings.PROTECTED_FILES_BACKEND = "nginx"
    storage, name = stored
    response = protected_file_response(
        _request(clinician),
        name=name,
        object_type="studies.instance",
        object_id=7,
        patient_id=42,
        download_name="image.dcm",
        storage=storage,
    )
    assert response["X-Accel-Redirect"] == "/_protected/" + name
    assert response.content == b""
    assert AuditEvent.objects.filter(action="download").count() == 1


def test_media_has_no_public_url(client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "secret.dcm").write_bytes(b"x")
    assert client.get("/protected/secret.dcm").status_code == 404
    assert client.get("/media/secret.dcm").status_code == 404
