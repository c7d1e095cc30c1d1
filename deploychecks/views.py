"""Pages of the deployment checks: a runbook's check settings (leads change them, audited) and
the partials the runbook page includes (trigger banner, success criteria, monitoring)."""
from django import forms
from django.shortcuts import get_object_or_404, render

from checklist import actions, rules
from checklist.models import Runbook
from checklist.views import reader_required

from checks import reach, readonly_sql

from . import criteria, monitor, triggers
from .models import RunbookCheckSettings

SETTINGS_FIELDS = RunbookCheckSettings.FIELDS


class CheckSettingsForm(forms.ModelForm):
    webhook_url = forms.CharField(required=False, max_length=1000,
                                  help_text="Stored encrypted and shown redacted; leave empty "
                                            "to keep the current one.")
    clear_webhook = forms.BooleanField(required=False)

    class Meta:
        model = RunbookCheckSettings
        fields = SETTINGS_FIELDS

    def clean_performance_queries(self):
        # Refused on save, so a query that could write never becomes a setting (and the check
        # refuses it again before it reaches the target).
        try:
            return readonly_sql.check_all(self.cleaned_data["performance_queries"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        data = super().clean()
        for problem in reach.problems(data.get("deployed_url"), data.get("health_path"),
                                      data.get("http_paths"), data.get("http_url")):
            self.add_error(None, problem)
        return data

    def clean_webhook_url(self):
        url = self.cleaned_data["webhook_url"].strip()
        if url and not url.startswith(("https://", "http://")):
            raise forms.ValidationError("A webhook URL starts with https:// or http://.")
        return url


def _runbook(runbook_id):
    return get_object_or_404(Runbook.objects.select_related("template"), pk=runbook_id)


@reader_required
def settings_page(request, runbook_id):
    runbook = _runbook(runbook_id)
    cs = RunbookCheckSettings.for_runbook(runbook)
    may_edit = bool(rules.can_lead(request.user))
    status = 200
    if request.method == "POST":
        decision = rules.can_lead(request.user)
        if not decision:
            try:
                actions.deny(request.user, "check-settings", decision, obj=runbook,
                             runbook=runbook)
            except actions.Refused as refused:
                return render(request, "checklist/refused.html", {"message": str(refused)},
                              status=refused.status)
        form = CheckSettingsForm(request.POST, instance=cs)
        if form.is_valid():
            try:
                cs = actions.save_check_settings(
                    request.user, runbook,
                    {f: form.cleaned_data[f] for f in SETTINGS_FIELDS if f in form.cleaned_data},
                    webhook_url=form.cleaned_data["webhook_url"],
                    clear_webhook=form.cleaned_data["clear_webhook"])
            except actions.Refused as refused:
                return render(request, "checklist/refused.html", {"message": str(refused)},
                              status=refused.status)
            form = CheckSettingsForm(instance=cs)
            saved = True
        else:
            status, saved = 400, False
    else:
        form, saved = CheckSettingsForm(instance=cs), False
    return render(request, "deploychecks/settings.html",
                  {"runbook": runbook, "form": form, "settings": cs, "may_edit": may_edit,
                   "saved": saved}, status=status)


@reader_required
def banner_partial(request, runbook_id):
    return render(request, "deploychecks/_trigger_banner.html",
                  _with_may_work(request, triggers.banner_context(_runbook(runbook_id))))


@reader_required
def criteria_partial(request, runbook_id):
    return render(request, "deploychecks/_criteria.html",
                  _with_may_work(request, criteria.criteria_context(_runbook(runbook_id))))


def _with_may_work(request, context):
    """The panels show Run buttons only to those the server would let run jobs."""
    return {**context, "may_work": bool(rules.can_work(request.user))}


@reader_required
def monitoring_partial(request, runbook_id):
    return render(request, "deploychecks/_monitoring.html",
                  monitor.monitoring_context(_runbook(runbook_id)))
