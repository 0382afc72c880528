"""Explicit shares: one record given to one user (a consultant), on top of department scope.

A share is a django-guardian object permission stored in the shared model's direct foreign-key
table; ``accounts.permissions.restrict()`` reads those tables. Granting and revoking are
audited in the same transaction.
"""

from __future__ import annotations

from django.apps import apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils.translation import gettext as _
from guardian.shortcuts import assign_perm, remove_perm
from guardian.utils import get_user_obj_perms_model

from accounts.audit import SHARE, UNSHARE, Actor, audit_record
from accounts.permissions import can

SHARE_PERM = "accounts.share_record"


def shareable_models() -> dict[str, type[models.Model]]:
    """Models that have a direct user object-permission table, by ``app_label.model_name``."""
    found = {}
    for model in apps.get_models():
        if model._meta.app_label in ("accounts", "guardian", "auth", "contenttypes"):
            continue
        if not get_user_obj_perms_model(model).objects.is_generic():
            found[f"{model._meta.app_label}.{model._meta.model_name}"] = model
    return found


def shareable_object(*, object_type: str, object_id) -> models.Model:
    """The object to share, found by administrators without department scope (they grant
    access, they do not read the record); a clear error when it is not shareable or missing."""
    model = shareable_models().get(object_type)
    if model is None:
        raise ValidationError(
            {"object_type": _("%(type)s cannot be shared.") % {"type": object_type}}
        )
    try:
        return model._default_manager.get(pk=object_id)
    except (model.DoesNotExist, ValueError, TypeError):
        raise ValidationError({"object_id": _("No such record.")}) from None


def _perm_for(obj: models.Model) -> str:
    return f"view_{obj._meta.model_name}"


def shares_of(obj: models.Model) -> models.QuerySet:
    return (
        get_user_obj_perms_model(obj)
        .objects.filter(content_object=obj, permission__codename=_perm_for(obj))
        .select_related("user")
    )


@transaction.atomic
def share_grant(*, actor: Actor, obj: models.Model, user, reason: str = "") -> bool:
    """Let ``user`` see ``obj`` regardless of department. Returns False if it already could."""
    if not can(actor.user, SHARE_PERM):
        raise PermissionDenied(_("You do not have permission to do this."))
    if not user.is_active:
        raise ValidationError({"user": _("This user is inactive.")})
    if shares_of(obj).filter(user=user).exists():
        return False
    assign_perm(_perm_for(obj), user, obj)
    audit_record(
        actor=actor,
        action=SHARE,
        obj=obj,
        reason=reason,
        details={"shared_with": user.get_username(), "shared_with_id": user.pk},
    )
    return True


@transaction.atomic
def share_revoke(*, actor: Actor, obj: models.Model, user, reason: str = "") -> bool:
    if not can(actor.user, SHARE_PERM):
        raise PermissionDenied(_("You do not have permission to do this."))
    if not shares_of(obj).filter(user=user).exists():
        return False
    remove_perm(_perm_for(obj), user, obj)
    audit_record(
        actor=actor,
        action=UNSHARE,
        obj=obj,
        reason=reason,
        details={"shared_with": user.get_username(), "shared_with_id": user.pk},
    )
    return True
