"""One FilterSet for the analysis runs (API and admin-like lists)."""

import django_filters
from django.utils.translation import gettext_lazy as _

from diagnostics.models import AnalysisRun


class AnalysisRunFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=AnalysisRun.Status.choices, label=_("Status"))
    model = django_filters.CharFilter(field_name="model__name", label=_("Model name"))
    model_version = django_filters.CharFilter(field_name="model__version", label=_("Version"))
    study = django_filters.NumberFilter(field_name="instance__series__study", label=_("Study"))
    instance = django_filters.NumberFilter(field_name="instance", label=_("Image"))
    positive = django_filters.BooleanFilter(
        method="filter_positive", label=_("With a positive finding")
    )
    current = django_filters.BooleanFilter(
        field_name="superseded_by", lookup_expr="isnull", label=_("Not superseded")
    )

    class Meta:
        model = AnalysisRun
        fields = ["status", "model", "model_version", "study", "instance", "positive", "current"]

    def filter_positive(self, queryset, name, value):
        if value is None:
            return queryset
        ids = queryset.filter(findings__positive=True).values("pk")
        return queryset.filter(pk__in=ids) if value else queryset.exclude(pk__in=ids)
