from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class StudiesConfig(AppConfig):
    name = "studies"
    verbose_name = _("Studies")

    def ready(self):
        from accounts import roles
        from accounts.permissions import extend_scope
        from accounts.registry import register_bench_seeder
        from patients.linked import register_patient_linked
        from patients.models import Patient
        from studies.models import Study

        roles.extend(
            roles.RADIOLOGIST, "studies.view_study", "studies.add_study", "studies.export_study"
        )
        roles.extend(
            roles.CLINICIAN, "studies.view_study", "studies.add_study", "studies.export_study"
        )
        # Scope still limits an administrator to the departments they are a member of.
        roles.extend(roles.ADMINISTRATOR, "studies.view_study", "studies.remove_images")
        roles.extend(roles.REGISTRAR, "studies.view_study", "studies.add_study")
        # Category, body part, view, clinical question and urgency are corrected by those who
        # register and read images; clinicians read them.
        roles.extend(roles.RADIOLOGIST, "studies.change_study")
        roles.extend(roles.REGISTRAR, "studies.change_study")
        # The managed pathology list (report finding codes, annotation labels, AI labels).
        roles.extend(
            roles.ADMINISTRATOR,
            "studies.view_findingcode",
            "studies.add_findingcode",
            "studies.change_findingcode",
        )
        # Annotations: radiologists draw them (the author alone edits or deletes one); everyone
        # who may see a study reads them, clinicians included.
        roles.extend(
            roles.RADIOLOGIST,
            "studies.view_annotation",
            "studies.add_annotation",
            "studies.change_annotation",
            "studies.delete_annotation",
        )
        for role in (roles.CLINICIAN, roles.REGISTRAR, roles.ADMINISTRATOR):
            roles.extend(role, "studies.view_annotation")
        # A patient's identity is visible to whoever may see one of their studies.
        extend_scope(Patient, "studies__department")
        # Merge moves a duplicate's studies (with their series, instances, derived images and
        # annotations: those hang off the instance, so they need no registration of their own).
        register_patient_linked(Study)
        # Reports hang off their study and move with it (studies/reporting/hooks.py).
        from studies.reporting import hooks as reporting

        reporting.ready()
        # seed_bench --studies N --instances N (rows without files; COPY on PostgreSQL).
        from studies import seeding

        register_bench_seeder("studies", seeding.seed_studies, order=30)
        register_bench_seeder("instances", seeding.seed_instances, order=40)
