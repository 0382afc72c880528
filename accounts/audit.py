"""The audit shape: who did what to which object of which patient, from where, and how it ended.

Services write the audit row in the same transaction as the change it records; read views write
one for every read of patient data. Nothing here has a foreign key, so audit rows never move or
disappear with the data they describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import models

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
    )


def audit_list(
    *, actor: Actor, object_type: str, query: dict, patient_ids: list[int], **details
) -> AuditEvent:
    """A list page or endpoint: always its own event, naming the patients it returned."""
    return audit_record(
        actor=actor,
        action=LIST,
        object_type=object_type,
        details={"query": query, "patient_ids": patient_ids, **details},
    )
