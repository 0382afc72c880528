"""python manage.py storage_check: report orphaned, missing and corrupted files."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from studies.storage_check import storage_check


class Command(BaseCommand):
    help = (
        "Compare the stored files with the database: files no row points to (orphaned), rows "
        "whose file is gone (missing) and files whose sha256 differs from the one recorded at "
        "import (corrupted). Exits non-zero when anything is wrong."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-hashes", action="store_true", help="skip the sha256 check")

    def handle(self, *args, **options):
        from tqdm import tqdm

        with tqdm(desc="checking", unit="file", file=sys.stderr, mininterval=1) as bar:
            report = storage_check(verify_hashes=not options["no_hashes"], progress=bar)
        for kind in ("missing", "corrupted", "orphaned"):
            for line in getattr(report, kind):
                self.stdout.write(f"{kind}: {line}")
        self.stdout.write(
            f"Checked {report.checked} instance files: {len(report.missing)} missing, "
            f"{len(report.corrupted)} corrupted, {len(report.orphaned)} orphaned."
        )
        if not report.ok:
            raise CommandError("The storage does not match the database.")
