from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Department(models.Model):
    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=200)
    is_active = models.BooleanField(_("active"), default=True)

    scope_path = None  # reference data: the permission decides, not a department

    class Meta:
        ordering = ["name"]
        verbose_name = _("department")
        verbose_name_plural = _("departments")

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """The project's user from the first migration; departments decide scope (accounts issue)."""

    middle_name = models.CharField(_("middle name"), max_length=150, blank=True)
    departments = models.ManyToManyField(
        Department, blank=True, related_name="members", verbose_name=_("departments")
    )
    must_change_password = models.BooleanField(
        _("must change password"),
        default=False,
        help_text=_("Set by an administrator: the user must choose a new password to go on."),
    )
    is_service_account = models.BooleanField(
        _("service account"),
        default=False,
        help_text=_(
            "An integration (a modality gateway, a hospital information system): it signs in "
            "only with API tokens, never with a password, and holds exactly the roles, "
            "permissions and departments it is given."
        ),
    )

    scope_path = None  # administrators manage every user; no department filter

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        permissions = [
            ("share_record", _("Can share a patient record with a user")),
            ("emergency_access", _("Can open a record by emergency access (break-glass)")),
            ("review_emergency_access", _("Can review emergency accesses")),
        ]

    @property
    def display_name(self) -> str:
        full = " ".join(p for p in (self.last_name, self.first_name, self.middle_name) if p)
        return full or self.username


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("Audit events are append-only and cannot be changed.")

    def delete(self):
        raise PermissionError("Audit events are append-only and cannot be deleted.")

    def _raw_delete(self, using):
        raise PermissionError("Audit events are append-only and cannot be deleted.")


class AuditEvent(models.Model):
    """One append-only audit row. Plain ids and labels only: no foreign keys, so that deleting
    or merging anything never rewrites or cascades into the record of what happened."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", _("success")
        DENIED = "denied", _("denied")
        FAILED = "failed", _("failed")

    time = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    user_id = models.BigIntegerField(_("user id"), null=True, blank=True)
    username = models.CharField(_("username"), max_length=150, blank=True)
    action = models.CharField(_("action"), max_length=40)
    object_type = models.CharField(_("object type"), max_length=100, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    patient_id = models.BigIntegerField(_("patient id"), null=True, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=512, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=10, choices=Outcome.choices, default=Outcome.SUCCESS
    )
    reason = models.TextField(_("reason"), blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    flagged = models.BooleanField(
        _("flagged for review"), default=False, help_text=_("Emergency (break-glass) access.")
    )
    # On PostgreSQL the table also has a ``txid xid8`` column (set by the database, see
    # migration 0003): the sealing task orders and selects rows by the writing transaction.

    objects = AuditEventQuerySet.as_manager()

    scope_path = None  # administrators only; never filtered by department

    class Meta:
        ordering = ["-time", "-id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [
            models.Index(fields=["patient_id", "time"], name="audit_patient_time"),
            models.Index(fields=["user_id", "time"], name="audit_user_time"),
            # Also serves look-ups by (object_type, object_id): one index less to maintain on
            # every insert.
            models.Index(
                fields=["object_id", "object_type", "user_id", "action", "time"],
                name="audit_viewing_window",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.username} {self.action} {self.object_type}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Audit events are append-only and cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only and cannot be deleted.")


class AuditSeal(models.Model):
    """One link of the hash chain over the audit: ``hash = sha256(previous hash + event)``.

    Written only by the sealing task (``accounts.sealing``), in a stable commit order; like the
    events, seals are never updated or deleted (a trigger enforces it on PostgreSQL).
    """

    seq = models.BigIntegerField(_("sequence"), unique=True)
    event_id = models.BigIntegerField(_("event id"), unique=True)
    event_txid = models.BigIntegerField(_("event transaction id"), null=True, blank=True)
    hash = models.CharField(_("hash"), max_length=64)
    sealed_at = models.DateTimeField(_("sealed at"), default=timezone.now)

    scope_path = None

    class Meta:
        ordering = ["seq"]
        verbose_name = _("audit seal")
        verbose_name_plural = _("audit seals")

    def __str__(self) -> str:
        return f"#{self.seq} event {self.event_id}"


class EmergencyAccess(models.Model):
    """A break-glass grant: one user, one object (plain ids, like the audit), until it expires."""

    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="emergency_accesses", verbose_name=_("user")
    )
    object_type = models.CharField(_("object type"), max_length=100)
    object_id = models.BigIntegerField(_("object id"))
    patient_id = models.BigIntegerField(_("patient id"), null=True, blank=True)
    reason = models.TextField(_("reason"))
    created_at = models.DateTimeField(_("granted"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    audit_event_id = models.BigIntegerField(_("audit event id"), null=True, blank=True)
    reviewed_at = models.DateTimeField(_("reviewed"), null=True, blank=True)
    reviewed_by = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("reviewed by"),
    )
    review_note = models.TextField(_("review note"), blank=True)

    scope_path = None  # reviewers (administrators) only

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("emergency access")
        verbose_name_plural = _("emergency accesses")
        indexes = [
            models.Index(fields=["user", "object_type", "expires_at"], name="emergency_user_object")
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.object_type} {self.object_id}"

    @property
    def is_active(self) -> bool:
        return self.expires_at > timezone.now()


def _time_zone_choices():
    import zoneinfo

    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


def _language_choices():
    from django.conf import settings

    return list(settings.LANGUAGES)


class HospitalSettings(models.Model):
    """The institution as printed on reports: one row, edited by administrators."""

    name = models.CharField(_("institution name"), max_length=200, blank=True)
    logo = models.ImageField(_("logo"), upload_to="hospital/", blank=True)
    address = models.TextField(_("address"), blank=True)
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="Europe/Moscow", choices=_time_zone_choices
    )
    default_language = models.CharField(
        _("default language"), max_length=8, default="ru", choices=_language_choices
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    scope_path = None  # reference data: the permission decides

    class Meta:
        verbose_name = _("hospital settings")
        verbose_name_plural = _("hospital settings")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(pk=1),
                name="hospital_settings_singleton",
                violation_error_message=_("There is only one set of hospital settings."),
            )
        ]

    def __str__(self) -> str:
        return self.name or str(_("Hospital settings"))

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> "HospitalSettings":
        obj, _created = cls.objects.get_or_create(pk=1)
        return obj


class ApiToken(models.Model):
    """An API token. Only the SHA-256 of the key is stored: the key is shown once, when the
    token is made, and cannot be read back from the database (``accounts.tokens``)."""

    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("user")
    )
    name = models.CharField(
        _("name"), max_length=100, help_text=_("What the token is for, e.g. the PACS gateway.")
    )
    prefix = models.CharField(
        _("prefix"), max_length=12, help_text=_("The key's first characters, to recognise it.")
    )
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    created_by_name = models.CharField(_("created by"), max_length=150, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)

    scope_path = None  # a user's own tokens, or administrators (accounts.tokens decides)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class IdempotencyKey(models.Model):
    """One ``Idempotency-Key`` a user sent, with the request's fingerprint and, once the request
    finished, its response: a retry with the same key replays it (``accounts.idempotency``)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)

    scope_path = None

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "key"],
                name="idempotency_key_unique_per_user",
                violation_error_message=_("This idempotency key was already used."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.key}"
