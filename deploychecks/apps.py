from django.apps import AppConfig
from django.conf import settings


class DeployChecksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "deploychecks"

    def ready(self):
        from django.db.models.signals import post_save

        from checklist.models import AuditEvent, TaskRun

        from checks import spec_file

        from . import jobs, notify, proof_jobs

        spec_file.MAX_BYTES = settings.CHECK_FILE_MAX_BYTES
        jobs.register_kinds()
        proof_jobs.register_kinds()
        post_save.connect(jobs.on_run_saved, sender=TaskRun,
                          dispatch_uid="deploychecks.after_run")
        post_save.connect(notify.on_audit_event, sender=AuditEvent,
                          dispatch_uid="deploychecks.notify_audit")
