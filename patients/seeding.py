"""Bulk seeding for the benchmarks: patients, and audit events about them
(``seed_bench --patients N --audit-events A``)."""

import datetime as dt
import random

from django.utils import timezone

from accounts.models import AuditEvent, Department
from patients import names
from patients.models import Patient
from patients.normalize import normalize_name

BATCH = 5000


def seed_patients(*, count: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    department, _ = Department.objects.get_or_create(
        code="bench", defaults={"name": "Bench department"}
    )
    start = Patient.objects.filter(mrn__startswith="B").count()
    today = dt.date.today()
    created = 0
    while created < count:
        batch = []
        for offset in range(min(BATCH, count - created)):
            number = start + created + offset
            female = rng.random() < 0.5
            last = rng.choice(names.LAST_NAMES_M)
            last = names.feminine_last_name(last) if female else last
            first = rng.choice(names.FIRST_NAMES_F if female else names.FIRST_NAMES_M)
            middle = names.middle_name(rng.choice(names.MIDDLE_ROOTS), female)
            batch.append(
                Patient(
                    mrn=f"B{number:08d}",
                    last_name=last,
                    first_name=first,
                    middle_name=middle,
                    birth_date=today - dt.timedelta(days=rng.randint(0, 95 * 365)),
                    sex="F" if female else "M",
                    department=department,
                    search_name=normalize_name(f"{last} {first} {middle}"),
                )
            )
        Patient.objects.bulk_create(batch, batch_size=BATCH)
        created += len(batch)
    return f"{created} patients"


AUDIT_BATCH = 10000


def seed_audit_events(*, count: int, seed: int = 1) -> str:
    """Audit rows naming existing patients (seed patients first: the seeders run in order)."""
    rng = random.Random(seed)
    now = timezone.now()
    patient_ids = list(Patient.objects.order_by("id").values_list("id", flat=True)[:100000])
    created = 0
    while created < count:
        batch = []
        for _ in range(min(AUDIT_BATCH, count - created)):
            patient_id = rng.choice(patient_ids) if patient_ids else None
            user_number = rng.randint(1, 50)
            batch.append(
                AuditEvent(
                    time=now - dt.timedelta(seconds=rng.randint(0, 365 * 86400)),
                    user_id=user_number,
                    username=f"bench{user_number}",
                    action=rng.choice(("view", "list", "update", "download")),
                    object_type="patients.patient",
                    object_id=str(patient_id or ""),
                    patient_id=patient_id,
                    ip="127.0.0.1",
                    user_agent="seed_bench",
                )
            )
        AuditEvent.objects.bulk_create(batch, batch_size=AUDIT_BATCH)
        created += len(batch)
    return f"{created} audit events"
