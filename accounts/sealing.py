"""The hash chain over the audit, and its verification.

Events are inserted without any lock. Every ``AUDIT_SEAL_INTERVAL`` seconds the sealing task
(``accounts.tasks.audit_seal``) appends one ``AuditSeal`` per new event, in a stable commit
order: ``hash = sha256(previous hash + canonical event)``. Changing, deleting or inserting an
event behind the sealer's back breaks the chain, which ``manage.py audit_verify`` reports.

Which rows are final, so that no later commit can slip in before them:

* PostgreSQL: each event records its writing transaction (``txid xid8``, a database default).
  A transaction older than ``pg_snapshot_xmin(pg_current_snapshot())`` has ended, and every
  transaction still running or yet to start has an id at or above it, so the rows below it
  form a set that never grows again. The sealer seals them in ``(txid, id)`` order, after the
  last sealed ``(txid, id)``. Transaction ids are server-wide: a write transaction left open
  anywhere on the server (any database) holds sealing back until it ends, and audit_verify
  then reports the rows it keeps unsealed for more than 5 minutes.
* SQLite: writes are serialised (one writer at a time, IMMEDIATE transactions), so ids are
  given in commit order and ``id`` alone is the order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import AuditEvent, AuditSeal

GENESIS = "0" * 64
BATCH = 5000
UNSEALED_GRACE = dt.timedelta(minutes=5)
# Any number is fine as long as only the sealer uses it: two sealers never interleave.
_ADVISORY_LOCK = 0x41554449


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def canonical(event: AuditEvent) -> bytes:
    """The bytes of an event that the chain covers (every column but the database's txid)."""
    time = event.time.astimezone(dt.UTC).isoformat(timespec="microseconds")
    body = {
        "id": event.pk,
        "time": time,
        "user_id": event.user_id,
        "username": event.username,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "patient_id": event.patient_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "outcome": event.outcome,
        "reason": event.reason,
        "details": event.details,
        "flagged": event.flagged,
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def link_hash(previous: str, event: AuditEvent) -> str:
    return hashlib.sha256(previous.encode() + canonical(event)).hexdigest()


def _next_batch(last: AuditSeal | None) -> list[tuple[int, int | None]]:
    """(event id, txid) of the next final events to seal, in chain order."""
    if _is_postgres():
        sql = (
            "SELECT id, txid::text::bigint FROM accounts_auditevent "
            "WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) "
        )
        params: list = []
        if last is not None:
            sql += "AND (txid, id) > (%s::text::xid8, %s) "
            params += [str(last.event_txid), last.event_id]
        sql += "ORDER BY txid, id LIMIT %s"
        params.append(BATCH)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [(row[0], row[1]) for row in cursor.fetchall()]
    qs = AuditEvent.objects.order_by("id")
    if last is not None:
        qs = qs.filter(id__gt=last.event_id)
    return [(pk, None) for pk in qs.values_list("id", flat=True)[:BATCH]]


def seal_pending(*, max_batches: int = 100) -> int:
    """Seal every final, unsealed event; returns how many were sealed."""
    sealed = 0
    for _batch in range(max_batches):
        done = _seal_batch()
        sealed += done
        if done < BATCH:
            break
    return sealed


@transaction.atomic
def _seal_batch() -> int:
    if _is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_ADVISORY_LOCK])
            if not cursor.fetchone()[0]:
                return 0  # another sealer is at work
    last = AuditSeal.objects.order_by("-seq").first()
    batch = _next_batch(last)
    if not batch:
        return 0
    events = AuditEvent.objects.in_bulk([pk for pk, _txid in batch])
    previous = last.hash if last else GENESIS
    seq = last.seq if last else 0
    now = timezone.now()
    seals = []
    for pk, txid in batch:
        seq += 1
        previous = link_hash(previous, events[pk])
        seals.append(AuditSeal(seq=seq, event_id=pk, event_txid=txid, hash=previous, sealed_at=now))
    AuditSeal.objects.bulk_create(seals)
    return len(seals)


@dataclass
class VerifyReport:
    checked: int = 0
    broken_seq: int | None = None
    broken_event_id: int | None = None
    problem: str = ""
    unsealed_old: int = 0
    oldest_unsealed_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.broken_seq is None and self.unsealed_old == 0


def verify(*, grace: dt.timedelta = UNSEALED_GRACE, chunk: int = 5000) -> VerifyReport:
    """Walk the chain from the start; stop at the first broken link."""
    report = VerifyReport()
    previous = GENESIS
    expected_seq = 1
    last_seq = 0
    while True:
        seals = list(AuditSeal.objects.filter(seq__gt=last_seq).order_by("seq")[:chunk])
        if not seals:
            break
        events = AuditEvent.objects.in_bulk([s.event_id for s in seals])
        for seal in seals:
            event = events.get(seal.event_id)
            if seal.seq != expected_seq:
                problem = f"sequence jumps from {expected_seq - 1} to {seal.seq}"
            elif event is None:
                problem = "the sealed event is missing (deleted)"
            elif link_hash(previous, event) != seal.hash:
                problem = "the event or the seal was changed"
            else:
                problem = ""
            if problem:
                report.broken_seq, report.broken_event_id = seal.seq, seal.event_id
                report.problem = problem
                return report
            previous = seal.hash
            expected_seq += 1
            report.checked += 1
        last_seq = seals[-1].seq
    cutoff = timezone.now() - grace
    unsealed = AuditEvent.objects.filter(time__lt=cutoff).exclude(
        id__in=AuditSeal.objects.values("event_id")
    )
    report.unsealed_old = unsealed.count()
    if report.unsealed_old:
        report.oldest_unsealed_id = unsealed.order_by("id").values_list("id", flat=True).first()
    return report
