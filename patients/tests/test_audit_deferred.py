"""Viewing-window events committed beside the request (PostgreSQL): sent on the audit writer's
own connection while the response is prepared, committed before the response leaves, written
again on the request's connection when the writer's connection fails.

The requests must run outside a transaction (inside the test's transaction ``audit_view`` writes
on the request's connection, as on SQLite), so each body runs in a thread with its own
autocommit connection and cleans up after itself, like the sealing tests.
"""

import threading

import pytest
from django.db import connection, connections

from accounts import audit
from accounts.models import AuditEvent

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the deferred write is PostgreSQL only"
    ),
]


def _in_thread(fn):
    outcome = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc
        finally:
            audit._read_writer._close()
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _with_committed_reader(body):
    """Run ``body(client, user, patient)`` with a Clinician and a patient of their department
    committed, then remove them and the audit again."""
    from rest_framework.test import APIClient

    from accounts.tests.factories import DepartmentFactory, UserFactory
    from patients.models import Patient
    from patients.tests.factories import PatientFactory

    def run():
        department = DepartmentFactory(code="deferred-audit", name="Deferred audit")
        user = UserFactory(username="deferred-reader", role="Clinician", departments=[department])
        patient = PatientFactory(mrn="DEFER1", department=department)
        try:
            client = APIClient()
            client.force_login(user)
            return body(client, user, patient)
        finally:
            Patient.objects.filter(pk=patient.pk).delete()
            user.delete()
            department.delete()
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE accounts_auditseal, accounts_auditevent")

    return _in_thread(run)


def _views(user, patient):
    return list(
        AuditEvent.objects.filter(
            user_id=user.pk, action="view", object_type="patients.patient"
        ).filter(object_id=str(patient.pk))
    )


def test_the_read_is_committed_once_per_window_before_the_response(settings):
    settings.AUDIT_READS = True
    settings.AUDIT_READS_DEFERRED = True

    def body(client, user, patient):
        response = client.get(f"/api/v1/patients/{patient.pk}/")
        assert response.status_code == 200
        assert audit._read_writer.connection is not None, "the writer's connection was used"
        assert not audit._read_writer.unconfirmed
        (event,) = _views(user, patient)  # committed: visible on this (another) connection
        assert (event.username, event.patient_id, event.ip) == (
            "deferred-reader",
            patient.pk,
            "127.0.0.1",
        )
        assert client.get(f"/api/v1/patients/{patient.pk}/").status_code == 200
        assert len(_views(user, patient)) == 1  # the same viewing window

    _with_committed_reader(body)


def test_a_broken_writer_connection_still_audits_the_read(settings):
    settings.AUDIT_READS = True
    settings.AUDIT_READS_DEFERRED = True

    def body(client, user, patient):
        assert client.get(f"/api/v1/patients/{patient.pk}/").status_code == 200
        writer_pid = audit._read_writer.connection.info.backend_pid
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [writer_pid])
        with connection.cursor() as cursor:  # a fresh window: the next read must write
            cursor.execute("TRUNCATE accounts_auditseal, accounts_auditevent")
        response = client.get(f"/api/v1/patients/{patient.pk}/")
        assert response.status_code == 200
        assert len(_views(user, patient)) == 1

    _with_committed_reader(body)


def test_the_page_lists_the_read_it_is_showing(settings):
    settings.AUDIT_READS = True
    settings.AUDIT_READS_DEFERRED = True

    def body(client, user, patient):
        response = client.get(f"/patients/{patient.pk}/", HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 200
        page = response.content.decode()
        assert "Who accessed this record" in page
        assert "No accesses recorded." not in page
        assert "<td>deferred-reader</td><td>view</td>" in page
        assert len(_views(user, patient)) == 1

    _with_committed_reader(body)


def test_the_prepared_statement_writes_the_row_the_orm_would():
    """The writer sends its event as text parameters of a prepared statement: every field
    (Cyrillic, JSON details, an IPv6 address, no patient) lands as the ORM writes it."""
    import datetime as dt

    from django.utils import timezone

    now = timezone.now().replace(microsecond=123456)

    def event(object_id, **extra):
        return {
            "time": now,
            "user_id": 987654,
            "username": "Щербакова",
            "action": "view",
            "object_type": "studies.study",
            "object_id": object_id,
            "patient_id": None,
            "ip": "2001:db8::1",
            "user_agent": "Mozilla/5.0 «тест»",
            "outcome": "success",
            "reason": "",
            "details": {"query": {"q": "Иванов"}, "ids": [1, 2], "ok": True},
            "flagged": False,
            **extra,
        }

    def run():
        token = audit._deferred_reads.set(True)
        try:
            assert audit._read_writer.send(event("prepared"))
            audit._read_writer.flush()
            assert audit._read_writer.send(event("prepared"))  # the same window: nothing
            audit._read_writer.flush()
            audit._write_if_new_window(event("orm"))
            later = event("prepared", time=now + audit.VIEWING_WINDOW + dt.timedelta(seconds=1))
            assert audit._read_writer.send(later)  # the next window: a new row
            audit._read_writer.flush()
            fields = [
                "time", "user_id", "username", "action", "object_type", "patient_id", "ip",
                "user_agent", "outcome", "reason", "details", "flagged",
            ]  # fmt: skip
            rows = {
                object_id: list(
                    AuditEvent.objects.filter(object_id=object_id, user_id=987654)
                    .order_by("time")
                    .values(*fields)
                )
                for object_id in ("prepared", "orm")
            }
            return rows
        finally:
            audit._deferred_reads.reset(token)
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE accounts_auditseal, accounts_auditevent")

    rows = _in_thread(run)
    assert len(rows["orm"]) == 1
    assert len(rows["prepared"]) == 2
    assert rows["prepared"][0] == rows["orm"][0]
    assert rows["prepared"][0]["details"]["query"] == {"q": "Иванов"}
    assert rows["prepared"][1]["time"] > rows["prepared"][0]["time"]


def _lists(user):
    return list(AuditEvent.objects.filter(user_id=user.pk, action="list"))


def test_each_list_is_committed_as_its_own_event_before_the_response(settings):
    settings.AUDIT_READS = True
    settings.AUDIT_READS_DEFERRED = True

    def body(client, user, patient):
        for page in (1, 1):  # the same page twice: two events, lists have no window
            response = client.get("/api/v1/patients/", {"page": page})
            assert response.status_code == 200
            assert audit._read_writer.connection is not None, "the writer's connection was used"
            assert not audit._read_writer.unconfirmed
        events = _lists(user)  # committed: visible on this (another) connection
        assert len(events) == 2
        assert events[0].details == {"query": {"page": "1"}, "patient_ids": [patient.pk]}
        assert (events[0].object_type, events[0].username) == (
            "patients.patient",
            "deferred-reader",
        )

    _with_committed_reader(body)


def test_a_broken_writer_connection_still_audits_the_list(settings):
    settings.AUDIT_READS = True
    settings.AUDIT_READS_DEFERRED = True

    def body(client, user, patient):
        assert client.get("/api/v1/patients/").status_code == 200
        writer_pid = audit._read_writer.connection.info.backend_pid
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [writer_pid])
        assert client.get("/api/v1/patients/").status_code == 200
        assert len(_lists(user)) == 2
        assert _lists(user)[1].details["patient_ids"] == [patient.pk]

    _with_committed_reader(body)


def test_events_sent_while_a_batch_is_in_flight_commit_together_once_per_window():
    """Group commit: events that arrive while the writer's batch is in flight (here held by a
    lock on the table) go together as the next batch, in one transaction; two events of one
    viewing window in that batch write one row; every thread's flush sees its own committed."""
    from django.utils import timezone

    now = timezone.now()

    def event(object_id, user_id=555001, action="view"):
        return audit._event_row(
            audit.Actor.system("group-commit"), action, "studies.study", object_id, None, {}, now
        ) | {"user_id": user_id}

    def run():
        import psycopg

        token = audit._deferred_reads.set(True)
        params = connection.get_connection_params()
        params = {k: v for k, v in params.items() if k != "cursor_factory"}
        blocker = psycopg.connect(**params)
        try:
            assert audit._read_writer.send(event("warm-up", user_id=555003))  # connected, prepared
            audit._read_writer.flush()
            blocker.execute("LOCK TABLE accounts_auditevent IN SHARE MODE")
            assert audit._read_writer.send(event("first"))  # in flight, held by the lock
            sent = []

            def other_thread():  # another request thread of the same process
                sent.append(audit._read_writer.send(event("second", user_id=555002)))
                audit._read_writer.flush()

            helper = threading.Thread(target=other_thread)
            helper.start()
            assert audit._read_writer.send(event("third"))
            assert audit._read_writer.send(event("third"))  # the same window, same batch
            assert audit._read_writer.send(event("listed", action="list"), window=False)
            assert len(audit._read_writer.pending) >= 3
            blocker.rollback()  # the lock goes: the first batch commits, then the next
            audit._read_writer.flush()
            helper.join(30)
            assert sent == [True]
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT object_id, txid::text FROM accounts_auditevent "
                    "WHERE user_id IN (555001, 555002) ORDER BY id"
                )
                return cursor.fetchall()
        finally:
            blocker.close()
            audit._deferred_reads.reset(token)
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE accounts_auditseal, accounts_auditevent")

    rows = _in_thread(run)
    assert sorted(object_id for object_id, _txid in rows) == ["first", "listed", "second", "third"]
    txids = {object_id: txid for object_id, txid in rows}
    assert txids["third"] == txids["listed"]  # one batch, one transaction
    assert txids["first"] != txids["third"]


def test_with_other_requests_in_progress_an_event_waits_for_the_first_response():
    """Alone in the process an event is sent at once (its commit overlaps the rest of the
    request); with other requests in progress it waits, and the first request to reach its
    response commits every waiting event in one transaction, so the others find theirs
    committed when they get there."""
    from django.utils import timezone

    now = timezone.now()
    writer = audit._read_writer

    def event(object_id):
        return audit._event_row(
            audit.Actor.system("deferral"), "view", "studies.study", object_id, None, {}, now
        ) | {"user_id": 555101}

    def run():
        token = audit._deferred_reads.set(True)
        try:
            writer.request_started()
            assert writer.send(event("alone"))
            assert not writer.pending  # sent at once
            writer.flush()
            writer.request_started()  # a second request in progress
            sent = threading.Event()
            flushed = threading.Event()
            states = []

            def second_request():
                assert writer.send(event("second"))
                states.append(writer.unconfirmed[0].state)
                sent.set()
                flushed.wait(30)
                ticket = writer.unconfirmed[0]
                states.append(ticket.state)  # committed by the first request's flush
                writer.flush()

            other = threading.Thread(target=second_request)
            other.start()
            assert sent.wait(30)
            assert writer.send(event("first"))
            assert len(writer.pending) == 2  # both wait
            writer.flush()
            flushed.set()
            other.join(30)
            assert states == [audit._Ticket.WAITING, audit._Ticket.WRITTEN]
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT object_id, txid::text FROM accounts_auditevent "
                    "WHERE user_id = 555101 ORDER BY id"
                )
                return cursor.fetchall()
        finally:
            with writer.lock:
                writer.active = 0  # however far the test got
            audit._deferred_reads.reset(token)
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE accounts_auditseal, accounts_auditevent")

    rows = _in_thread(run)
    assert [object_id for object_id, _txid in rows] == ["alone", "second", "first"]
    assert rows[1][1] == rows[2][1]  # one transaction
    assert rows[0][1] != rows[1][1]
