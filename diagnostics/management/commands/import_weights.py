"""python manage.py import_weights NAME PATH --sha256 HEX: install operator-supplied weights."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from .evaluate_model import model_folder


class Command(BaseCommand):
    help = (
        "Install a weights file for a model whose weights are not shipped (chest-pathologies). "
        "The file's sha256 must match --sha256; the card records it and the model becomes "
        "available and active."
    )

    def add_arguments(self, parser):
        parser.add_argument("model", help="NAME or NAME@VERSION, e.g. chest-pathologies")
        parser.add_argument("path", help="the weights file (state dict or saved network)")
        parser.add_argument("--sha256", required=True, help="the sha256 you expect the file has")
        parser.add_argument("--weights-dir", default=str(settings.ML_WEIGHTS_DIR))

    def handle(self, *args, **options):
        from diagnostics.ml.errors import MLError
        from diagnostics.ml.install import install_weights

        folder = model_folder(options["model"], Path(options["weights_dir"]))
        try:
            card = install_weights(folder, Path(options["path"]), options["sha256"])
        except MLError as exc:
            raise CommandError(str(exc)) from None
        from diagnostics.registry import registry_sync

        registry_sync(root=Path(options["weights_dir"]), activate=card.key)
        self.stdout.write(
            self.style.SUCCESS(
                f"Installed weights for {card.key} (sha256 {card.data['sha256']}); the model is "
                "available and active."
            )
        )
