"""Two registrars registering the same MRN at the same moment: one wins, the other gets a clear
message; never two patients, never a 500. Real threads and connections (PostgreSQL in CI)."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from accounts.audit import Actor
from accounts.models import AuditEvent
from patients import services
from patients.models import Patient


@pytest.mark.django_db(transaction=True)
def test_the_same_mrn_registered_twice_at_once_gives_one_patient(registrar):
    barrier = threading.Barrier(2)
    outcomes = []

    def register(first_name):
        try:
            barrier.wait(timeout=10)
            services.patient_register(
                actor=Actor(user=registrar),
                data={"mrn": "RACE-1", "last_name": "Гонкин", "first_name": first_name},
            )
            outcomes.append("created")
        except ValidationError as exc:
            outcomes.append(exc.message_dict)
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(name,)) for name in ("Ян", "Яков")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes, key=str) == sorted(
        ["created", {"mrn": ["A patient with this MRN already exists."]}], key=str
    )
    assert Patient.objects.filter(mrn="RACE-1").count() == 1
    assert AuditEvent.objects.filter(action="create", object_type="patients.patient").count() == 1
