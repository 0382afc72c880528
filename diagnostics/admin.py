"""The registry (cards, activate/deactivate, monitoring from feedback), runs, findings and
feedback in the admin. Runs, findings and feedback are patient data: restricted to the
administrator's departments like everywhere else, and every list and view is audited."""

from pathlib import Path

from django.contrib import admin, messages
from django.http import FileResponse, Http404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from accounts.admin import ScopedAdminMixin
from accounts.audit import Actor, audit_list, audit_view
from accounts.permissions import restrict
from diagnostics.models import AIModel, AnalysisRun, Feedback, Finding
from diagnostics.monitoring import model_monitoring
from diagnostics.registry import registry_sync


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    list_display = [
        "key_display",
        "title",
        "state",
        "active",
        "problem",
        "feedback_agreement",
        "feedback_sensitivity",
        "feedback_specificity",
        "synced_at",
    ]
    list_filter = ["state", "active", "name"]
    actions = ["activate", "deactivate", "recheck"]
    readonly_fields = [
        "name",
        "version",
        "title",
        "state",
        "problem",
        "folder",
        "weights_sha256",
        "synced_at",
        "card_summary",
        "monitoring",
    ]
    fields = ["active", *readonly_fields]

    def has_add_permission(self, request):
        return False  # models come from ml_weights/ (re-check them with the action)

    def has_delete_permission(self, request, obj=None):
        return False  # runs refer to them

    @admin.display(description=_("model"), ordering="name")
    def key_display(self, obj):
        return obj.key

    @admin.display(description=_("agreement (feedback)"))
    def feedback_agreement(self, obj):
        rate = model_monitoring(obj).agreement
        return str(rate) if rate else "—"

    @admin.display(description=_("sensitivity (feedback)"))
    def feedback_sensitivity(self, obj):
        rate = model_monitoring(obj).sensitivity
        return str(rate) if rate else _("too few cases")

    @admin.display(description=_("specificity (feedback)"))
    def feedback_specificity(self, obj):
        rate = model_monitoring(obj).specificity
        return str(rate) if rate else _("too few cases")

    def save_model(self, request, obj, form, change):
        if obj.active and not obj.is_available:
            obj.active = False
            messages.error(
                request,
                _("%(model)s cannot be active: %(problem)s")
                % {"model": obj.key, "problem": obj.problem or obj.get_state_display()},
            )
        super().save_model(request, obj, form, change)

    @admin.action(description=_("Activate the selected models (available ones only)"))
    def activate(self, request, queryset):
        done = queryset.filter(state=AIModel.State.AVAILABLE).update(active=True)
        refused = queryset.exclude(state=AIModel.State.AVAILABLE)
        for model in refused:
            messages.error(
                request,
                _("%(model)s cannot be activated: %(problem)s")
                % {"model": model.key, "problem": model.problem or model.get_state_display()},
            )
        messages.success(request, _("%(n)d model(s) activated.") % {"n": done})

    @admin.action(description=_("Deactivate the selected models"))
    def deactivate(self, request, queryset):
        messages.success(
            request, _("%(n)d model(s) deactivated.") % {"n": queryset.update(active=False)}
        )

    @admin.action(description=_("Re-check all models in ml_weights/ (cards and sha256)"))
    def recheck(self, request, queryset):
        report = registry_sync()
        for problem in report.problems:
            messages.error(request, problem)
        messages.success(request, _("%(n)d model version(s) checked.") % {"n": len(report.models)})

    @admin.display(description=_("model card"))
    def card_summary(self, obj):
        card = obj.card or {}
        applies = card.get("applies_to", {})
        ages = applies.get("age_years") or {}
        rows = [
            (_("Task"), card.get("task", "")),
            (_("Description"), card.get("description", "")),
            (_("Intended use"), card.get("intended_use", "")),
            (_("Labels"), ", ".join(card.get("labels", []))),
            (_("Architecture"), card.get("architecture", "")),
            (_("Preprocessing"), (card.get("preprocessing") or {}).get("description", "")),
            (_("Temperature"), card.get("temperature", "")),
            (
                _("Thresholds"),
                ", ".join(f"{k}: {v:.4f}" for k, v in (card.get("thresholds") or {}).items()),
            ),
            (
                _("Applies to"),
                f"{', '.join(applies.get('categories', []))}; "
                f"views {', '.join(applies.get('view_positions') or []) or '—'}; "
                f"age {ages.get('min', '…')}–{ages.get('max', '…')}",
            ),
            (_("Validation"), (card.get("metrics") or {}).get("method", "")),
            (_("Data"), _citation(card)),
            (_("Licence"), (card.get("data") or {}).get("licence", "")),
            (_("Limitations"), card.get("limitations", "")),
        ]
        metrics = (card.get("metrics") or {}).get("per_label", {})
        for label, values in metrics.items():
            parts = []
            for key in ("accuracy", "sensitivity", "specificity", "auroc"):
                value = values.get(key)
                if isinstance(value, dict) and "value" in value:
                    low, high = value.get("ci95", [None, None])
                    parts.append(f"{key} {value['value']:.3f} [{low}, {high}]")
            rows.append((label, "; ".join(parts)))
        table = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
        figures = format_html_join(
            " ",
            '<img src="{}" alt="{}" width="320">',
            (
                (reverse("admin:diagnostics_aimodel_figure", args=[obj.pk, key]), key)
                for key in (card.get("figures") or {})
            ),
        )
        return format_html("<table>{}</table><p>{}</p>", table, figures)

    @admin.display(description=_("monitoring from radiologist feedback"))
    def monitoring(self, obj):
        m = model_monitoring(obj)
        return format_html(
            "{}: {} · {}: TP {} FP {} TN {} FN {} · {}: {} · {}: {} · {}: {}",
            _("feedback"),
            m.feedback,
            _("cases"),
            m.tp,
            m.fp,
            m.tn,
            m.fn,
            _("agreement"),
            m.agreement or "—",
            _("sensitivity"),
            m.sensitivity or _("too few cases"),
            _("specificity"),
            m.specificity or _("too few cases"),
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/figure/<str:key>/",
                self.admin_site.admin_view(self.figure),
                name="diagnostics_aimodel_figure",
            ),
            *super().get_urls(),
        ]

    def figure(self, request, pk, key):
        if not self.has_view_permission(request):
            raise Http404
        model = AIModel.objects.filter(pk=pk).first()
        name = ((model.card if model else {}).get("figures") or {}).get(key)
        if not name:
            raise Http404
        path_ = Path(model.folder) / Path(name).name
        if not path_.is_file():
            raise Http404
        return FileResponse(path_.open("rb"), content_type="image/png")


def _citation(card: dict) -> str:
    data = card.get("data") or {}
    if isinstance(data, dict):
        return "; ".join(str(v) for k, v in data.items() if k in ("citation", "source", "name"))
    return str(data)


class _AuditedScopedAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """Read-only lists of patient data, restricted and audited."""

    object_type = ""

    def get_queryset(self, request):
        return restrict(super().get_queryset(request), request.user, self.view_perm)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            audit_list(
                actor=Actor.from_request(request),
                object_type=self.object_type,
                query=dict(request.GET.items()),
                patient_ids=sorted({self.patient_id(o) for o in changelist.result_list}),
                admin=True,
            )
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            obj = self.get_object(request, object_id)
            if obj is not None:
                audit_view(actor=Actor.from_request(request), obj=self.study_of(obj))
        return response


@admin.register(AnalysisRun)
class AnalysisRunAdmin(_AuditedScopedAdmin):
    object_type = "diagnostics.analysisrun"
    view_perm = "diagnostics.view_analysisrun"
    list_display = [
        "id",
        "model",
        "status",
        "trigger",
        "instance",
        "attempts",
        "created_at",
        "finished_at",
        "processing_ms",
        "short_error",
    ]
    list_filter = ["status", "model", "trigger", "created_at"]
    list_select_related = ["model", "instance__series__study"]
    search_fields = ["=id", "=instance__series__study__id", "error", "reason"]

    @admin.display(description=_("error or reason"))
    def short_error(self, obj):
        return (obj.error or obj.reason)[:120]

    def patient_id(self, obj):
        return obj.instance.series.study.patient_id

    def study_of(self, obj):
        return obj.instance.series.study


@admin.register(Finding)
class FindingAdmin(_AuditedScopedAdmin):
    object_type = "diagnostics.finding"
    view_perm = "diagnostics.view_finding"
    list_display = ["id", "run", "label", "probability", "threshold", "positive", "severity"]
    list_filter = ["positive", "severity", "label", "run__model"]
    list_select_related = ["run__model", "run__instance__series__study"]

    def patient_id(self, obj):
        return obj.run.instance.series.study.patient_id

    def study_of(self, obj):
        return obj.run.instance.series.study


@admin.register(Feedback)
class FeedbackAdmin(_AuditedScopedAdmin):
    object_type = "diagnostics.feedback"
    view_perm = "diagnostics.view_feedback"
    list_display = ["id", "finding", "user", "agrees", "comment", "updated_at"]
    list_filter = ["agrees", "finding__run__model", "finding__positive"]
    list_select_related = ["finding__run__instance__series__study", "user"]

    def patient_id(self, obj):
        return obj.finding.run.instance.series.study.patient_id

    def study_of(self, obj):
        return obj.finding.run.instance.series.study
