from django.core.management.base import BaseCommand

from patients.duplicates import duplicate_candidates_refresh


class Command(BaseCommand):
    help = "Recompute the possible-duplicates queue (dismissed pairs never come back)."

    def handle(self, *args, **options):
        counts = duplicate_candidates_refresh()
        self.stdout.write(
            "Possible duplicates: {found} found, {created} new, {updated} updated, "
            "{removed} no longer matching.".format(**counts)
        )
