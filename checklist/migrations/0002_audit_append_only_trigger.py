"""On PostgreSQL, refuse UPDATE and DELETE of audit events in the database itself.

The ORM already refuses them (checklist.audit); this catches raw SQL and other clients. TRUNCATE is
left alone on purpose: it needs table ownership, and Django's test flush uses it. SQLite has no
such guard (noted in the README): there the hash chain is what detects tampering.
"""
from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION checklist_audit_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused on checklist_auditevent)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER checklist_audit_append_only
    BEFORE UPDATE OR DELETE ON checklist_auditevent
    FOR EACH ROW EXECUTE FUNCTION checklist_audit_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS checklist_audit_append_only ON checklist_auditevent;
DROP FUNCTION IF EXISTS checklist_audit_refuse_change();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("checklist", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
