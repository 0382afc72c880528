"""Binary classification metrics with bootstrap confidence intervals, calibration, thresholds.

Plain numpy, so evaluation does not need torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank statistic (ties counted half)."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = np.asarray(scores)[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0)."""
    labels = np.asarray(labels).astype(bool)
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    sorted_labels = labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    tps = np.cumsum(sorted_labels)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(labels.sum(), 1)]
    fpr = np.r_[0.0, fps / max((~labels).sum(), 1)]
    return fpr, tpr


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    tn: int
    fn: int

    @classmethod
    def at(cls, labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> Confusion:
        labels = np.asarray(labels).astype(bool)
        predicted = np.asarray(probabilities) >= threshold
        return cls(
            tp=int((predicted & labels).sum()),
            fp=int((predicted & ~labels).sum()),
            tn=int((~predicted & ~labels).sum()),
            fn=int((~predicted & labels).sum()),
        )

    @property
    def sensitivity(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def specificity(self) -> float:
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else float("nan")

    @property
    def accuracy(self) -> float:
        total = self.tp + self.fp + self.tn + self.fn
        return (self.tp + self.tn) / total if total else float("nan")


def _point_metrics(labels, probabilities, threshold) -> dict[str, float]:
    confusion = Confusion.at(labels, probabilities, threshold)
    return {
        "accuracy": confusion.accuracy,
        "sensitivity": confusion.sensitivity,
        "specificity": confusion.specificity,
        "auroc": auroc(labels, probabilities),
    }


def binary_report(
    labels: np.ndarray,
    probabilities: np.ndarray,
    threshold: float,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict:
    """Accuracy, sensitivity, specificity and AUROC with percentile bootstrap 95 % CIs."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    point = _point_metrics(labels, probabilities, threshold)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {name: [] for name in point}
    n = len(labels)
    for _ in range(bootstrap):
        index = rng.integers(0, n, n)
        for name, value in _point_metrics(labels[index], probabilities[index], threshold).items():
            if not np.isnan(value):
                samples[name].append(value)
    report = {}
    for name, value in point.items():
        values = samples[name]
        low, high = np.percentile(values, [2.5, 97.5]) if values else (np.nan, np.nan)
        report[name] = {"value": _round(value), "ci95": [_round(low), _round(high)]}
    confusion = Confusion.at(labels, probabilities, threshold)
    report["confusion"] = {
        "tp": confusion.tp,
        "fp": confusion.fp,
        "tn": confusion.tn,
        "fn": confusion.fn,
    }
    report["n"] = int(n)
    report["positives"] = int(labels.sum())
    report["threshold"] = _round(threshold)
    return report


def expected_calibration_error(labels, probabilities, bins: int = 10) -> float:
    """ECE with equal-width bins over the predicted probability of the positive class."""
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(probabilities[mask].mean() - labels[mask].mean())
    return float(error)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature T > 0 minimising the log loss of sigmoid(logit / T) (golden-section search)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)

    def loss(log_t: float) -> float:
        p = np.clip(sigmoid(logits / np.exp(log_t)), 1e-7, 1 - 1e-7)
        return float(-(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean())

    low, high = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    for _ in range(80):
        if loss(a) < loss(b):
            high = b
        else:
            low = a
        a, b = high - ratio * (high - low), low + ratio * (high - low)
    return float(np.exp((low + high) / 2))


def threshold_for_sensitivity(labels, probabilities, target: float) -> float:
    """A threshold with sensitivity (probability ≥ threshold) of at least ``target`` and the
    best specificity that allows, placed for robustness rather than at the edge.

    The highest threshold reaching ``target`` and the lowest one with the same specificity
    bound an interval in which validation cannot tell thresholds apart; the threshold is the
    middle of that interval on the logit scale. A shift in the data then moves cases across it
    only when it is larger than half the gap the validation set left, in either direction,
    and no validation score lies exactly on it.
    """
    labels = np.asarray(labels).astype(bool)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    positives = np.sort(probabilities[labels])[::-1]
    if len(positives) == 0:
        raise ValueError("No positive cases to choose a threshold on.")
    needed = int(np.ceil(target * len(positives) - 1e-9))
    needed = min(max(needed, 1), len(positives))
    lowest_caught = positives[needed - 1]
    below = probabilities[probabilities < lowest_caught]
    if len(below) == 0:
        return float(lowest_caught)
    high = float((lowest_caught + below.max()) / 2)  # the highest threshold reaching target
    negatives_below = probabilities[~labels & (probabilities < high)]
    if len(negatives_below) == 0:
        return high
    low = float(negatives_below.max())  # above it, specificity stays the same up to ``high``
    low = float(np.nextafter(low, 1.0))
    mid_logit = (_logit(low) + _logit(high)) / 2
    return float(min(max(sigmoid(np.array(mid_logit)), low), high))


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return float(np.log(p / (1 - p)))


def _round(value) -> float | None:
    value = float(value)
    return None if np.isnan(value) else round(value, 4)
