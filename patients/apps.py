from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PatientsConfig(AppConfig):
    name = "patients"
    verbose_name = _("Patients")

    def ready(self):
        from accounts.registry import register_bench_seeder, register_demo_loader
        from accounts.roles import ADMINISTRATOR, REGISTRAR, extend
        from patients import demo, seeding
        from patients.linked import register_patient_linked
        from patients.models import PatientIdentifier

        register_demo_loader("patients", demo.load_demo_patients, order=20)
        register_bench_seeder("patients", seeding.seed_patients, order=20)
        register_bench_seeder("audit_events", seeding.seed_audit_events, order=90)

        # A merge moves the duplicate's identifiers too, so the survivor carries them all.
        register_patient_linked(PatientIdentifier)
        extend(REGISTRAR, "patients.merge_patient")
        extend(ADMINISTRATOR, "patients.merge_patient")
