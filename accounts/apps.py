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
