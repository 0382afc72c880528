"""python manage.py models: list the model versions in ml_weights/ and validate each."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "List model versions under ML_WEIGHTS_DIR, validate each card against the schema and "
        "check each weights file's sha256. Exits non-zero when any is invalid."
    )

    def add_arguments(self, parser):
        parser.add_argument("--weights-dir", default=str(settings.ML_WEIGHTS_DIR))
        parser.add_argument(
            "--no-sync",
            action="store_true",
            help="Only list and validate; do not update the registry (AIModel rows).",
        )

    def handle(self, *args, **options):
        from diagnostics.ml.card import discover
        from diagnostics.ml.errors import WeightsError

        cards, problems = discover(Path(options["weights_dir"]))
        for card in cards:
            try:
                card.verify_weights()
                state = self.style.SUCCESS("ok")
            except WeightsError as exc:
                if card.data.get("sha256") is None:
                    state = self.style.WARNING("unavailable: no weights installed")
                else:
                    state = self.style.ERROR(f"invalid: {exc}")
                    problems.append(str(exc))
            applies = card.applies_to
            self.stdout.write(
                f"{card.key:<28} {state}\n    {card.title}; labels: {', '.join(card.labels)}; "
                f"applies to {', '.join(applies['categories'])}"
                + (
                    f", views {', '.join(applies['view_positions'])}"
                    if applies.get("view_positions")
                    else ""
                )
            )
        if not options["no_sync"]:
            from diagnostics.registry import registry_sync

            report = registry_sync(root=Path(options["weights_dir"]))
            active = [m.key for m in report.models if m.active]
            self.stdout.write(
                f"Registry: {len(report.models)} model version(s), active: "
                + (", ".join(active) or "none")
            )
        for problem in problems:
            self.stderr.write(self.style.ERROR(problem))
        if not cards and not problems:
            self.stdout.write("No models installed.")
        if problems:
            raise CommandError(f"{len(problems)} model problem(s) found.")
