from django import forms
from django.contrib import admin

from checklist import actions
from checklist.admin import AuditedAdmin, ReadOnlyAdmin

from .models import (MonitorSample, Notification, PerformanceBaseline, RunbookCheckSettings,
                     RunbookProofSettings, TriggerFiring, WorkerHeartbeat)


class CheckSettingsAdminForm(forms.ModelForm):
    webhook_url = forms.CharField(required=False, help_text="Stored encrypted; leave empty to "
                                                            "keep the current one.")
    clear_webhook = forms.BooleanField(required=False)

    class Meta:
        model = RunbookCheckSettings
        fields = ["runbook", *RunbookCheckSettings.FIELDS]


@admin.register(RunbookCheckSettings)
class RunbookCheckSettingsAdmin(admin.ModelAdmin):
    form = CheckSettingsAdminForm
    list_display = ["runbook", "monitor_interval_seconds", "deployed_url", "webhook_url_redacted"]
    readonly_fields = ["webhook_url_redacted", "last_monitored_at"]

    def save_model(self, request, obj, form, change):
        # The same audited action as the settings page: runbook lock, lead rule, before/after.
        saved = actions.save_check_settings(
            request.user, obj.runbook,
            {f: form.cleaned_data[f] for f in RunbookCheckSettings.FIELDS if f in form.cleaned_data},
            webhook_url=form.cleaned_data.get("webhook_url") or "",
            clear_webhook=bool(form.cleaned_data.get("clear_webhook")))
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        actions.admin_delete(request.user, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            actions.admin_delete(request.user, obj)


@admin.register(PerformanceBaseline)
class PerformanceBaselineAdmin(ReadOnlyAdmin):
    list_display = ["runbook", "run", "recorded_at"]
    readonly_fields = ["runbook", "run", "evidence", "report", "recorded_at"]


@admin.register(MonitorSample)
class MonitorSampleAdmin(ReadOnlyAdmin):
    list_display = ["runbook", "kind", "ok", "latency_ms", "detail", "taken_at"]
    list_filter = ["kind", "ok"]


@admin.register(TriggerFiring)
class TriggerFiringAdmin(ReadOnlyAdmin):
    list_display = ["runbook", "trigger", "summary", "fired_at", "cleared_at", "notified_at"]
    list_filter = ["trigger"]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["event", "channel", "recipients", "state", "created_at", "sent_at"]
    list_filter = ["channel", "state", "event"]
    readonly_fields = ["payload", "attempts"]


# Records the app's checks, beat and notifier write (evidence of what happened): view only.
admin.site.register(WorkerHeartbeat, ReadOnlyAdmin)


class ProofSettingsAdminForm(forms.ModelForm):
    do_token = forms.CharField(required=False, widget=forms.PasswordInput, max_length=200,
                               help_text="DigitalOcean API token: stored encrypted; leave empty "
                                         "to keep the current one.")
    clear_do_token = forms.BooleanField(required=False)

    class Meta:
        model = RunbookProofSettings
        exclude = ["do_token_redacted"]


@admin.register(RunbookProofSettings)
class RunbookProofSettingsAdmin(AuditedAdmin):
    """What the proof jobs read (deploychecks/proof_jobs.py): saved through the audited
    admin_save action. The DigitalOcean token is write-only: stored encrypted, shown redacted,
    never in the audit event (its field is not editable, so the snapshot leaves it out)."""

    form = ProofSettingsAdminForm
    readonly_fields = ["do_token_redacted"]
    list_display = ["runbook", "do_app_id", "do_database_id", "do_token_redacted", "repo_path",
                    "updated_at"]

    def save_model(self, request, obj, form, change):
        if form.cleaned_data.get("clear_do_token"):
            obj.set_do_token("")
        elif form.cleaned_data.get("do_token"):
            obj.set_do_token(form.cleaned_data["do_token"])
        super().save_model(request, obj, form, change)
