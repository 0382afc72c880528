"""PostgreSQL only (a no-op on SQLite): the writing transaction of each audit event, for the
sealer's commit order, and triggers that refuse UPDATE and DELETE on the audit and its seals.
TRUNCATE stays allowed (test teardown; a statement no application path issues)."""

from django.db import migrations

FORWARD = """
ALTER TABLE accounts_auditevent ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX audit_txid_id ON accounts_auditevent (txid, id);

CREATE FUNCTION accounts_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER auditevent_append_only BEFORE UPDATE OR DELETE ON accounts_auditevent
    FOR EACH ROW EXECUTE FUNCTION accounts_refuse_change();
CREATE TRIGGER auditseal_append_only BEFORE UPDATE OR DELETE ON accounts_auditseal
    FOR EACH ROW EXECUTE FUNCTION accounts_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS auditseal_append_only ON accounts_auditseal;
DROP TRIGGER IF EXISTS auditevent_append_only ON accounts_auditevent;
DROP FUNCTION IF EXISTS accounts_refuse_change();
DROP INDEX IF EXISTS audit_txid_id;
ALTER TABLE accounts_auditevent DROP COLUMN IF EXISTS txid;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(FORWARD)  # no parameters: plpgsql's % stays as written


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_audit_seal_emergency_access")]

    operations = [migrations.RunPython(forward, backward)]
