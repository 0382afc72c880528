"""Evaluate a model version on labelled images through ``predict()``, exactly as in service."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .data import Sample, from_class_folders, from_csv
from .errors import DataError, ImageReadError
from .metrics import binary_report
from .plots import draw_confusion, draw_roc
from .predict import LoadedModel, predict


def samples_for(model: LoadedModel, data: Path, listing: Path | None = None) -> list[Sample]:
    """Labelled samples in the card's class order: class folders under ``data``, or a CSV.

    ``listing`` (a CSV of ``image,label`` relative to ``data``, such as the card's
    ``validation.csv``) restricts the evaluation to those images.
    """
    class_names = [model.card.data["negative_label"], *model.card.labels]
    if listing is not None:
        rows = from_csv(listing, class_names)
        return [Sample(Path(data) / _relative(s.path, listing), s.label, s.patient) for s in rows]
    if Path(data).suffix.lower() == ".csv":
        return from_csv(Path(data), class_names)
    samples, _ = from_class_folders(Path(data), class_names)
    return samples


def _relative(path: Path, listing: Path) -> Path:
    return path.relative_to(listing.parent.resolve())


def evaluate(
    model: LoadedModel,
    samples: list[Sample],
    *,
    figures_dir: Path | None = None,
    bootstrap: int = 1000,
    progress=None,
) -> dict:
    """Metrics per label with bootstrap 95 % CIs, confusion matrix, timing; PNGs if asked."""
    if not samples:
        raise DataError("No images to evaluate.")
    labels = model.card.labels
    probabilities, truth, seconds, skipped = [], [], [], []
    for sample in samples:
        started = time.perf_counter()
        try:
            prediction = predict(model, sample.path)
        except (ImageReadError, OSError) as exc:
            skipped.append(f"{sample.path}: {exc}")
            continue
        seconds.append(time.perf_counter() - started)
        probabilities.append([f.probability for f in prediction.findings])
        truth.append([1 if sample.label == i + 1 else 0 for i in range(len(labels))])
        if progress is not None:
            progress.update(1)
    probabilities_array, truth_array = np.array(probabilities), np.array(truth)
    report: dict = {
        "model": model.key,
        "images": len(probabilities),
        "skipped": skipped,
        "per_label": {},
    }
    for j, label in enumerate(labels):
        threshold = model.card.thresholds[label]
        metrics = binary_report(
            truth_array[:, j], probabilities_array[:, j], threshold, bootstrap=bootstrap
        )
        report["per_label"][label] = metrics
        if figures_dir is not None:
            suffix = "" if len(labels) == 1 else f"-{label}"
            draw_roc(
                Path(figures_dir) / f"roc{suffix}.png",
                truth_array[:, j],
                probabilities_array[:, j],
                title=model.card.title,
                auc=metrics["auroc"]["value"] or 0.0,
                point=(
                    1 - (metrics["specificity"]["value"] or 0),
                    metrics["sensitivity"]["value"] or 0,
                ),
            )
            draw_confusion(
                Path(figures_dir) / f"confusion{suffix}.png",
                metrics["confusion"],
                negative=model.card.data["negative_label"],
                positive=label,
            )
    timings = np.array(seconds) * 1000
    report["inference_ms"] = {
        "mean": round(float(timings.mean()), 1),
        "p50": round(float(np.percentile(timings, 50)), 1),
        "p95": round(float(np.percentile(timings, 95)), 1),
    }
    return report


def format_table(report: dict) -> str:
    """A readable table of a report from :func:`evaluate`."""
    lines = [f"{report['model']}: {report['images']} images", ""]
    lines.append(f"{'label':<16}{'metric':<13}{'value':>8}   95 % CI")
    for label, metrics in report["per_label"].items():
        for name in ("accuracy", "sensitivity", "specificity", "auroc"):
            value = metrics[name]["value"]
            low, high = metrics[name]["ci95"]
            lines.append(f"{label:<16}{name:<13}{_fmt(value):>8}   [{_fmt(low)}, {_fmt(high)}]")
        c = metrics["confusion"]
        lines.append(
            f"{label:<16}threshold {metrics['threshold']}  confusion: TP {c['tp']}  "
            f"FP {c['fp']}  TN {c['tn']}  FN {c['fn']}"
        )
    timing = report["inference_ms"]
    lines.append(
        f"inference per image: mean {timing['mean']} ms, p50 {timing['p50']} ms, "
        f"p95 {timing['p95']} ms"
    )
    for message in report["skipped"]:
        lines.append(f"skipped {message}")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
