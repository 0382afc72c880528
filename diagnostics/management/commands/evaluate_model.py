"""python manage.py evaluate_model NAME[@VERSION] --data PATH: metrics with 95 % CIs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def model_folder(spec: str, root: Path) -> Path:
    """``name`` (the newest version) or ``name@version`` → its folder under ``root``."""
    name, _, version = spec.partition("@")
    base = root / name
    if not base.is_dir():
        raise CommandError(f"No model named {name!r} under {root}.")
    if version:
        folder = base / version
        if not folder.is_dir():
            known = ", ".join(sorted(p.name for p in base.iterdir() if p.is_dir()))
            raise CommandError(f"{name} has no version {version!r} (known: {known}).")
        return folder
    versions = sorted(
        (p for p in base.iterdir() if (p / "card.json").exists()),
        key=lambda p: _version_key(p.name),
    )
    if not versions:
        raise CommandError(f"{name} has no version with a card.json.")
    return versions[-1]


def _version_key(version: str):
    return [int(part) if part.isdigit() else part for part in version.replace("-", ".").split(".")]


class Command(BaseCommand):
    help = (
        "Evaluate a model on labelled images (class folders, or a CSV of image,label): accuracy, "
        "sensitivity, specificity and AUROC with bootstrap 95 % CIs, confusion matrix, ROC PNG. "
        "The JSON report is the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("model", help="NAME or NAME@VERSION")
        parser.add_argument("--data", required=True, help="folder of class folders, or a CSV")
        parser.add_argument(
            "--list",
            help="evaluate only the images listed in this CSV (relative to --data); "
            "'validation' means the card's own validation list",
        )
        parser.add_argument("--figures", help="folder for roc.png and confusion.png")
        parser.add_argument("--bootstrap", type=int, default=1000)
        parser.add_argument("--threads", type=int, default=settings.ML_THREADS)
        parser.add_argument("--weights-dir", default=str(settings.ML_WEIGHTS_DIR))

    def handle(self, *args, **options):
        from tqdm import tqdm

        from diagnostics.ml.errors import MLError
        from diagnostics.ml.evaluate import evaluate, format_table, samples_for
        from diagnostics.ml.predict import load

        folder = model_folder(options["model"], Path(options["weights_dir"]))
        try:
            model = load(folder, threads=options["threads"])
            listing = options["list"]
            if listing == "validation":
                listing = folder / model.card.data["metrics"].get("validation_list", "")
            samples = samples_for(model, Path(options["data"]), Path(listing) if listing else None)
            with tqdm(total=len(samples), desc="evaluating", file=sys.stderr, mininterval=2) as bar:
                report = evaluate(
                    model,
                    samples,
                    bootstrap=options["bootstrap"],
                    figures_dir=Path(options["figures"]) if options["figures"] else None,
                    progress=bar,
                )
        except MLError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(format_table(report))
        self.stdout.write(json.dumps(report, ensure_ascii=False))
