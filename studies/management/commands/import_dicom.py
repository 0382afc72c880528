"""python manage.py import_dicom PATH: import a folder, a ZIP, a DICOMDIR or single files."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.audit import Actor
from accounts.models import Department
from studies.ingest import REJECTED, StudyFields, ingest_file
from studies.sources import iter_sources


class Command(BaseCommand):
    help = (
        "Import DICOM files from a folder, a ZIP or a CD's DICOMDIR (and PNG/JPEG given the "
        "study fields), one file at a time, with a progress bar and a summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--user", required=True, help="username the import is recorded as")
        parser.add_argument("--department", help="performing department code")
        parser.add_argument("--quiet-files", action="store_true", help="only the summary")

    def handle(self, *args, **options):
        from tqdm import tqdm

        user = get_user_model().objects.filter(username=options["user"], is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {options['user']!r}.")
        department = None
        if options["department"]:
            department = Department.objects.filter(code=options["department"]).first()
            if department is None:
                raise CommandError(f"No department with code {options['department']!r}.")
        actor = Actor(user=user, label="import_dicom")
        counts: Counter[str] = Counter()
        with tqdm(desc="importing", unit="file", file=sys.stderr, mininterval=1) as bar:
            for path in options["paths"]:
                if not Path(path).exists():
                    raise CommandError(f"{path} does not exist.")
                for name, file, error in iter_sources(Path(path)):
                    if error:
                        status, message = REJECTED, error
                    else:
                        result = ingest_file(
                            actor=actor,
                            data=file,
                            name=name,
                            fields=StudyFields(department=department),
                        )
                        status, message = result.status, result.message
                    counts[status] += 1
                    bar.update(1)
                    if not options["quiet_files"] and status == REJECTED:
                        bar.write(f"{name}: {status}: {message}")
        summary = ", ".join(f"{counts[k]} {k}" for k in ("imported", "duplicate", "rejected"))
        self.stdout.write(f"Done: {summary}.")
