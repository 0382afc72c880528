"""Per-model-version monitoring from radiologist feedback (shown in the admin).

Each feedback is one labelled case: a radiologist who agrees with a positive finding confirms a
true positive, one who disagrees marks a false positive; on a negative finding agreement is a
true negative and disagreement a false negative. Agreement is the share of feedback that
agrees. Sensitivity and specificity are given only from ``DIAGNOSTICS_MONITORING_MIN_CASES``
labelled cases of each class (fewer say too little), with a Wilson 95 % interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Q

from diagnostics.models import AIModel, Feedback


@dataclass(frozen=True)
class Rate:
    value: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}] (n={self.n})"


@dataclass(frozen=True)
class ModelMonitoring:
    model: AIModel
    feedback: int
    tp: int
    fp: int
    tn: int
    fn: int
    agreement: Rate | None
    sensitivity: Rate | None
    specificity: Rate | None


def wilson(successes: int, n: int, z: float = 1.959964) -> Rate:
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Rate(
        round(p, 4), round(max(0.0, centre - margin), 4), round(min(1.0, centre + margin), 4), n
    )


def model_monitoring(model: AIModel, *, min_cases: int | None = None) -> ModelMonitoring:
    min_cases = settings.DIAGNOSTICS_MONITORING_MIN_CASES if min_cases is None else min_cases
    counts = Feedback.objects.filter(finding__run__model=model).aggregate(
        tp=Count("pk", filter=Q(finding__positive=True, agrees=True)),
        fp=Count("pk", filter=Q(finding__positive=True, agrees=False)),
        tn=Count("pk", filter=Q(finding__positive=False, agrees=True)),
        fn=Count("pk", filter=Q(finding__positive=False, agrees=False)),
    )
    tp, fp, tn, fn = counts["tp"], counts["fp"], counts["tn"], counts["fn"]
    total = tp + fp + tn + fn
    return ModelMonitoring(
        model=model,
        feedback=total,
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        agreement=wilson(tp + tn, total) if total else None,
        sensitivity=wilson(tp, tp + fn) if tp + fn >= max(min_cases, 1) else None,
        specificity=wilson(tn, tn + fp) if tn + fp >= max(min_cases, 1) else None,
    )
