"""python manage.py export_studies --patient ID | --study ID ... OUT.zip"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.audit import Actor
from accounts.permissions import restrict
from studies.export import export_zip
from studies.models import Study


class Command(BaseCommand):
    help = "Export studies as a ZIP laid out as a CD with a DICOMDIR (audited as an export)."

    def add_arguments(self, parser):
        parser.add_argument("out")
        parser.add_argument("--user", required=True)
        parser.add_argument("--patient", type=int, help="all studies of this patient")
        parser.add_argument("--study", type=int, action="append", help="a study id (repeat)")

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["user"], is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {options['user']!r}.")
        studies = restrict(Study.objects.all(), user, "studies.view_study")
        if options["patient"]:
            studies = studies.filter(patient_id=options["patient"])
        elif options["study"]:
            studies = studies.filter(pk__in=options["study"])
        else:
            raise CommandError("Give --patient ID or --study ID.")
        studies = list(studies)
        if not studies:
            raise CommandError("No studies you may see match.")
        with open(options["out"], "wb") as out:
            counts = export_zip(
                actor=Actor(user=user, label="export_studies"), studies=studies, out=out
            )
        self.stdout.write(
            f"Exported {counts['studies']} studies, {counts['instances']} instances to "
            f"{options['out']}."
        )
