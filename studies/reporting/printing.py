"""What a printed report shows, once for the print page and the PDF alike."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field

from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from accounts.models import HospitalSettings
from studies.models import Report


@dataclass
class PrintedReport:
    title: str
    institution_name: str
    institution_address: str
    logo: bytes | None
    rows: list[tuple[str, str]] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)
    signature_lines: list[str] = field(default_factory=list)
    author: str = ""
    printed_at: str = ""
    language: str = ""


def _tz(hospital: HospitalSettings):
    try:
        return zoneinfo.ZoneInfo(hospital.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return timezone.get_current_timezone()


def _when(value, tz) -> str:
    if value is None:
        return "—"
    return date_format(timezone.localtime(value, tz), "DATETIME_FORMAT")


def _logo_bytes(hospital: HospitalSettings) -> bytes | None:
    if not hospital.logo:
        return None
    try:
        with hospital.logo.open("rb") as handle:
            return handle.read()
    except OSError:
        return None


def printed_report(report: Report) -> PrintedReport:
    """The report as printed, in the hospital's default language and time zone (the patient's
    copy does not depend on the language the radiologist works in)."""
    hospital = HospitalSettings.load()
    with translation.override(hospital.default_language or None):
        return _printed(report, hospital)


def _printed(report: Report, hospital: HospitalSettings) -> PrintedReport:
    tz = _tz(hospital)
    study = report.study
    patient = study.patient
    codes = ", ".join(c.name for c in report.finding_codes.all())
    kind = _("preliminary") if report.preliminary else _("final")
    title = _("Imaging report") + (f" ({kind})" if report.is_signed else f" ({_('draft')})")
    author = report.author.display_name
    rows = [
        (_("Patient"), patient.full_name),
        (
            _("Birth date"),
            date_format(patient.birth_date, "DATE_FORMAT") if patient.birth_date else "—",
        ),
        (_("MRN"), patient.mrn),
        (_("Study"), f"{study.get_category_display()} {study.description}".strip()),
        (_("Modality"), study.modalities),
        (_("Study date"), _when(study.study_datetime, tz)),
        (_("Accession number"), study.accession_number),
        (_("Performing department"), study.department.name),
        (_("Referring physician"), study.referring_physician),
    ]
    sections = [
        (_("Clinical question"), study.clinical_question),
        (_("Findings"), codes),
        (_("Conclusion"), report.conclusion),
    ]
    if report.amends_id:
        sections.append(
            (
                _("Amendment"),
                _("Amends version %(version)s: %(reason)s")
                % {"version": report.amends.version, "reason": report.amendment_reason},
            )
        )
    signature = [
        _("Radiologist: %(name)s") % {"name": author},
        _("Signed: %(when)s") % {"when": _when(report.signed_at, tz)},
        _("Report version: %(version)s") % {"version": report.version},
    ]
    return PrintedReport(
        language=translation.get_language() or "",
        title=title,
        institution_name=hospital.name,
        institution_address=hospital.address,
        logo=_logo_bytes(hospital),
        rows=rows,
        sections=sections,
        signature_lines=signature,
        author=author,
        printed_at=_when(timezone.now(), tz),
    )
