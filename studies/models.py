"""The imaging record: Study → Series → Instance as in DICOM, and images derived from them."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Department
from patients.models import Patient


class Category(models.TextChoices):
    CHEST_XRAY = "chest_xray", _("Chest X-ray")
    SPINE_XRAY = "spine_xray", _("Spine X-ray")
    CEPH_XRAY = "ceph_xray", _("Cephalometric X-ray (TRG)")
    CT = "ct", _("CT")
    MR = "mr", _("MR")
    US = "us", _("Ultrasound")
    DOCUMENT = "document", _("Document")
    OTHER = "other", _("Other")


class Urgency(models.TextChoices):
    ROUTINE = "routine", _("Routine")
    URGENT = "urgent", _("Urgent")
    STAT = "stat", _("STAT")


URGENCY_RANK = {Urgency.STAT: 0, Urgency.URGENT: 1, Urgency.ROUTINE: 2}


class ReadingStatus(models.TextChoices):
    """Where the radiologists' reading of a study stands (the reporting issue drives it)."""

    UNREAD = "unread", _("Unread")
    IN_PROGRESS = "in_progress", _("In progress")
    PRELIMINARY = "preliminary", _("Preliminary")
    FINAL = "final", _("Final")
    AMENDED = "amended", _("Amended")


class FindingCode(models.Model):
    """The managed list of pathologies: report finding codes, annotation labels and the labels of
    AI findings all name one of these by ``code``. Administrators add and retire codes; a code is
    never deleted once used (retire it with ``active=False``)."""

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name_en = models.CharField(_("name (English)"), max_length=120)
    name_ru = models.CharField(_("name (Russian)"), max_length=120)
    description = models.TextField(_("description"), blank=True)
    categories = models.JSONField(
        _("study categories"),
        default=list,
        blank=True,
        help_text=_("Study categories the code is offered for; empty means all."),
    )
    active = models.BooleanField(_("active"), default=True)
    sort_order = models.PositiveSmallIntegerField(_("order"), default=100)

    scope_path = None  # reference data: the permission decides, not a department

    class Meta:
        ordering = ["sort_order", "code"]
        verbose_name = _("finding code")
        verbose_name_plural = _("finding codes")

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        """The name in the active language (Russian or English)."""
        from django.utils.translation import get_language

        return self.name_ru if (get_language() or "").startswith("ru") else self.name_en

    @staticmethod
    def code_for_label(label: str) -> str:
        """The code naming a model's label: ``Pleural_Thickening`` → ``pleural-thickening``."""
        from django.utils.text import slugify

        return slugify(label.replace("_", " "))

    @classmethod
    def offered_for(cls, category: str):
        """Active codes offered for a study category (codes without categories apply to all)."""
        return [
            c
            for c in cls.objects.filter(active=True)
            if not c.categories or category in c.categories
        ]


class Study(models.Model):
    study_uid = models.CharField(_("Study Instance UID"), max_length=64)
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="studies", verbose_name=_("patient")
    )
    department = models.ForeignKey(
        Department,
        on_delete=models.PROTECT,
        related_name="studies",
        verbose_name=_("performing department"),
    )
    accession_number = models.CharField(_("accession number"), max_length=64, blank=True)
    study_datetime = models.DateTimeField(_("study date and time"), null=True, blank=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    modalities = models.CharField(_("modalities"), max_length=64, blank=True)
    category = models.CharField(
        _("category"), max_length=16, choices=Category.choices, default=Category.OTHER
    )
    body_part = models.CharField(_("body part"), max_length=64, blank=True)
    view_position = models.CharField(_("view position"), max_length=16, blank=True)
    institution = models.CharField(_("source institution"), max_length=200, blank=True)
    referring_physician = models.CharField(_("referring physician"), max_length=200, blank=True)
    clinical_question = models.TextField(_("clinical question"), blank=True)
    urgency = models.CharField(
        _("urgency"), max_length=8, choices=Urgency.choices, default=Urgency.ROUTINE
    )
    warnings = models.JSONField(_("warnings"), default=list, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    images_removed_at = models.DateTimeField(_("images removed"), null=True, blank=True)
    images_removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    images_removed_reason = models.TextField(_("reason for removing images"), blank=True)
    reading_status = models.CharField(
        _("reading status"),
        max_length=12,
        choices=ReadingStatus.choices,
        default=ReadingStatus.UNREAD,
        db_index=True,
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("claimed by"),
    )
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    ai_priority = models.PositiveSmallIntegerField(
        _("AI priority"),
        default=0,
        help_text=_(
            "Raised by positive AI findings; orders studies within the same clinical urgency "
            "and never lowers it."
        ),
    )

    # Visible to the performing department and to the patient's department.
    scope_paths = ("department", "patient__department")
    scope_path = "department"
    share_paths = ("", "patient")  # a patient's share or emergency grant opens their studies

    class Meta:
        ordering = ["-study_datetime", "-id"]
        verbose_name = _("study")
        verbose_name_plural = _("studies")
        permissions = [
            ("remove_images", _("Can remove the image files of a study, keeping the record")),
            ("export_study", _("Can export studies as a ZIP with a DICOMDIR")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["study_uid"],
                name="study_uid_unique",
                violation_error_message=_("A study with this Study Instance UID already exists."),
            )
        ]
        indexes = [
            models.Index(fields=["patient", "-study_datetime"], name="study_patient_date"),
            models.Index(fields=["department", "-created_at"], name="study_department_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_category_display()} {self.study_datetime or ''} ({self.patient_id})"

    @property
    def audit_patient_id(self) -> int:
        return self.patient_id


class Series(models.Model):
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="series")
    series_uid = models.CharField(_("Series Instance UID"), max_length=64)
    modality = models.CharField(_("modality"), max_length=16, blank=True)
    number = models.IntegerField(_("series number"), null=True, blank=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    body_part = models.CharField(_("body part"), max_length=64, blank=True)

    scope_paths = ("study__department", "study__patient__department")
    scope_path = "study__department"
    share_paths = ("study", "study__patient")

    class Meta:
        ordering = ["number", "id"]
        verbose_name = _("series")
        verbose_name_plural = _("series")
        constraints = [
            models.UniqueConstraint(fields=["series_uid"], name="series_uid_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.modality} {self.number or ''} {self.description}".strip()

    @property
    def audit_patient_id(self) -> int:
        return self.study.patient_id


def instance_path(instance: Instance, filename: str) -> str:
    """UID-based storage path: ``dicom/<study>/<series>/<sop>.dcm``."""
    series = instance.series
    return f"dicom/{series.study.study_uid}/{series.series_uid}/{instance.sop_instance_uid}.dcm"


class Instance(models.Model):
    series = models.ForeignKey(Series, on_delete=models.PROTECT, related_name="instances")
    sop_instance_uid = models.CharField(_("SOP Instance UID"), max_length=64)
    sop_class_uid = models.CharField(_("SOP Class UID"), max_length=64)
    sop_class_name = models.CharField(_("SOP class"), max_length=120, blank=True)
    number = models.IntegerField(_("instance number"), null=True, blank=True)
    document_kind = models.CharField(
        _("document kind"),
        max_length=32,
        blank=True,
        help_text=_("Empty for images; the kind of a non-image object (report, PDF…)."),
    )
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    frames = models.PositiveIntegerField(default=1)
    transfer_syntax = models.CharField(_("transfer syntax"), max_length=64, blank=True)
    source_format = models.CharField(_("uploaded as"), max_length=8, default="dicom")
    file = models.FileField(_("file"), upload_to=instance_path, max_length=300, blank=True)
    size = models.BigIntegerField(_("size in bytes"), default=0)
    sha256 = models.CharField(max_length=64)
    # Where an uncompressed grey image's frames lie in the stored file and what the viewer needs
    # to show them (studies.dicom.native), found once at import so that a signed frame URL reads
    # no header; empty for other images and for images imported before it was kept.
    pixel_layout = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("imported"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    scope_paths = ("series__study__department", "series__study__patient__department")
    scope_path = "series__study__department"
    share_paths = ("series__study", "series__study__patient")

    class Meta:
        ordering = ["number", "id"]
        verbose_name = _("instance")
        verbose_name_plural = _("instances")
        constraints = [
            models.UniqueConstraint(
                fields=["sop_instance_uid"],
                name="instance_sop_uid_unique",
                violation_error_message=_("An instance with this SOP Instance UID exists."),
            ),
        ]

    def __str__(self) -> str:
        return self.sop_instance_uid

    @property
    def is_image(self) -> bool:
        return not self.document_kind

    @property
    def audit_patient_id(self) -> int:
        return self.series.study.patient_id


def derived_path(derived: DerivedImage, filename: str) -> str:
    instance = derived.instance
    return f"derived/{instance.sop_instance_uid}/{derived.kind}-{derived.frame}-{filename}"


class DerivedImage(models.Model):
    """An image made from an instance: a thumbnail now, an AI heatmap later; one mechanism."""

    class Kind(models.TextChoices):
        THUMBNAIL = "thumbnail", _("Thumbnail")
        HEATMAP = "heatmap", _("Heatmap")

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="derived")
    frame = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    source = models.CharField(
        _("made by"), max_length=120, help_text=_("'render', or a model name@version.")
    )
    label = models.CharField(max_length=120, blank=True)
    file = models.FileField(upload_to=derived_path, max_length=300)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    scope_paths = (
        "instance__series__study__department",
        "instance__series__study__patient__department",
    )
    scope_path = "instance__series__study__department"
    share_paths = ("instance__series__study", "instance__series__study__patient")

    class Meta:
        ordering = ["instance", "frame", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "frame", "kind", "source", "label"],
                name="derived_image_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.instance_id} frame {self.frame}"


class Annotation(models.Model):
    """A region drawn on one frame of an instance: a rectangle (rotatable about its centre) or an
    ellipse, in image pixels, labelled from the managed pathology list. Authors change and delete
    their own; everyone who may see the study sees them. It hangs off the instance, so a patient
    merge moves it with the study (no patient key of its own that could disagree)."""

    class Shape(models.TextChoices):
        RECT = "rect", _("Rectangle")
        ELLIPSE = "ellipse", _("Ellipse")

    instance = models.ForeignKey(
        Instance, on_delete=models.CASCADE, related_name="annotations", verbose_name=_("instance")
    )
    frame = models.PositiveIntegerField(_("frame"), default=0)
    shape = models.CharField(_("shape"), max_length=8, choices=Shape.choices)
    # Centre, size and rotation in image pixels (columns, rows) of the full-resolution frame.
    x = models.FloatField(_("centre x"))
    y = models.FloatField(_("centre y"))
    width = models.FloatField(_("width"))
    height = models.FloatField(_("height"))
    angle = models.FloatField(_("angle in degrees"), default=0.0)
    label = models.ForeignKey(
        FindingCode, on_delete=models.PROTECT, related_name="+", verbose_name=_("label")
    )
    comment = models.TextField(_("comment"), blank=True, max_length=2000)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("author"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    scope_paths = (
        "instance__series__study__department",
        "instance__series__study__patient__department",
    )
    scope_path = "instance__series__study__department"
    share_paths = ("instance__series__study", "instance__series__study__patient")

    class Meta:
        ordering = ["instance", "frame", "id"]
        verbose_name = _("annotation")
        verbose_name_plural = _("annotations")
        indexes = [models.Index(fields=["instance", "frame"], name="annotation_instance_frame")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(width__gt=0) & models.Q(height__gt=0),
                name="annotation_positive_size",
                violation_error_message=_("An annotation needs a positive width and height."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.shape} {self.label_id} on {self.instance_id}/{self.frame}"

    @property
    def audit_patient_id(self) -> int:
        return self.instance.series.study.patient_id


# --- Reading and reporting -------------------------------------------------------------------


class ReportTemplate(models.Model):
    """A starting text for the reports of one study category, edited by administrators."""

    category = models.CharField(_("category"), max_length=16, choices=Category.choices)
    name = models.CharField(_("name"), max_length=120)
    conclusion = models.TextField(_("conclusion text"))
    active = models.BooleanField(_("active"), default=True)

    scope_path = None  # reference data: the permission decides

    class Meta:
        ordering = ["category", "name"]
        verbose_name = _("report template")
        verbose_name_plural = _("report templates")
        constraints = [
            models.UniqueConstraint(
                fields=["category", "name"],
                name="report_template_unique",
                violation_error_message=_("A template with this name exists for the category."),
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_category_display()}: {self.name}"


class SignedReportError(Exception):
    """A signed report was about to change: signed reports are immutable (amend instead)."""


class ReportQuerySet(models.QuerySet):
    def update(self, **kwargs):
        if self.filter(status=Report.Status.SIGNED).exists():
            raise SignedReportError("A signed report cannot be changed; amend it instead.")
        return super().update(**kwargs)

    def delete(self):
        if self.filter(status=Report.Status.SIGNED).exists():
            raise SignedReportError("A signed report cannot be deleted.")
        return super().delete()


class Report(models.Model):
    """One version of a study's report. Version 1 is the first reading; an amendment is a new
    version (``amends`` the signed one before it). A signed version never changes: the model,
    its queryset and (on PostgreSQL) a trigger refuse it. Reports hang off the study, so they
    stay when its images are removed and move with it when patients are merged."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SIGNED = "signed", _("Signed")

    study = models.ForeignKey(
        Study, on_delete=models.PROTECT, related_name="reports", verbose_name=_("study")
    )
    version = models.PositiveIntegerField(_("version"), default=1)
    status = models.CharField(
        _("status"), max_length=8, choices=Status.choices, default=Status.DRAFT
    )
    preliminary = models.BooleanField(
        _("preliminary"), default=False, help_text=_("Signed as a preliminary reading.")
    )
    conclusion = models.TextField(_("conclusion"), blank=True)
    finding_codes = models.ManyToManyField(
        FindingCode, blank=True, related_name="reports", verbose_name=_("findings")
    )
    amends = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="amendments",
        verbose_name=_("amends version"),
    )
    amendment_reason = models.TextField(_("reason for the amendment"), blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("author"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("saved"), auto_now=True)
    signed_at = models.DateTimeField(_("signed"), null=True, blank=True)
    # PostgreSQL keeps it (a trigger, migration 0006): the conclusion in the Russian and English
    # text-search configurations, GIN-indexed. Always empty on SQLite.
    search_vector = SearchVectorField(null=True, editable=False)

    objects = ReportQuerySet.as_manager()

    scope_paths = ("study__department", "study__patient__department")
    scope_path = "study__department"
    share_paths = ("study", "study__patient")

    class Meta:
        ordering = ["study", "-version"]
        verbose_name = _("report")
        verbose_name_plural = _("reports")
        permissions = [
            ("sign_report", _("Can sign reports")),
            ("claim_study", _("Can claim studies for reading")),
            ("release_any_claim", _("Can release another reader's claim on a study")),
            ("view_turnaround", _("Can view reading turnaround statistics")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "version"],
                name="report_study_version_unique",
                violation_error_message=_("This version of the report exists already."),
            ),
            models.UniqueConstraint(
                fields=["study"],
                condition=models.Q(status="draft"),
                name="report_one_draft_per_study",
                violation_error_message=_("The study already has a draft report."),
            ),
            models.CheckConstraint(
                condition=models.Q(status="draft") | models.Q(signed_at__isnull=False),
                name="report_signed_has_time",
            ),
        ]
        indexes = [models.Index(fields=["status", "signed_at"], name="report_status_signed")]

    def __str__(self) -> str:
        return f"{self.study} v{self.version} ({self.get_status_display()})"

    def save(self, *args, **kwargs):
        if (
            self.pk is not None
            and type(self)._base_manager.filter(pk=self.pk, status=self.Status.SIGNED).exists()
        ):
            raise SignedReportError("A signed report cannot be changed; amend it instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if (
            self.pk is not None
            and type(self)._base_manager.filter(pk=self.pk, status=self.Status.SIGNED).exists()
        ):
            raise SignedReportError("A signed report cannot be deleted.")
        return super().delete(*args, **kwargs)

    @property
    def audit_patient_id(self) -> int:
        return self.study.patient_id

    @property
    def is_signed(self) -> bool:
        return self.status == self.Status.SIGNED
