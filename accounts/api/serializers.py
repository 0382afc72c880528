from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import AuditEvent, Department, User
from accounts.roles import ROLES


class DepartmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Department
        fields = ["id", "code", "name", "is_active"]


class UserSerializer(serializers.ModelSerializer):
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=ROLES),
        required=False,
        help_text=_("Role names (Django groups) the user holds; replaces the current roles."),
    )
    departments = serializers.SlugRelatedField(
        slug_field="code", many=True, queryset=Department.objects.all(), required=False
    )
    password = serializers.CharField(
        write_only=True,
        required=False,
        style={"input_type": "password"},
        help_text=_("A new password; checked by the password validators."),
    )

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "first_name",
            "last_name",
            "middle_name",
            "email",
            "is_active",
            "is_staff",
            "must_change_password",
            "roles",
            "departments",
            "password",
            "last_login",
            "date_joined",
        ]
        read_only_fields = ["id", "last_login", "date_joined"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["roles"] = sorted(g.name for g in instance.groups.all())
        return data

    def validate(self, attrs):
        password = attrs.get("password")
        if password:
            candidate = self.instance or User(
                username=attrs.get("username", ""), email=attrs.get("email", "")
            )
            try:
                validate_password(password, candidate)
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"password": exc.messages}) from None
        return attrs

    def _apply(self, user, roles, departments, password):
        if password:
            user.set_password(password)
            user.save(update_fields=["password"])
        if roles is not None:
            user.groups.set(Group.objects.filter(name__in=roles))
        if departments is not None:
            user.departments.set(departments)

    def create(self, validated_data):
        roles = validated_data.pop("roles", None)
        departments = validated_data.pop("departments", None)
        password = validated_data.pop("password", None)
        user = User(**validated_data)
        user.set_unusable_password()
        user.save()
        self._apply(user, roles, departments, password)
        return user

    def update(self, instance, validated_data):
        roles = validated_data.pop("roles", None)
        departments = validated_data.pop("departments", None)
        password = validated_data.pop("password", None)
        for field, value in validated_data.items():
            setattr(instance, field, value)
        instance.save()
        self._apply(instance, roles, departments, password)
        return instance


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "time",
            "user_id",
            "username",
            "action",
            "object_type",
            "object_id",
            "patient_id",
            "ip",
            "user_agent",
            "outcome",
            "flagged",
            "reason",
            "details",
        ]
        read_only_fields = fields


class ShareSerializer(serializers.Serializer):
    object_type = serializers.CharField(help_text=_('The shared model, e.g. "patients.patient".'))
    object_id = serializers.IntegerField()
    user = serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.filter(is_active=True)
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=1000)
