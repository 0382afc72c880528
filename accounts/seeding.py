"""Bulk seeding of audit events for the benchmarks (``seed_bench --audit-events A``)."""

import datetime as dt
import random

from django.utils import timezone

from accounts.models import AuditEvent

BATCH = 10000


def seed_audit_events(*, count: int, seed: int = 1) -> str:
    from django.db import connection

    rng = random.Random(seed)
    now = timezone.now()
    patient_ids = list(_patient_ids(connection))
    created = 0
    while created < count:
        batch = [
            AuditEvent(
                time=now - dt.timedelta(seconds=rng.randint(0, 365 * 86400)),
                user_id=rng.randint(1, 50),
                username=f"bench{rng.randint(1, 50)}",
                action=rng.choice(("view", "list", "update", "download")),
                object_type="patients.patient",
                object_id=str(pid := rng.choice(patient_ids) if patient_ids else 0),
                patient_id=pid or None,
                ip="127.0.0.1",
                user_agent="seed_bench",
            )
            for _ in range(min(BATCH, count - created))
        ]
        AuditEvent.objects.bulk_create(batch, batch_size=BATCH)
        created += len(batch)
    return f"{created} audit events"


def _patient_ids(connection):
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM patients_patient ORDER BY id LIMIT 100000")
        for (pk,) in cursor.fetchall():
            yield pk
