from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from accounts.audit import LOGIN, LOGIN_FAILED, LOGOUT, Actor, audit_record
from accounts.models import AuditEvent


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
