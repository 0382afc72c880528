import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
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

    def unmerged(self):
        """Without the records merged into another (they live on only to redirect)."""
        return self.filter(merged_into__isnull=True)


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
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.PROTECT,
        related_name="merged_from",
        verbose_name=_("merged into"),
    )
    merged_at = models.DateTimeField(_("merged"), null=True, blank=True, editable=False)

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
            # The API's and the list page's rows: listed patients in list order, with the
            # department, so that a page's keys and a count come from the index alone
            # (bench/README.md, api_load).
            models.Index(
                fields=["last_name", "first_name", "middle_name", "id", "department"],
                name="patient_listed_order",
                condition=models.Q(merged_into__isnull=True, deleted_at__isnull=True),
            ),
            models.Index(
                fields=["department"],
                name="patient_listed_department",
                condition=models.Q(merged_into__isnull=True, deleted_at__isnull=True),
            ),
        ]
        permissions = [
            ("restore_patient", _("Can restore a deleted patient")),
            ("merge_patient", _("Can merge and unmerge patients")),
        ]

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

    @property
    def is_merged(self) -> bool:
        return self.merged_into_id is not None

    @property
    def audit_patient_ids(self) -> list[int]:
        """This record and every record merged into it (at any depth): whose access log is
        this person's ("who accessed this record" follows merges)."""
        ids, frontier = {self.pk}, [self.pk]
        while frontier:
            merged = Patient.objects.filter(merged_into_id__in=frontier).values_list(
                "pk", flat=True
            )
            frontier = [pk for pk in merged if pk not in ids]
            ids.update(frontier)
        return sorted(ids)


# The identity fields whose every change is kept in the patient's history.
HISTORY_FIELDS = (
    "mrn",
    "last_name",
    "first_name",
    "middle_name",
    "birth_date",
    "sex",
    "identity_status",
)
NAME_FIELDS = ("last_name", "first_name", "middle_name")

# The fields whose value a merge takes from either record (the survivor keeps its MRN; the
# duplicate's MRN keeps resolving to the survivor).
MERGE_FIELDS = (
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


class PatientMerge(models.Model):
    """One merge of ``duplicate`` into ``survivor``: what moved, which values won, its undoing."""

    survivor = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="merges_in", verbose_name=_("survivor")
    )
    duplicate = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="merges_out", verbose_name=_("duplicate")
    )
    merged_at = models.DateTimeField(_("merged"), default=timezone.now)
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    merged_by_name = models.CharField(_("merged by"), max_length=150, blank=True)
    reason = models.TextField(_("reason"))
    # {field: "survivor" | "duplicate"} for every field in MERGE_FIELDS.
    choices = models.JSONField(_("field winners"), default=dict)
    # Survivor's values before and after, and the duplicate's, for the fields of MERGE_FIELDS.
    survivor_before = models.JSONField(default=dict)
    survivor_after = models.JSONField(default=dict)
    # {"app_label.model": [ids moved from the duplicate to the survivor]}.
    moved = models.JSONField(_("moved rows"), default=dict)
    unmerged_at = models.DateTimeField(_("unmerged"), null=True, blank=True)
    unmerged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    unmerged_by_name = models.CharField(_("unmerged by"), max_length=150, blank=True)
    unmerge_reason = models.TextField(_("unmerge reason"), blank=True)
    # What the unmerge could not put back as it was: rows gone or moved on, fields since edited.
    unmerge_report = models.JSONField(default=dict, blank=True)

    scope_path = "survivor__department"

    class Meta:
        ordering = ["-merged_at", "-id"]
        verbose_name = _("patient merge")
        verbose_name_plural = _("patient merges")
        constraints = [
            models.UniqueConstraint(
                fields=["duplicate"],
                condition=Q(unmerged_at__isnull=True),
                name="patient_merge_one_active_per_duplicate",
                violation_error_message=_("This patient has already been merged."),
            ),
            models.CheckConstraint(
                condition=~Q(survivor=F("duplicate")), name="patient_merge_two_patients"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.duplicate_id} -> {self.survivor_id}"

    @property
    def is_active(self) -> bool:
        return self.unmerged_at is None

    @property
    def moved_count(self) -> int:
        return sum(len(ids) for ids in self.moved.values())

    @property
    def audit_patient_id(self) -> int:
        return self.survivor_id


class PatientHistory(models.Model):
    """One change of one identity field (or one identifier), kept for ever and searchable."""

    class Event(models.TextChoices):
        CREATE = "create", _("registered")
        UPDATE = "update", _("changed")
        IDENTIFY = "identify", _("identified")
        MERGE = "merge", _("merged")
        UNMERGE = "unmerge", _("unmerged")

    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="history", verbose_name=_("patient")
    )
    time = models.DateTimeField(_("time"), default=timezone.now)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(_("by"), max_length=150, blank=True)
    event = models.CharField(_("event"), max_length=10, choices=Event.choices)
    field = models.CharField(_("field"), max_length=40, blank=True)
    before = models.TextField(_("before"), blank=True)
    after = models.TextField(_("after"), blank=True)
    # The normalised former value that search still finds the patient by: a former full name,
    # MRN or identifier value.
    former_key = models.CharField(max_length=320, blank=True, default="")
    reason = models.TextField(_("reason"), blank=True)
    merge = models.ForeignKey(
        PatientMerge, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    scope_path = "patient__department"

    class Meta:
        ordering = ["-time", "-id"]
        verbose_name = _("identity history entry")
        verbose_name_plural = _("identity history")
        indexes = [
            models.Index(fields=["patient", "time"], name="patient_history_time"),
            models.Index(fields=["field", "former_key"], name="patient_history_former"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} {self.field}: {self.before} -> {self.after}"

    def _display(self, value: str) -> str:
        choices = {"sex": Sex, "identity_status": IdentityStatus}.get(self.field)
        if choices and value in choices.values:
            return str(choices(value).label)
        return value

    @property
    def before_display(self) -> str:
        return self._display(self.before)

    @property
    def after_display(self) -> str:
        return self._display(self.after)

    @property
    def field_label(self) -> str:
        labels = {
            "identifier": _("identifier"),
            "merged_from": _("merged from"),
            "merged_into": _("merged into"),
            "unmerged_from": _("separated from"),
            "former_name": _("former name"),
        }
        if self.field in labels:
            return str(labels[self.field])
        try:
            return str(Patient._meta.get_field(self.field).verbose_name)
        except Exception:
            return self.field

    @property
    def audit_patient_id(self) -> int:
        return self.patient_id


class DuplicateCandidate(models.Model):
    """A pair of patients that may be one person; ``patient_a`` has the smaller id."""

    class Status(models.TextChoices):
        OPEN = "open", _("open")
        DISMISSED = "dismissed", _("dismissed: different people")
        MERGED = "merged", _("merged")

    patient_a = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    patient_b = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    score = models.FloatField(_("score"))
    name_score = models.FloatField(_("name similarity"), default=0)
    reasons = models.JSONField(_("reasons"), default=list)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.OPEN
    )
    found_at = models.DateTimeField(_("found"), default=timezone.now)
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision_reason = models.TextField(_("reason"), blank=True)

    scope_path = "patient_a__department"

    class Meta:
        ordering = ["-score", "id"]
        verbose_name = _("possible duplicate")
        verbose_name_plural = _("possible duplicates")
        constraints = [
            models.UniqueConstraint(
                fields=["patient_a", "patient_b"], name="duplicate_candidate_pair_unique"
            ),
            models.CheckConstraint(
                condition=Q(patient_a__lt=F("patient_b")), name="duplicate_candidate_ordered"
            ),
        ]
        indexes = [models.Index(fields=["status", "score"], name="duplicate_candidate_queue")]

    def __str__(self) -> str:
        return f"{self.patient_a_id} ~ {self.patient_b_id} ({self.score:.2f})"

    REASON_LABELS = {
        "name": _("similar names"),
        "birth_date": _("same birth date"),
        "birth_date_swapped": _("birth date with day and month swapped"),
        "identifier": _("shared identifier"),
    }

    @property
    def patients(self) -> tuple[Patient, Patient]:
        return self.patient_a, self.patient_b

    @property
    def reason_labels(self) -> list[str]:
        return [str(self.REASON_LABELS.get(r, r)) for r in self.reasons]

    @property
    def suggested_survivor(self) -> Patient:
        """The more certain record survives (verified over provisional over unknown), else the
        older one."""
        rank = {
            IdentityStatus.VERIFIED: 0,
            IdentityStatus.PROVISIONAL: 1,
            IdentityStatus.UNKNOWN: 2,
        }
        return min(self.patients, key=lambda p: (rank.get(p.identity_status, 3), p.pk))

    @property
    def suggested_duplicate(self) -> Patient:
        survivor = self.suggested_survivor
        return self.patient_b if survivor == self.patient_a else self.patient_a


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


class ListedPatientCount(models.Model):
    """How many listed patients (neither deleted nor merged away) a department holds: the
    unfiltered patient list's count without counting 100,000 index entries per request
    (``patients.selectors.patient_count``). PostgreSQL only: statement triggers on the patient
    table keep it (``patients/counting.py``), whatever writes the rows (the ORM, bulk inserts,
    ``queryset.update``, COPY, raw SQL). A department's count is spread over stripes (the
    writing connection's process id modulo ``STRIPES``) so that concurrent registrations and
    uploads in one department do not queue on one row; its count is the sum of its stripes."""

    department = models.ForeignKey(
        Department,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # the unique (department, stripe) index serves
        related_name="+",
    )
    stripe = models.SmallIntegerField()
    listed = models.BigIntegerField(default=0)

    scope_path = None  # bookkeeping, never shown

    class Meta:
        verbose_name = _("listed patient count")
        verbose_name_plural = _("listed patient counts")
        constraints = [
            models.UniqueConstraint(
                fields=["department", "stripe"], name="listed_patient_count_stripe"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.department_id}/{self.stripe}: {self.listed}"
