from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_save, pre_save
from django.dispatch import receiver

from accounts.audit import (
    CREATE,
    DEPARTMENT_CHANGE,
    LOGIN,
    LOGIN_FAILED,
    LOGOUT,
    PASSWORD_RESET_REQUIRED,
    PERMISSION_CHANGE,
    ROLE_CHANGE,
    Actor,
    audit_record,
)
from accounts.models import AuditEvent, User


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs):
    audit_record(actor=Actor.from_request(request), action=LOGIN, obj=user)


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs):
    if user is not None:
        actor = Actor.from_request(request)
        audit_record(
            actor=Actor(user=user, ip=actor.ip, user_agent=actor.user_agent),
            action=LOGOUT,
            obj=user,
        )


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    actor = Actor.from_request(request) if request is not None else Actor()
    audit_record(
        actor=Actor(ip=actor.ip, user_agent=actor.user_agent, label=username),
        action=LOGIN_FAILED,
        object_type="accounts.user",
        outcome=AuditEvent.Outcome.FAILED,
    )


# --- Role, permission and department changes (admin, API, shell alike) ----------------------
_M2M_ACTIONS = {
    "groups": ROLE_CHANGE,
    "user_permissions": PERMISSION_CHANGE,
    "departments": DEPARTMENT_CHANGE,
}


def _audit_m2m(field: str):
    def handler(sender, instance, action, reverse, model, pk_set, **kwargs):
        if action not in ("post_add", "post_remove", "pre_clear"):
            return
        if action == "pre_clear":
            if reverse:
                return
            pk_set = set(getattr(instance, field).values_list("pk", flat=True))
            if not pk_set:
                return
        if not pk_set:
            return
        labels = sorted(str(o) for o in model._default_manager.filter(pk__in=pk_set))
        change = "added" if action == "post_add" else "removed"
        if reverse:
            # e.g. group.user_set.add(user): ``instance`` is the group, the users are in pk_set.
            users = User.objects.filter(pk__in=pk_set)
            targets = [(u, [str(instance)]) for u in users]
        else:
            targets = [(instance, labels)]
        for user, names in targets:
            audit_record(
                actor=Actor.current(),
                action=_M2M_ACTIONS[field],
                obj=user,
                details={change: names},
            )

    return handler


for _field in _M2M_ACTIONS:
    m2m_changed.connect(
        _audit_m2m(_field),
        sender=getattr(User, _field).through,
        dispatch_uid=f"accounts.audit_{_field}",
        weak=False,
    )

_WATCHED_FLAGS = ("is_active", "is_staff", "is_superuser", "must_change_password")


@receiver(pre_save, sender=User)
def remember_flags(sender, instance, update_fields=None, **kwargs):
    if update_fields is not None and not set(update_fields) & set(_WATCHED_FLAGS):
        instance._audit_flags_before = None  # e.g. last_login on every login
        return
    if instance.pk is None:
        instance._audit_flags_before = None
        return
    before = User.objects.filter(pk=instance.pk).values(*_WATCHED_FLAGS).first()
    instance._audit_flags_before = before


@receiver(post_save, sender=User)
def audit_user_flags(sender, instance, created, **kwargs):
    before = getattr(instance, "_audit_flags_before", None)
    if created:
        audit_record(
            actor=Actor.current(),
            action=CREATE,
            obj=instance,
            details={f: getattr(instance, f) for f in _WATCHED_FLAGS},
        )
        return
    if before is None:
        return
    changes = {
        f: [before[f], getattr(instance, f)]
        for f in _WATCHED_FLAGS
        if before[f] != getattr(instance, f)
    }
    if changes:
        audit_record(
            actor=Actor.current(),
            action=PASSWORD_RESET_REQUIRED
            if set(changes) == {"must_change_password"} and instance.must_change_password
            else PERMISSION_CHANGE,
            obj=instance,
            details={"changes": changes},
        )
