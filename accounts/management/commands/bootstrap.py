from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "First-run set-up after migrate: the administrator (login printed) and, in the embedded "
        "mode only, the demo data. Safe to run on every start."
    )

    def handle(self, *args, **options):
        call_command("ensure_admin", stdout=self.stdout)
        # The model registry (diagnostics), by name: accounts imports no upper layer.
        # An invalid model is reported (and stays inactive) without stopping the start.
        try:
            call_command("models", stdout=self.stdout, stderr=self.stderr)
        except CommandError as exc:
            self.stderr.write(str(exc))
        if settings.DEMO_DATA_ALLOWED:
            call_command("load_demo", stdout=self.stdout)
