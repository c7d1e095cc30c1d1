"""Audit events record their request id and client address, under hash form 2; on PostgreSQL
TRUNCATE of the audit table is refused too (0002 refuses UPDATE and DELETE).

Existing events keep form 1 and verify as they were hashed. The new columns are added with a
default, which PostgreSQL applies without rewriting (or updating) any row, so 0002's trigger is
not involved. The test suite's flush disables the TRUNCATE trigger around its own TRUNCATE
(tests/conftest.py); nothing in the app does.
"""
from django.db import migrations, models

CREATE = """
CREATE TRIGGER checklist_audit_no_truncate
    BEFORE TRUNCATE ON checklist_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION checklist_audit_refuse_change();
"""

DROP = "DROP TRIGGER IF EXISTS checklist_audit_no_truncate ON checklist_auditevent;"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("checklist", "0003_jobs_and_evidence")]
    operations = [
        migrations.AddField("auditevent", "request_id",
                            models.CharField(blank=True, default="", max_length=64)),
        migrations.AddField("auditevent", "client_addr",
                            models.CharField(blank=True, default="", max_length=45)),
        migrations.AddField("auditevent", "form", models.PositiveSmallIntegerField(default=1)),
        migrations.RunPython(forwards, backwards),
    ]
