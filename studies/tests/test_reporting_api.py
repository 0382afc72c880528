"""``/api/v1/reports/``, ``/api/v1/worklist/`` and claim/release: roles, scope, errors, audit."""

import io

import pytest
from django.urls import reverse

from accounts.audit import Actor
from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from patients.tests.factories import PatientFactory
from studies.models import ReadingStatus, Report
from studies.reporting import services

from .reporting_helpers import make_study, on_postgres, signed_report

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(department):
    return PatientFactory(mrn="A-1", department=department, last_name="Иванов", first_name="Иван")


@pytest.fixture
def study(patient, department):
    return make_study(patient, department)


def _error(response, status, code=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == "error" and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def test_draft_update_sign_amend_through_the_api(api_client, radiologist, study):
    api_client.force_authenticate(radiologist)
    created = api_client.post(
        "/api/v1/reports/",
        {"study": study.pk, "conclusion": "Черновик", "finding_codes": ["pneumonia"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    updated = api_client.patch(
        f"/api/v1/reports/{pk}/", {"conclusion": "Пневмония справа"}, format="json"
    )
    assert updated.json()["conclusion"] == "Пневмония справа"
    signed = api_client.post(f"/api/v1/reports/{pk}/sign/", {}, format="json")
    assert signed.json()["status"] == "signed" and signed.json()["signed_at"]
    _error(api_client.patch(f"/api/v1/reports/{pk}/", {"conclusion": "x"}, format="json"), 400)
    amended = api_client.post(
        f"/api/v1/reports/{pk}/amend/", {"reason": "Уточнение"}, format="json"
    )
    assert amended.status_code == 201
    assert amended.json()["version"] == 2 and amended.json()["amends"] == pk
    assert Report.objects.get(pk=pk).conclusion == "Пневмония справа"


def test_a_second_report_on_the_study_is_refused(api_client, radiologist, study):
    signed_report(study, radiologist)
    api_client.force_authenticate(radiologist)
    error = _error(api_client.post("/api/v1/reports/", {"study": study.pk}, format="json"), 400)
    assert "already has a report" in error["message"]


def test_unknown_study_and_codes_are_400(api_client, radiologist, study):
    api_client.force_authenticate(radiologist)
    _error(api_client.post("/api/v1/reports/", {"study": 999999}, format="json"), 400, "invalid")
    error = _error(
        api_client.post(
            "/api/v1/reports/", {"study": study.pk, "finding_codes": ["nope"]}, format="json"
        ),
        400,
    )
    assert "nope" in error["message"]


@pytest.mark.parametrize("role", ["clinician", "registrar", "researcher"])
def test_only_radiologists_write(api_client, request, role, study):
    api_client.force_authenticate(request.getfixturevalue(role))
    _error(api_client.post("/api/v1/reports/", {"study": study.pk}, format="json"), 403)
    assert not Report.objects.exists()


def test_clinicians_list_signed_reports_only_and_the_list_is_audited(
    api_client, clinician, radiologist, study, patient, department
):
    signed = signed_report(study, radiologist)
    other = make_study(patient, department)
    services.report_draft_create(actor=Actor(user=radiologist), study=other, conclusion="draft")
    api_client.force_authenticate(clinician)
    response = api_client.get("/api/v1/reports/")
    assert [r["id"] for r in response.json()["results"]] == [signed.pk]
    event = AuditEvent.objects.get(action="list", object_type="studies.report")
    assert event.details["patient_ids"] == [patient.pk]


def test_list_search_with_highlight_and_study_filters(api_client, clinician, radiologist, study):
    signed_report(study, radiologist, conclusion="Пневмония нижней доли")
    api_client.force_authenticate(clinician)
    word = "пневмония" if on_postgres() else "Пневмони"
    response = api_client.get("/api/v1/reports/", {"text": word, "category": study.category})
    (row,) = response.json()["results"]
    assert "<mark>" in row["highlight"]
    assert api_client.get("/api/v1/reports/", {"text": word, "category": "ct"}).json()["count"] == 0


def test_retrieve_is_audited_and_registrars_are_forbidden(
    api_client, clinician, registrar, radiologist, study
):
    report = signed_report(study, radiologist)
    api_client.force_authenticate(clinician)
    assert api_client.get(f"/api/v1/reports/{report.pk}/").status_code == 200
    assert AuditEvent.objects.filter(action="view", object_type="studies.report").count() == 1
    api_client.force_authenticate(registrar)
    _error(api_client.get(f"/api/v1/reports/{report.pk}/"), 403)
    _error(api_client.get("/api/v1/reports/"), 403)


def test_outsiders_get_404(api_client, outsider, radiologist, study):
    report = signed_report(study, radiologist)
    api_client.force_authenticate(outsider)
    _error(api_client.get(f"/api/v1/reports/{report.pk}/"), 404)
    _error(api_client.get(f"/api/v1/reports/{report.pk}/pdf/"), 404)


def test_pdf_through_the_api_is_audited(api_client, clinician, radiologist, study):
    report = signed_report(study, radiologist)
    api_client.force_authenticate(clinician)
    response = api_client.get(f"/api/v1/reports/{report.pk}/pdf/")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    from pypdf import PdfReader

    assert "Иванов Иван" in PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    assert AuditEvent.objects.filter(action="print", object_id=str(report.pk)).exists()


def test_no_pdf_of_a_draft(api_client, radiologist, study):
    draft = services.report_draft_create(actor=Actor(user=radiologist), study=study, conclusion="x")
    api_client.force_authenticate(radiologist)
    _error(api_client.get(f"/api/v1/reports/{draft.pk}/pdf/"), 403)


def test_claim_conflict_is_409_and_release_by_administrator(
    api_client, radiologist, administrator, department, study
):
    colleague = UserFactory(username="colleague", role="Radiologist", departments=[department])
    api_client.force_authenticate(radiologist)
    claimed = api_client.post(f"/api/v1/studies/{study.pk}/claim/")
    assert claimed.status_code == 200
    assert claimed.json()["reading_status"] == ReadingStatus.IN_PROGRESS
    api_client.force_authenticate(colleague)
    error = _error(api_client.post(f"/api/v1/studies/{study.pk}/claim/"), 409, "claimed")
    assert "Смирнова Анна" in error["message"]
    _error(api_client.post(f"/api/v1/studies/{study.pk}/release/"), 403)
    api_client.force_authenticate(administrator)
    released = api_client.post(f"/api/v1/studies/{study.pk}/release/")
    assert released.status_code == 200 and released.json()["claimed_by"] is None


def test_claim_of_a_study_out_of_scope_is_404(api_client, department):
    stranger = UserFactory(username="stranger", role="Radiologist", departments=[])
    from accounts.tests.factories import DepartmentFactory

    stranger.departments.set([DepartmentFactory(code="far", name="Far")])
    study = make_study(PatientFactory(mrn="F-1", department=department), department)
    api_client.force_authenticate(stranger)
    _error(api_client.post(f"/api/v1/studies/{study.pk}/claim/"), 404)


def test_worklists_through_the_api(api_client, radiologist, study, patient, department):
    stat = make_study(patient, department, urgency="stat")
    services.study_claim(actor=Actor(user=radiologist), study=study)
    api_client.force_authenticate(radiologist)
    department_list = api_client.get("/api/v1/worklist/").json()["results"]
    assert [r["id"] for r in department_list] == [stat.pk, study.pk]
    mine = api_client.get("/api/v1/worklist/mine/").json()["results"]
    assert [r["id"] for r in mine] == [study.pk]
    filtered = api_client.get("/api/v1/worklist/", {"urgency": "stat"}).json()["results"]
    assert [r["id"] for r in filtered] == [stat.pk]
    assert reverse("worklist-list") == "/api/v1/worklist/"


def test_the_schema_documents_the_reporting_api(api_client, administrator):
    api_client.force_authenticate(administrator)
    response = api_client.get("/api/schema/", {"format": "json"})
    paths = response.json()["paths"]
    for path in (
        "/api/v1/reports/",
        "/api/v1/reports/{id}/sign/",
        "/api/v1/reports/{id}/pdf/",
        "/api/v1/studies/{id}/claim/",
        "/api/v1/worklist/mine/",
    ):
        assert path in paths, path


def test_a_draft_on_a_study_held_by_another_is_409(api_client, radiologist, department, study):
    colleague = UserFactory(username="colleague", role="Radiologist", departments=[department])
    services.study_claim(actor=Actor(user=colleague), study=study)
    api_client.force_authenticate(radiologist)
    _error(api_client.post("/api/v1/reports/", {"study": study.pk}, format="json"), 409, "claimed")
    assert not Report.objects.exists()


def _queries(api_client, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert api_client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", ["/api/v1/reports/", "/api/v1/worklist/"])
def test_list_queries_do_not_grow_with_rows(api_client, radiologist, patient, department, url):
    def add(n):
        for _ in range(n):
            study = make_study(patient, department)
            if url.startswith("/api/v1/reports/"):
                signed_report(study, radiologist)

    add(2)
    api_client.force_authenticate(radiologist)
    _queries(api_client, url)  # permissions cached on the user
    first = _queries(api_client, url)
    add(5)
    assert _queries(api_client, url) == first


def test_worklist_filters_by_reading_status_and_claim(api_client, radiologist, patient, department):
    free = make_study(patient, department)
    held = make_study(patient, department)
    preliminary = make_study(patient, department)
    services.study_claim(actor=Actor(user=radiologist), study=held)
    signed_report(preliminary, radiologist, preliminary=True)
    api_client.force_authenticate(radiologist)

    def ids(**params):
        return {r["id"] for r in api_client.get("/api/v1/worklist/", params).json()["results"]}

    assert ids() == {free.pk, held.pk, preliminary.pk}
    assert ids(reading_status="preliminary") == {preliminary.pk}
    assert ids(reading_status="unread") == {free.pk}
    assert ids(claimed="true") == {held.pk}
    assert ids(claimed="false") == {free.pk, preliminary.pk}
    _error(api_client.get("/api/v1/worklist/", {"reading_status": "nonsense"}), 400)


def test_report_list_filters_by_status_and_study(api_client, radiologist, patient, department):
    signed = signed_report(make_study(patient, department), radiologist)
    other = make_study(patient, department)
    draft = services.report_draft_create(actor=Actor(user=radiologist), study=other)
    api_client.force_authenticate(radiologist)

    def ids(**params):
        return [r["id"] for r in api_client.get("/api/v1/reports/", params).json()["results"]]

    assert ids(status="draft") == [draft.pk]
    assert ids(status="signed") == [signed.pk]
    assert ids(study=other.pk) == [draft.pk]


def test_a_draft_from_a_template_through_the_api(api_client, radiologist, study):
    from studies.models import ReportTemplate

    template = ReportTemplate.objects.create(
        category=study.category, name="Норма", conclusion="Без патологии."
    )
    api_client.force_authenticate(radiologist)
    response = api_client.post(
        "/api/v1/reports/", {"study": study.pk, "template": template.pk}, format="json"
    )
    assert response.status_code == 201 and response.json()["conclusion"] == "Без патологии."


def test_signing_and_amending_retried_with_an_idempotency_key_happen_once(
    api_client, radiologist, study
):
    api_client.force_authenticate(radiologist)
    pk = api_client.post(
        "/api/v1/reports/", {"study": study.pk, "conclusion": "Норма"}, format="json"
    ).json()["id"]
    sign = f"/api/v1/reports/{pk}/sign/"
    first = api_client.post(sign, {}, format="json", HTTP_IDEMPOTENCY_KEY="sign-1")
    again = api_client.post(sign, {}, format="json", HTTP_IDEMPOTENCY_KEY="sign-1")
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    # without the key the retry is refused: the report is signed already
    _error(api_client.post(sign, {}, format="json"), 400)
    amend = f"/api/v1/reports/{pk}/amend/"
    body = {"reason": "Уточнение"}
    one = api_client.post(amend, body, format="json", HTTP_IDEMPOTENCY_KEY="amend-1")
    two = api_client.post(amend, body, format="json", HTTP_IDEMPOTENCY_KEY="amend-1")
    assert one.status_code == two.status_code == 201 and one.json()["id"] == two.json()["id"]
    assert Report.objects.filter(study=study).count() == 2
    reused = api_client.post(
        amend, {"reason": "Другое"}, format="json", HTTP_IDEMPOTENCY_KEY="amend-1"
    )
    assert reused.status_code == 422


def test_invalid_report_filters_are_a_400_naming_the_filter(api_client, radiologist):
    api_client.force_authenticate(radiologist)
    error = _error(api_client.get("/api/v1/reports/?patient=abc"), 400)
    assert "patient" in str(error["details"])
