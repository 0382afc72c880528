"""Two radiologists claim the same study at the same moment: exactly one wins.

Runs on PostgreSQL (real concurrent transactions and row locks); SQLite serialises every
writer on one file lock, so there the race cannot be staged and the test is skipped."""

import threading

import pytest
from django.db import connection

from accounts.audit import Actor
from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory
from patients.tests.factories import PatientFactory
from studies.models import ReadingStatus, Study
from studies.reporting import services

from .reporting_helpers import PG_ONLY, make_study, on_postgres

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not on_postgres(), reason=PG_ONLY),
]


def test_two_radiologists_claiming_at_once_one_wins(department):
    readers = [
        UserFactory(username=f"reader{i}", role="Radiologist", departments=[department])
        for i in range(2)
    ]
    patient = PatientFactory(mrn="RACE-1", department=department)
    for round_ in range(5):
        study = make_study(patient, department)
        barrier = threading.Barrier(2)
        outcomes: dict[str, str] = {}

        def claim(user, study_id=study.pk, barrier=barrier, outcomes=outcomes):
            try:
                target = Study.objects.get(pk=study_id)
                barrier.wait()
                services.study_claim(actor=Actor(user=user), study=target)
                outcomes[user.username] = "won"
            except services.ClaimConflict:
                outcomes[user.username] = "lost"
            finally:
                connection.close()

        threads = [threading.Thread(target=claim, args=(u,)) for u in readers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes.values()) == ["lost", "won"], (round_, outcomes)
        winner = next(name for name, result in outcomes.items() if result == "won")
        study.refresh_from_db()
        assert study.claimed_by.username == winner
        assert study.reading_status == ReadingStatus.IN_PROGRESS
        assert AuditEvent.objects.filter(action="claim", object_id=str(study.pk)).count() == 1
