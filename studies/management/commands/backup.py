"""python manage.py backup DEST: database dump + media files + sha256 manifest."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from studies.backup import BackupError, backup


class Command(BaseCommand):
    help = (
        "Back up the database (SQLite online backup or pg_dump) and every media file into a new "
        "folder DEST, with a manifest of sha256 sums that restore checks first."
    )

    def add_arguments(self, parser):
        parser.add_argument("destination")

    def handle(self, *args, **options):
        try:
            manifest = backup(Path(options["destination"]), media_root=Path(settings.MEDIA_ROOT))
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Backed up the {manifest['database']['vendor']} database and "
            f"{len(manifest['files']) - 1} media files to {options['destination']}."
        )
