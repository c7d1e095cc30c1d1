from django.apps import AppConfig


class MigrationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "migration"
    label = "pgmigration"  # "migration" reads badly beside Django's own migrations

    def ready(self):
        from . import jobs

        jobs.register_kinds()
