"""Reading pages: worklists, claim/release, the study page section, the report editor with
autosave, signing and amending, turnaround; every role."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.audit import Actor
from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from patients.tests.factories import PatientFactory
from studies.models import ReadingStatus, Report, ReportTemplate
from studies.reporting import services

from .reporting_helpers import make_study, signed_report

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(department):
    return PatientFactory(mrn="V-1", department=department, last_name="Иванов", first_name="Иван")


@pytest.fixture
def study(patient, department):
    return make_study(patient, department, clinical_question="Пневмония?")


@pytest.fixture
def draft(radiologist, study):
    return services.report_draft_create(
        actor=Actor(user=radiologist), study=study, conclusion="Черновик заключения"
    )


def test_worklist_orders_by_urgency_then_ai_priority_then_age(
    client, radiologist, patient, department
):
    now = timezone.now()
    old_routine = make_study(patient, department, study_datetime=now - dt.timedelta(days=2))
    new_routine = make_study(patient, department, study_datetime=now - dt.timedelta(hours=1))
    ai_routine = make_study(
        patient, department, study_datetime=now - dt.timedelta(minutes=5), ai_priority=50
    )
    stat = make_study(patient, department, urgency="stat", study_datetime=now)
    urgent = make_study(patient, department, urgency="urgent", study_datetime=now)
    done = make_study(patient, department, urgency="stat")
    signed_report(done, radiologist)
    client.force_login(radiologist)
    response = client.get(reverse("reporting:worklist"))
    assert response.status_code == 200
    assert list(response.context["page"].object_list) == [
        stat,
        urgent,
        ai_routine,
        old_routine,
        new_routine,
    ]
    assert AuditEvent.objects.filter(action="list", details__worklist="department").exists()


def test_worklist_takes_the_study_filters(client, radiologist, patient, department):
    ct = make_study(patient, department, category="ct")
    make_study(patient, department, category="chest_xray")
    client.force_login(radiologist)
    response = client.get(reverse("reporting:worklist"), {"category": "ct"})
    assert list(response.context["page"].object_list) == [ct]


def test_my_worklist_holds_my_claims_only(client, radiologist, department, patient):
    mine = make_study(patient, department)
    other = make_study(patient, department)
    colleague = UserFactory(username="colleague", role="Radiologist", departments=[department])
    services.study_claim(actor=Actor(user=radiologist), study=mine)
    services.study_claim(actor=Actor(user=colleague), study=other)
    client.force_login(radiologist)
    response = client.get(reverse("reporting:my-worklist"))
    assert list(response.context["page"].object_list) == [mine]
    body = client.get(reverse("reporting:worklist")).content.decode()
    assert "Смирнова Анна" in body  # others see who holds a study


def test_worklists_are_closed_to_researchers_and_my_worklist_to_clinicians(
    client, researcher, clinician
):
    client.force_login(researcher)
    assert client.get(reverse("reporting:worklist")).status_code == 403
    client.force_login(clinician)
    assert client.get(reverse("reporting:my-worklist")).status_code == 403


def test_claim_and_release_from_the_study_page(client, radiologist, study):
    client.force_login(radiologist)
    page = client.get(reverse("studies:detail", args=[study.pk])).content.decode()
    assert reverse("reporting:claim", args=[study.pk]) in page
    client.post(reverse("reporting:claim", args=[study.pk]))
    study.refresh_from_db()
    assert study.claimed_by == radiologist
    page = client.get(reverse("studies:detail", args=[study.pk])).content.decode()
    assert "Being read by Смирнова Анна" in page
    client.post(reverse("reporting:release", args=[study.pk]))
    study.refresh_from_db()
    assert study.claimed_by is None and study.reading_status == ReadingStatus.UNREAD


def test_a_claim_held_by_another_is_reported_not_taken(client, radiologist, department, study):
    colleague = UserFactory(username="colleague", role="Radiologist", departments=[department])
    services.study_claim(actor=Actor(user=colleague), study=study)
    client.force_login(radiologist)
    response = client.post(reverse("reporting:claim", args=[study.pk]), follow=True)
    assert "This study is being read by" in response.content.decode()
    study.refresh_from_db()
    assert study.claimed_by == colleague


def test_write_report_from_a_template(client, radiologist, study):
    template = ReportTemplate.objects.create(
        category=study.category, name="Норма", conclusion="Без патологии."
    )
    client.force_login(radiologist)
    response = client.post(reverse("reporting:start", args=[study.pk]), {"template": template.pk})
    report = Report.objects.get(study=study)
    assert response["Location"] == reverse("reporting:report", args=[report.pk])
    assert report.conclusion == "Без патологии."


def test_autosave_answers_json_and_saves(client, radiologist, draft):
    client.force_login(radiologist)
    response = client.post(
        reverse("reporting:report", args=[draft.pk]),
        {"conclusion": "Новый текст", "finding_codes": ["pneumonia"], "autosave": "1"},
    )
    assert response.status_code == 200 and response.json()["saved"] is True
    draft.refresh_from_db()
    assert draft.conclusion == "Новый текст"
    assert list(draft.finding_codes.values_list("code", flat=True)) == ["pneumonia"]


def test_the_editor_page_loads_the_autosave_script(client, radiologist, draft):
    client.force_login(radiologist)
    body = client.get(reverse("reporting:report", args=[draft.pk])).content.decode()
    assert "js/report-autosave.js" in body and "data-autosave=" in body


def test_sign_from_the_editor(client, radiologist, draft, study):
    client.force_login(radiologist)
    client.post(
        reverse("reporting:report", args=[draft.pk]),
        {"conclusion": "Пневмония справа", "sign": "final"},
    )
    draft.refresh_from_db()
    study.refresh_from_db()
    assert draft.status == Report.Status.SIGNED and draft.conclusion == "Пневмония справа"
    assert study.reading_status == ReadingStatus.FINAL


def test_a_signed_report_cannot_be_posted_to(client, radiologist, study):
    report = signed_report(study, radiologist)
    client.force_login(radiologist)
    response = client.post(reverse("reporting:report", args=[report.pk]), {"conclusion": "x"})
    assert response.status_code == 403
    report.refresh_from_db()
    assert report.conclusion != "x"


def test_amend_from_the_page_keeps_the_earlier_version_readable(client, radiologist, study):
    report = signed_report(study, radiologist)
    client.force_login(radiologist)
    response = client.post(reverse("reporting:amend", args=[report.pk]), {"reason": "Уточнение"})
    amendment = Report.objects.get(study=study, version=2)
    assert response["Location"] == reverse("reporting:report", args=[amendment.pk])
    old = client.get(reverse("reporting:report", args=[report.pk]))
    assert old.status_code == 200 and "Пневмония нижней доли справа." in old.content.decode()


@pytest.mark.parametrize("role", ["clinician", "radiologist", "administrator"])
def test_readers_see_a_signed_report_and_the_read_is_audited(
    client, request, role, study, radiologist
):
    report = signed_report(study, radiologist)
    client.force_login(request.getfixturevalue(role))
    response = client.get(reverse("reporting:report", args=[report.pk]))
    assert response.status_code == 200
    assert "Пневмония нижней доли справа." in response.content.decode()
    event = AuditEvent.objects.get(action="view", object_type="studies.report")
    assert event.patient_id == study.patient_id


def test_clinicians_do_not_see_drafts(client, clinician, draft, study):
    client.force_login(clinician)
    assert client.get(reverse("reporting:report", args=[draft.pk])).status_code == 404
    page = client.get(reverse("studies:detail", args=[study.pk])).content.decode()
    assert reverse("reporting:report", args=[draft.pk]) not in page


@pytest.mark.parametrize("role", ["registrar", "researcher"])
def test_registrars_and_researchers_never_read_reports(client, request, role, study, radiologist):
    report = signed_report(study, radiologist)
    client.force_login(request.getfixturevalue(role))
    assert client.get(reverse("reporting:report", args=[report.pk])).status_code == 403
    if role == "registrar":  # sees the study, not the report
        page = client.get(reverse("studies:detail", args=[study.pk])).content.decode()
        assert "Reading and report" in page
        assert reverse("reporting:report", args=[report.pk]) not in page


def test_a_report_outside_scope_is_404(client, outsider, study, radiologist):
    report = signed_report(study, radiologist)
    client.force_login(outsider)
    assert client.get(reverse("reporting:report", args=[report.pk])).status_code == 404
    assert client.post(reverse("reporting:claim", args=[study.pk])).status_code in (403, 404)


def test_turnaround_per_department(client, administrator, radiologist, patient, department):
    now = timezone.now()
    for hours in (2, 4, 30):
        study = make_study(patient, department, study_datetime=now - dt.timedelta(hours=hours))
        signed_report(study, radiologist)
    make_study(patient, department)  # unsigned: not counted
    client.force_login(administrator)
    response = client.get(reverse("reporting:turnaround"))
    (row,) = response.context["table"]
    assert row.department == "Radiology" and row.count == 3
    assert row.median_hours == pytest.approx(4, abs=0.1)
    assert row.mean_hours == pytest.approx(12, abs=0.1)


def test_turnaround_is_closed_to_clinicians(client, clinician):
    client.force_login(clinician)
    assert client.get(reverse("reporting:turnaround")).status_code == 403
