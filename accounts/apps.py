from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _sync_roles(sender, **kwargs):
    from django.apps import apps

    from accounts.roles import sync_role_groups

    # post_migrate is sent once per app; permissions of every app exist only after the last one.
    if sender.label != list(apps.get_app_configs())[-1].label:
        return

    sync_role_groups()


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts and audit")

    def ready(self):
        from accounts import signals  # noqa: F401

        post_migrate.connect(_sync_roles, dispatch_uid="accounts.sync_roles")
        _watch_scope_extras()


def _watch_scope_extras():
    """Shares, emergency grants and group memberships widen restrict()'s scope: a change to
    any of them makes the per-request answer of ``accounts.permissions._extras`` stale."""
    from django.apps import apps
    from django.db.models.signals import m2m_changed, post_delete, post_save
    from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

    from accounts.models import EmergencyAccess, User
    from accounts.permissions import scope_extras_changed

    watched = [EmergencyAccess] + [
        model
        for model in apps.get_models()
        if issubclass(model, (UserObjectPermissionBase, GroupObjectPermissionBase))
    ]
    for model in watched:
        for signal in (post_save, post_delete):
            signal.connect(scope_extras_changed, sender=model, dispatch_uid=f"extras-{model}")
    m2m_changed.connect(
        scope_extras_changed, sender=User.groups.through, dispatch_uid="extras-groups"
    )
    # The departments primed at token authentication (``accounts.permissions.prime_scope``).
    m2m_changed.connect(
        scope_extras_changed, sender=User.departments.through, dispatch_uid="extras-departments"
    )
