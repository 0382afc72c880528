"""The upload API's file handler: each file hashed while it streams in, kept in memory while a
request's files stay within STUDIES_UPLOAD_MEMORY_BYTES altogether, the rest on disk."""

import hashlib

import pytest
from django.core.files.uploadedfile import (
    InMemoryUploadedFile,
    SimpleUploadedFile,
    TemporaryUploadedFile,
)

from studies.models import Instance
from studies.uploads import IngestUploadHandler

from .conftest import dicom_bytes

pytestmark = pytest.mark.django_db


def _feed(handler, name: str, data: bytes, chunk: int = 1000):
    handler.new_file("file", name, "application/dicom", len(data))
    for start in range(0, len(data), chunk):
        handler.receive_data_chunk(data[start : start + chunk], start)
    return handler.file_complete(len(data))


def test_files_stay_in_memory_up_to_the_limit_then_go_to_disk(settings):
    settings.STUDIES_UPLOAD_MEMORY_BYTES = 5000
    handler = IngestUploadHandler()
    first, second = b"a" * 3000, b"b" * 3000
    kept = _feed(handler, "a.dcm", first)
    spooled = _feed(handler, "b.dcm", second)
    assert isinstance(kept, InMemoryUploadedFile)
    assert isinstance(spooled, TemporaryUploadedFile)
    assert (kept.read(), spooled.read()) == (first, second)
    assert (kept.size, spooled.size) == (3000, 3000)
    assert kept.sha256 == hashlib.sha256(first).hexdigest()
    assert spooled.sha256 == hashlib.sha256(second).hexdigest()
    spooled.close()


@pytest.mark.usefixtures("patient")
@pytest.mark.parametrize("limit", [0, 16 * 1024 * 1024])
def test_an_upload_stores_each_file_with_its_sha256(api_client, registrar, settings, limit):
    settings.STUDIES_UPLOAD_MEMORY_BYTES = limit  # all on disk, or all in memory
    files = [dicom_bytes(), dicom_bytes()]
    api_client.force_authenticate(registrar)
    response = api_client.post(
        "/api/v1/instances/",
        {"file": [SimpleUploadedFile(f"f{i}.dcm", data) for i, data in enumerate(files)]},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["imported", "imported"]
    for result, data in zip(results, files, strict=True):
        instance = Instance.objects.get(pk=result["instance"])
        assert instance.sha256 == hashlib.sha256(data).hexdigest()
        with instance.file.open("rb") as handle:
            assert handle.read() == data


@pytest.mark.usefixtures("patient")
def test_a_browser_upload_with_its_csrf_token_is_handled_too(registrar):
    """The upload page posts with the session and the CSRF header: the CSRF check reads the
    body during authentication, so the handler must be in place before it (it once was set
    after, and every browser upload failed)."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(registrar)
    client.get("/studies/upload/")  # the page sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    data = dicom_bytes()
    response = client.post(
        "/api/v1/instances/",
        {"file": SimpleUploadedFile("a.dcm", data)},
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200, response.content
    (result,) = response.json()["results"]
    assert result["status"] == "imported"
    assert Instance.objects.get(pk=result["instance"]).sha256 == hashlib.sha256(data).hexdigest()
    refused = Client(enforce_csrf_checks=True)
    refused.force_login(registrar)
    no_token = refused.post("/api/v1/instances/", {"file": SimpleUploadedFile("b.dcm", data)})
    assert no_token.status_code == 403
