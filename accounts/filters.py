"""One FilterSet for the audit page and ``/api/v1/audit-events/``."""

import django_filters
from django.utils.translation import gettext_lazy as _

from accounts.models import AuditEvent


class AuditEventFilter(django_filters.FilterSet):
    user = django_filters.CharFilter(field_name="username", label=_("User name"))
    user_id = django_filters.NumberFilter(field_name="user_id", label=_("User id"))
    patient = django_filters.NumberFilter(field_name="patient_id", label=_("Patient id"))
    action = django_filters.CharFilter(field_name="action", label=_("Action"))
    outcome = django_filters.ChoiceFilter(choices=AuditEvent.Outcome.choices, label=_("Outcome"))
    flagged = django_filters.BooleanFilter(field_name="flagged", label=_("Flagged"))
    since = django_filters.DateTimeFilter(
        field_name="time", lookup_expr="gte", label=_("From (date and time)")
    )
    until = django_filters.DateTimeFilter(
        field_name="time", lookup_expr="lt", label=_("Until (date and time)")
    )

    class Meta:
        model = AuditEvent
        fields = []
