from django import forms
from django.contrib import admin

from checklist import actions
from checklist.admin import ReadOnlyAdmin

from .models import (MonitorSample, Notification, PerformanceBaseline, RunbookCheckSettings,
                     TriggerFiring, WorkerHeartbeat)


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
