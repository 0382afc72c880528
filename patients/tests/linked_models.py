"""A stand-in for the patient-linked models of later issues (studies, reports, shares ...).

Not a migrated model: ``patients/tests/conftest.py`` creates its table in the test database and
registers it with the merge registry, so merge tests prove that rows of every registered model
move and move back, before any real linked model exists.
"""

from django.db import models


class LinkedRecord(models.Model):
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="+")
    label = models.CharField(max_length=50)

    scope_path = "patient__department"

    class Meta:
        app_label = "patients"
        db_table = "test_patients_linkedrecord"
        verbose_name_plural = "linked test records"

    def __str__(self) -> str:
        return self.label
