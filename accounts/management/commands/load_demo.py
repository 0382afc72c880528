from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.registry import demo_loaders


class Command(BaseCommand):
    help = "Load the small demo data set of every app (embedded mode only)."

    def handle(self, *args, **options):
        if not settings.DEMO_DATA_ALLOWED:
            raise CommandError("Demo data is never loaded in production mode.")
        actor = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
        if actor is None:
            raise CommandError("Run ensure_admin first: demo data is recorded as its work.")
        for loader in sorted(demo_loaders.values(), key=lambda item: item.order):
            with transaction.atomic():
                result = loader.load(actor_user=actor)
            self.stdout.write(f"demo {loader.name}: {result}")
