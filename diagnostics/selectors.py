"""Reads of runs, findings and models. Runs and findings start from ``restrict()``: they are
in scope exactly when their study is."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from accounts.permissions import can, restrict
from diagnostics.models import AIModel, AnalysisRun, Feedback, Finding
from studies.models import FindingCode, Instance, Study

VIEW_RUN = "diagnostics.view_analysisrun"
RUN_PERM = "diagnostics.add_analysisrun"
FEEDBACK_PERM = "diagnostics.add_feedback"


def run_queryset(*, user, perm: str = VIEW_RUN) -> QuerySet:
    return restrict(
        AnalysisRun.objects.select_related(
            "model", "instance__series__study__patient", "superseded_by"
        ).prefetch_related(Prefetch("findings", Finding.objects.select_related("heatmap"))),
        user,
        perm,
    )


def run_get(*, user, pk, perm: str = VIEW_RUN) -> AnalysisRun:
    try:
        return run_queryset(user=user, perm=perm).get(pk=pk)
    except (AnalysisRun.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def finding_get(*, user, pk, perm: str = VIEW_RUN) -> Finding:
    qs = restrict(Finding.objects.select_related("run__instance__series__study"), user, VIEW_RUN)
    if not can(user, perm):
        raise Http404
    try:
        return qs.get(pk=pk)
    except (Finding.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def label_names(labels) -> dict[str, str]:
    """Display names of model labels from the managed pathology list (the label otherwise)."""
    codes = {FindingCode.code_for_label(label): label for label in labels}
    names = {label: label.replace("_", " ") for label in labels}
    for code in FindingCode.objects.filter(code__in=codes):
        names[codes[code.code]] = code.name
    return names


@dataclass
class InstanceResults:
    instance: Instance
    runs: list[AnalysisRun] = field(default_factory=list)


@dataclass
class StudyAI:
    visible: bool
    instances: list[InstanceResults] = field(default_factory=list)
    pending: int = 0
    can_run: bool = False
    can_feedback: bool = False
    models: list[AIModel] = field(default_factory=list)
    unavailable: list[AIModel] = field(default_factory=list)


def study_ai(*, user, study: Study) -> StudyAI:
    """The study page's AI section: the current (not superseded) runs of each image with their
    findings, the label names, the user's own feedback, and what the user may do."""
    if not can(user, VIEW_RUN):
        return StudyAI(visible=False)
    runs = list(
        run_queryset(user=user)
        .filter(instance__series__study=study, superseded_by__isnull=True)
        .order_by("instance__series__number", "instance__number", "instance_id", "model__name")
    )
    findings = [f for run in runs for f in run.findings.all()]
    names = label_names({f.label for f in findings})
    mine = {
        fb.finding_id: fb
        for fb in Feedback.objects.filter(user=user, finding__in=[f.pk for f in findings])
    }
    for finding in findings:
        finding.display_name = names.get(finding.label, finding.label)
        finding.percent = round(finding.probability * 100, 1)
        finding.threshold_percent = round(finding.threshold * 100, 2)
        finding.my_feedback = mine.get(finding.pk)
    grouped: dict[int, InstanceResults] = {}
    for run in runs:
        grouped.setdefault(run.instance_id, InstanceResults(run.instance)).runs.append(run)
        run.heatmaps = [f for f in run.findings.all() if f.heatmap_id]
    models = list(AIModel.objects.order_by("name", "-version"))
    return StudyAI(
        visible=True,
        instances=list(grouped.values()),
        pending=sum(1 for run in runs if run.is_pending),
        can_run=can(user, RUN_PERM) and not study.images_removed_at,
        can_feedback=can(user, FEEDBACK_PERM),
        models=[m for m in models if m.is_available],
        unavailable=[m for m in models if not m.is_available],
    )


def study_runs(*, user, study: Study) -> QuerySet:
    return run_queryset(user=user).filter(instance__series__study=study)
