"""/api/v1/ for studies, series and instances: role matrix, scope, uploads, files and frames."""

import io
import zipfile

import pytest
from PIL import Image

from accounts.models import AuditEvent
from studies.models import Instance, Study

from .conftest import dicom_bytes, pdf_dicom_bytes
from .scope import needs_department_scope

pytestmark = pytest.mark.django_db

READERS = ["radiologist", "clinician", "registrar"]


def _login(api_client, request, role):
    user = request.getfixturevalue(role)
    api_client.force_authenticate(user)
    return user


def _image(study):
    return Instance.objects.filter(series__study=study, document_kind="").order_by("id").first()


def _document(study):
    return Instance.objects.filter(series__study=study).exclude(document_kind="").get()


# --- read: role matrix ------------------------------------------------------------------------
@pytest.mark.parametrize("role", READERS)
def test_readers_list_studies_and_the_list_is_audited(api_client, request, role, study):
    _login(api_client, request, role)
    response = api_client.get("/api/v1/studies/", {"modality": "CT"})
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [study.pk]
    event = AuditEvent.objects.filter(action="list", object_type="studies.study").get()
    assert event.details["patient_ids"] == [study.patient_id]


def test_the_list_paginates(api_client, clinician, study):
    api_client.force_authenticate(clinician)
    body = api_client.get("/api/v1/studies/", {"page_size": 1}).json()
    assert body["count"] == 1 and len(body["results"]) == 1


def test_a_bad_filter_is_a_400_with_the_error_shape(api_client, clinician, study):
    api_client.force_authenticate(clinician)
    response = api_client.get("/api/v1/studies/", {"category": "nonsense"})
    assert response.status_code == 400
    assert response.json()["status"] == "error"


def test_study_detail_has_series_and_instances_and_is_audited(api_client, clinician, study):
    api_client.force_authenticate(clinician)
    body = api_client.get(f"/api/v1/studies/{study.pk}/").json()
    assert body["patient"] == study.patient_id
    instances = [i for s in body["series"] for i in s["instances"]]
    assert len(instances) == 3
    assert sorted(i["is_image"] for i in instances) == [False, True, True]
    assert AuditEvent.objects.filter(action="view", object_id=str(study.pk)).exists()


def test_study_detail_counts_and_orders_as_the_list_does(
    api_client, clinician, study, django_assert_max_num_queries
):
    """The detail counts instances from the series it reads (no GROUP BY): the same number as
    the list's annotation, the series and instances in their order, in a fixed number of
    queries however many instances there are."""
    from studies import selectors

    api_client.force_authenticate(clinician)
    listed = api_client.get("/api/v1/studies/").json()["results"][0]
    with django_assert_max_num_queries(9):
        body = api_client.get(f"/api/v1/studies/{study.pk}/").json()
    assert body["instance_count"] == listed["instance_count"] == 3
    expected = [
        [i.pk for i in series.instances.all()]
        for series in selectors.study_series(study=Study.objects.get(pk=study.pk))
    ]
    assert [[i["id"] for i in s["instances"]] for s in body["series"]] == expected


def test_study_detail_of_a_study_without_series_counts_none(api_client, clinician, study):
    empty = Study.objects.create(
        study_uid="1.2.3.99", patient=study.patient, department=study.department
    )
    api_client.force_authenticate(clinician)
    body = api_client.get(f"/api/v1/studies/{empty.pk}/").json()
    assert (body["instance_count"], body["series"]) == (0, [])


def test_serializers_of_cached_fields_never_share_a_field(study):
    from studies.api.serializers import StudyDetailSerializer, StudySerializer

    first, second = StudyDetailSerializer(study), StudyDetailSerializer(study)
    assert first.fields["patient_name"] is not second.fields["patient_name"]
    assert first.fields["patient_name"].parent is first
    assert "series" in first.fields and "series" not in StudySerializer(study).fields
    assert first.data == second.data


def test_series_and_instance_detail(api_client, clinician, study):
    api_client.force_authenticate(clinician)
    instance = _image(study)
    series = api_client.get(f"/api/v1/series/{instance.series_id}/").json()
    assert series["study"] == study.pk and len(series["instances"]) == 2
    detail = api_client.get(f"/api/v1/instances/{instance.pk}/").json()
    assert detail["sop_instance_uid"] == instance.sop_instance_uid
    assert detail["study"] == study.pk


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/studies/{study}/",
        "/api/v1/series/{series}/",
        "/api/v1/instances/{instance}/",
        "/api/v1/instances/{instance}/file/",
        "/api/v1/instances/{instance}/thumbnail.png",
        "/api/v1/instances/{instance}/frames/0.png",
    ],
)
def test_guessed_ids_are_404_and_anonymous_is_401_and_no_role_is_403(
    api_client, clinician, researcher, study, url
):
    instance = _image(study)
    real = url.format(study=study.pk, series=instance.series_id, instance=instance.pk)
    guessed = url.format(study=999999, series=999999, instance=999999)
    assert api_client.get(real).status_code == 401
    api_client.force_authenticate(researcher)
    assert api_client.get(real).status_code == 403
    api_client.force_authenticate(clinician)
    assert api_client.get(guessed).status_code == 404


@needs_department_scope
@pytest.mark.parametrize("path", ["studies/{study}/", "instances/{instance}/file/"])
def test_an_outsider_gets_404(api_client, outsider, study, path):
    api_client.force_authenticate(outsider)
    url = "/api/v1/" + path.format(study=study.pk, instance=_image(study).pk)
    assert api_client.get(url).status_code == 404
    assert api_client.get("/api/v1/studies/").json()["results"] == []


# --- files and frames -------------------------------------------------------------------------
def test_the_original_download_is_the_stored_file_and_audited(api_client, clinician, study):
    api_client.force_authenticate(clinician)
    instance = _image(study)
    response = api_client.get(f"/api/v1/instances/{instance.pk}/file/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom"
    assert b"".join(response.streaming_content)[128:132] == b"DICM"
    assert AuditEvent.objects.filter(
        action="download", object_id=str(instance.pk), patient_id=study.patient_id
    ).exists()


def test_a_document_downloads_too(api_client, clinician, study):
    api_client.force_authenticate(clinician)
    response = api_client.get(f"/api/v1/instances/{_document(study).pk}/file/")
    assert response.status_code == 200


def test_a_frame_renders_as_8_bit_png_with_window_and_max_size(api_client, clinician, study):
    api_client.force_authenticate(clinician)
    instance = _image(study)
    response = api_client.get(
        f"/api/v1/instances/{instance.pk}/frames/0.png",
        {"window": "100,200", "max_size": 16},
        HTTP_ACCEPT="image/png",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "L" and image.size == (16, 16)
    # frames count inside the study's 15-minute viewing window: one event for many frames
    api_client.get(f"/api/v1/instances/{instance.pk}/frames/0.png", HTTP_ACCEPT="image/png")
    events = AuditEvent.objects.filter(
        action="view", object_type="studies.study", object_id=str(study.pk), user_id=clinician.pk
    )
    assert events.count() == 1


@pytest.mark.parametrize(
    "params, status, text",
    [
        ({"window": "abc"}, 400, "centre,width"),
        ({"window": "40,0"}, 400, "positive"),
        ({"max_size": "0"}, 400, ""),
    ],
)
def test_bad_frame_parameters_are_400(api_client, clinician, study, params, status, text):
    api_client.force_authenticate(clinician)
    response = api_client.get(f"/api/v1/instances/{_image(study).pk}/frames/0.png", params)
    assert response.status_code == status
    assert text in response.json()["error"]["message"]


def test_a_frame_out_of_range_is_a_clear_404(api_client, clinician, study):
    api_client.force_authenticate(clinician)
    response = api_client.get(f"/api/v1/instances/{_image(study).pk}/frames/5.png")
    assert response.status_code == 404
    assert "1 frame" in response.json()["error"]["message"]


def test_a_document_has_no_frame_or_thumbnail(api_client, clinician, study):
    api_client.force_authenticate(clinician)
    doc = _document(study)
    for url in (
        f"/api/v1/instances/{doc.pk}/frames/0.png",
        f"/api/v1/instances/{doc.pk}/thumbnail.png",
    ):
        response = api_client.get(url)
        assert response.status_code == 404
        assert "document" in response.json()["error"]["message"]


def test_the_thumbnail_is_made_on_demand_and_audited(api_client, clinician, study):
    api_client.force_authenticate(clinician)
    instance = _image(study)
    assert not instance.derived.exists()
    response = api_client.get(f"/api/v1/instances/{instance.pk}/thumbnail.png")
    assert response.status_code == 200
    assert Image.open(io.BytesIO(b"".join(response.streaming_content))).format == "PNG"
    assert instance.derived.count() == 1
    api_client.get(f"/api/v1/instances/{instance.pk}/thumbnail.png")
    api_client.get(f"/api/v1/studies/{study.pk}/")
    # thumbnails and the study itself share the study's viewing window: one event
    events = AuditEvent.objects.filter(
        action="view",
        object_type="studies.study",
        object_id=str(study.pk),
        patient_id=study.patient_id,
    )
    assert events.count() == 1
    response = api_client.get(f"/api/v1/instances/{instance.pk}/file/")
    assert AuditEvent.objects.filter(action="download", user_id=clinician.pk).count() == 1


def test_removed_images_are_a_clear_404(api_client, clinician, study):
    api_client.force_authenticate(clinician)
    instance = _image(study)
    Instance.objects.filter(pk=instance.pk).update(file="")
    response = api_client.get(f"/api/v1/instances/{instance.pk}/file/")
    assert response.status_code == 404
    assert "removed" in response.json()["error"]["message"]


# --- edit -------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["radiologist", "registrar"])
def test_editors_patch_the_editable_fields_audited(api_client, request, role, study):
    _login(api_client, request, role)
    response = api_client.patch(
        f"/api/v1/studies/{study.pk}/",
        {"category": "chest_xray", "urgency": "urgent", "clinical_question": "Пневмония?"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    study.refresh_from_db()
    assert (study.category, study.urgency) == ("chest_xray", "urgent")
    event = AuditEvent.objects.get(action="update", object_id=str(study.pk))
    assert event.details["changes"]["category"] == ["ct", "chest_xray"]


def test_read_only_fields_are_ignored_by_patch(api_client, registrar, study):
    api_client.force_authenticate(registrar)
    api_client.patch(f"/api/v1/studies/{study.pk}/", {"study_uid": "9.9"}, format="json")
    study.refresh_from_db()
    assert study.study_uid == "1.2.3.4"


def test_a_bad_category_is_a_400(api_client, registrar, study):
    api_client.force_authenticate(registrar)
    response = api_client.patch(f"/api/v1/studies/{study.pk}/", {"category": "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["category"]


def test_a_clinician_may_not_edit(api_client, clinician, study):
    api_client.force_authenticate(clinician)
    response = api_client.patch(f"/api/v1/studies/{study.pk}/", {"urgency": "stat"}, format="json")
    assert response.status_code == 403


def test_put_is_not_allowed(api_client, registrar, study):
    api_client.force_authenticate(registrar)
    assert api_client.put(f"/api/v1/studies/{study.pk}/", {}, format="json").status_code == 405


# --- upload -----------------------------------------------------------------------------------
def _file(data: bytes, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def test_upload_returns_one_result_per_file(api_client, registrar, patient):
    api_client.force_authenticate(registrar)
    same = dicom_bytes()
    response = api_client.post(
        "/api/v1/instances/",
        {
            "file": [
                _file(same, "a.dcm"),
                _file(same, "a-again.dcm"),
                _file(b"%PDF-1.4 renamed", "report.dcm"),
            ],
            "urgency": "stat",
            "clinical_question": "Перелом?",
        },
        format="multipart",
    )
    assert response.status_code == 200
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["imported", "duplicate", "rejected"]
    assert "PDF" in body["results"][2]["message"]
    assert body["counts"] == {"imported": 1, "duplicate": 1, "rejected": 1}
    study = Study.objects.get()
    assert (study.urgency, study.clinical_question) == ("stat", "Перелом?")


def test_a_zip_gives_one_result_per_member(api_client, registrar, patient):
    api_client.force_authenticate(registrar)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("cd/1.dcm", dicom_bytes())
        zf.writestr("cd/2.dcm", pdf_dicom_bytes())
        zf.writestr("../evil.dcm", dicom_bytes())
    response = api_client.post(
        "/api/v1/instances/", {"file": [_file(buffer.getvalue(), "cd.zip")]}, format="multipart"
    )
    results = response.json()["results"]
    by_name = {r["name"]: r["status"] for r in results}
    assert by_name["cd.zip/cd/1.dcm"] == "imported"
    assert by_name["cd.zip/cd/2.dcm"] == "imported"
    assert "rejected" in by_name.values()


def test_a_png_needs_the_study_fields_and_imports_with_them(api_client, registrar, patient):
    api_client.force_authenticate(registrar)
    buffer = io.BytesIO()
    Image.new("L", (20, 10), 128).save(buffer, "PNG")
    bare = api_client.post(
        "/api/v1/instances/", {"file": [_file(buffer.getvalue(), "x.png")]}, format="multipart"
    )
    assert bare.json()["results"][0]["status"] == "rejected"
    assert "patient" in bare.json()["results"][0]["message"]
    response = api_client.post(
        "/api/v1/instances/",
        {
            "file": [_file(buffer.getvalue(), "x.png")],
            "patient": patient.pk,
            "category": "chest_xray",
            "body_part": "CHEST",
            "view_position": "PA",
            "department": "radiology",
        },
        format="multipart",
    )
    (result,) = response.json()["results"]
    assert result["status"] == "imported", result["message"]
    assert result["patient"] == patient.pk


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"patient": 999999}, "patient"),
        ({"study": 999999}, "study"),
        ({"department": "nowhere"}, "department"),
        ({"category": "nonsense"}, "category"),
    ],
)
def test_bad_upload_fields_are_400_with_the_field_named(api_client, registrar, fields, field):
    api_client.force_authenticate(registrar)
    response = api_client.post(
        "/api/v1/instances/",
        {"file": [_file(dicom_bytes(), "a.dcm")], **fields},
        format="multipart",
    )
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert not Instance.objects.exists()


def test_a_department_the_uploader_is_not_in_is_refused(api_client, registrar, other_department):
    api_client.force_authenticate(registrar)
    response = api_client.post(
        "/api/v1/instances/",
        {"file": [_file(dicom_bytes(), "a.dcm")], "department": "ent"},
        format="multipart",
    )
    assert response.status_code == 400


def test_upload_without_a_file_is_400(api_client, registrar):
    api_client.force_authenticate(registrar)
    response = api_client.post("/api/v1/instances/", {}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()["error"]["details"]


def test_upload_needs_the_add_permission(api_client, researcher):
    api_client.force_authenticate(researcher)
    response = api_client.post(
        "/api/v1/instances/", {"file": [_file(dicom_bytes(), "a.dcm")]}, format="multipart"
    )
    assert response.status_code == 403


def test_upload_requires_authentication(api_client):
    response = api_client.post(
        "/api/v1/instances/", {"file": [_file(dicom_bytes(), "a.dcm")]}, format="multipart"
    )
    assert response.status_code == 401


def test_the_schema_names_the_study_endpoints(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    for path in (
        "/api/v1/studies/",
        "/api/v1/studies/{id}/",
        "/api/v1/instances/",
        "/api/v1/instances/{id}/file/",
        "/api/v1/instances/{id}/frames/{frame}.png",
    ):
        assert path in schema["paths"], path
