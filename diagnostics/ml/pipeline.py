"""From a labelled folder to a shipped model version: train, calibrate, threshold, measure, write.

Used by ``manage.py train_model``. Two validation designs:

* hold-out (``folds`` 0): a patient-disjoint validation split; early stopping, temperature and
  thresholds on it; the card's metrics are measured on it.
* k-fold (``folds`` > 1, for small sets): each fold is predicted by a network trained on the
  others for a fixed number of epochs (no selection on the fold); temperature, thresholds and
  metrics come from these out-of-fold predictions; the shipped network is then trained the same
  way on every image.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .card import CARD_VERSION, ModelCard, sha256_of
from .data import (
    Sample,
    folds_by_patient,
    from_class_folders,
    from_csv,
    load_arrays,
    split_by_patient,
)
from .metrics import (
    binary_report,
    expected_calibration_error,
    fit_temperature,
    sigmoid,
    threshold_for_sensitivity,
)
from .plots import draw_confusion, draw_roc
from .preprocess import Preprocessing
from .train import FitResult, TrainConfig, fit, pick_device, targets_for

WEIGHTS_FILE = "weights.pt"
VALIDATION_FILE = "validation.csv"
SEVERITY = {"moderate": 0.75, "high": 0.92}
# Student's t quantile 0.975 by degrees of freedom, for a CI over k fold accuracies.
T_975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
}


@dataclass
class ModelSpec:
    """What the card says beyond training: purpose, scope of use, data and limits."""

    title: str
    description: str
    intended_use: str
    applies_to: dict
    data: dict
    limitations: list[str]


Log = Callable[[str], None]


def train_from_folder(
    config: TrainConfig,
    spec: ModelSpec,
    data_root: Path,
    weights_root: Path,
    *,
    work_dir: Path,
    log: Log = print,
    progress_factory=None,
) -> ModelCard:
    started_at = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    deadline = clock + config.max_minutes * 60
    preprocessing = Preprocessing(size=tuple(config.size))
    data_root = Path(data_root)
    if data_root.suffix.lower() == ".csv":  # a CSV of image,label[,patient_id]
        samples, class_names = from_csv(data_root, config.class_names), config.class_names
        data_root = data_root.parent.resolve()
    else:
        samples, class_names = from_class_folders(data_root, config.class_names)
    config.class_names = class_names
    log(
        f"{len(samples)} images in {len(class_names)} classes: "
        + ", ".join(
            f"{name} {sum(s.label == i for s in samples)}" for i, name in enumerate(class_names)
        )
    )

    bar = progress_factory(len(samples), "reading images") if progress_factory else None
    images, labels, skipped = load_arrays(samples, preprocessing, bar)
    if bar:
        bar.close()
    for message in skipped:
        log(f"skipped {message}")
    kept = [s for s, ok in zip(samples, _kept_mask(samples, skipped), strict=True) if ok]
    index_of = {id(s): i for i, s in enumerate(kept)}

    def arrays(subset: list[Sample]):
        rows = [index_of[id(s)] for s in subset]
        return images[rows], labels[rows]

    def progress_for(title: str):
        if not progress_factory:
            return None, None
        holder = {"bar": None}

        def update(done, total, record):
            if holder["bar"] is None:
                holder["bar"] = progress_factory(total, title)
            bar = holder["bar"]
            if record:
                bar.set_postfix(record, refresh=False)
            bar.update(done - bar.n)

        return update, holder

    folds_report: list[dict] = []
    work_dir.mkdir(parents=True, exist_ok=True)
    if config.folds and config.folds > 1:
        folds = folds_by_patient(kept, config.folds, config.seed)
        validation_samples: list[Sample] = []
        logits_parts = []
        for k, fold in enumerate(folds):
            train_part = [s for j, f in enumerate(folds) if j != k for s in f]
            update, holder = progress_for(f"fold {k + 1}/{config.folds}")
            result = fit(
                config,
                arrays(train_part),
                None,
                progress=update,
                checkpoint=work_dir / f"fold{k}.ckpt",
            )
            if holder and holder["bar"]:
                holder["bar"].close()
            fold_logits = _logits(result.model, arrays(fold)[0])
            logits_parts.append(fold_logits)
            validation_samples.extend(fold)
            folds_report.append(
                {"fold": k, "n": len(fold), "seconds": result.seconds, "logits": fold_logits}
            )
        validation_logits = np.concatenate(logits_parts)
        update, holder = progress_for("final fit on all images")
        final = fit(config, arrays(kept), None, progress=update, checkpoint=work_dir / "final.ckpt")
        if holder and holder["bar"]:
            holder["bar"].close()
        method = (
            f"{config.folds}-fold cross-validation by patient over {len(kept)} images "
            "(out-of-fold predictions; the shipped network is trained on all images)"
        )
    else:
        train_part, validation_samples = split_by_patient(
            kept, config.validation_fraction, config.seed
        )
        log(
            f"train {len(train_part)} images, validation {len(validation_samples)} images "
            f"(patient-disjoint: {len({s.patient for s in train_part})} vs "
            f"{len({s.patient for s in validation_samples})} patients)"
        )
        update, holder = progress_for("training")
        final = fit(
            config,
            arrays(train_part),
            arrays(validation_samples),
            progress=update,
            checkpoint=work_dir / "train.ckpt",
            deadline=deadline,
        )
        if holder and holder["bar"]:
            holder["bar"].close()
        log(f"best epoch {final.best_epoch + 1}; {final.stopped}")
        validation_logits = final.validation_logits
        method = (
            f"hold-out validation by patient: {len(validation_samples)} images, "
            f"{len({s.patient for s in validation_samples})} patients never seen in training"
        )

    validation_labels = np.array([s.label for s in validation_samples])
    card = _finish(
        config,
        spec,
        preprocessing,
        final,
        validation_samples,
        validation_labels,
        validation_logits,
        folds_report,
        method,
        data_root,
        weights_root,
        started_at,
        time.monotonic() - clock,
        log,
        {name: int((labels == i).sum()) for i, name in enumerate(class_names)},
    )
    return card


def _kept_mask(samples: list[Sample], skipped: list[str]) -> list[bool]:
    bad = {message.split(": ", 1)[0] for message in skipped}
    return [str(s.path) not in bad for s in samples]


def _logits(model, images) -> np.ndarray:
    from .train import predict_logits

    return predict_logits(model, images, torch.device("cpu"))


def _finish(
    config,
    spec,
    preprocessing,
    final: FitResult,
    validation_samples,
    labels,
    logits,
    folds_report,
    method,
    data_root,
    weights_root,
    started_at,
    seconds,
    log,
    image_counts,
) -> ModelCard:
    label_names = config.class_names[1:]
    targets = targets_for(labels, config.num_outputs)
    temperature = fit_temperature(logits.ravel(), targets.ravel())
    raw = sigmoid(logits)
    calibrated = sigmoid(logits / temperature)
    folder = Path(weights_root) / config.name / config.version
    folder.mkdir(parents=True, exist_ok=True)
    thresholds, per_label, figures = {}, {}, {}
    for j, label in enumerate(label_names):
        threshold = threshold_for_sensitivity(
            targets[:, j], calibrated[:, j], config.target_sensitivity
        )
        thresholds[label] = threshold
        report = binary_report(targets[:, j], calibrated[:, j], thresholds[label])
        report["calibration"] = {
            "ece_before": round(expected_calibration_error(targets[:, j], raw[:, j]), 4),
            "ece_after": round(expected_calibration_error(targets[:, j], calibrated[:, j]), 4),
        }
        per_label[label] = report
        suffix = "" if len(label_names) == 1 else f"-{label}"
        roc_name, confusion_name = f"roc{suffix}.png", f"confusion{suffix}.png"
        sens, spec_ = report["sensitivity"]["value"], report["specificity"]["value"]
        draw_roc(
            folder / roc_name,
            targets[:, j],
            calibrated[:, j],
            title=spec.title,
            auc=report["auroc"]["value"],
            point=(1 - spec_, sens),
        )
        draw_confusion(
            folder / confusion_name,
            report["confusion"],
            negative=config.class_names[0],
            positive=label,
        )
        figures[f"roc{suffix}"] = roc_name
        figures[f"confusion{suffix}"] = confusion_name
        log(
            f"{label}: AUROC {report['auroc']['value']} {report['auroc']['ci95']}, "
            f"sensitivity {sens}, specificity {spec_}, accuracy {report['accuracy']['value']} "
            f"at threshold {thresholds[label]}; ECE {report['calibration']['ece_before']} → "
            f"{report['calibration']['ece_after']} (T={temperature:.3f})"
        )

    fit_seconds = final.seconds + sum(fold["seconds"] for fold in folds_report)
    fold_metrics, offset = [], 0
    for fold in folds_report:
        fold_logits = fold.pop("logits")
        fold_targets = targets[offset : offset + fold["n"]]
        offset += fold["n"]
        probabilities = sigmoid(fold_logits / temperature)
        positive = (probabilities >= np.array([thresholds[n] for n in label_names])).any(axis=1)
        truth = fold_targets.any(axis=1)
        fold["accuracy"] = round(float((positive == truth).mean()), 4)
        fold_metrics.append(fold)
    summary = {}
    if fold_metrics:
        accuracies = np.array([f["accuracy"] for f in fold_metrics])
        t = T_975.get(len(accuracies) - 1, 1.96)
        half = t * accuracies.std(ddof=1) / np.sqrt(len(accuracies))
        summary = {
            "mean_accuracy": {
                "value": round(float(accuracies.mean()), 4),
                "ci95": [
                    round(float(accuracies.mean() - half), 4),
                    round(float(accuracies.mean() + half), 4),
                ],
                "ci_method": f"t-interval over {len(accuracies)} fold accuracies",
            }
        }
        log(f"cross-validation mean accuracy {summary['mean_accuracy']}")

    weights_path = folder / WEIGHTS_FILE
    torch.save(final.model.state_dict(), weights_path)
    with (folder / VALIDATION_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label"])
        for sample in validation_samples:
            writer.writerow(
                [sample.path.relative_to(data_root).as_posix(), config.class_names[sample.label]]
            )
    device = pick_device(config.device)
    data = {
        "card_version": CARD_VERSION,
        "name": config.name,
        "version": config.version,
        "task": "binary" if len(label_names) == 1 else "multilabel",
        "title": spec.title,
        "description": spec.description,
        "intended_use": spec.intended_use,
        "labels": label_names,
        "negative_label": config.class_names[0],
        "architecture": config.architecture,
        "weights_file": WEIGHTS_FILE,
        "sha256": sha256_of(weights_path),
        "weights_shipped": True,
        "preprocessing": preprocessing.to_card(),
        "temperature": round(temperature, 6),
        "thresholds": thresholds,
        "severity": SEVERITY,
        "applies_to": spec.applies_to,
        "metrics": {
            "method": method,
            "per_label": per_label,
            "folds": fold_metrics,
            **summary,
            "validation_list": VALIDATION_FILE,
        },
        "figures": figures,
        "training": {
            "config": config.to_card(),
            "started_at": started_at.isoformat(timespec="seconds"),
            # Training time across resumed runs (a checkpoint carries the time before it).
            "seconds": round(max(seconds, fit_seconds), 1),
            "fit_seconds": round(fit_seconds, 1),
            "stopped": final.stopped,
            "best_epoch": final.best_epoch + 1,
            "history": final.history,
            "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(),
            "threads": config.threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "images": image_counts,
            "validation_images": int(len(labels)),
        },
        "data": spec.data,
        "limitations": spec.limitations,
    }
    card = ModelCard(data, folder)
    card.save()
    log(f"wrote {folder} ({weights_path.stat().st_size / 1e6:.1f} MB weights)")
    log(json.dumps({"model": card.key, "metrics": per_label, **summary}, ensure_ascii=False))
    return card
