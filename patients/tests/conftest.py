import pytest
from django.db import connection

from patients.linked import register_patient_linked, unregister_patient_linked
from patients.tests.linked_models import LinkedRecord


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test-only linked model's table, created once outside any transaction (SQLite's
    schema editor refuses to run inside one)."""
    with django_db_blocker.unblock():
        if LinkedRecord._meta.db_table not in connection.introspection.table_names():
            with connection.schema_editor() as editor:
                editor.create_model(LinkedRecord)


@pytest.fixture
def linked_record_model():
    """``LinkedRecord`` registered as patient-linked for the duration of one test."""
    register_patient_linked(LinkedRecord)
    yield LinkedRecord
    unregister_patient_linked(LinkedRecord)
