"""Training sets from the hospital's own studies.

An image is labelled for one finding code by the radiologists, never by the AI alone:

1. **A signed report** of its study (the latest signed version, amendments included): positive
   when the report names the code, negative when it does not. A signed reading is the final word
   and wins over feedback.
2. Otherwise **radiologist feedback** on the AI finding for that code in the image's current run:
   "agree" keeps the model's call, "disagree" turns it round. The latest feedback counts.

Images without either are left out. ``write_training_set`` copies the stored files into a work
folder with a CSV (``image,label,patient_id``) that ``diagnostics.ml.data.from_csv`` reads, so the
split stays disjoint by patient; every patient whose images leave storage for training gets an
``export`` audit event.
"""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.core.files.storage import default_storage
from django.db.models import Prefetch

from accounts.audit import EXPORT, Actor, audit_record
from diagnostics.models import AnalysisRun, Feedback
from studies.models import Instance, Report

REPORT = "report"
FEEDBACK = "feedback"


@dataclass(frozen=True)
class LabelledImage:
    instance_id: int
    patient_id: int
    file_name: str
    positive: bool
    source: str  # REPORT or FEEDBACK


def labelled_images(
    code: str, *, categories: list[str], view_positions: list[str] | None = None
) -> list[LabelledImage]:
    """The stored images of ``categories`` labelled for ``code`` (see the module's docstring)."""
    instances = (
        Instance.objects.filter(
            series__study__category__in=categories,
            series__study__patient__merged_into__isnull=True,
            frames__gte=1,
        )
        .exclude(file="")
        .select_related("series__study")
        .order_by("pk")
    )
    if view_positions:
        instances = instances.filter(series__study__view_position__in=view_positions)
    instances = list(instances)
    study_ids = {i.series.study_id for i in instances}

    verdicts: dict[int, bool] = {}
    signed = (
        Report.objects.filter(study_id__in=study_ids, status=Report.Status.SIGNED)
        .order_by("study_id", "-version")
        .prefetch_related("finding_codes")
    )
    for report in signed:
        if report.study_id not in verdicts:  # the latest signed version
            verdicts[report.study_id] = any(c.code == code for c in report.finding_codes.all())

    feedback_verdicts: dict[int, bool] = {}
    runs = AnalysisRun.objects.filter(
        instance_id__in=[i.pk for i in instances if i.series.study_id not in verdicts],
        status=AnalysisRun.Status.SUCCEEDED,
        superseded_by__isnull=True,
    ).prefetch_related(
        Prefetch("findings__feedback", queryset=Feedback.objects.order_by("-updated_at"))
    )
    for run in runs.prefetch_related("findings"):
        for finding in run.findings.all():
            if finding.code != code:
                continue
            latest = next(iter(finding.feedback.all()), None)
            if latest is not None:
                feedback_verdicts[run.instance_id] = finding.positive == latest.agrees

    labelled = []
    for instance in instances:
        study = instance.series.study
        if study.pk in verdicts:
            positive, source = verdicts[study.pk], REPORT
        elif instance.pk in feedback_verdicts:
            positive, source = feedback_verdicts[instance.pk], FEEDBACK
        else:
            continue
        labelled.append(
            LabelledImage(instance.pk, study.patient_id, instance.file.name, positive, source)
        )
    return labelled


def summary(images: list[LabelledImage]) -> dict[str, int]:
    counts = Counter(("positive" if i.positive else "negative", i.source) for i in images)
    return {
        "positive": sum(1 for i in images if i.positive),
        "negative": sum(1 for i in images if not i.positive),
        "patients": len({i.patient_id for i in images}),
        **{f"{label}_from_{source}": n for (label, source), n in sorted(counts.items())},
    }


def write_training_set(
    images: list[LabelledImage],
    out_dir: Path,
    *,
    class_names: tuple[str, str],
    code: str,
    actor: Actor,
) -> Path:
    """Copy the images into ``out_dir/images/`` and write ``out_dir/training.csv``; audit one
    export per patient. Returns the CSV's path."""
    negative, positive = class_names
    image_dir = Path(out_dir) / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    csv_path = Path(out_dir) / "training.csv"
    by_patient: dict[int, list[int]] = {}
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label", "patient_id"])
        for image in images:
            target = image_dir / f"{image.instance_id}.dcm"
            if not target.exists():
                with default_storage.open(image.file_name, "rb") as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            writer.writerow(
                [
                    f"images/{target.name}",
                    positive if image.positive else negative,
                    f"patient-{image.patient_id}",
                ]
            )
            by_patient.setdefault(image.patient_id, []).append(image.instance_id)
    for patient_id, instance_ids in sorted(by_patient.items()):
        audit_record(
            actor=actor,
            action=EXPORT,
            object_type="studies.instance",
            object_id=",".join(map(str, instance_ids))[:64],
            patient_id=patient_id,
            details={"purpose": "model training", "code": code, "instances": instance_ids},
        )
    return csv_path
