"""Trigram search on PostgreSQL and the built-in identifier types (SNILS, OMS policy)."""

from django.db import migrations

TRIGRAM_INDEX = (
    "CREATE INDEX IF NOT EXISTS patient_search_name_trgm "
    "ON patients_patient USING gin (search_name gin_trgm_ops)"
)


def create_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite scans; the embedded mode holds thousands, not millions, of patients
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(TRIGRAM_INDEX)


def drop_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS patient_search_name_trgm")


def create_identifier_types(apps, schema_editor):
    IdentifierType = apps.get_model("patients", "IdentifierType")
    IdentifierType.objects.get_or_create(
        code="snils", defaults={"name": "СНИЛС", "validator": "snils"}
    )
    IdentifierType.objects.get_or_create(
        code="oms", defaults={"name": "Полис ОМС", "validator": "oms"}
    )
    IdentifierType.objects.get_or_create(
        code="passport-ru",
        defaults={"name": "Паспорт РФ", "validator": "regex", "pattern": r"\d{2} ?\d{2} ?\d{6}"},
    )


class Migration(migrations.Migration):
    dependencies = [("patients", "0001_initial")]

    operations = [
        migrations.RunPython(create_trigram_index, drop_trigram_index),
        migrations.RunPython(create_identifier_types, migrations.RunPython.noop),
    ]
