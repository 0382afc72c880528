from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Manager
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from accounts.models import Department
from mis.api import CachedFieldsMixin
from patients.models import PATIENT_EDITABLE_FIELDS, IdentifierType, Patient, PatientIdentifier


class IdentifierListSerializer(serializers.ListSerializer):
    """A patient's identifiers, from ``prefetched_identifiers`` when the list prefetched them
    into a plain list (``patients.selectors.patient_page``): no queryset made per patient."""

    def get_attribute(self, instance):
        prefetched = getattr(instance, "prefetched_identifiers", None)
        return prefetched if prefetched is not None else super().get_attribute(instance)


class IdentifierSerializer(CachedFieldsMixin, serializers.ModelSerializer):
    type = serializers.SlugRelatedField(
        slug_field="code", queryset=IdentifierType.objects.filter(is_active=True)
    )
    type_name = serializers.CharField(source="type.name", read_only=True)

    class Meta:
        model = PatientIdentifier
        fields = ["type", "type_name", "value"]
        list_serializer_class = IdentifierListSerializer
        validators = []  # uniqueness is decided by the service, with a readable message

    def validate(self, attrs):
        try:
            attrs["type"].validate_value(attrs["value"])
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"value": exc.messages}) from None
        return attrs


class PatientListSerializer(serializers.ListSerializer):
    """Many patients (a list page): each row by ``PatientSerializer.row``, the same dict as
    DRF's field-by-field ``to_representation`` (``test_api.py`` compares them) in about a tenth
    of the time: a page of 50 cost ~10 ms of CPU the generic way, a quarter of the request."""

    def to_representation(self, data):
        rows = data.all() if isinstance(data, Manager) else data
        readable = [name for name, field in self.child.fields.items() if not field.write_only]
        if type(self.child).row is not PatientSerializer.row or (
            readable != PatientSerializer.ROW_FIELDS
        ):
            return super().to_representation(rows)  # a subclass with other fields
        row, datetime = self.child.row, _datetime_representation(self.child.fields["created_at"])
        return [row(patient, datetime) for patient in rows]


def _datetime_representation(field: serializers.DateTimeField):
    """``field.to_representation`` with the time zone looked up once, not once per value."""
    if (
        not settings.USE_TZ
        or getattr(field, "format", api_settings.DATETIME_FORMAT).lower() != ISO_8601
        or getattr(field, "timezone", None) is not None
    ):
        return field.to_representation
    zone = timezone.get_current_timezone()

    def representation(value):
        if not value:
            return None
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return representation


class PatientSerializer(CachedFieldsMixin, serializers.ModelSerializer):
    identifiers = IdentifierSerializer(many=True, required=False)
    department = serializers.SlugRelatedField(
        slug_field="code", queryset=Department.objects.all(), required=False, allow_null=True
    )
    full_name = serializers.CharField(read_only=True)
    is_deleted = serializers.BooleanField(read_only=True)
    confirm_duplicate = serializers.BooleanField(
        write_only=True,
        required=False,
        default=False,
        help_text=_(
            "Register even though a patient with the same name and birth date exists "
            "(otherwise such a request is answered 409 with the candidates)."
        ),
    )
    mrn = serializers.CharField(
        max_length=32,
        required=False,
        allow_blank=True,
        help_text=_("Leave empty to generate one."),
    )

    class Meta:
        model = Patient
        fields = [
            "id",
            "full_name",
            *PATIENT_EDITABLE_FIELDS,
            "identifiers",
            "confirm_duplicate",
            "is_deleted",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        list_serializer_class = PatientListSerializer

    # The readable fields, in order, that ``row`` writes (``confirm_duplicate`` is write-only).
    ROW_FIELDS = [name for name in Meta.fields if name != "confirm_duplicate"]

    def row(self, patient: Patient, datetime=None) -> dict:
        """``to_representation(patient)`` written out for the fields above."""
        department = patient.department if patient.department_id is not None else None
        shown = getattr(patient, "identifier_rows", None)  # as the API shows them (PostgreSQL)
        identifiers = getattr(patient, "prefetched_identifiers", None)
        if identifiers is None and shown is None:
            identifiers = patient.identifiers.all()
        datetime = datetime or self.fields["created_at"].to_representation
        birth_date = patient.birth_date
        return {
            "id": patient.pk,
            "full_name": patient.full_name,
            "mrn": patient.mrn,
            "last_name": patient.last_name,
            "first_name": patient.first_name,
            "middle_name": patient.middle_name,
            "birth_date": birth_date.isoformat() if birth_date is not None else None,
            "sex": patient.sex,
            "identity_status": patient.identity_status,
            "department": department.code if department is not None else None,
            "phone": patient.phone,
            "email": patient.email,
            "address": patient.address,
            "notes": patient.notes,
            "identifiers": shown
            if shown is not None
            else [
                {"type": i.type.code, "type_name": i.type.name, "value": i.value}
                for i in identifiers
            ],
            "is_deleted": patient.deleted_at is not None,
            "created_at": datetime(patient.created_at),
            "updated_at": datetime(patient.updated_at),
        }


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)
