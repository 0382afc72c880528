import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.audit import Actor
from accounts.models import User
from accounts.tokens import token_create


class Command(BaseCommand):
    help = (
        "Make an API token for a user (e.g. a service account) and print its key: the key is "
        "shown only this once; the database keeps its SHA-256."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="What the token is for.")
        parser.add_argument("--expires-days", type=int, default=None, dest="expires_days")

    def handle(self, *args, username, name, expires_days, **options):
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {username!r}.")
        if expires_days is not None and expires_days <= 0:
            raise CommandError("--expires-days must be a positive number of days.")
        expires_at = timezone.now() + dt.timedelta(days=expires_days) if expires_days else None
        _token, key = token_create(
            actor=Actor.system("create_api_token"), user=user, name=name, expires_at=expires_at
        )
        self.stdout.write(key)
