import numpy as np
import pytest

from diagnostics.ml.metrics import (
    Confusion,
    auroc,
    binary_report,
    expected_calibration_error,
    fit_temperature,
    sigmoid,
    threshold_for_sensitivity,
)


def test_auroc_of_perfect_random_and_reversed_scores():
    labels = np.array([0, 0, 1, 1])
    assert auroc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auroc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert auroc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5


def test_auroc_counts_one_wrongly_ordered_pair():
    # pairs (pos, neg): 2 x 2 = 4, one of them ordered wrongly
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.5, 0.9])) == 0.75


def test_threshold_meets_the_target_sensitivity_with_the_best_specificity_in_the_middle():
    labels = np.array([1] * 10 + [0] * 10)
    scores = np.r_[np.linspace(0.5, 0.95, 10), np.linspace(0.0, 0.45, 10)]
    threshold = threshold_for_sensitivity(labels, scores, 0.9)
    confusion = Confusion.at(labels, scores, threshold)
    assert confusion.sensitivity >= 0.9
    assert confusion.specificity == 1.0  # the best specificity at that sensitivity
    # in the gap between the highest normal (0.45) and the positive that must be caught (0.55),
    # in the middle on the logit scale: robust to a shift in either direction
    assert 0.45 < threshold < 0.55
    assert (
        abs(
            np.log(threshold / (1 - threshold))
            - 0.5 * (np.log(0.45 / 0.55) + np.log(0.525 / 0.475))
        )
        < 0.01
    )
    assert threshold not in scores


def test_threshold_with_overlapping_classes_keeps_the_target_sensitivity():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 400)
    scores = np.clip(labels * 0.3 + rng.random(400) * 0.7, 0, 1)
    for target in (0.8, 0.9, 0.95):
        threshold = threshold_for_sensitivity(labels, scores, target)
        assert Confusion.at(labels, scores, threshold).sensitivity >= target
        assert threshold not in scores


def test_temperature_scaling_recovers_an_overconfident_models_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 20000)
    labels = (rng.random(20000) < sigmoid(true_logits)).astype(int)
    overconfident = true_logits * 3
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3, rel=0.08)
    before = expected_calibration_error(labels, sigmoid(overconfident))
    after = expected_calibration_error(labels, sigmoid(overconfident / temperature))
    assert after < before / 3


def test_binary_report_gives_values_inside_their_bootstrap_intervals():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    scores = np.clip(labels * 0.4 + rng.random(300) * 0.6, 0, 1)
    report = binary_report(labels, scores, 0.5, bootstrap=200)
    for name in ("accuracy", "sensitivity", "specificity", "auroc"):
        low, high = report[name]["ci95"]
        assert low <= report[name]["value"] <= high
        assert high - low > 0
    confusion = report["confusion"]
    assert sum(confusion.values()) == 300
    assert report["positives"] == int(labels.sum())
