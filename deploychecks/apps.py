from django.apps import AppConfig
from django.conf import settings


class DeployChecksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "deploychecks"

    def ready(self):
        from django.db.models.signals import post_save

        from checklist import command_job, jobs as checklist_jobs
        from checklist.models import AuditEvent
        from checks import spec_file

        from . import jobs, notify, proof_jobs

        spec_file.MAX_BYTES = settings.CHECK_FILE_MAX_BYTES
        # The job kinds this app owns, and what it does once any run has ended.
        jobs.register_kinds()
        proof_jobs.register_kinds()
        checklist_jobs.on_run_end(jobs.after_run)
        # A command without a working directory runs in the MINGUS checkout a lead set here.
        if proof_jobs.command_workdir not in command_job.DEFAULT_WORKDIRS:
            command_job.DEFAULT_WORKDIRS.append(proof_jobs.command_workdir)
        # Sign-offs, go-live and failed or lost jobs notify: read off the audit log as it grows.
        post_save.connect(notify.on_audit_event, sender=AuditEvent,
                          dispatch_uid="deploychecks.notify_audit")
