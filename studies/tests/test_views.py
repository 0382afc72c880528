"""Study pages: list, detail (tags, edit), files, thumbnails, upload, patient page block."""

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from studies.models import Instance

from .scope import needs_department_scope

pytestmark = pytest.mark.django_db

READERS = ["radiologist", "clinician", "registrar"]


def _login(client, request, role):
    user = request.getfixturevalue(role)
    client.force_login(user)
    return user


def _image(study):
    return Instance.objects.filter(series__study=study, document_kind="").order_by("id").first()


@pytest.mark.parametrize("role", READERS)
def test_the_list_is_shown_to_readers_and_audited(client, request, role, study):
    _login(client, request, role)
    response = client.get(reverse("studies:list"), {"category": "ct"})
    assert response.status_code == 200
    assert "Иванов" in response.content.decode()
    assert AuditEvent.objects.get(action="list").details["patient_ids"] == [study.patient_id]


def test_the_list_filters_like_the_api(client, clinician, study):
    client.force_login(clinician)
    response = client.get(reverse("studies:list"), {"modality": "MR"})
    assert response.context["page"].paginator.count == 0


def test_the_list_with_a_bad_date_shows_nothing_not_a_500(client, clinician, study):
    client.force_login(clinician)
    response = client.get(reverse("studies:list"), {"date_after": "31.02.2026"})
    assert response.status_code == 200
    assert response.context["page"].paginator.count == 0


def test_pages_require_login(client, study):
    for url in (
        reverse("studies:list"),
        reverse("studies:detail", args=[study.pk]),
        reverse("studies:upload"),
        reverse("studies:instance-file", args=[_image(study).pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_pages_are_forbidden_without_a_role(client, researcher, study):
    client.force_login(researcher)
    assert client.get(reverse("studies:list")).status_code == 403
    assert client.get(reverse("studies:detail", args=[study.pk])).status_code == 403
    assert client.get(reverse("studies:upload")).status_code == 403


@pytest.mark.parametrize("role", READERS)
def test_detail_shows_series_thumbnails_and_documents_and_is_audited(client, request, role, study):
    _login(client, request, role)
    response = client.get(reverse("studies:detail", args=[study.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert body.count(reverse("studies:instance-thumbnail", args=[_image(study).pk])) == 1
    assert len(response.context["documents"]) == 1
    assert AuditEvent.objects.filter(action="view", object_id=str(study.pk)).exists()


def test_detail_of_a_guessed_id_is_404(client, clinician):
    client.force_login(clinician)
    assert client.get(reverse("studies:detail", args=[999999])).status_code == 404


@needs_department_scope
def test_an_outsider_gets_404_everywhere(client, outsider, study):
    client.force_login(outsider)
    assert client.get(reverse("studies:detail", args=[study.pk])).status_code == 404
    assert client.get(reverse("studies:instance-file", args=[_image(study).pk])).status_code == 404


def test_the_tag_browser_lists_an_instances_tags(client, clinician, study):
    client.force_login(clinician)
    instance = _image(study)
    response = client.get(reverse("studies:detail", args=[study.pk]), {"tags": instance.pk})
    body = response.content.decode()
    assert "(0008,0018)" in body and instance.sop_instance_uid in body
    assert "(7FE0,0010)" not in body  # read with stop_before_pixels


def test_the_tag_browser_refuses_an_instance_of_another_study(client, clinician, study):
    from accounts.audit import Actor
    from studies.ingest import ingest_file

    from .conftest import dicom_bytes

    other = ingest_file(actor=Actor(user=clinician), data=dicom_bytes(), name="b.dcm")
    client.force_login(clinician)
    response = client.get(reverse("studies:detail", args=[study.pk]), {"tags": other.instance_id})
    assert response.status_code == 404
    bad = client.get(reverse("studies:detail", args=[study.pk]), {"tags": "abc"})
    assert bad.status_code == 404


def test_the_thumbnail_page_endpoint_serves_a_png(client, clinician, study):
    client.force_login(clinician)
    response = client.get(reverse("studies:instance-thumbnail", args=[_image(study).pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"


def test_a_document_downloads_from_the_page_audited(client, clinician, study):
    client.force_login(clinician)
    document = Instance.objects.filter(series__study=study).exclude(document_kind="").get()
    response = client.get(reverse("studies:instance-file", args=[document.pk]))
    assert response.status_code == 200
    assert AuditEvent.objects.filter(action="download", object_id=str(document.pk)).exists()


def test_a_registrar_edits_the_study(client, registrar, study):
    client.force_login(registrar)
    response = client.post(
        reverse("studies:detail", args=[study.pk]),
        {
            "category": "spine_xray",
            "body_part": "SPINE",
            "view_position": "AP",
            "clinical_question": "Сколиоз?",
            "urgency": "urgent",
        },
    )
    assert response.status_code == 302
    study.refresh_from_db()
    assert (study.category, study.body_part, study.urgency) == ("spine_xray", "SPINE", "urgent")
    assert AuditEvent.objects.filter(action="update", object_id=str(study.pk)).exists()


def test_a_bad_edit_shows_the_form_again(client, registrar, study):
    client.force_login(registrar)
    response = client.post(reverse("studies:detail", args=[study.pk]), {"category": "x"})
    assert response.status_code == 200
    assert response.context["form"].errors["category"]


def test_a_clinician_sees_no_edit_form_and_may_not_post(client, clinician, study):
    client.force_login(clinician)
    page = client.get(reverse("studies:detail", args=[study.pk]))
    assert page.context["can_change"] is False
    assert "Edit study" not in page.content.decode()
    response = client.post(reverse("studies:detail", args=[study.pk]), {"urgency": "stat"})
    assert response.status_code == 403


def test_the_upload_page_defaults_to_the_users_only_department(client, registrar):
    client.force_login(registrar)
    response = client.get(reverse("studies:upload"))
    assert response.status_code == 200
    assert response.context["default_department"] == "radiology"
    assert "webkitdirectory" in response.content.decode()


def test_the_patient_page_shows_the_patients_studies(client, clinician, study):
    client.force_login(clinician)
    response = client.get(study.patient.get_absolute_url())
    body = response.content.decode()
    assert reverse("studies:detail", args=[study.pk]) in body
    assert reverse("studies:instance-thumbnail", args=[_image(study).pk]) in body


def test_the_patient_page_shows_no_studies_block_without_the_permission(
    client, administrator, study
):
    client.force_login(administrator)
    body = client.get(study.patient.get_absolute_url()).content.decode()
    assert reverse("studies:detail", args=[study.pk]) not in body
