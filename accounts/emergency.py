"""Break-glass: time-limited access to one record outside one's scope, with a reason, audited
and flagged for review by an administrator."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import EMERGENCY_ACCESS, EMERGENCY_REVIEW, Actor, audit_record, object_label
from accounts.models import EmergencyAccess
from accounts.permissions import can

EMERGENCY_PERM = "accounts.emergency_access"
REVIEW_PERM = "accounts.review_emergency_access"


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise ValidationError(
            {"reason": _("Say why you need emergency access (at least a few words).")}
        )
    return reason


@transaction.atomic
def emergency_grant(*, actor: Actor, obj: models.Model, reason: str) -> EmergencyAccess:
    """Open ``obj`` to the actor until ``EMERGENCY_ACCESS_HOURS`` from now; audited, flagged."""
    if not can(actor.user, EMERGENCY_PERM):
        raise PermissionDenied(_("You do not have permission to do this."))
    reason = _check_reason(reason)
    now = timezone.now()
    expires = now + dt.timedelta(hours=settings.EMERGENCY_ACCESS_HOURS)
    event = audit_record(
        actor=actor,
        action=EMERGENCY_ACCESS,
        obj=obj,
        reason=reason,
        flagged=True,
        details={"expires_at": expires.isoformat()},
    )
    return EmergencyAccess.objects.create(
        user=actor.user,
        object_type=object_label(obj),
        object_id=obj.pk,
        patient_id=getattr(obj, "audit_patient_id", None),
        reason=reason,
        created_at=now,
        expires_at=expires,
        audit_event_id=event.pk,
    )


@transaction.atomic
def emergency_review(*, actor: Actor, grant: EmergencyAccess, note: str = "") -> EmergencyAccess:
    """An administrator marks a break-glass access as reviewed (audited)."""
    if not can(actor.user, REVIEW_PERM):
        raise PermissionDenied(_("You do not have permission to do this."))
    updated = EmergencyAccess.objects.filter(pk=grant.pk, reviewed_at__isnull=True).update(
        reviewed_at=timezone.now(), reviewed_by=actor.user, review_note=note.strip()
    )
    if updated != 1:
        raise ValidationError(_("This emergency access has already been reviewed."))
    audit_record(
        actor=actor,
        action=EMERGENCY_REVIEW,
        object_type="accounts.emergencyaccess",
        object_id=grant.pk,
        patient_id=grant.patient_id,
        reason=note.strip(),
        details={"grant_user": grant.user.get_username(), "object_id": grant.object_id},
    )
    grant.refresh_from_db()
    return grant
