"""Access scope: every selector starts from ``restrict(queryset, user, perm)``.

Two things decide what a user may access:

* the **role** (Django groups synchronised from ``accounts.roles``) decides *what* they may do:
  ``perm`` must be held at model level, or nothing is returned;
* the **scope** decides *which rows*: a model names, in ``scope_paths`` (or the older single
  ``scope_path``), the foreign-key paths from itself to the departments that may see it, e.g.
  ``("department",)`` for a patient, and later ``("performing_department",
  "patient__department")`` for a study. A row is in scope when one of those departments is one
  of the user's. ``scope_path = None`` marks reference or administrative data that the
  permission alone decides (identifier types, departments, users, the audit).

Scope is widened by explicit shares and emergency grants (for reading only: a ``view_``
permission or ``None``; a share of the object itself with a change permission also opens it for
that change). ``share_paths`` names the paths to
objects whose shares extend to this model: ``("",)`` is the row itself, ``("patient",)`` the
row's patient. A share is a django-guardian object permission in the shared model's direct
foreign-key table (``UserObjectPermissionBase`` / ``GroupObjectPermissionBase`` subclasses,
found by guardian itself); an emergency grant is an unexpired ``EmergencyAccess``.

Superusers are scoped like everyone else: being a superuser lifts the role check, never the
department scope, so an administrator sees clinical data only as a member of a department (or
through a share or an emergency grant, both audited).
"""

from __future__ import annotations

from typing import NamedTuple

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

_UNSET = object()


def scope_paths(model: type[Model]) -> tuple[str, ...] | None:
    """The department paths of ``model``; ``None`` when it is not department-scoped."""
    paths = getattr(model, "scope_paths", _UNSET)
    if paths is _UNSET:
        path = getattr(model, "scope_path", _UNSET)
        if path is _UNSET:
            raise ImproperlyConfigured(f"{model.__name__} has no scope_path; restrict() needs one.")
        paths = None if path is None else (path,)
    return tuple(paths) if paths is not None else None


def extend_scope(model: type[Model], *paths: str) -> None:
    """Let a later app add department paths to a model (from its AppConfig.ready): studies make
    a patient visible to the performing departments of the patient's studies."""
    model.scope_paths = tuple(scope_paths(model) or ()) + tuple(
        p for p in paths if p not in (scope_paths(model) or ())
    )


def _multi_valued(model: type[Model], path: str) -> bool:
    for part in path.split("__"):
        field = model._meta.get_field(part)
        if field.one_to_many or field.many_to_many:
            return True
        model = field.related_model
    return False


def _reverse_keys(model: type[Model], path: str, user) -> QuerySet:
    """The keys of the ``model`` rows that a reverse ``path`` leads to one of the user's
    departments. When the path starts with a reverse foreign key to the row's key and goes on
    along direct paths (a patient's studies' department), the subquery reads the related table
    alone (``SELECT patient_id FROM studies WHERE department_id IN …``) rather than joining the
    rows back to ``model``: less to plan, and less to hash when PostgreSQL must."""
    first, _, rest = path.partition("__")
    relation = model._meta.get_field(first)
    if (
        relation.one_to_many
        and rest
        and relation.field.target_field.primary_key
        and not _multi_valued(relation.related_model, rest)
    ):
        related = relation.related_model._base_manager
        return related.filter(**{f"{rest}__in": department_ids(user)}).values(
            relation.field.attname
        )
    matching = model._base_manager.filter(**{f"{path}__in": department_ids(user)})
    return matching.values("pk")


def share_paths(model: type[Model]) -> tuple[str, ...]:
    return tuple(getattr(model, "share_paths", ("",)))


def _target_model(model: type[Model], path: str) -> type[Model]:
    for part in filter(None, path.split("__")):
        model = model._meta.get_field(part).related_model
    return model


def department_ids(user) -> QuerySet | list[int]:
    """The user's departments, as a subquery (no query of its own), or as the list of ids
    when it was read with the user's credentials in this request (``prime_scope``)."""
    primed = _primed_departments(user)
    if primed is not None:
        return primed
    return user.departments.through.objects.filter(user_id=user.pk).values("department_id")


def user_department_ids(user) -> list[int]:
    """The user's department ids, sorted."""
    primed = _primed_departments(user)
    if primed is not None:
        return primed
    through = user.departments.through.objects.filter(user_id=user.pk)
    return sorted(set(through.values_list("department_id", flat=True)))


def _primed_departments(user) -> list[int] | None:
    primed = getattr(user, "_scope_departments", None)
    if primed is not None and primed[0] == _extras_generation:
        return primed[1]
    return None


def _codename(perm: str | None, model: type[Model]) -> str:
    if perm and perm.split(".", 1)[0] == model._meta.app_label:
        codename = perm.split(".", 1)[1]
        if codename.endswith("_" + model._meta.model_name):
            return codename
    return f"view_{model._meta.model_name}"


def _share_tables(target: type[Model]) -> list[tuple[type[Model], str]]:
    """The direct foreign-key tables holding shares of ``target``: (model, "user"/"group")."""
    from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

    tables = []
    for perms_model, who in (
        (get_user_obj_perms_model(target), "user"),
        (get_group_obj_perms_model(target), "group"),
    ):
        if not perms_model.objects.is_generic():  # only direct foreign-key tables hold shares
            tables.append((perms_model, who))
    return tables


_extras_generation = 0
_ALL = "all"  # every target: the answers primed at token authentication


def scope_extras_changed(**kwargs) -> None:
    """Signal receiver: a share, an emergency grant or a group membership changed, so the
    per-request answers of ``_extras`` are stale (connected in accounts.apps)."""
    global _extras_generation
    _extras_generation += 1


def _extras(user, targets: list[type[Model]]) -> set[tuple[str, str]]:
    """Which ``("share"|"emergency", target label)`` the user holds at all, in one query,
    remembered on the user object (one request) until a share or grant changes. Most users hold
    none: their scope is then the plain department filter, without the share and emergency
    subqueries (cheaper to build and to run)."""
    from django.db import connection

    from accounts.models import EmergencyAccess

    labels = sorted({t._meta.label_lower for t in targets})
    cached = getattr(user, "_scope_extras", None)
    if (
        cached is not None
        and cached[0] == _extras_generation
        and (cached[1] == _ALL or set(labels) <= cached[1])
    ):
        return cached[2]
    parts, params, keys = [], [], []
    groups_table = user.groups.through._meta.db_table
    for target in sorted(set(targets), key=lambda t: t._meta.label_lower):
        label = target._meta.label_lower
        for perms_model, who in _share_tables(target):
            table = connection.ops.quote_name(perms_model._meta.db_table)
            if who == "user":
                parts.append(f"EXISTS (SELECT 1 FROM {table} WHERE user_id = %s)")
            else:
                parts.append(
                    f"EXISTS (SELECT 1 FROM {table} WHERE group_id IN "
                    f"(SELECT group_id FROM {connection.ops.quote_name(groups_table)} "
                    "WHERE user_id = %s))"
                )
            params.append(user.pk)
            keys.append(("share", label))
        parts.append(
            f"EXISTS (SELECT 1 FROM {connection.ops.quote_name(EmergencyAccess._meta.db_table)} "
            "WHERE user_id = %s AND object_type = %s AND expires_at > %s)"
        )
        params.extend([user.pk, label, timezone.now()])
        keys.append(("emergency", label))
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        row = cursor.fetchone()
    held = {key for key, present in zip(keys, row, strict=True) if present}
    user._scope_extras = (_extras_generation, set(labels), held)
    return held


def share_targets() -> list[tuple[str, type[Model], str]]:
    """Every direct foreign-key share table: (target label, table's model, "user"/"group")."""
    global _share_targets
    if _share_targets is None:
        from django.apps import apps
        from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

        found = []
        for model in apps.get_models():
            for base, who in (
                (UserObjectPermissionBase, "user"),
                (GroupObjectPermissionBase, "group"),
            ):
                if not issubclass(model, base):
                    continue
                target = model._meta.get_field("content_object").related_model
                if target is not None:  # not guardian's generic tables
                    found.append((target._meta.label_lower, model, who))
        _share_targets = sorted(found, key=lambda item: (item[0], item[2]))
    return _share_targets


_share_targets: list | None = None


def prime_scope(user, *, departments: list[int], shared: set[str], emergency: set[str]) -> None:
    """Remember on ``user`` (one request's object) what its scope needs, read together with the
    user at token authentication (``accounts.tokens``): its departments, and the targets it
    holds shares (``share_targets``) and unexpired emergency grants for. ``restrict()`` then
    asks nothing more about the user. A change to any of them in the same process (signals,
    ``scope_extras_changed``) makes these answers stale, and they are asked again."""
    held = {("share", label) for label in shared} | {("emergency", label) for label in emergency}
    user._scope_departments = (_extras_generation, sorted(set(departments)))
    user._scope_extras = (_extras_generation, _ALL, held)


def _shared_ids(target: type[Model], user, codename: str) -> list[QuerySet]:
    """Subqueries of the ids of ``target`` rows shared with the user (directly or by group)."""
    content_type = ContentType.objects.get_for_model(target)
    subqueries = []
    for perms_model, who in _share_tables(target):
        who = {"user": user} if who == "user" else {"group__user": user}
        subqueries.append(
            perms_model.objects.filter(
                permission__codename=codename, permission__content_type=content_type, **who
            ).values("content_object_id")
        )
    return subqueries


def _emergency_ids(target: type[Model], user) -> QuerySet:
    from accounts.models import EmergencyAccess

    return EmergencyAccess.objects.filter(
        user=user,
        object_type=f"{target._meta.app_label}.{target._meta.model_name}",
        expires_at__gt=timezone.now(),
    ).values("object_id")


def _scope_arms(model: type[Model], user, perm: str | None) -> tuple[list[str], Q]:
    """The scope of ``model`` in two pieces: the *direct* department paths (a column of the row
    or of a row it points to) and the OR of every other arm (reverse paths, shares, emergency
    grants)."""
    direct = []
    other = Q(pk__in=[])
    for path in scope_paths(model) or ():
        if _multi_valued(model, path):
            # A reverse path (a patient's studies) as a subquery: a join would repeat rows.
            other |= Q(pk__in=_reverse_keys(model, path, user))
        else:
            direct.append(path)
    reading = _is_read(perm)
    paths = [p for p in share_paths(model) if reading or not p]
    # a share of the patient opens their studies for reading, not for changes
    targets = [_target_model(model, path) for path in paths]
    held = _extras(user, targets) if targets else set()
    for path, target in zip(paths, targets, strict=True):
        label = target._meta.label_lower
        lookup = f"{path}__pk__in" if path else "pk__in"
        if ("share", label) in held:
            codename = _codename(perm, target) if not path else f"view_{target._meta.model_name}"
            for subquery in _shared_ids(target, user, codename):
                other |= Q(**{lookup: subquery})
        if reading and ("emergency", label) in held:
            # Break-glass is for reading in an emergency: it never opens a record for changes.
            other |= Q(**{lookup: _emergency_ids(target, user)})
    return direct, other


def scope_q(model: type[Model], user, perm: str | None) -> Q:
    """The filter that keeps the rows of ``model`` in the user's scope."""
    direct, other = _scope_arms(model, user, perm)
    q = Q(pk__in=[])
    for path in direct:
        q |= Q(**{f"{path}__in": department_ids(user)})
    return q | other


def _outside(path: str, departments: list[int]) -> Q:
    """``path`` is NULL or none of ``departments`` (sorted, not empty), written as ranges
    between them: unlike ``NOT IN`` (or Django's ``~Q(…__in=…)``), ranges can be answered
    from the column's index, so a few rows outside the user's departments are found without
    reading all the others."""
    q = Q(**{f"{path}__isnull": True}) | Q(**{f"{path}__lt": departments[0]})
    for low, high in zip(departments, departments[1:], strict=False):
        q |= Q(**{f"{path}__gt": low, f"{path}__lt": high})
    return q | Q(**{f"{path}__gt": departments[-1]})


def _is_read(perm: str | None) -> bool:
    return perm is None or perm.split(".", 1)[-1].startswith("view_")


def _may_use(user, perm: str | None) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return perm is None or user.has_perm(perm)


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
    paths = scope_paths(model)
    if not _may_use(user, perm):
        return queryset.none()
    if paths is None:
        return queryset
    return queryset.filter(scope_q(model, user, perm))


def restrict_parts(queryset: QuerySet, user, perm: str | None) -> list[QuerySet]:
    """``restrict(queryset, user, perm)`` cut into disjoint querysets whose union is exactly
    its rows, for counting: the sum of their counts is its count.

    The first part is "a direct department path is one of the user's departments", with the
    department ids written out (one small query), which PostgreSQL counts from an index alone;
    the second is every other arm of the scope (a patient's studies, shares, emergency grants)
    *outside* those departments, usually a handful of rows found through the department
    index. Counting ``restrict()`` itself must test the OR of all arms on every row (a list of
    100,000 patients: ~20 ms against ~9 ms for the two parts; bench/README.md, api_load).
    """
    return restrict_split(queryset, user, perm).parts


class ScopeSplit(NamedTuple):
    """``restrict_parts`` with what its first part is: when ``departments`` is not empty,
    ``parts[0]`` is exactly the rows whose ``direct_paths`` lead to one of ``departments`` and
    ``parts[1]`` the rest of the scope; otherwise ``parts`` is the scope whole (or nothing)."""

    direct_paths: list[str]
    departments: list[int]
    parts: list[QuerySet]


def restrict_split(queryset: QuerySet, user, perm: str | None) -> ScopeSplit:
    model: type[Model] = queryset.model
    paths = scope_paths(model)
    if not _may_use(user, perm):
        return ScopeSplit([], [], [])
    if paths is None:
        return ScopeSplit([], [], [queryset])
    direct, other = _scope_arms(model, user, perm)
    departments = user_department_ids(user)
    if not direct or not departments:
        return ScopeSplit([], [], [queryset.filter(scope_q(model, user, perm))])
    inside = Q(pk__in=[])
    outside = Q()
    for path in direct:
        inside |= Q(**{f"{path}__in": departments})
        outside &= _outside(path, departments)
    return ScopeSplit(
        direct, departments, [queryset.filter(inside), queryset.filter(other & outside)]
    )


def in_scope(obj: Model, user, perm: str | None) -> bool:
    """Whether one object lies in the user's scope (for checks on an object already loaded)."""
    return restrict(type(obj)._default_manager.filter(pk=obj.pk), user, perm).exists()


def can(user, perm: str) -> bool:
    """Whether the user holds a model-level permission (for buttons and 403 decisions)."""
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(perm))


class PermissionByAction:
    """DRF viewset mixin: each action needs one model permission (the role table decides),
    checked before anything else; ``required_perm()`` also serves ``get_queryset``'s scope."""

    action_perms: dict[str, str] = {}
    default_perm = ""

    def required_perm(self) -> str:
        return self.action_perms.get(self.action, self.default_perm)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not can(request.user, self.required_perm()):
            raise PermissionDenied
