"""PostgreSQL only (a no-op on SQLite): signed reports are immutable in the database too, and
``search_vector`` holds the conclusion in the Russian and English text-search configurations
(kept by a trigger before every insert and update, GIN-indexed) for
``studies.reporting.search``.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION studies_report_refuse_signed_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'signed' THEN
        RAISE EXCEPTION 'report % is signed: % refused (amend it instead)', OLD.id, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER report_signed_immutable BEFORE UPDATE OR DELETE ON studies_report
    FOR EACH ROW EXECUTE FUNCTION studies_report_refuse_signed_change();

CREATE FUNCTION studies_report_codes_refuse_signed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rid bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN rid := OLD.report_id; ELSE rid := NEW.report_id; END IF;
    IF EXISTS (SELECT 1 FROM studies_report WHERE id = rid AND status = 'signed') THEN
        RAISE EXCEPTION 'report % is signed: its finding codes cannot change', rid
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER report_codes_signed_immutable
    BEFORE INSERT OR UPDATE OR DELETE ON studies_report_finding_codes
    FOR EACH ROW EXECUTE FUNCTION studies_report_codes_refuse_signed();

CREATE FUNCTION studies_report_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_vector := to_tsvector('russian'::regconfig, COALESCE(NEW.conclusion, ''))
        || to_tsvector('english'::regconfig, COALESCE(NEW.conclusion, ''));
    RETURN NEW;
END;
$$;
CREATE TRIGGER report_search_vector BEFORE INSERT OR UPDATE ON studies_report
    FOR EACH ROW EXECUTE FUNCTION studies_report_search_vector();
CREATE INDEX report_search_vector ON studies_report USING gin (search_vector);
"""

BACKWARD = """
DROP INDEX IF EXISTS report_search_vector;
DROP TRIGGER IF EXISTS report_search_vector ON studies_report;
DROP FUNCTION IF EXISTS studies_report_search_vector();
DROP TRIGGER IF EXISTS report_codes_signed_immutable ON studies_report_finding_codes;
DROP FUNCTION IF EXISTS studies_report_codes_refuse_signed();
DROP TRIGGER IF EXISTS report_signed_immutable ON studies_report;
DROP FUNCTION IF EXISTS studies_report_refuse_signed_change();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("studies", "0006_reports")]

    operations = [migrations.RunPython(forward, backward)]
