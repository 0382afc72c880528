from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import ApiToken, AuditEvent, Department, User
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
    permissions = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text=_(
            'Permissions given to this user beyond their roles, as "app_label.codename" '
            '(e.g. "studies.add_study" for an upload-only service account); replaces the '
            "current ones."
        ),
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
            "is_service_account",
            "roles",
            "permissions",
            "departments",
            "password",
            "last_login",
            "date_joined",
        ]
        read_only_fields = ["id", "last_login", "date_joined"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["roles"] = sorted(g.name for g in instance.groups.all())
        data["permissions"] = sorted(
            f"{p.content_type.app_label}.{p.codename}" for p in instance.user_permissions.all()
        )
        return data

    def validate_permissions(self, value):
        found = {}
        for perm in value:
            app_label, _dot, codename = perm.partition(".")
            match = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if match is None:
                raise serializers.ValidationError(
                    _("No such permission: %(perm)s.") % {"perm": perm}
                )
            found[perm] = match
        return list(found.values())

    def validate(self, attrs):
        password = attrs.get("password")
        service = attrs.get(
            "is_service_account", getattr(self.instance, "is_service_account", False)
        )
        if service and password:
            raise serializers.ValidationError(
                {"password": [_("A service account has no password; give it an API token.")]}
            )
        if password:
            candidate = self.instance or User(
                username=attrs.get("username", ""), email=attrs.get("email", "")
            )
            try:
                validate_password(password, candidate)
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"password": exc.messages}) from None
        return attrs

    def _apply(self, user, roles, departments, password, permissions=None):
        if permissions is not None:
            user.user_permissions.set(permissions)
        if user.is_service_account and user.has_usable_password():
            user.set_unusable_password()
            user.save(update_fields=["password"])
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
        permissions = validated_data.pop("permissions", None)
        user = User(**validated_data)
        user.set_unusable_password()
        user.save()
        self._apply(user, roles, departments, password, permissions)
        return user

    def update(self, instance, validated_data):
        roles = validated_data.pop("roles", None)
        departments = validated_data.pop("departments", None)
        password = validated_data.pop("password", None)
        permissions = validated_data.pop("permissions", None)
        for field, value in validated_data.items():
            setattr(instance, field, value)
        instance.save()
        self._apply(instance, roles, departments, password, permissions)
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


class ApiTokenSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(
        slug_field="username",
        queryset=User.objects.filter(is_active=True),
        required=False,
        help_text=_("Whose token (administrators only; default: yourself)."),
    )
    key = serializers.SerializerMethodField(
        help_text=_("The key: only in the answer to the creation, never again.")
    )

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "user",
            "prefix",
            "key",
            "created_at",
            "created_by_name",
            "last_used_at",
            "expires_at",
        ]
        read_only_fields = ["id", "prefix", "created_at", "created_by_name", "last_used_at"]

    def get_key(self, obj) -> str | None:
        return self.context.get("key")

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError(_("Give an expiry in the future, or none."))
        return value


class RoleSerializer(serializers.ModelSerializer):
    permissions = serializers.SerializerMethodField(
        help_text=_('The permissions the role gives, as "app_label.codename".')
    )

    class Meta:
        model = Group
        fields = ["id", "name", "permissions"]

    def get_permissions(self, group) -> list[str]:
        return sorted(f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all())
