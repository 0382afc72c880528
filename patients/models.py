import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from accounts.models import Department
from patients.normalize import normalize_identifier, normalize_mrn, normalize_name
from patients.validators import VALIDATORS


class IdentityStatus(models.TextChoices):
    UNKNOWN = "unknown", _("unknown (temporary MRN only)")
    PROVISIONAL = "provisional", _("provisional (unverified foreign record)")
    VERIFIED = "verified", _("verified")


class Sex(models.TextChoices):
    # DICOM PatientSex values.
    FEMALE = "F", _("female")
    MALE = "M", _("male")
    OTHER = "O", _("other")
    UNKNOWN = "U", _("unknown")


class IdentifierType(models.Model):
    """A kind of patient identifier (SNILS, OMS policy, passport, a foreign hospital's ID)."""

    VALIDATOR_CHOICES = [
        ("none", _("any value")),
        ("snils", _("SNILS (11 digits with checksum)")),
        ("oms", _("OMS policy (16 digits)")),
        ("regex", _("regular expression")),
    ]

    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=100)
    validator = models.CharField(
        _("validator"), max_length=10, choices=VALIDATOR_CHOICES, default="none"
    )
    pattern = models.CharField(
        _("pattern"),
        max_length=200,
        blank=True,
        help_text=_("For the regular expression validator: the whole value must match."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    scope_path = None

    class Meta:
        ordering = ["name"]
        verbose_name = _("identifier type")
        verbose_name_plural = _("identifier types")

    def __str__(self) -> str:
        return self.name

    def clean(self):
        if self.validator == "regex":
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValidationError(
                    {"pattern": _("Invalid regular expression: %s") % exc}
                ) from None

    def validate_value(self, value: str) -> None:
        if self.validator == "regex":
            VALIDATORS["none"](value)
            if not re.fullmatch(self.pattern, value.strip()):
                raise ValidationError(
                    _("%(value)s is not a valid %(type)s.") % {"value": value, "type": self.name},
                    code="pattern",
                )
            return
        VALIDATORS[self.validator](value)


class PatientQuerySet(models.QuerySet):
    def alive(self):
        return self.filter(deleted_at__isnull=True)


class Patient(models.Model):
    mrn = models.CharField(
        _("MRN"), max_length=32, help_text=_("Medical record number, unique in the hospital.")
    )
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    middle_name = models.CharField(_("middle name"), max_length=100, blank=True)
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    sex = models.CharField(_("sex"), max_length=1, choices=Sex.choices, default=Sex.UNKNOWN)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    email = models.EmailField(_("email"), blank=True)
    address = models.CharField(_("address"), max_length=300, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    department = models.ForeignKey(
        Department,
        verbose_name=_("department"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="patients",
    )
    identity_status = models.CharField(
        _("identity status"),
        max_length=12,
        choices=IdentityStatus.choices,
        default=IdentityStatus.VERIFIED,
    )
    search_name = models.CharField(max_length=320, editable=False, default="")

    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    deleted_at = models.DateTimeField(_("deleted"), null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("deleted by"),
    )
    deletion_reason = models.TextField(_("deletion reason"), blank=True)

    objects = PatientQuerySet.as_manager()

    scope_path = "department"

    class Meta:
        ordering = ["last_name", "first_name", "middle_name", "id"]
        verbose_name = _("patient")
        verbose_name_plural = _("patients")
        constraints = [
            models.UniqueConstraint(
                fields=["mrn"],
                name="patient_mrn_unique",
                violation_error_message=_("A patient with this MRN already exists."),
            ),
        ]
        indexes = [
            models.Index(fields=["birth_date"], name="patient_birth_date"),
            models.Index(fields=["last_name", "first_name", "id"], name="patient_name_order"),
        ]
        permissions = [("restore_patient", _("Can restore a deleted patient"))]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.mrn})"

    def save(self, *args, **kwargs):
        self.mrn = normalize_mrn(self.mrn)
        self.search_name = normalize_name(
            " ".join((self.last_name, self.first_name, self.middle_name))
        )
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = set(update_fields) | {"search_name", "mrn"}
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("patients:detail", args=[self.pk])

    @property
    def full_name(self) -> str:
        name = " ".join(p for p in (self.last_name, self.first_name, self.middle_name) if p)
        return name or str(_("Unidentified patient"))

    @property
    def audit_patient_id(self) -> int:
        return self.pk

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


# The fields a person edits, in the order forms and the API show them; the services, the page's
# form, the admin and the API all take this one list.
PATIENT_EDITABLE_FIELDS = (
    "mrn",
    "last_name",
    "first_name",
    "middle_name",
    "birth_date",
    "sex",
    "identity_status",
    "department",
    "phone",
    "email",
    "address",
    "notes",
)


class PatientIdentifier(models.Model):
    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="identifiers", verbose_name=_("patient")
    )
    type = models.ForeignKey(
        IdentifierType, on_delete=models.PROTECT, related_name="+", verbose_name=_("type")
    )
    value = models.CharField(_("value"), max_length=64)

    scope_path = "patient__department"
    share_paths = ("patient",)  # shared and emergency-opened with its patient

    class Meta:
        ordering = ["type__name", "value"]
        verbose_name = _("patient identifier")
        verbose_name_plural = _("patient identifiers")
        constraints = [
            models.UniqueConstraint(
                fields=["type", "value"],
                name="patient_identifier_unique",
                violation_error_message=_("This identifier already belongs to another patient."),
            ),
        ]
        indexes = [models.Index(fields=["value"], name="patient_identifier_value")]

    def __str__(self) -> str:
        return f"{self.type}: {self.value}"

    def save(self, *args, **kwargs):
        self.value = normalize_identifier(self.value)
        super().save(*args, **kwargs)

    @property
    def audit_patient_id(self) -> int:
        return self.patient_id


# Explicit shares (a consultant given one patient): django-guardian's direct foreign-key tables,
# which restrict() reads to widen the department scope.
class PatientUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE)

    scope_path = None

    class Meta(UserObjectPermissionBase.Meta):
        verbose_name = _("patient shared with a user")
        verbose_name_plural = _("patients shared with users")


class PatientGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Patient, on_delete=models.CASCADE)

    scope_path = None

    class Meta(GroupObjectPermissionBase.Meta):
        verbose_name = _("patient shared with a group")
        verbose_name_plural = _("patients shared with groups")
