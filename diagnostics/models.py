"""The model registry, analysis runs, their findings and the radiologists' feedback."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from studies.models import DerivedImage, Instance

STUDY = "instance__series__study"


class AIModel(models.Model):
    """One model version found in ``ml_weights/<name>/<version>/`` (synchronised by
    :func:`diagnostics.registry.registry_sync`); the card is kept as loaded."""

    class State(models.TextChoices):
        AVAILABLE = "available", _("Available")
        UNAVAILABLE = "unavailable", _("Unavailable: no weights installed")
        INVALID = "invalid", _("Invalid")

    name = models.SlugField(_("name"), max_length=64)
    version = models.CharField(_("version"), max_length=32)
    title = models.CharField(_("title"), max_length=200, blank=True)
    card = models.JSONField(_("model card"), default=dict)
    folder = models.CharField(_("folder"), max_length=500)
    weights_sha256 = models.CharField(_("weights sha256"), max_length=64, blank=True)
    state = models.CharField(
        _("state"), max_length=12, choices=State.choices, default=State.UNAVAILABLE
    )
    problem = models.TextField(_("problem"), blank=True)
    active = models.BooleanField(
        _("active"), default=False, help_text=_("Active models analyse new images.")
    )
    synced_at = models.DateTimeField(_("checked"), null=True, blank=True)
    created_at = models.DateTimeField(_("registered"), auto_now_add=True)

    scope_path = None  # reference data: the permission decides

    class Meta:
        ordering = ["name", "-version"]
        verbose_name = _("AI model")
        verbose_name_plural = _("AI models")
        permissions = [("predict", _("Can run a model on an uploaded image (predict API)"))]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "version"],
                name="aimodel_name_version_unique",
                violation_error_message=_("This model version is registered already."),
            )
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def labels(self) -> list[str]:
        return list(self.card.get("labels", []))

    @property
    def is_available(self) -> bool:
        return self.state == self.State.AVAILABLE


class AnalysisRun(models.Model):
    """One model applied to one instance. Runs that do not apply are kept with their reason."""

    class Status(models.TextChoices):
        NOT_APPLICABLE = "not_applicable", _("Not applicable")
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    class Trigger(models.TextChoices):
        INGEST = "ingest", _("On upload")
        PAGE = "page", _("Run AI on the study page")
        API = "api", _("API")

    PENDING = (Status.QUEUED, Status.RUNNING)

    instance = models.ForeignKey(
        Instance, on_delete=models.CASCADE, related_name="analysis_runs", verbose_name=_("image")
    )
    model = models.ForeignKey(
        AIModel, on_delete=models.PROTECT, related_name="runs", verbose_name=_("model")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    reason = models.CharField(_("not applicable because"), max_length=300, blank=True)
    error = models.TextField(_("error"), blank=True)
    trigger = models.CharField(_("started by"), max_length=8, choices=Trigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    superseded_by = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="supersedes",
        verbose_name=_("superseded by"),
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    claim_token = models.UUIDField(null=True, blank=True)
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)
    worker = models.CharField(_("worker"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    enqueued_at = models.DateTimeField(_("sent to the queue"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    inference_ms = models.PositiveIntegerField(_("inference time, ms"), null=True, blank=True)
    processing_ms = models.PositiveIntegerField(_("processing time, ms"), null=True, blank=True)

    scope_paths = (f"{STUDY}__department", f"{STUDY}__patient__department")
    scope_path = f"{STUDY}__department"
    share_paths = (STUDY, f"{STUDY}__patient")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("analysis run")
        verbose_name_plural = _("analysis runs")
        indexes = [
            models.Index(fields=["status", "lease_until"], name="run_status_lease"),
            models.Index(fields=["instance", "model"], name="run_instance_model"),
        ]

    def __str__(self) -> str:
        return f"{self.model} on {self.instance_id} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status in self.PENDING

    @property
    def study(self):
        return self.instance.series.study

    @property
    def audit_patient_id(self) -> int:
        return self.instance.series.study.patient_id


class Finding(models.Model):
    """One label of a succeeded run: the calibrated probability and the card's decision."""

    class Severity(models.TextChoices):
        NONE = "none", _("none")
        LOW = "low", _("low")
        MODERATE = "moderate", _("moderate")
        HIGH = "high", _("high")

    run = models.ForeignKey(AnalysisRun, on_delete=models.CASCADE, related_name="findings")
    label = models.CharField(_("label"), max_length=64)
    code = models.CharField(_("finding code"), max_length=64, blank=True)
    probability = models.FloatField(_("probability (calibrated)"))
    threshold = models.FloatField(_("threshold"))
    positive = models.BooleanField(_("positive"))
    severity = models.CharField(
        _("severity"), max_length=8, choices=Severity.choices, default=Severity.NONE
    )
    regions = models.JSONField(_("regions"), default=list, blank=True)
    heatmap = models.ForeignKey(
        DerivedImage, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    scope_paths = (f"run__{STUDY}__department", f"run__{STUDY}__patient__department")
    scope_path = f"run__{STUDY}__department"
    share_paths = (f"run__{STUDY}", f"run__{STUDY}__patient")

    class Meta:
        ordering = ["run", "-positive", "-probability"]
        verbose_name = _("finding")
        verbose_name_plural = _("findings")
        constraints = [
            models.UniqueConstraint(fields=["run", "label"], name="finding_run_label_unique")
        ]

    def __str__(self) -> str:
        return f"{self.label} {self.probability:.2f}"

    @property
    def audit_patient_id(self) -> int:
        return self.run.instance.series.study.patient_id


class Feedback(models.Model):
    """A radiologist's verdict on one finding: agree or disagree, with an optional comment."""

    finding = models.ForeignKey(Finding, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    agrees = models.BooleanField(_("agrees"))
    comment = models.TextField(_("comment"), blank=True, max_length=2000)
    created_at = models.DateTimeField(_("given"), auto_now_add=True)
    updated_at = models.DateTimeField(_("changed"), auto_now=True)

    scope_paths = (
        f"finding__run__{STUDY}__department",
        f"finding__run__{STUDY}__patient__department",
    )
    scope_path = f"finding__run__{STUDY}__department"
    share_paths = (f"finding__run__{STUDY}", f"finding__run__{STUDY}__patient")

    class Meta:
        ordering = ["-updated_at"]
        verbose_name = _("feedback")
        verbose_name_plural = _("feedback")
        constraints = [
            models.UniqueConstraint(
                fields=["finding", "user"],
                name="feedback_finding_user_unique",
                violation_error_message=_("You have given feedback on this finding already."),
            )
        ]

    def __str__(self) -> str:
        return f"{'agree' if self.agrees else 'disagree'}: {self.finding}"
