"""python manage.py fetch_weights NAME --sha256 HEX: download the official file, then install."""

from __future__ import annotations

import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from .evaluate_model import model_folder


class Command(BaseCommand):
    help = (
        "On a machine with internet access: download a model's official weights file (the URL "
        "in its card) and install it like import_weights. The hash is still required: a "
        "download is trusted only when it matches the sha256 you give."
    )

    def add_arguments(self, parser):
        parser.add_argument("model", help="NAME or NAME@VERSION, e.g. chest-pathologies")
        parser.add_argument("--sha256", required=True)
        parser.add_argument("--weights-dir", default=str(settings.ML_WEIGHTS_DIR))
        parser.add_argument("--timeout", type=float, default=60)

    def handle(self, *args, **options):
        from diagnostics.ml.card import ModelCard

        folder = model_folder(options["model"], Path(options["weights_dir"]))
        url = ModelCard.load(folder).data.get("training", {}).get("source_url")
        if not url:
            raise CommandError(f"{folder.parent.name}'s card names no official weights URL.")
        with tempfile.TemporaryDirectory() as scratch:
            target = Path(scratch) / "download.pt"
            try:
                with urllib.request.urlopen(url, timeout=options["timeout"]) as response:
                    with target.open("wb") as handle:
                        while chunk := response.read(1 << 20):
                            handle.write(chunk)
            except (urllib.error.URLError, OSError) as exc:
                raise CommandError(
                    f"Could not download {url}: {exc}. On a machine without internet access, "
                    "copy the file here and use import_weights."
                ) from None
            call_command(
                "import_weights",
                options["model"],
                str(target),
                sha256=options["sha256"],
                weights_dir=options["weights_dir"],
                stdout=self.stdout,
            )
