"""One FilterSet for the study list page and ``/api/v1/studies/`` alike."""

import django_filters
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts.models import Department
from patients.filters import DATE_INPUT_FORMATS, name_fragment_q
from patients.normalize import normalize_mrn
from studies.models import Category, Study, Urgency


class StudyFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_q",
        label=_("Search"),
        help_text=_("Patient name fragment, MRN or accession number."),
    )
    modality = django_filters.CharFilter(method="filter_modality", label=_("Modality"))
    category = django_filters.ChoiceFilter(choices=Category.choices, label=_("Category"))
    urgency = django_filters.ChoiceFilter(choices=Urgency.choices, label=_("Urgency"))
    date_after = django_filters.DateFilter(
        field_name="study_datetime",
        lookup_expr="date__gte",
        label=_("Study date from"),
        input_formats=DATE_INPUT_FORMATS,
    )
    date_before = django_filters.DateFilter(
        field_name="study_datetime",
        lookup_expr="date__lte",
        label=_("Study date to"),
        input_formats=DATE_INPUT_FORMATS,
    )
    patient = django_filters.NumberFilter(field_name="patient_id", label=_("Patient (id)"))
    department = django_filters.ModelChoiceFilter(
        queryset=Department.objects.all(),
        to_field_name="code",
        label=_("Performing department"),
    )
    ordering = django_filters.OrderingFilter(
        fields=(
            ("study_datetime", "study_datetime"),
            ("created_at", "created_at"),
            ("urgency", "urgency"),
        ),
        label=_("Ordering"),
    )

    class Meta:
        model = Study
        fields = []

    def filter_modality(self, queryset, name, value):
        value = value.strip().upper()
        if not value:
            return queryset
        # ``modalities`` is a backslash-joined set ("CT\\SR"): match whole codes only.
        return queryset.filter(
            Q(modalities=value)
            | Q(modalities__startswith=value + "\\")
            | Q(modalities__endswith="\\" + value)
            | Q(modalities__contains="\\" + value + "\\")
        )

    def filter_q(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        q = Q(accession_number=value) | Q(patient__mrn=normalize_mrn(value))
        if any(ch.isalpha() for ch in value):
            name_q = name_fragment_q(value)
            q |= Q(patient__in=_patients_matching(name_q))
        return queryset.filter(q)


def _patients_matching(name_q):
    from patients.models import Patient

    return Patient.objects.filter(name_q).values("pk")


class AnnotationFilter(django_filters.FilterSet):
    """Filters of ``/api/v1/annotations/``: by instance and frame, by study, label or author."""

    instance = django_filters.NumberFilter(field_name="instance_id", label=_("Instance"))
    frame = django_filters.NumberFilter(field_name="frame", label=_("Frame"))
    study = django_filters.NumberFilter(field_name="instance__series__study_id", label=_("Study"))
    label = django_filters.CharFilter(field_name="label__code", label=_("Label"))
    author = django_filters.NumberFilter(field_name="author_id", label=_("Author"))
    mine = django_filters.BooleanFilter(method="filter_mine", label=_("Only mine"))

    def filter_mine(self, queryset, name, value):
        if value is None or self.request is None:
            return queryset
        user_id = self.request.user.pk
        return queryset.filter(author_id=user_id) if value else queryset.exclude(author_id=user_id)
