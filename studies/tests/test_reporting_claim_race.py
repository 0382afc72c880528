"""Two radiologists claim the same study at the same moment: exactly one wins.

Runs on PostgreSQL (real concurrent transactions and row locks); SQLite serialises every
writer on one file lock, so there the race cannot be staged and the test is skipped.

The rows the racing threads need are committed from a thread of their own and removed the same
way afterwards (the audit with TRUNCATE, the one statement its trigger allows), instead of a
transactional test whose closing flush would also wipe the data migrations' rows (finding codes,
identifier types) under the tests that run after it.
"""

import threading

import pytest
from django.db import connection, connections

from accounts.audit import Actor
from studies.models import ReadingStatus, Study
from studies.reporting import services

from .reporting_helpers import PG_ONLY, make_study, on_postgres

pytestmark = [pytest.mark.django_db, pytest.mark.skipif(not on_postgres(), reason=PG_ONLY)]

ROUNDS = 5


def _in_thread(fn):
    outcome = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _setup():
    from accounts.tests.factories import DepartmentFactory, UserFactory
    from patients.tests.factories import PatientFactory

    department = DepartmentFactory(code="race", name="Race")
    readers = [
        UserFactory(username=f"race-reader{i}", role="Radiologist", departments=[department])
        for i in range(2)
    ]
    patient = PatientFactory(mrn="RACE-1", department=department)
    studies = [make_study(patient, department) for _ in range(ROUNDS)]
    return {
        "readers": [u.pk for u in readers],
        "studies": [s.pk for s in studies],
        "patient": patient.pk,
        "department": department.pk,
    }


def _cleanup(ids):
    from accounts.models import Department, User
    from patients.models import Patient

    Study.objects.filter(pk__in=ids["studies"]).delete()
    Patient.objects.filter(pk=ids["patient"]).delete()
    User.objects.filter(pk__in=ids["readers"]).delete()
    Department.objects.filter(pk=ids["department"]).delete()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE accounts_auditseal, accounts_auditevent")


@pytest.fixture
def committed():
    ids = _in_thread(_setup)
    yield ids
    _in_thread(lambda: _cleanup(ids))


def _race(study_id, reader_ids):
    from accounts.models import User

    barrier = threading.Barrier(len(reader_ids))
    outcomes = {}

    def claim(reader_id):
        try:
            user = User.objects.get(pk=reader_id)
            study = Study.objects.get(pk=study_id)
            barrier.wait(10)
            services.study_claim(actor=Actor(user=user), study=study)
            outcomes[reader_id] = "won"
        except services.ClaimConflict:
            outcomes[reader_id] = "lost"
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(r,)) for r in reader_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


def test_two_radiologists_claiming_at_once_one_wins(committed):
    from accounts.models import AuditEvent

    for study_id in committed["studies"]:
        outcomes = _race(study_id, committed["readers"])
        assert sorted(outcomes.values()) == ["lost", "won"], outcomes
        winner = next(r for r, result in outcomes.items() if result == "won")

        def check(study_id=study_id):
            study = Study.objects.get(pk=study_id)
            claims = AuditEvent.objects.filter(action="claim", object_id=str(study_id)).count()
            return study.claimed_by_id, study.reading_status, claims

        assert _in_thread(check) == (winner, ReadingStatus.IN_PROGRESS, 1)
