"""API tokens: made and revoked by their user (the profile page) or by administrators (the API,
the admin, ``manage.py create_api_token``), stored as a SHA-256 of the key only.

Why our own small model rather than ``rest_framework.authtoken``: DRF's ``Token`` keeps the key
in plain text (anyone who reads the database or a backup can act as every integration), allows
one token per user (no rotation without an outage, no name per integration) and has no expiry
or last-used time. A key here is 256 random bits, so a single fast SHA-256 is enough (a slow
password hash only matters for guessable secrets) and lets the lookup be one indexed query.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions, throttling

from accounts.audit import CREATE, DELETE, Actor, audit_record
from accounts.models import ApiToken, User
from accounts.permissions import prime_scope, share_targets

KEY_PREFIX = "mis_"
# last_used_at is written at most this often per token: not one UPDATE per API request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
MANAGE_PERM = "accounts.change_user"  # administrators manage other users' tokens


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def token_create(
    *, actor: Actor, user: User, name: str, expires_at: dt.datetime | None = None
) -> tuple[ApiToken, str]:
    """Make a token for ``user``; returns it with its key, which is never stored nor shown
    again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=key[: len(KEY_PREFIX) + 6],
            key_hash=hash_key(key),
            expires_at=expires_at,
            created_by_name=actor.username,
        )
        audit_record(
            actor=actor,
            action=CREATE,
            obj=token,
            details={"user": user.username, "name": name, "expires_at": _iso(expires_at)},
        )
    return token, key


def token_revoke(*, actor: Actor, token: ApiToken) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=DELETE,
            obj=token,
            details={"user": token.user.username, "name": token.name},
        )
        token.delete()


def tokens_visible_to(user: User):
    """A user's own tokens; every token for administrators."""
    qs = ApiToken.objects.select_related("user")
    if user.has_perm(MANAGE_PERM):
        return qs
    return qs.filter(user=user)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def token_with_access(key_hash: str) -> ApiToken | None:
    """The token with this hash and its user, or ``None``. On PostgreSQL the same statement
    reads what every request then asks of the user: its permissions (cached on the user as
    Django's ModelBackend caches them), its departments and whether it holds shares or
    emergency grants (``accounts.permissions.prime_scope``): one round trip, not four."""
    if connection.vendor != "postgresql":
        return ApiToken.objects.select_related("user").filter(key_hash=key_hash).first()
    sql, share_labels = _access_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, {"key_hash": key_hash, "now": timezone.now()})
        row = cursor.fetchone()
    if row is None:
        return None
    token_fields, user_fields = _concrete(ApiToken), _concrete(User)
    values = list(row)
    token = ApiToken.from_db(connection.alias, token_fields, values[: len(token_fields)])
    del values[: len(token_fields)]
    user = User.from_db(connection.alias, user_fields, values[: len(user_fields)])
    del values[: len(user_fields)]
    permissions, departments, emergency, *shares = values
    if not user.is_superuser:  # a superuser holds every permission (ModelBackend)
        user._perm_cache = set(permissions)
    prime_scope(
        user,
        departments=departments,
        shared={label for label, held in zip(share_labels, shares, strict=True) if held},
        emergency=set(emergency),
    )
    token.user = user
    return token


def _concrete(model) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def _access_query() -> tuple[str, list[str]]:
    global _access_sql
    if _access_sql is None:
        from django.contrib.auth.models import Group, Permission
        from django.contrib.contenttypes.models import ContentType

        from accounts.models import EmergencyAccess

        def table(model) -> str:
            return connection.ops.quote_name(model._meta.db_table)

        def columns(model, alias) -> str:
            return ", ".join(
                f"{alias}.{connection.ops.quote_name(f.column)}"
                for f in model._meta.concrete_fields
            )

        user_groups = table(User.groups.through)
        shares, labels = [], []
        for label, perms_model, who in share_targets():
            if who == "user":
                shares.append(f"EXISTS (SELECT 1 FROM {table(perms_model)} WHERE user_id = u.id)")
            else:
                shares.append(
                    f"EXISTS (SELECT 1 FROM {table(perms_model)} WHERE group_id IN "
                    f"(SELECT group_id FROM {user_groups} WHERE user_id = u.id))"
                )
            labels.append(label)
        sql = f"""
SELECT {columns(ApiToken, "t")}, {columns(User, "u")},
    ARRAY(
        SELECT ct.app_label || '.' || p.codename
        FROM {table(Permission)} p JOIN {table(ContentType)} ct ON ct.id = p.content_type_id
        WHERE p.id IN (
            SELECT permission_id FROM {table(User.user_permissions.through)} WHERE user_id = u.id
            UNION
            SELECT gp.permission_id FROM {table(Group.permissions.through)} gp
            JOIN {user_groups} ug ON ug.group_id = gp.group_id WHERE ug.user_id = u.id
        )
    ),
    ARRAY(SELECT department_id FROM {table(User.departments.through)} WHERE user_id = u.id),
    ARRAY(
        SELECT DISTINCT object_type FROM {table(EmergencyAccess)}
        WHERE user_id = u.id AND expires_at > %(now)s
    ){"".join(", " + share for share in shares)}
FROM {table(ApiToken)} t JOIN {table(User)} u ON u.id = t.user_id
WHERE t.key_hash = %(key_hash)s
"""
        _access_sql = (sql, labels)
    return _access_sql


_access_sql: tuple[str, list[str]] | None = None


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Token <key>`` (or ``Bearer <key>``) against the hashed keys."""

    keywords = ("token", "bearer")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                _("Invalid token header: give the key after the word Token, with no spaces.")
            )
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None
        token = token_with_access(hash_key(key))
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if token.is_expired:
            raise exceptions.AuthenticationFailed(_("This token has expired; make a new one."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("The token's user is inactive."))
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token.user, token

    def authenticate_header(self, request):
        return "Token"


class TokenRateThrottle(throttling.SimpleRateThrottle):
    """Per token, beside the per-user throttle: one leaked or runaway integration key cannot use
    up its user's whole allowance (rate ``API_THROTTLE_TOKEN``)."""

    scope = "token"

    def get_cache_key(self, request, view):
        if not isinstance(request.auth, ApiToken):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
