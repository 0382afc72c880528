"""Reads of reading and reporting. Everything starts from ``restrict()``: a study or report
outside the user's scope is a 404; those who may not write reports see signed versions only."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from django.db.models import Case, IntegerField, Min, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.http import Http404

from accounts.permissions import can, restrict
from studies import selectors as study_selectors
from studies.filters import StudyFilter
from studies.models import URGENCY_RANK, ReadingStatus, Report, ReportTemplate, Study
from studies.reporting.filters import WorklistFilter
from studies.reporting.services import CHANGE_PERM, VIEW_PERM

OPEN_STATUSES = (ReadingStatus.UNREAD, ReadingStatus.IN_PROGRESS, ReadingStatus.PRELIMINARY)


def report_queryset(*, user) -> QuerySet:
    qs = restrict(
        Report.objects.select_related("study__patient", "study__department", "author", "amends"),
        user,
        VIEW_PERM,
    )
    if not can(user, CHANGE_PERM):
        qs = qs.filter(status=Report.Status.SIGNED)
    return qs.prefetch_related("finding_codes")


def report_get(*, user, pk) -> Report:
    try:
        return report_queryset(user=user).get(pk=pk)
    except (Report.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def study_reports(*, user, study: Study) -> list[Report]:
    """The versions of a study's report the user may read, newest first."""
    if not can(user, VIEW_PERM):
        return []
    return list(report_queryset(user=user).filter(study=study).order_by("-version"))


def latest_signed(*, user, study: Study) -> Report | None:
    return next((r for r in study_reports(user=user, study=study) if r.is_signed), None)


def templates_for(*, category: str) -> list[ReportTemplate]:
    return list(ReportTemplate.objects.filter(category=category, active=True))


def _urgency_rank():
    return Case(
        *[When(urgency=u, then=Value(rank)) for u, rank in URGENCY_RANK.items()],
        default=Value(len(URGENCY_RANK)),
        output_field=IntegerField(),
    )


def worklist_order(qs: QuerySet) -> QuerySet:
    """Clinical urgency (STAT, urgent, routine), then AI priority inside it, then age."""
    return qs.annotate(
        urgency_rank=_urgency_rank(), acquired=Coalesce("study_datetime", "created_at")
    ).order_by("urgency_rank", "-ai_priority", "acquired", "id")


def worklist_filter(*, user, data, mine: bool = False) -> WorklistFilter:
    """The department worklist (open studies in scope) or the user's own (studies they hold)."""
    qs = study_selectors.study_queryset(user=user).select_related("claimed_by")
    qs = qs.filter(claimed_by=user) if mine else qs.filter(reading_status__in=OPEN_STATUSES)
    return WorklistFilter(data, queryset=worklist_order(qs))


def worklist(*, user, data=None, mine: bool = False) -> QuerySet:
    filterset = worklist_filter(user=user, data=data or {}, mine=mine)
    return filterset.qs if filterset.is_valid() else filterset.queryset.none()


@dataclass
class Turnaround:
    department: str
    count: int
    mean_hours: float | None
    median_hours: float | None
    p90_hours: float | None


def turnaround(*, user, data=None) -> tuple[StudyFilter, list[Turnaround]]:
    """Hours from acquisition (study date, else import) to the first signed report, per
    performing department, over the studies in the user's scope matching the study filters."""
    filterset = StudyFilter(data or {}, queryset=restrict(Study.objects.all(), user, None))
    studies = filterset.qs if filterset.is_valid() else Study.objects.none()
    rows = (
        studies.filter(reports__status=Report.Status.SIGNED)
        .annotate(first_signed=Min("reports__signed_at"))
        .values_list("department__name", "study_datetime", "created_at", "first_signed")
    )
    hours: dict[str, list[float]] = {}
    for department, acquired, created, signed in rows:
        start = acquired or created
        hours.setdefault(department, []).append(max((signed - start).total_seconds(), 0) / 3600)
    table = []
    for department in sorted(hours):
        values = sorted(hours[department])
        table.append(
            Turnaround(
                department=department,
                count=len(values),
                mean_hours=round(statistics.fmean(values), 1),
                median_hours=round(statistics.median(values), 1),
                p90_hours=round(values[min(len(values) - 1, int(0.9 * len(values)))], 1),
            )
        )
    return filterset, table
