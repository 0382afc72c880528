"""FilterSets of the worklists and the report list/search: the study filters of
``studies.filters.StudyFilter`` plus what reading adds. Shared by the pages and the API."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext_lazy as _

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


class ReportFilter(django_filters.FilterSet):
    """Report list and search: text (``text``), finding codes, status, and every study filter
    under its own name (``category``, ``date_after``, ``q``…) applied to the report's study."""

    text = django_filters.CharFilter(method="filter_noop", label=_("Report text"))
    finding = django_filters.ModelMultipleChoiceFilter(
        field_name="finding_codes",
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
        self.study_filter = StudyFilter(data, queryset=Study.objects.all())
        for name, field in self.study_filter.form.fields.items():
            if name not in self.form.fields and name != "ordering":
                self.form.fields[name] = field

    def filter_noop(self, queryset, name, value):
        return queryset  # the search itself is applied by studies.reporting.search

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        study_data = {
            k: v
            for k, v in (self.data or {}).items()
            if k in self.study_filter.filters and k != "ordering" and v not in ("", None)
        }
        if study_data:
            studies = StudyFilter(study_data, queryset=Study.objects.all())
            if not studies.is_valid():
                return queryset.none()
            queryset = queryset.filter(study__in=studies.qs.values("pk"))
        return queryset
