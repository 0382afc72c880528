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
        try:
            response = self.get_response(request)
            # The reads' audit events are committed before the response leaves.
            _read_writer.flush()
            return response
        finally:
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
    transaction, the event is written by one ``INSERT ... WHERE NOT EXISTS`` sent on a
    connection of its own without waiting: the request goes on (serializing, rendering) while
    the database commits it, and the middleware waits for that commit before the response
    leaves (``audit_flush``). A failure there retries on the request's own connection and,
    failing again, turns the response into an error: no data leaves unaudited.
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


# One statement: the window check and the insert in a single round trip (and a single
# implicit transaction on the writer's autocommit connection). Prepared once per connection and
# sent with text parameters: no parsing or planning per event, no adaptation in Python.
_INSERT_IF_NEW_WINDOW = b"""
INSERT INTO accounts_auditevent
    (time, user_id, username, action, object_type, object_id, patient_id, ip, user_agent,
     outcome, reason, details, flagged)
SELECT $1::timestamptz, $2::bigint, $3::text, $4::text, $5::text, $6::text, $7::bigint,
       $8::inet, $9::text, $10::text, $11::text, $12::jsonb, $13::boolean
WHERE NOT EXISTS (
    SELECT 1 FROM accounts_auditevent
    WHERE object_id = $6::text AND object_type = $5::text
      AND user_id = $2::bigint AND action = $4::text
      AND time >= $14::timestamptz
)
"""
_STATEMENT = b"mis_audit_view_window"
# A list's event, always its own (no window): the same row, inserted unconditionally.
_INSERT_EVENT = _INSERT_IF_NEW_WINDOW.split(b"WHERE NOT EXISTS")[0]
_EVENT_STATEMENT = b"mis_audit_event"


def _text(value) -> bytes | None:
    return None if value is None else str(value).encode()


def _statement_params(event: dict, window: bool = True) -> list[bytes | None]:
    """The prepared statement's parameters, in PostgreSQL's text format."""
    from django.core.serializers.json import DjangoJSONEncoder

    params = [
        event["time"].isoformat().encode(),
        _text(event["user_id"]),
        event["username"].encode(),
        event["action"].encode(),
        event["object_type"].encode(),
        event["object_id"].encode(),
        _text(event["patient_id"]),
        _text(event["ip"] or None),
        (event["user_agent"] or "").encode(),
        event["outcome"].encode(),
        event["reason"].encode(),
        json.dumps(event["details"], cls=DjangoJSONEncoder).encode(),
        b"t" if event["flagged"] else b"f",
    ]
    if window:
        params.append((event["time"] - VIEWING_WINDOW).isoformat().encode())
    return params


class _ReadAuditWriter(threading.local):
    """Per thread of each process: a PostgreSQL connection of its own (autocommit) on which
    read events (viewing windows, lists) are sent without waiting for the answer, and the rows
    sent but not yet confirmed in this request (with whether each is a window's)."""

    def __init__(self):
        self.connection = None
        self.key = None
        self.unconfirmed: list[tuple[dict, bool]] = []

    def deferrable(self) -> bool:
        from django.db import connection

        return (
            _deferred_reads.get()
            and settings.AUDIT_READS_DEFERRED
            and connection.vendor == "postgresql"
            and not connection.in_atomic_block
        )

    def _connect(self):
        import psycopg
        from django.db import connection

        db = connection.settings_dict
        key = (os.getpid(), db["NAME"], db["HOST"], db["PORT"], db["USER"])
        live = (
            self.connection is not None
            and self.key == key
            and not self.connection.closed
            and self.connection.pgconn.status == psycopg.pq.ConnStatus.OK
        )
        if not live:
            self._close()
            params = connection.get_connection_params()
            params = {k: v for k, v in params.items() if k != "cursor_factory"}
            conn = psycopg.connect(**params, autocommit=True)
            for name, statement in (
                (_STATEMENT, _INSERT_IF_NEW_WINDOW),
                (_EVENT_STATEMENT, _INSERT_EVENT),
            ):
                result = conn.pgconn.prepare(name, statement)
                if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                    conn.close()
                    raise psycopg.OperationalError("could not prepare the audit statements")
            self.connection = conn
            self.key = key
        return self.connection

    def _close(self):
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:  # a broken connection is replaced either way
                pass
        self.connection = None

    def send(self, event: dict, *, window: bool = True) -> bool:
        """Send one event's statement (a viewing window's, or with ``window=False`` one that is
        always written); False (nothing sent) when the connection cannot be had."""
        if self.unconfirmed:
            self.flush()  # libpq takes one statement in flight at a time
        try:
            conn = self._connect()
            statement = _STATEMENT if window else _EVENT_STATEMENT
            conn.pgconn.send_query_prepared(statement, _statement_params(event, window))
        except Exception:  # the caller writes it the ordinary way instead
            self._close()
            return False
        self.unconfirmed.append((event, window))
        return True

    def flush(self) -> None:
        if not self.unconfirmed:
            return
        import psycopg

        rows, self.unconfirmed = self.unconfirmed, []
        failed = self.connection is None
        if not failed:
            try:
                pgconn = self.connection.pgconn
                _wait_for_answer(pgconn)
                while (result := pgconn.get_result()) is not None:
                    if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                        failed = True
            except Exception:  # retried below on the request's connection
                failed = True
        if failed:
            self._close()
            # Not known to be committed: write again on the request's own connection. The
            # window check makes this idempotent if the first attempt did commit; a list's
            # event may then be there twice, which is better than not at all.
            for row, window in rows:
                if window:
                    _write_if_new_window(row)
                else:
                    AuditEvent.objects.create(**row)


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
