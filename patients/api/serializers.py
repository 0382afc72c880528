from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

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


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)
