"""The per-username lockout: django-axes locks a (username, address) pair; this backend adds a
higher threshold for one username tried from many addresses."""

import datetime as dt

from axes.exceptions import AxesBackendPermissionDenied
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.db.models import Sum
from django.utils import timezone


def username_locked_out(username: str) -> bool:
    if not username or not settings.AXES_ENABLED:
        return False
    since = timezone.now() - dt.timedelta(hours=settings.AXES_COOLOFF_TIME)
    failures = AccessAttempt.objects.filter(username=username, attempt_time__gte=since).aggregate(
        total=Sum("failures_since_start")
    )["total"]
    return (failures or 0) >= settings.LOGIN_USERNAME_FAILURE_LIMIT


class UsernameLockoutBackend:
    """Authenticates nobody; refuses a username over its failure limit (any address). No
    ``get_user``: sessions are never bound to this backend (nor does force_login pick it)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username_locked_out(username):
            if request is not None:
                request.axes_locked_out = True
                request.axes_credentials = {"username": username}
            raise AxesBackendPermissionDenied("Too many failed logins for this username")
        return None


class InteractiveModelBackend(ModelBackend):
    """Django's password backend, except that service accounts never sign in with a password
    (login page, admin): they authenticate only with API tokens (``accounts.tokens``)."""

    def user_can_authenticate(self, user):
        if getattr(user, "is_service_account", False):
            return False
        return super().user_can_authenticate(user)

    def get_all_permissions(self, user_obj, obj=None):
        """The same set as Django's ModelBackend, read in one query (a UNION of the user's own
        and their groups' permissions) instead of two: it runs on every API request."""
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if user_obj.is_superuser or hasattr(user_obj, "_perm_cache"):
            return super().get_all_permissions(user_obj, obj)
        from django.contrib.auth.models import Permission

        fields = ("content_type__app_label", "codename")
        own = Permission.objects.filter(user=user_obj).order_by().values_list(*fields)
        grouped = Permission.objects.filter(group__user=user_obj).order_by().values_list(*fields)
        user_obj._perm_cache = {f"{app}.{codename}" for app, codename in own.union(grouped)}
        return user_obj._perm_cache
