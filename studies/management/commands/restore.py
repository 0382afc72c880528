"""python manage.py restore SRC: check a backup's manifest, load the database and the files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dj_database_url
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from studies.backup import BackupError, restore


class Command(BaseCommand):
    help = (
        "Restore a backup made by `backup`: every file is checked against the manifest first; "
        "then the database and the media files are restored and storage_check runs on the "
        "result. By default into this installation's database and MEDIA_ROOT (stop the web "
        "and worker first); --database-url and --media-root restore elsewhere (a drill)."
    )

    def add_arguments(self, parser):
        parser.add_argument("source")
        parser.add_argument("--database-url", help="restore into this database instead")
        parser.add_argument("--media-root", help="restore the files here instead")
        parser.add_argument("--force", action="store_true", help="overwrite a non-empty target")
        parser.add_argument("--no-check", action="store_true", help="skip storage_check after")

    def handle(self, *args, **options):
        url = options["database_url"]
        database = dj_database_url.parse(url) if url else dict(settings.DATABASES["default"])
        media_root = Path(options["media_root"] or settings.MEDIA_ROOT)
        try:
            result = restore(
                Path(options["source"]),
                database=database,
                media_root=media_root,
                force=options["force"],
            )
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Restored the {result['database']} database and {result['media_files']} media "
            f"files from the backup of {result['created_at']}."
        )
        if options["no_check"]:
            return
        environment = {**os.environ, "MEDIA_ROOT": str(media_root)}
        if url:
            environment["DATABASE_URL"] = url
        check = subprocess.run(
            [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "storage_check"],
            env=environment,
            capture_output=True,
            text=True,
            check=False,
        )
        self.stdout.write(check.stdout.strip())
        if check.returncode != 0:
            raise CommandError(f"storage_check after the restore failed: {check.stderr.strip()}")
