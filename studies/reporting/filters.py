"""FilterSets of the worklists and the report list/search: the study filters of
``studies.filters.StudyFilter`` plus what reading adds. Shared by the pages and the API."""

from __future__ import annotations

import django_filters
from django.forms.utils import ErrorDict
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field

from studies.filters import StudyFilter
from studies.models import FindingCode, ReadingStatus, Report, Study


class WorklistFilter(StudyFilter):
    reading_status = django_filters.MultipleChoiceFilter(
        choices=ReadingStatus.choices, label=_("Reading status")
    )
    claimed = django_filters.BooleanFilter(
        field_name="claimed_by", lookup_expr="isnull", exclude=True, label=_("Claimed")
    )

    class Meta(StudyFilter.Meta):
        fields = []


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class FindingCodeFilter(django_filters.ModelMultipleChoiceFilter):
    """Finding codes by their code (``?finding=pneumonia&finding=effusion``: all of them)."""


class ReportFilter(django_filters.FilterSet):
    """Report list and search: text (``text``), finding codes, status, and every study filter
    under its own name (``category``, ``date_after``, ``q``…) applied to the report's study."""

    text = django_filters.CharFilter(method="filter_noop", label=_("Report text"))
    finding = FindingCodeFilter(
        field_name="finding_codes__code",
        to_field_name="code",
        queryset=FindingCode.objects.all(),
        label=_("Finding codes"),
        conjoined=True,
    )
    status = django_filters.ChoiceFilter(choices=Report.Status.choices, label=_("Report status"))
    study = django_filters.NumberFilter(field_name="study_id", label=_("Study (id)"))

    class Meta:
        model = Report
        fields = []

    def __init__(self, data=None, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        study_data = {k: v for k, v in (data or {}).items() if k != "ordering"}
        self.study_filter = StudyFilter(study_data, queryset=Study.objects.all())

    def is_valid(self) -> bool:
        return super().is_valid() and self.study_filter.is_valid()

    @property
    def errors(self):
        # An ErrorDict, as django-filter's own (the API turns it into a 400 with details).
        return ErrorDict({**self.form.errors, **self.study_filter.errors})

    def filter_noop(self, queryset, name, value):
        return queryset  # the search itself is applied by studies.reporting.search

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        given = {k for k, v in self.study_filter.data.items() if v not in ("", None)}
        if given & set(self.study_filter.filters):
            queryset = queryset.filter(study__in=self.study_filter.qs.values("pk"))
        return queryset
