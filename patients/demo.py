"""A small demo registry for the embedded mode (never loaded in production)."""

import datetime as dt
import random

from accounts.audit import Actor
from accounts.models import Department
from patients import names
from patients.models import IdentifierType, IdentityStatus, Patient
from patients.services import IdentifierInput, patient_register

DEPARTMENTS = [
    ("radiology", "Отделение лучевой диагностики"),
    ("ent", "ЛОР-отделение"),
    ("lung-screening", "Скрининг лёгких"),
    ("spine", "Вертебрологический центр"),
]


def load_demo_patients(*, actor_user, count: int = 24) -> str:
    departments = [
        Department.objects.get_or_create(code=code, defaults={"name": name})[0]
        for code, name in DEPARTMENTS
    ]
    # Scope: clinical data is seen by department members only, superusers included; the demo
    # administrator joins the demo departments so that the demo shows something.
    actor_user.departments.add(*departments)
    if Patient.objects.filter(mrn__startswith="DEMO").exists():
        return "demo patients already present"
    rng = random.Random(20261122)
    snils = IdentifierType.objects.get(code="snils")
    actor = Actor(user=actor_user, label="load_demo")
    for number in range(1, count + 1):
        female = rng.random() < 0.5
        last = rng.choice(names.LAST_NAMES_M)
        last = names.feminine_last_name(last) if female else last
        first = rng.choice(names.FIRST_NAMES_F if female else names.FIRST_NAMES_M)
        middle = names.middle_name(rng.choice(names.MIDDLE_ROOTS), female)
        age_days = rng.randint(200, 85 * 365)
        identifiers = []
        if number % 3 == 0:
            body = f"{rng.randint(2_000_000, 999_999_999):09d}"
            identifiers.append(IdentifierInput(type=snils, value=body + _snils_control(body)))
        patient_register(
            actor=actor,
            data={
                "mrn": f"DEMO{number:04d}",
                "last_name": last,
                "first_name": first,
                "middle_name": middle,
                "birth_date": dt.date.today() - dt.timedelta(days=age_days),
                "sex": "F" if female else "M",
                "department": departments[number % len(departments)],
                "identity_status": IdentityStatus.VERIFIED,
            },
            identifiers=identifiers,
        )
    patient_register(
        actor=actor,
        data={
            "mrn": "",
            "identity_status": IdentityStatus.UNKNOWN,
            "sex": "M",
            "notes": "Доставлен скорой помощью без документов.",
            "department": departments[0],
        },
    )
    return f"{count + 1} demo patients in {len(departments)} departments"


def _snils_control(body: str) -> str:
    from patients.validators import snils_checksum

    return f"{snils_checksum(body):02d}"
