"""The printed report: PDF (Cyrillic text extractable), print view, hospital settings, audit."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from accounts.models import AuditEvent, HospitalSettings
from patients.tests.factories import PatientFactory
from studies.reporting.pdf import render_pdf
from studies.reporting.printing import printed_report

from .reporting_helpers import make_study, signed_report

pytestmark = pytest.mark.django_db


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (60, 30), (20, 80, 160)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def hospital(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    hospital = HospitalSettings.load()
    hospital.name = "ГБУЗ Городская больница № 1"
    hospital.address = "Москва, ул. Лесная, 5"
    hospital.time_zone = "Asia/Yekaterinburg"
    hospital.default_language = "en"  # tests read English; Russian is the product's default
    hospital.logo = SimpleUploadedFile("logo.png", _png(), content_type="image/png")
    hospital.save()
    return hospital


@pytest.fixture
def report(radiologist, department):
    patient = PatientFactory(
        mrn="PDF-1",
        department=department,
        last_name="Щербакова",
        first_name="Юлия",
        middle_name="Эдуардовна",
    )
    study = make_study(patient, department, clinical_question="Кашель, температура 38,5 °C")
    return signed_report(study, radiologist, conclusion="Очаговая пневмония S6 справа.")


def _text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_the_pdf_holds_the_cyrillic_report(hospital, report):
    pdf = render_pdf(printed_report(report))
    assert pdf.startswith(b"%PDF")
    text = _text(pdf)
    for expected in (
        "Щербакова Юлия Эдуардовна",
        "ГБУЗ Городская больница № 1",
        "Кашель, температура 38,5",
        "Очаговая пневмония S6 справа.",
        "Смирнова Анна",  # the author
        "Report version: 1",
    ):
        assert expected in text, expected


def test_the_signing_time_is_in_the_hospital_time_zone(hospital, report):
    from zoneinfo import ZoneInfo

    from django.utils import timezone
    from django.utils.formats import date_format

    local = timezone.localtime(report.signed_at, ZoneInfo("Asia/Yekaterinburg"))
    signed_line = next(
        line for line in printed_report(report).signature_lines if line.startswith("Signed")
    )
    assert date_format(local, "DATETIME_FORMAT") in signed_line


def test_pdf_download_from_the_page_is_audited(client, clinician, hospital, report):
    client.force_login(clinician)
    response = client.get(reverse("reporting:pdf", args=[report.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert "Щербакова" in _text(response.content)
    event = AuditEvent.objects.get(action="print")
    assert event.object_id == str(report.pk) and event.patient_id == report.study.patient_id
    assert event.details["format"] == "pdf"
    client.get(reverse("reporting:pdf", args=[report.pk]))
    assert AuditEvent.objects.filter(action="print").count() == 2  # every print counts


def test_print_view_shows_the_institution_and_is_audited(client, clinician, hospital, report):
    client.force_login(clinician)
    response = client.get(reverse("reporting:print", args=[report.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "ГБУЗ Городская больница № 1" in body and "Очаговая пневмония" in body
    assert reverse("accounts:hospital-logo") in body
    assert AuditEvent.objects.get(action="print").details["format"] == "html"


def test_a_pdf_is_made_without_hospital_settings_or_logo(report):
    assert "Щербакова" in _text(render_pdf(printed_report(report)))


def test_the_printout_is_in_the_hospital_language_not_the_reader_one(hospital, report):
    from django.utils import translation

    hospital.default_language = "ru"
    hospital.save()
    with translation.override("en"):
        printed = printed_report(report)
        assert translation.get_language() == "en"
    assert printed.language == "ru"


@pytest.mark.parametrize("role", ["registrar", "researcher"])
def test_no_pdf_for_registrars_and_researchers(client, request, role, report):
    client.force_login(request.getfixturevalue(role))
    assert client.get(reverse("reporting:pdf", args=[report.pk])).status_code == 403
    assert not AuditEvent.objects.filter(action="print").exists()


def test_no_pdf_outside_scope(client, outsider, report):
    client.force_login(outsider)
    assert client.get(reverse("reporting:pdf", args=[report.pk])).status_code == 404


def test_hospital_settings_page_is_for_administrators(
    client, administrator, radiologist, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    client.force_login(radiologist)
    assert client.get(reverse("accounts:hospital")).status_code == 403
    client.force_login(administrator)
    assert client.get(reverse("accounts:hospital")).status_code == 200
    response = client.post(
        reverse("accounts:hospital"),
        {
            "name": "Клиника",
            "address": "Казань",
            "time_zone": "Europe/Moscow",
            "default_language": "ru",
            "logo": SimpleUploadedFile("l.png", _png(), content_type="image/png"),
        },
    )
    assert response.status_code == 302
    hospital = HospitalSettings.load()
    assert hospital.name == "Клиника" and hospital.logo
    assert AuditEvent.objects.filter(object_type="accounts.hospitalsettings").exists()
    assert client.get(reverse("accounts:hospital-logo")).status_code == 200


def test_a_logo_that_is_not_an_image_is_refused(client, administrator, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    client.force_login(administrator)
    response = client.post(
        reverse("accounts:hospital"),
        {
            "name": "Клиника",
            "time_zone": "Europe/Moscow",
            "default_language": "ru",
            "logo": SimpleUploadedFile("l.png", b"not an image", content_type="image/png"),
        },
    )
    assert response.status_code == 200 and response.context["form"].errors["logo"]
    assert HospitalSettings.load().name == ""
