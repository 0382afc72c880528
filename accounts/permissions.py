"""Access scope: every selector starts from ``restrict(queryset, user, perm)``.

Each model names the path from itself to what decides its scope in ``scope_path`` (for example
``"department"`` on a patient). The foundation lets any active, logged-in user who holds the
permission see every row; the accounts issue turns ``scope_path`` into a department filter and
adds explicit shares, without any caller changing.
"""

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, QuerySet

_UNSET = object()


def restrict(queryset: QuerySet, user, perm: str | None) -> QuerySet:
    """Return the part of ``queryset`` that ``user`` may access with ``perm``.

    Parameters
    ----------
    queryset : QuerySet
        The rows to start from, before any lookup by id.
    user : User or AnonymousUser
    perm : str or None
        ``"app_label.codename"``; ``None`` checks only that the user is logged in and active.
    """
    model: type[Model] = queryset.model
    scope_path = getattr(model, "scope_path", _UNSET)
    if scope_path is _UNSET:
        raise ImproperlyConfigured(f"{model.__name__} has no scope_path; restrict() needs one.")
    if user is None or not user.is_authenticated or not user.is_active:
        return queryset.none()
    if perm is not None and not user.has_perm(perm):
        return queryset.none()
    return queryset


def can(user, perm: str) -> bool:
    """Whether the user holds a model-level permission (for buttons and 403 decisions)."""
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(perm))
