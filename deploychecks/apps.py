from django.apps import AppConfig
from django.conf import settings


class DeployChecksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "deploychecks"

    def ready(self):
        from checklist import announcements, command_job, jobs as checklist_jobs
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
        # Sign-offs, go-live, withdrawn sign-offs and failed or lost jobs notify: the actions
        # that write those audit events announce them (checklist/announcements.py).
        announcements.on_announce(notify.notify_audit_event)
