"""The audit shape: who did what to which object of which patient, from where, and how it ended.

Services write the audit row in the same transaction as the change it records; read views write
one for every read of patient data. Nothing here has a foreign key, so audit rows never move or
disappear with the data they describe.
"""

from __future__ import annotations

import contextvars
import datetime as dt
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
    audit who made the change and from where."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)


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
    if obj is not None:
        object_type = object_type or object_label(obj)
        object_id = object_id or obj.pk
        if patient_id is None:
            patient_id = getattr(obj, "audit_patient_id", None)
    return AuditEvent.objects.create(
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
    recorded again. Returns the new event, or ``None`` when the window already has one.
    Downloads, exports and lists are always their own event: use ``audit_record``/``audit_list``.
    """
    if not settings.AUDIT_READS:
        return None
    if obj is not None:
        object_type = object_type or object_label(obj)
        object_id = object_id or obj.pk
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


def audit_list(
    *, actor: Actor, object_type: str, query: dict, patient_ids: list[int], **details
) -> AuditEvent | None:
    """A list page or endpoint: always its own event, naming the patients it returned."""
    if not settings.AUDIT_READS:
        return None
    return audit_record(
        actor=actor,
        action=LIST,
        object_type=object_type,
        details={"query": query, "patient_ids": patient_ids, **details},
    )
