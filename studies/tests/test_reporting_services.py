"""Claims, drafts, signing, amendments and the immutability of signed reports."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from accounts.audit import Actor
from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from patients.tests.factories import PatientFactory
from studies.models import FindingCode, ReadingStatus, Report, ReportTemplate, SignedReportError
from studies.reporting import services

from .reporting_helpers import PG_ONLY, make_study, on_postgres, signed_report

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient(department):
    return PatientFactory(mrn="R-1", department=department, last_name="Иванов", first_name="Иван")


@pytest.fixture
def study(patient, department):
    return make_study(patient, department)


@pytest.fixture
def colleague(department):
    return UserFactory(username="colleague", role="Radiologist", departments=[department])


def test_claim_marks_the_study_in_progress_and_is_audited(radiologist, study):
    services.study_claim(actor=Actor(user=radiologist), study=study)
    study.refresh_from_db()
    assert study.claimed_by == radiologist and study.claimed_at is not None
    assert study.reading_status == ReadingStatus.IN_PROGRESS
    assert AuditEvent.objects.filter(action="claim", object_id=str(study.pk)).count() == 1


def test_claiming_again_is_harmless_and_another_reader_is_refused(radiologist, colleague, study):
    services.study_claim(actor=Actor(user=radiologist), study=study)
    services.study_claim(actor=Actor(user=radiologist), study=study)
    with pytest.raises(services.ClaimConflict, match="being read by Смирнова Анна"):
        services.study_claim(actor=Actor(user=colleague), study=study)
    study.refresh_from_db()
    assert study.claimed_by == radiologist


def test_clinicians_cannot_claim(clinician, study):
    with pytest.raises(PermissionDenied):
        services.study_claim(actor=Actor(user=clinician), study=study)


def test_release_by_the_holder_returns_the_study_to_unread(radiologist, study):
    services.study_claim(actor=Actor(user=radiologist), study=study)
    services.study_release(actor=Actor(user=radiologist), study=study)
    study.refresh_from_db()
    assert study.claimed_by is None and study.reading_status == ReadingStatus.UNREAD


def test_only_the_holder_or_an_administrator_releases(radiologist, colleague, administrator, study):
    services.study_claim(actor=Actor(user=radiologist), study=study)
    with pytest.raises(PermissionDenied):
        services.study_release(actor=Actor(user=colleague), study=study)
    services.study_release(actor=Actor(user=administrator), study=study)
    study.refresh_from_db()
    assert study.claimed_by is None
    event = AuditEvent.objects.get(action="release")
    assert event.username == "administrator" and event.details["holder_id"] == radiologist.pk


def test_a_draft_claims_the_study_and_takes_the_template(radiologist, study):
    template = ReportTemplate.objects.create(
        category="chest_xray", name="Норма", conclusion="Лёгкие без очаговых изменений."
    )
    report = services.report_draft_create(
        actor=Actor(user=radiologist), study=study, template=template, finding_codes=["pneumonia"]
    )
    study.refresh_from_db()
    assert study.claimed_by == radiologist
    assert report.conclusion == "Лёгкие без очаговых изменений."
    assert list(report.finding_codes.values_list("code", flat=True)) == ["pneumonia"]
    assert report.status == Report.Status.DRAFT and report.version == 1


def test_a_template_of_another_category_is_refused(radiologist, study):
    template = ReportTemplate.objects.create(category="ct", name="КТ", conclusion="…")
    with pytest.raises(ValidationError, match="not for this study"):
        services.report_draft_create(actor=Actor(user=radiologist), study=study, template=template)
    assert not Report.objects.exists()


def test_unknown_finding_codes_are_named_and_nothing_is_saved(radiologist, study):
    with pytest.raises(ValidationError, match="no-such-code"):
        services.report_draft_create(
            actor=Actor(user=radiologist), study=study, finding_codes=["no-such-code"]
        )
    assert not Report.objects.exists()


def test_a_study_held_by_another_reader_cannot_get_a_draft(radiologist, colleague, study):
    services.study_claim(actor=Actor(user=colleague), study=study)
    with pytest.raises(services.ClaimConflict):
        services.report_draft_create(actor=Actor(user=radiologist), study=study)


def test_only_the_author_changes_or_signs_a_draft(radiologist, colleague, study):
    report = services.report_draft_create(actor=Actor(user=radiologist), study=study)
    with pytest.raises(PermissionDenied):
        services.report_draft_update(actor=Actor(user=colleague), report=report, conclusion="x")
    with pytest.raises(PermissionDenied):
        services.report_sign(actor=Actor(user=colleague), report=report)


def test_an_empty_conclusion_is_not_signed(radiologist, study):
    report = services.report_draft_create(actor=Actor(user=radiologist), study=study)
    with pytest.raises(ValidationError, match="Write the conclusion"):
        services.report_sign(actor=Actor(user=radiologist), report=report)
    report.refresh_from_db()
    assert report.status == Report.Status.DRAFT


def test_signing_finalises_the_study_and_releases_the_claim(radiologist, study):
    report = signed_report(study, radiologist)
    study.refresh_from_db()
    assert report.status == Report.Status.SIGNED and report.signed_at is not None
    assert study.reading_status == ReadingStatus.FINAL and study.claimed_by is None
    assert AuditEvent.objects.filter(action="sign", object_id=str(report.pk)).exists()


def test_preliminary_then_final_then_amended(radiologist, study):
    first = signed_report(study, radiologist, preliminary=True)
    study.refresh_from_db()
    assert study.reading_status == ReadingStatus.PRELIMINARY
    second = services.report_amend(actor=Actor(user=radiologist), report=first, reason="Final")
    services.report_sign(actor=Actor(user=radiologist), report=second)
    study.refresh_from_db()
    assert study.reading_status == ReadingStatus.FINAL
    third = services.report_amend(actor=Actor(user=radiologist), report=second, reason="Typo")
    services.report_sign(actor=Actor(user=radiologist), report=third)
    study.refresh_from_db()
    assert study.reading_status == ReadingStatus.AMENDED


def test_an_amendment_is_a_new_version_and_the_signed_one_stays(radiologist, study):
    signed = signed_report(study, radiologist, conclusion="Пневмония.")
    signed.finding_codes.all()  # codes of v1 kept below
    draft = services.report_amend(actor=Actor(user=radiologist), report=signed, reason="Уточнение")
    services.report_draft_update(
        actor=Actor(user=radiologist), report=draft, conclusion="Пневмония исключена."
    )
    services.report_sign(actor=Actor(user=radiologist), report=draft)
    versions = list(Report.objects.filter(study=study).order_by("version"))
    assert [(r.version, r.conclusion) for r in versions] == [
        (1, "Пневмония."),
        (2, "Пневмония исключена."),
    ]
    assert versions[1].amends == versions[0] and versions[1].amendment_reason == "Уточнение"


def test_an_amendment_needs_a_reason_and_the_latest_version(radiologist, study):
    signed = signed_report(study, radiologist)
    with pytest.raises(ValidationError, match="reason"):
        services.report_amend(actor=Actor(user=radiologist), report=signed, reason=" ")
    services.report_sign(
        actor=Actor(user=radiologist),
        report=services.report_amend(actor=Actor(user=radiologist), report=signed, reason="r"),
    )
    with pytest.raises(ValidationError, match="latest version"):
        services.report_amend(actor=Actor(user=radiologist), report=signed, reason="again")


# --- Immutability ---------------------------------------------------------------------------


def test_a_signed_report_refuses_save_update_delete_and_code_changes(radiologist, study):
    report = signed_report(study, radiologist)
    report.conclusion = "changed"
    with pytest.raises(SignedReportError):
        report.save()
    with pytest.raises(SignedReportError):
        Report.objects.filter(pk=report.pk).update(conclusion="changed")
    with pytest.raises(SignedReportError):
        Report.objects.filter(pk=report.pk).delete()
    with pytest.raises(SignedReportError):
        report.delete()
    code = FindingCode.objects.get(code="pneumonia")
    # m2m writes run inside a savepoint-less atomic: give each its own block.
    with pytest.raises(SignedReportError), transaction.atomic():
        report.finding_codes.add(code)
    with pytest.raises(SignedReportError), transaction.atomic():
        code.reports.add(report)
    with pytest.raises(ValidationError, match="signed"):
        services.report_draft_update(actor=Actor(user=radiologist), report=report, conclusion="x")
    report.refresh_from_db()
    assert report.conclusion == "Пневмония нижней доли справа."


@pytest.mark.skipif(not on_postgres(), reason=PG_ONLY)
def test_postgres_refuses_changing_a_signed_report_even_in_raw_sql(radiologist, study):
    report = signed_report(study, radiologist)
    for sql in (
        "UPDATE studies_report SET conclusion = 'x' WHERE id = %s",
        "DELETE FROM studies_report WHERE id = %s",
        "INSERT INTO studies_report_finding_codes (report_id, findingcode_id) "
        "SELECT %s, id FROM studies_findingcode LIMIT 1",
    ):
        with pytest.raises(DatabaseError, match="signed"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [report.pk])
    report.refresh_from_db()
    assert report.conclusion == "Пневмония нижней доли справа."


def test_reports_move_with_their_study_when_patients_merge(radiologist, registrar, study, patient):
    from patients.merge import patient_merge

    report = signed_report(study, radiologist)
    survivor = PatientFactory(mrn="R-2", department=patient.department, last_name="Иванов")
    patient_merge(actor=Actor(user=registrar), survivor=survivor, duplicate=patient, reason="дубль")
    report = Report.objects.get(pk=report.pk)
    assert report.study.patient_id == survivor.pk and report.audit_patient_id == survivor.pk
