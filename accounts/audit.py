"""The audit shape: who did what to which object of which patient, from where, and how it ended.

Services write the audit row in the same transaction as the change it records; read views write
one for every read of patient data. Nothing here has a foreign key, so audit rows never move or
disappear with the data they describe.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import AuditEvent

# The action vocabulary; later issues add to it.
VIEW = "view"
LIST = "list"
CREATE = "create"
UPDATE = "update"
DELETE = "delete"
RESTORE = "restore"
DOWNLOAD = "download"
EXPORT = "export"
LOGIN = "login"
LOGOUT = "logout"
LOGIN_FAILED = "login_failed"
SHARE = "share"
UNSHARE = "unshare"
EMERGENCY_LOOKUP = "emergency_lookup"
EMERGENCY_ACCESS = "emergency_access"
EMERGENCY_REVIEW = "emergency_review"
ROLE_CHANGE = "role_change"
PERMISSION_CHANGE = "permission_change"
DEPARTMENT_CHANGE = "department_change"
PASSWORD_RESET_REQUIRED = "password_reset_required"
PASSWORD_CHANGE = "password_change"

# One event per user, object and action per viewing window; frames, thumbnails and reloads
# inside it are covered by the window's first event.
VIEWING_WINDOW = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Actor:
    """Who acts, and from where: passed to every service that writes."""

    user: Any = None
    ip: str | None = None
    user_agent: str = ""
    label: str = ""

    @classmethod
    def from_request(cls, request) -> Actor:
        meta = request.META
        return cls(
            user=getattr(request, "user", None),
            ip=client_ip(request),
            user_agent=meta.get("HTTP_USER_AGENT", "")[:512],
        )

    @classmethod
    def system(cls, label: str) -> Actor:
        """A background task or command acting on its own behalf."""
        return cls(label=label)

    @classmethod
    def current(cls, default_label: str = "system") -> Actor:
        """The actor of the request being served (set by ``AuditActorMiddleware``), for code
        that has no request at hand (signal handlers); a named system actor otherwise."""
        request = _current_request.get()
        return cls.from_request(request) if request is not None else cls.system(default_label)

    @property
    def user_id(self) -> int | None:
        user = self.user
        return user.pk if user is not None and getattr(user, "is_authenticated", False) else None

    @property
    def username(self) -> str:
        user = self.user
        if user is not None and getattr(user, "is_authenticated", False):
            return user.get_username()
        return self.label or "anonymous"


_current_request: contextvars.ContextVar = contextvars.ContextVar("audit_request", default=None)


class AuditActorMiddleware:
    """Makes the request known to signal handlers (role and permission changes), so that they
    audit who made the change and from where; and waits for the request's viewing-window
    events (``audit_view``) to be committed before its response leaves."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current_request.set(request)
        deferred = _deferred_reads.set(True)
        _read_writer.request_started()
        try:
            response = self.get_response(request)
            # The reads' audit events are committed before the response leaves.
            _read_writer.flush()
            return response
        finally:
            _read_writer.request_finished()
            _deferred_reads.reset(deferred)
            _current_request.reset(token)
            if _read_writer.unconfirmed:  # only when the view itself raised
                try:
                    _read_writer.flush()
                except Exception:  # the view's own exception is the one to see
                    pass


def client_ip(request) -> str | None:
    # Behind nginx, REMOTE_ADDR is the proxy's address and the proxy sets X-Real-IP; the header
    # is trusted only when BEHIND_PROXY says a proxy overwrites it.
    if settings.BEHIND_PROXY and request.META.get("HTTP_X_REAL_IP"):
        return request.META["HTTP_X_REAL_IP"]
    return request.META.get("REMOTE_ADDR") or None


def object_label(obj: models.Model) -> str:
    return f"{obj._meta.app_label}.{obj._meta.model_name}"


def audit_record(
    *,
    actor: Actor,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    patient_id: int | None = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    reason: str = "",
    details: dict | None = None,
    flagged: bool = False,
) -> AuditEvent:
    """Write one audit event.

    ``obj`` fills ``object_type``/``object_id`` and, when the object knows its patient
    (``audit_patient_id``), ``patient_id``. Call it inside the transaction of the change.
    """
    event = audit_event(
        actor=actor,
        action=action,
        obj=obj,
        object_type=object_type,
        object_id=object_id,
        patient_id=patient_id,
        outcome=outcome,
        reason=reason,
        details=details,
        flagged=flagged,
    )
    event.save(force_insert=True)
    return event


def audit_event(
    *,
    actor: Actor,
    action: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    patient_id: int | None = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    reason: str = "",
    details: dict | None = None,
    flagged: bool = False,
) -> AuditEvent:
    """The event ``audit_record`` writes, unsaved: for services that write many rows at once
    (``AuditEvent.objects.bulk_create`` in the transaction of the change)."""
    if obj is not None:
        object_type = object_type or object_label(obj)
        object_id = object_id or obj.pk
        if patient_id is None:
            patient_id = getattr(obj, "audit_patient_id", None)
    return AuditEvent(
        user_id=actor.user_id,
        username=actor.username,
        action=action,
        object_type=object_type,
        object_id=str(object_id) if object_id not in (None, "") else "",
        patient_id=patient_id,
        ip=actor.ip,
        user_agent=actor.user_agent,
        outcome=outcome,
        reason=reason,
        details=details or {},
        flagged=flagged,
    )


def audit_view(
    *,
    actor: Actor,
    obj: models.Model | None = None,
    action: str = VIEW,
    object_type: str = "",
    object_id: str | int = "",
    patient_id: int | None = None,
    details: dict | None = None,
) -> AuditEvent | None:
    """A read inside a viewing window: recorded once per user, object and action per
    ``VIEWING_WINDOW``; later reads in the window (frames, thumbnails, reloads) are not
    recorded again. Returns the new event, or ``None`` when the window already has one (or
    when the event is being committed beside the request, see below).
    Downloads, exports and lists are always their own event: use ``audit_record``/``audit_list``.

    Inside a request served through ``AuditActorMiddleware`` on PostgreSQL, outside any
    transaction, the event goes to the process's audit writer (``_ReadAuditWriter``), which
    writes it on a connection of its own with an ``INSERT ... WHERE NOT EXISTS``, batched with
    the events of the process's other requests (one commit for several where they overlap):
    the request goes on (serializing, rendering) meanwhile, and the middleware waits for the
    commit before the response leaves (``audit_flush``). A failure there retries on the
    request's own connection and, failing again, turns the response into an error: no data
    leaves unaudited.
    """
    if not settings.AUDIT_READS:
        return None
    if obj is not None:
        object_type = object_type or object_label(obj)
        object_id = object_id or obj.pk
        if patient_id is None:
            patient_id = getattr(obj, "audit_patient_id", None)
    if actor.user_id is not None and _read_writer.deferrable():
        event = _event_row(
            actor, action, object_type, object_id, patient_id, details or {}, timezone.now()
        )
        if _read_writer.send(event):
            return None
    recent = AuditEvent.objects.filter(
        object_id=str(object_id),
        object_type=object_type,
        user_id=actor.user_id,
        action=action,
        time__gte=timezone.now() - VIEWING_WINDOW,
    )
    if actor.user_id is not None and recent.exists():
        return None
    return audit_record(
        actor=actor,
        action=action,
        obj=obj,
        object_type=object_type,
        object_id=object_id,
        patient_id=patient_id,
        details=details,
    )


def audit_flush() -> None:
    """Wait until the viewing-window events this request sent are committed (see
    ``audit_view``); raises when one could not be written. Call it before reading the audit
    in the same request (the access log does)."""
    _read_writer.flush()


def _event_row(actor, action, object_type, object_id, patient_id, details, now) -> dict:
    return {
        "time": now,
        "user_id": actor.user_id,
        "username": actor.username,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id) if object_id not in (None, "") else "",
        "patient_id": patient_id,
        "ip": actor.ip,
        "user_agent": actor.user_agent,
        "outcome": AuditEvent.Outcome.SUCCESS.value,
        "reason": "",
        "details": details,
        "flagged": False,
    }


# One statement writes a batch: every event of the batch in one round trip and one transaction
# (one commit, one WAL flush, on the writer's autocommit connection). The events travel as one
# JSON array; a viewing window's event (``since`` set) is inserted only when its window has no
# event yet, a list's always. Prepared once per connection: no parsing or planning per batch.
_INSERT_BATCH = b"""
INSERT INTO accounts_auditevent
    (time, user_id, username, action, object_type, object_id, patient_id, ip, user_agent,
     outcome, reason, details, flagged)
SELECT e.time, e.user_id, e.username, e.action, e.object_type, e.object_id, e.patient_id,
       e.ip, e.user_agent, e.outcome, e.reason, e.details, e.flagged
FROM jsonb_to_recordset($1::jsonb) AS e(
    time timestamptz, user_id bigint, username text, action text, object_type text,
    object_id text, patient_id bigint, ip inet, user_agent text, outcome text, reason text,
    details jsonb, flagged boolean, since timestamptz)
WHERE e.since IS NULL OR NOT EXISTS (
    SELECT 1 FROM accounts_auditevent a
    WHERE a.object_id = e.object_id AND a.object_type = e.object_type
      AND a.user_id = e.user_id AND a.action = e.action AND a.time >= e.since
)
"""
_STATEMENT = b"mis_audit_batch"


def _encode(event: dict, window: bool) -> bytes:
    """One event as a JSON object of the batch statement's record."""
    from django.core.serializers.json import DjangoJSONEncoder

    record = {
        **event,
        "time": event["time"].isoformat(),
        "ip": event["ip"] or None,
        "user_agent": event["user_agent"] or "",
        "since": (event["time"] - VIEWING_WINDOW).isoformat() if window else None,
    }
    return json.dumps(record, cls=DjangoJSONEncoder).encode()


class _Ticket:
    """One event sent to the writer, and how it ended."""

    __slots__ = ("row", "window", "payload", "state")
    WAITING, WRITTEN, FAILED = 0, 1, 2

    def __init__(self, row: dict, window: bool, payload: bytes):
        self.row, self.window, self.payload = row, window, payload
        self.state = _Ticket.WAITING

    @property
    def window_key(self):
        row = self.row
        return (row["object_id"], row["object_type"], row["user_id"], row["action"])


class _ReadAuditWriter:
    """Per process: one PostgreSQL connection (autocommit) on which all its threads' read events
    (viewing windows, lists) are written, in batches: application-side group commit.

    A request thread's event is sent at once, without waiting for the answer, when its request
    is the only one in progress in the process and no batch is in flight. Otherwise it waits,
    and goes with the others waiting as the next batch as soon as the batch in flight is
    answered or a request reaches its response (whichever thread gets there sends it). No thread of
    its own: the request threads take turns, under ``lock``; the one that waits for the answer
    (``reading``) does so in ``select()`` outside the lock, with the GIL released. Each thread
    keeps the events it sent in this request (``unconfirmed``) and waits for them in ``flush``;
    an event whose batch failed is written again on the thread's own connection."""

    TIMEOUT = 30.0

    def __init__(self):
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self):
        # A forked child shares none of this: the parent's connection (psycopg does not close
        # it from another process), its lock and its batches stay the parent's.
        self.lock = threading.Lock()
        self.answered = threading.Condition(self.lock)
        self.connection = None
        self.key = None
        self.pending: list[_Ticket] = []
        self.inflight: list[_Ticket] | None = None
        self.reading = False
        self.active = 0  # requests in progress in this process
        self.local = threading.local()

    def request_started(self) -> None:
        with self.lock:
            self.active += 1

    def request_finished(self) -> None:
        with self.lock:
            self.active -= 1

    @property
    def unconfirmed(self) -> list[_Ticket]:
        return self.local.__dict__.setdefault("unconfirmed", [])

    def deferrable(self) -> bool:
        from django.db import connection

        return (
            _deferred_reads.get()
            and settings.AUDIT_READS_DEFERRED
            and connection.vendor == "postgresql"
            and not connection.in_atomic_block
        )

    # Everything below that touches ``connection`` runs under ``lock`` while no thread is
    # ``reading``, or in the reading thread.

    def _connect(self):
        import psycopg
        from django.db import connection

        db = connection.settings_dict
        key = (db["NAME"], db["HOST"], db["PORT"], db["USER"])
        live = (
            self.connection is not None
            and self.key == key
            and not self.connection.closed
            and self.connection.pgconn.status == psycopg.pq.ConnStatus.OK
        )
        if not live:
            self._disconnect()
            params = connection.get_connection_params()
            params = {k: v for k, v in params.items() if k != "cursor_factory"}
            params["application_name"] = "mis audit writer"  # as pg_stat_activity shows it
            conn = psycopg.connect(**params, autocommit=True)
            result = conn.pgconn.prepare(_STATEMENT, _INSERT_BATCH)
            if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                conn.close()
                raise psycopg.OperationalError("could not prepare the audit statement")
            self.connection = conn
            self.key = key
        return self.connection

    def _disconnect(self):
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:  # a broken connection is replaced either way
                pass
        self.connection = None

    def _send_pending(self) -> None:
        batch, self.pending = self.pending, []
        seen, payloads = set(), []
        for ticket in batch:
            if ticket.window:  # one event per window, also within a batch
                key = ticket.window_key
                if key in seen:
                    continue
                seen.add(key)
            payloads.append(ticket.payload)
        try:
            conn = self._connect()
            conn.pgconn.send_query_prepared(_STATEMENT, [b"[" + b",".join(payloads) + b"]"])
        except Exception:  # each thread writes its own events the ordinary way
            self._disconnect()
            self._finish(batch, ok=False)
            return
        self.inflight = batch

    def _finish(self, batch: list[_Ticket], ok: bool) -> None:
        state = _Ticket.WRITTEN if ok else _Ticket.FAILED
        for ticket in batch:
            ticket.state = state
        if batch is self.inflight:
            self.inflight = None
        if not ok:
            self._disconnect()
        self.answered.notify_all()

    def _collect(self) -> bool:
        """The in-flight batch's answer, which has arrived: whether it committed."""
        import psycopg

        ok = True
        pgconn = self.connection.pgconn
        while (result := pgconn.get_result()) is not None:
            if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                ok = False
        return ok

    def _advance(self) -> None:
        """Without waiting: collect the in-flight answer if it is in, then send what waits."""
        if self.inflight is not None:
            try:
                pgconn = self.connection.pgconn
                pgconn.consume_input()
                if pgconn.is_busy():
                    return
                ok = self._collect()
            except Exception:
                ok = False
            self._finish(self.inflight, ok)
        if self.pending:
            self._send_pending()

    def send(self, event: dict, *, window: bool = True) -> bool:
        """Send one event (a viewing window's, or with ``window=False`` one that is always
        written); False (nothing sent) when the connection cannot be had."""
        ticket = _Ticket(event, window, _encode(event, window))
        with self.lock:
            self.pending.append(ticket)
            # Alone in the process, the event goes at once: its commit overlaps the rest of the
            # request. With other requests in progress it waits for the first of them to reach
            # its response (``flush``) or for the batch in flight to be answered, and goes in
            # that batch: one commit for several events where the machine is busiest.
            if not self.reading and (self.active <= 1 or self.inflight is not None):
                self._advance()
        if ticket.state == _Ticket.FAILED:
            return False  # the caller writes it the ordinary way
        self.unconfirmed.append(ticket)
        return True

    def flush(self) -> None:
        """Wait until this thread's events are committed; write those that were not on the
        thread's own connection."""
        mine = self.local.__dict__.get("unconfirmed")
        if not mine:
            return
        self.local.unconfirmed = []
        deadline = time.monotonic() + self.TIMEOUT
        while any(ticket.state == _Ticket.WAITING for ticket in mine):
            left = deadline - time.monotonic()
            with self.lock:
                if all(ticket.state != _Ticket.WAITING for ticket in mine):
                    break
                if left <= 0:
                    break  # given up on: written again below
                if self.reading:
                    self.answered.wait(left)
                    continue
                self._advance()
                if self.inflight is None or all(t.state != _Ticket.WAITING for t in mine):
                    continue
                self.reading = True
                pgconn = self.connection.pgconn
            try:
                _wait_for_answer(pgconn, left)
                waited = True
            except Exception:
                waited = False
            with self.lock:
                self.reading = False
                if waited:
                    self._advance()  # the answer is in: collected, and the next batch sent
                elif self.inflight is not None:
                    self._finish(self.inflight, ok=False)
                    if self.pending:
                        self._send_pending()
                self.answered.notify_all()
        # Not known to be committed: written again on the request's own connection. The window
        # check makes this idempotent if the first attempt did commit; a list's event may then
        # be there twice, which is better than not at all.
        for ticket in mine:
            if ticket.state != _Ticket.WRITTEN:
                if ticket.window:
                    _write_if_new_window(ticket.row)
                else:
                    AuditEvent.objects.create(**ticket.row)

    def _close(self) -> None:
        """Close the connection once the batch in flight is answered (tests, shutdown)."""
        deadline = time.monotonic() + self.TIMEOUT
        with self.lock:
            while (self.reading or self.inflight) and time.monotonic() < deadline:
                if self.reading:
                    self.answered.wait(0.05)
                else:
                    self._advance()
                    if self.inflight:
                        self.answered.wait(0.01)
            if self.inflight:
                self._finish(self.inflight, ok=False)
            self._disconnect()


def _wait_for_answer(pgconn, seconds: float = 30.0) -> None:
    """Wait until the statement's answer has arrived, in ``select()``: it lets go of the GIL,
    so the worker's other threads go on serving requests meanwhile (libpq's blocking
    ``PQgetResult`` would hold it for the whole round trip and commit)."""
    import select

    deadline = time.monotonic() + seconds
    pgconn.consume_input()
    while pgconn.is_busy():
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer to the audit statement")
        select.select([pgconn.socket], [], [], left)
        pgconn.consume_input()


def _write_if_new_window(row: dict) -> None:
    recent = AuditEvent.objects.filter(
        object_id=row["object_id"],
        object_type=row["object_type"],
        user_id=row["user_id"],
        action=row["action"],
        time__gte=row["time"] - VIEWING_WINDOW,
    )
    if not recent.exists():
        AuditEvent.objects.create(**row)


_read_writer = _ReadAuditWriter()
_deferred_reads: contextvars.ContextVar = contextvars.ContextVar("audit_deferred", default=False)


def audit_list(
    *, actor: Actor, object_type: str, query: dict, patient_ids: list[int], **details
) -> AuditEvent | None:
    """A list page or endpoint: always its own event, naming the patients it returned.

    Inside a request on PostgreSQL it is sent on the audit writer's connection like a viewing
    window's event (``audit_view``), committed before the response leaves, and ``None`` is
    returned."""
    if not settings.AUDIT_READS:
        return None
    if actor.user_id is not None and _read_writer.deferrable():
        details = {"query": query, "patient_ids": patient_ids, **details}
        event = _event_row(actor, LIST, object_type, "", None, details, timezone.now())
        if _read_writer.send(event, window=False):
            return None
    return audit_record(
        actor=actor,
        action=LIST,
        object_type=object_type,
        details={"query": query, "patient_ids": patient_ids, **details},
    )
