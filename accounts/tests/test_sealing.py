"""The hash chain: sealing, verification, and an audit that refuses to be changed.

On PostgreSQL a row is sealed only once its transaction has ended, so each test body runs
``committed``: in a thread with its own autocommit connection, outside the test's transaction.
The audit tables are then emptied with TRUNCATE (the one statement the trigger allows), rather
than by a transactional test's flush, which would also wipe what data migrations put in for the
tests that follow. On SQLite, where writes are serialised and ids are the commit order, the
body simply runs inside the test's transaction.
"""

import datetime as dt
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from accounts.audit import Actor, audit_record
from accounts.models import AuditEvent, AuditSeal
from accounts.sealing import GENESIS, link_hash, seal_pending, verify

pytestmark = pytest.mark.django_db

POSTGRES = connection.vendor == "postgresql"
postgres_only = pytest.mark.skipif(
    not POSTGRES, reason="the trigger and txid exist on PostgreSQL only"
)


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


@pytest.fixture
def committed():
    """Run a test body so that its writes commit (PostgreSQL), and clean up after it."""
    if not POSTGRES:
        yield lambda fn: fn()
        return
    yield _in_thread

    def truncate():
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE accounts_auditseal, accounts_auditevent")

    _in_thread(truncate)


def _seal_everything(timeout=20.0) -> int:
    """Seal until every event is sealed. On PostgreSQL a transaction running anywhere on the
    server (another test run, in another database) holds the horizon back for a moment."""
    import time

    sealed, deadline = 0, time.monotonic() + timeout
    while True:
        sealed += seal_pending()
        if AuditSeal.objects.count() == AuditEvent.objects.count():
            return sealed
        assert time.monotonic() < deadline, "events stayed unsealed"
        time.sleep(0.2)


def _events(n, **kwargs):
    return [
        audit_record(actor=Actor.system("t"), action="view", object_id=i, **kwargs)
        for i in range(n)
    ]


def _tamper(sql, params):
    """Change a row behind the application's back (on PostgreSQL with the trigger bypassed, as
    a database superuser could)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if POSTGRES:
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)


def test_sealing_chains_every_event_once(committed):
    def body():
        before = AuditEvent.objects.count()
        _events(3)
        assert _seal_everything() == before + 3
        assert seal_pending() == 0
        seals = list(AuditSeal.objects.order_by("seq"))
        assert [s.seq for s in seals] == list(range(1, len(seals) + 1))
        first_event = AuditEvent.objects.get(pk=seals[0].event_id)
        assert seals[0].hash == link_hash(GENESIS, first_event)
        assert verify().ok

    committed(body)


def test_verify_finds_a_changed_row_and_names_the_first_broken_link(committed):
    def body():
        events = _events(4)
        _seal_everything()
        _tamper("UPDATE accounts_auditevent SET reason = %s WHERE id = %s", ["x", events[2].pk])
        report = verify()
        seal = AuditSeal.objects.get(event_id=events[2].pk)
        assert (report.broken_seq, report.broken_event_id) == (seal.seq, events[2].pk)
        assert "changed" in report.problem
        with pytest.raises(CommandError, match=f"seal #{seal.seq} \\(event {events[2].pk}\\)"):
            call_command("audit_verify")

    committed(body)


def test_verify_finds_a_deleted_row(committed):
    def body():
        events = _events(3)
        _seal_everything()
        _tamper("DELETE FROM accounts_auditevent WHERE id = %s", [events[1].pk])
        report = verify()
        assert report.broken_event_id == events[1].pk and "missing" in report.problem

    committed(body)


def test_verify_reports_events_left_unsealed_for_more_than_five_minutes(committed, capsys):
    def body():
        AuditEvent.objects.create(time=timezone.now() - dt.timedelta(minutes=6), action="view")
        assert verify().unsealed_old == 1
        with pytest.raises(CommandError, match="1 events unsealed for more than 5 minutes"):
            call_command("audit_verify")
        _seal_everything()
        call_command("audit_verify", "--seal-first")

    committed(body)
    out = capsys.readouterr().out
    assert "sealed 0 events" in out and "intact" in out


def test_the_orm_has_no_update_or_delete_path():
    event = _events(1)[0]
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(PermissionError):
        event.save()


@postgres_only
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE accounts_auditevent SET reason = 'x' WHERE id = %s",
        "DELETE FROM accounts_auditevent WHERE id = %s",
    ],
)
def test_postgres_refuses_update_and_delete(sql):
    event = _events(1)[0]
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).reason == ""


@postgres_only
def test_postgres_refuses_changes_to_seals(committed):
    def body():
        _events(1)
        assert _seal_everything() == 1
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("UPDATE accounts_auditseal SET hash = 'x'")
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("DELETE FROM accounts_auditseal")

    committed(body)


@postgres_only
def test_postgres_seals_nothing_past_a_transaction_still_running(committed):
    """An event written by a transaction that has not committed holds back every later event,
    so that the chain never has to take a row in before one already sealed."""
    started, release = threading.Event(), threading.Event()

    def slow_writer():
        with transaction.atomic():
            audit_record(actor=Actor.system("slow"), action="view")
            started.set()
            release.wait(10)

    def body():
        thread = threading.Thread(target=lambda: _in_thread(slow_writer))
        thread.start()
        assert started.wait(10)
        early = audit_record(actor=Actor.system("fast"), action="view")  # committed, later txid
        seal_pending()
        assert not AuditSeal.objects.filter(event_id=early.pk).exists()
        release.set()
        thread.join(10)
        _seal_everything()
        sealed = list(AuditSeal.objects.order_by("seq").values_list("event_id", flat=True))
        slow = AuditEvent.objects.get(username="slow")
        assert sealed.index(slow.pk) < sealed.index(early.pk)  # by transaction, commit-safe
        assert verify().ok

    committed(body)


def test_the_beat_schedule_seals_within_a_minute(settings, committed):
    entry = settings.CELERY_BEAT_SCHEDULE["audit-seal"]
    assert entry["task"] == "accounts.tasks.audit_seal" and entry["schedule"] <= 60
    from accounts.tasks import audit_seal

    def body():
        _events(2)
        assert audit_seal.apply().get() + _seal_everything() == 2

    committed(body)
