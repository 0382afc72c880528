"""Full-text search over report text: morphology on PostgreSQL, plain matching on SQLite,
combined with study filters and finding codes, highlighted, within scope."""

import pytest
from django.urls import reverse

from accounts.audit import Actor
from accounts.models import AuditEvent
from patients.tests.factories import PatientFactory
from studies.models import Report
from studies.reporting import services
from studies.reporting.search import highlighted, report_search
from studies.reporting.selectors import report_queryset

from .reporting_helpers import PG_ONLY, make_study, on_postgres

pytestmark = pytest.mark.django_db


def _report(radiologist, department, text, *, codes=(), category="chest_xray", mrn=None):
    patient = PatientFactory(mrn=mrn or f"S-{abs(hash(text)) % 10**8}", department=department)
    study = make_study(patient, department, category=category)
    actor = Actor(user=radiologist)
    report = services.report_draft_create(
        actor=actor, study=study, conclusion=text, finding_codes=list(codes)
    )
    return services.report_sign(actor=actor, report=report)


@pytest.fixture
def reports(radiologist, department):
    return {
        "pneumonia": _report(
            radiologist,
            department,
            "Признаки двусторонней пневмонии. <script>alert(1)</script>",
            codes=["pneumonia"],
        ),
        "ct": _report(radiologist, department, "Пневмония не выявлена.", category="ct"),
        "fracture": _report(radiologist, department, "Перелом ребра слева."),
        "english": _report(radiologist, department, "Right lower lobe pneumonia."),
    }


def _search(user, text, **filters):
    qs = report_queryset(user=user)
    from django.http import QueryDict
    from django.utils.http import urlencode

    from studies.reporting.filters import ReportFilter

    filterset = ReportFilter(QueryDict(urlencode(filters)), queryset=qs)
    assert filterset.is_valid(), filterset.errors
    return list(report_search(filterset.qs, text))


@pytest.mark.skipif(not on_postgres(), reason=PG_ONLY)
def test_russian_morphology_finds_other_word_forms(clinician, reports):
    found = _search(clinician, "пневмония")
    assert reports["pneumonia"] in found  # «пневмонии»
    assert reports["ct"] in found
    assert reports["fracture"] not in found


@pytest.mark.skipif(not on_postgres(), reason=PG_ONLY)
def test_english_stemming_and_both_languages(clinician, reports):
    assert _search(clinician, "pneumonias") == [reports["english"]]
    assert _search(clinician, "ребро") == [reports["fracture"]]  # «ребра»


@pytest.mark.skipif(on_postgres(), reason="SQLite: plain substring matching")
def test_sqlite_matches_plain_substrings(clinician, reports):
    found = _search(clinician, "пневмони")
    assert set(found) == {reports["pneumonia"], reports["ct"]}
    assert _search(clinician, "ребра слева") == [reports["fracture"]]


def test_search_combines_with_study_filters_and_finding_codes(clinician, reports):
    word = "пневмони" if not on_postgres() else "пневмония"
    assert _search(clinician, word, category="ct") == [reports["ct"]]
    assert _search(clinician, word, finding="pneumonia") == [reports["pneumonia"]]
    assert _search(clinician, "", finding="pneumonia") == [reports["pneumonia"]]


def test_matches_are_highlighted_and_report_text_is_escaped(clinician, reports):
    word = "пневмони" if not on_postgres() else "пневмония"
    (hit,) = [r for r in _search(clinician, word) if r.pk == reports["pneumonia"].pk]
    html = str(highlighted(hit, word))
    assert "<mark>пневмони" in html
    assert "<script" not in html
    if not on_postgres():  # ts_headline drops markup; plain matching escapes it
        assert "&lt;script&gt;" in html


def test_search_respects_scope_and_hides_drafts_from_clinicians(
    clinician, outsider, radiologist, department, reports
):
    word = "пневмони" if not on_postgres() else "пневмония"
    assert _search(outsider, word) == []
    draft_study = make_study(PatientFactory(mrn="D-1", department=department), department)
    services.report_draft_create(
        actor=Actor(user=radiologist), study=draft_study, conclusion="Пневмония, черновик"
    )
    assert all(r.status == Report.Status.SIGNED for r in _search(clinician, word))
    assert any(r.status == Report.Status.DRAFT for r in _search(radiologist, word))


def test_search_page_highlights_and_audits(client, clinician, reports):
    client.force_login(clinician)
    word = "пневмони" if not on_postgres() else "пневмония"
    response = client.get(reverse("reporting:search"), {"text": word, "category": "chest_xray"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "<mark>" in body and "Перелом" not in body
    event = AuditEvent.objects.get(action="list", object_type="studies.report")
    assert reports["pneumonia"].study.patient_id in event.details["patient_ids"]


def test_registrars_and_researchers_cannot_search_reports(client, registrar, researcher, reports):
    for user in (registrar, researcher):
        client.force_login(user)
        assert client.get(reverse("reporting:search"), {"text": "x"}).status_code == 403
