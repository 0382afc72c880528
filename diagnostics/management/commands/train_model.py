"""python manage.py train_model NAME --data PATH: train, calibrate, measure and ship a model."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

DEFAULT_DATA = {"pneumonia": "pneumonia/train", "scoliosis": "spine/dev"}


class Command(BaseCommand):
    help = (
        "Train a model from scratch on a folder of labelled images (one sub-folder per class, "
        "the negative class first) and write ml_weights/<name>/<version>/ with its card. "
        "'pneumonia' and 'scoliosis' are the shipped recipes."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="model name, e.g. pneumonia, scoliosis or your own")
        parser.add_argument(
            "--data",
            help="folder with one sub-folder per class, or a CSV of image,label[,patient_id] "
            "(paths relative to the CSV)",
        )
        parser.add_argument(
            "--from-studies",
            metavar="CODE",
            help="train from this hospital's studies instead of --data: images labelled for the "
            "finding code CODE by signed reports (and, where none is signed, by radiologists' "
            "feedback on AI findings); the images of --category studies are used",
        )
        parser.add_argument(
            "--min-per-class",
            type=int,
            default=20,
            help="with --from-studies: refuse to train on fewer labelled images per class",
        )
        parser.add_argument("--model-version", dest="model_version", default="1.0.0")
        parser.add_argument(
            "--classes", help="class folder names, negative first (own models; e.g. normal,lesion)"
        )
        parser.add_argument("--title", help="title in the card (own models)")
        parser.add_argument("--category", action="append", help="applies_to category (own models)")
        parser.add_argument("--view", action="append", help="applies_to view position")
        parser.add_argument("--age-min", type=float)
        parser.add_argument("--age-max", type=float)
        parser.add_argument("--size", help="HEIGHTxWIDTH the images are resized to")
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--folds", type=int, help="k-fold cross-validation instead of hold-out")
        parser.add_argument("--target-sensitivity", type=float)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--max-minutes", type=float, help="stop training after this long")
        parser.add_argument("--threads", type=int, default=settings.ML_THREADS)
        parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
        parser.add_argument("--weights-dir", default=str(settings.ML_WEIGHTS_DIR))
        parser.add_argument(
            "--work-dir", help="checkpoints (default var/ml-work/<name>/<version>/)"
        )
        parser.add_argument(
            "--restart", action="store_true", help="discard checkpoints instead of resuming"
        )
        parser.add_argument("--force", action="store_true", help="replace an existing version")

    def handle(self, *args, **options):
        from diagnostics.ml import presets
        from diagnostics.ml.errors import MLError
        from diagnostics.ml.pipeline import ModelSpec, train_from_folder
        from diagnostics.ml.train import TrainConfig

        name, version = options["name"], options["model_version"]
        if name in presets.PRESETS:
            config, spec = presets.PRESETS[name](version)
        else:
            if not options["classes"] or not options["category"]:
                raise CommandError(
                    f"{name!r} is not a shipped recipe ({', '.join(presets.PRESETS)}): give "
                    "--classes (negative first) and at least one --category."
                )
            config = TrainConfig(
                name=name, version=version, class_names=options["classes"].split(",")
            )
            spec = ModelSpec(
                title=options["title"] or name,
                description=f"{name}: {' vs '.join(config.class_names)}, trained by train_model.",
                intended_use="Triage aid; a radiologist reads every study.",
                applies_to={
                    "categories": options["category"],
                    "view_positions": options["view"] or [],
                    "age_years": {"min": options["age_min"], "max": options["age_max"]},
                },
                data={"citation": "hospital's own labelled images", "licence": "internal"},
                limitations=["Trained on this hospital's own images only."],
            )
        for option, attribute in (
            ("epochs", "epochs"),
            ("folds", "folds"),
            ("seed", "seed"),
            ("max_minutes", "max_minutes"),
            ("threads", "threads"),
            ("device", "device"),
            ("target_sensitivity", "target_sensitivity"),
        ):
            if options[option] is not None:
                setattr(config, attribute, options[option])
        if options["size"]:
            try:
                height, width = (int(v) for v in options["size"].lower().split("x"))
            except ValueError:
                raise CommandError("--size is HEIGHTxWIDTH, e.g. 192x192.") from None
            config.size = (height, width)

        weights_root = Path(options["weights_dir"])
        target = weights_root / name / version
        if (target / "card.json").exists() and not options["force"]:
            raise CommandError(f"{target} already exists; pick another --model-version or --force.")
        work_dir = Path(options["work_dir"] or settings.VAR_DIR / "ml-work" / name / version)
        if options["restart"] and work_dir.exists():
            shutil.rmtree(work_dir)
        if options["from_studies"]:
            if options["data"]:
                raise CommandError("Give either --data or --from-studies, not both.")
            options["data"] = str(self._export_studies(options, config, spec, work_dir))

        data = options["data"] or (
            str(settings.ML_DATASETS_DIR / DEFAULT_DATA[name]) if name in DEFAULT_DATA else None
        )
        if not data:
            raise CommandError("--data PATH is required: a folder with one sub-folder per class.")
        data_root = Path(data)
        if not (data_root.is_dir() or (data_root.suffix.lower() == ".csv" and data_root.is_file())):
            raise CommandError(f"{data_root} is neither a folder of labelled images nor a CSV.")

        from tqdm import tqdm

        def progress_factory(total, title):
            return tqdm(
                total=total,
                desc=title,
                unit="step",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=2,
            )

        try:
            card = train_from_folder(
                config,
                spec,
                data_root,
                weights_root,
                work_dir=work_dir,
                log=lambda m: self.stdout.write(m),
                progress_factory=progress_factory,
            )
        except MLError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Trained {card.key} in {card.folder}"))

    def _export_studies(self, options, config, spec, work_dir: Path) -> Path:
        """Write the labelled images of this hospital's studies to ``work_dir/dataset``."""
        from accounts.audit import Actor
        from diagnostics import training_set

        code = options["from_studies"]
        categories = spec.applies_to.get("categories") or []
        if not categories:
            raise CommandError("--from-studies needs the study categories (--category).")
        if len(config.class_names) != 2:
            raise CommandError("--from-studies trains two classes: negative first, then CODE.")
        images = training_set.labelled_images(
            code, categories=categories, view_positions=spec.applies_to.get("view_positions")
        )
        counts = training_set.summary(images)
        self.stdout.write(f"Labelled images for {code!r}: {counts}")
        if min(counts["positive"], counts["negative"]) < options["min_per_class"]:
            raise CommandError(
                f"Too few labelled images for {code!r}: {counts['positive']} positive and "
                f"{counts['negative']} negative; at least {options['min_per_class']} of each "
                "are needed (--min-per-class). Sign more reports with this finding code or give "
                "feedback on AI findings."
            )
        return training_set.write_training_set(
            images,
            work_dir / "dataset",
            class_names=tuple(config.class_names),
            code=code,
            actor=Actor.system("train_model"),
        )
