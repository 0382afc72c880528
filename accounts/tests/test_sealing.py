"""The hash chain: sealing, verification, and an audit that refuses to be changed."""

import datetime as dt
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from accounts.audit import Actor, audit_record
from accounts.models import AuditEvent, AuditSeal
from accounts.sealing import GENESIS, link_hash, seal_pending, verify

# Committed rows: on PostgreSQL a row is sealed only once its transaction has ended.
pytestmark = pytest.mark.django_db(transaction=True)

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the trigger and txid exist on PostgreSQL only"
)


def _events(n, **kwargs):
    return [
        audit_record(actor=Actor.system("t"), action="view", object_id=i, **kwargs)
        for i in range(n)
    ]


def _tamper(sql, params):
    """Change a row behind the application's back (on PostgreSQL with the trigger bypassed, as
    a database superuser could)."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")


def test_sealing_chains_every_event_once():
    before = AuditEvent.objects.count()
    _events(3)
    assert seal_pending() == before + 3
    assert seal_pending() == 0
    seals = list(AuditSeal.objects.order_by("seq"))
    assert [s.seq for s in seals] == list(range(1, len(seals) + 1))
    first_event = AuditEvent.objects.get(pk=seals[0].event_id)
    assert seals[0].hash == link_hash(GENESIS, first_event)
    assert verify().ok


def test_verify_finds_a_changed_row_and_names_the_first_broken_link():
    events = _events(4)
    seal_pending()
    _tamper("UPDATE accounts_auditevent SET reason = %s WHERE id = %s", ["edited", events[2].pk])
    report = verify()
    seal = AuditSeal.objects.get(event_id=events[2].pk)
    assert (report.broken_seq, report.broken_event_id) == (seal.seq, events[2].pk)
    assert "changed" in report.problem
    with pytest.raises(CommandError, match=f"seal #{seal.seq} \\(event {events[2].pk}\\)"):
        call_command("audit_verify")


def test_verify_finds_a_deleted_row():
    events = _events(3)
    seal_pending()
    _tamper("DELETE FROM accounts_auditevent WHERE id = %s", [events[1].pk])
    report = verify()
    assert report.broken_event_id == events[1].pk and "missing" in report.problem


def test_verify_reports_events_left_unsealed_for_more_than_five_minutes(capsys):
    AuditEvent.objects.create(time=timezone.now() - dt.timedelta(minutes=6), action="view")
    report = verify()
    assert report.unsealed_old == 1
    with pytest.raises(CommandError, match="1 events unsealed for more than 5 minutes"):
        call_command("audit_verify")
    call_command("audit_verify", "--seal-first")
    assert "intact" in capsys.readouterr().out


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
def test_postgres_refuses_changes_to_seals():
    _events(1)
    seal_pending()
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE accounts_auditseal SET hash = 'x'")


@postgres_only
def test_postgres_seals_nothing_past_a_transaction_still_running():
    """An event written by a transaction that has not committed holds back every later event,
    so that the chain never has to take a row in before one already sealed."""
    started, release, done = threading.Event(), threading.Event(), threading.Event()

    def slow_writer():
        try:
            with transaction.atomic():
                audit_record(actor=Actor.system("slow"), action="view")
                started.set()
                release.wait(10)
        finally:
            connections.close_all()
            done.set()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert started.wait(10)
    early = audit_record(actor=Actor.system("fast"), action="view")  # committed, but later txid
    seal_pending()
    assert not AuditSeal.objects.filter(event_id=early.pk).exists()
    release.set()
    assert done.wait(10)
    thread.join()
    seal_pending()
    sealed = list(AuditSeal.objects.order_by("seq").values_list("event_id", flat=True))
    slow = AuditEvent.objects.get(username="slow")
    assert sealed.index(slow.pk) < sealed.index(early.pk)  # commit-safe order: by transaction
    assert verify().ok


def test_the_beat_schedule_seals_within_a_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["audit-seal"]
    assert entry["task"] == "accounts.tasks.audit_seal" and entry["schedule"] <= 60
    from accounts.tasks import audit_seal

    _events(2)
    assert audit_seal.apply().get() >= 2
