"""Bulk seeding of patients for the benchmarks (``seed_bench --patients N``)."""

import datetime as dt
import random

from accounts.models import Department
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
