from django import forms
from django.contrib import admin

from checklist import audit
from checklist.admin import ReadOnlyAdmin

from .models import (MonitorSample, Notification, PerformanceBaseline, RunbookCheckSettings,
                     TriggerFiring, WorkerHeartbeat)
from .views import SETTINGS_FIELDS, settings_snapshot


class CheckSettingsAdminForm(forms.ModelForm):
    webhook_url = forms.CharField(required=False, help_text="Stored encrypted; leave empty to "
                                                            "keep the current one.")
    clear_webhook = forms.BooleanField(required=False)

    class Meta:
        model = RunbookCheckSettings
        fields = ["runbook", *SETTINGS_FIELDS]


@admin.register(RunbookCheckSettings)
class RunbookCheckSettingsAdmin(admin.ModelAdmin):
    form = CheckSettingsAdminForm
    list_display = ["runbook", "monitor_interval_seconds", "deployed_url", "webhook_url_redacted"]
    readonly_fields = ["webhook_url_redacted", "last_monitored_at"]

    def save_model(self, request, obj, form, change):
        before = settings_snapshot(RunbookCheckSettings.objects.get(pk=obj.pk)) if change else None
        if form.cleaned_data.get("clear_webhook"):
            obj.set_webhook_url("")
        elif form.cleaned_data.get("webhook_url"):
            obj.set_webhook_url(form.cleaned_data["webhook_url"])
        super().save_model(request, obj, form, change)
        audit.record("check-settings", actor=request.user, obj=obj, runbook=obj.runbook,
                     before=before, after=settings_snapshot(obj))


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
