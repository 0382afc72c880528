from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


def _on_instance_imported(sender, instance, study, actor, **kwargs):
    from diagnostics.services import runs_for_new_instance

    runs_for_new_instance(instance=instance, study=study, actor=actor, batch=kwargs.get("batch"))


class DiagnosticsConfig(AppConfig):
    name = "diagnostics"
    verbose_name = _("AI diagnostics")

    def ready(self):
        from accounts import roles
        from studies.signals import instance_imported

        # Radiologists run AI and give feedback; clinicians read the results of the studies
        # they may see; administrators manage the models and see runs, findings and feedback.
        roles.extend(
            roles.RADIOLOGIST,
            "diagnostics.view_analysisrun",
            "diagnostics.add_analysisrun",
            "diagnostics.add_feedback",
            "diagnostics.view_feedback",
            "diagnostics.predict",
        )
        roles.extend(roles.CLINICIAN, "diagnostics.view_analysisrun", "diagnostics.predict")
        roles.extend(
            roles.ADMINISTRATOR,
            "diagnostics.view_aimodel",
            "diagnostics.change_aimodel",
            "diagnostics.view_analysisrun",
            "diagnostics.view_finding",
            "diagnostics.view_feedback",
        )
        instance_imported.connect(_on_instance_imported, dispatch_uid="diagnostics-runs")
        # AnalysisRun, Finding and Feedback reach the patient only through
        # instance -> series -> study, and merge moves the Study (registered by studies): they
        # move with it, so there is nothing of their own to register.
