"""One FilterSet for the patient list page and ``/api/v1/patients/`` alike."""

import datetime as dt
import re

import django_filters
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from accounts.models import Department
from patients.models import IdentityStatus, Patient, PatientHistory, PatientIdentifier, Sex
from patients.normalize import normalize_identifier, normalize_mrn, normalize_name

# Russian, ISO and slashed day-first dates, in the filters and the patient form alike.
DATE_INPUT_FORMATS = ["%d.%m.%Y", "%Y-%m-%d", "%d/%m/%Y"]


def parse_date(text: str) -> dt.date | None:
    for fmt in DATE_INPUT_FORMATS:
        try:
            return dt.datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


def name_fragment_q(text: str) -> Q:
    """Every word must occur in the normalised name (trigram-indexed on PostgreSQL), or in one
    of the patient's former names (kept by the identity history)."""
    q = Q()
    former = PatientHistory.objects.filter(field__in=FORMER_NAME_FIELDS)
    tokens = [t for t in normalize_name(text).split(" ") if t]
    for token in tokens:
        q &= Q(search_name__contains=token)
        former = former.filter(former_key__contains=token)
    if not tokens:
        return q
    ids = list(former.exclude(former_key="").values_list("patient_id", flat=True)[:1000])
    return q | Q(pk__in=ids) if ids else q


FORMER_NAME_FIELDS = ("last_name", "first_name", "middle_name", "former_name")


def identifier_q(text: str) -> Q:
    """Resolved to ids first: a subquery inside the OR of ``q`` keeps PostgreSQL from using
    any index (bench/patients_search.py: MRN p95 110 ms with it, 2.5 ms without)."""
    value = normalize_identifier(text)
    if not value:
        return Q(pk__in=[])
    ids = list(PatientIdentifier.objects.filter(value=value).values_list("patient_id", flat=True))
    # Former identifiers and MRNs: the index (field, former_key) answers both.
    ids += PatientHistory.objects.filter(
        field__in=("identifier", "mrn"), former_key__in={value, normalize_mrn(text)}
    ).values_list("patient_id", flat=True)
    return Q(pk__in=sorted(set(ids)))


def by_name_match(queryset):
    """Order name-fragment results by the normalised name. Walking the (last_name, ...) index
    until 25 rare matches turn up costs a scan of most of the table; sorting the trigram index's
    matches does not. It also sorts ё with е. An explicit ``ordering`` still wins."""
    return queryset.order_by("search_name", "id")


class PatientFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_q",
        label=_("Search"),
        help_text=_("Name fragment, MRN, identifier or birth date (DD.MM.YYYY)."),
    )
    name = django_filters.CharFilter(method="filter_name", label=_("Name fragment"))
    mrn = django_filters.CharFilter(method="filter_mrn", label=_("MRN"))
    identifier = django_filters.CharFilter(method="filter_identifier", label=_("Identifier"))
    birth_date = django_filters.DateFilter(
        field_name="birth_date", label=_("Birth date"), input_formats=DATE_INPUT_FORMATS
    )
    birth_date_after = django_filters.DateFilter(
        field_name="birth_date",
        lookup_expr="gte",
        label=_("Born on or after"),
        input_formats=DATE_INPUT_FORMATS,
    )
    birth_date_before = django_filters.DateFilter(
        field_name="birth_date",
        lookup_expr="lte",
        label=_("Born on or before"),
        input_formats=DATE_INPUT_FORMATS,
    )
    sex = django_filters.ChoiceFilter(choices=Sex.choices, label=_("Sex"))
    identity_status = django_filters.ChoiceFilter(
        choices=IdentityStatus.choices, label=_("Identity status")
    )
    department = django_filters.ModelChoiceFilter(
        queryset=Department.objects.all(), label=_("Department")
    )
    deleted = django_filters.BooleanFilter(
        field_name="deleted_at", lookup_expr="isnull", exclude=True, label=_("Deleted")
    )
    ordering = django_filters.OrderingFilter(
        fields=(
            ("last_name", "last_name"),
            ("birth_date", "birth_date"),
            ("mrn", "mrn"),
            ("created_at", "created_at"),
        ),
        label=_("Ordering"),
    )

    class Meta:
        model = Patient
        fields = []

    def filter_q(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        date = parse_date(value)
        if date is not None:
            return queryset.filter(birth_date=date)
        q = Q(mrn=normalize_mrn(value))
        if re.search(r"\d", value):
            q |= identifier_q(value)
        if re.search(r"[^\W\d_]", value):
            q |= name_fragment_q(value)
            return by_name_match(queryset.filter(q))
        return queryset.filter(q)

    def filter_name(self, queryset, name, value):
        if not value.strip():
            return queryset
        return by_name_match(queryset.filter(name_fragment_q(value)))

    def filter_mrn(self, queryset, name, value):
        return queryset.filter(mrn=normalize_mrn(value)) if value.strip() else queryset

    def filter_identifier(self, queryset, name, value):
        return queryset.filter(identifier_q(value)) if value.strip() else queryset
