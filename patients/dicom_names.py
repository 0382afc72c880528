"""The registry's side of name matching: DICOM names decoded with the configured fallback charset
and compared with a patient's name. Ingest (``studies``) calls these; the logic itself lives in
the Django-free :mod:`patients.identity`."""

from django.conf import settings

from patients.identity import PersonName, decode_person_name, parse_person_name, same_name
from patients.models import Patient


def dicom_person_name(value, specific_character_set=None) -> PersonName:
    """Decode (``MIS_DICOM_FALLBACK_CHARSET`` when the declared charset is missing or wrong) and
    parse a PatientName value."""
    text = decode_person_name(
        value, specific_character_set, fallback=settings.DICOM_FALLBACK_CHARSET
    )
    return parse_person_name(text)


def patient_name_matches(patient: Patient, name: PersonName) -> bool:
    """Whether a file's PatientName denotes this registry patient (Cyrillic or Latin)."""
    registry = " ".join(
        p for p in (patient.last_name, patient.first_name, patient.middle_name) if p
    )
    return bool(registry and name.full) and same_name(name.full, registry)
