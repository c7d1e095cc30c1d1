"""Pages of the deployment checks: a runbook's check settings (leads change them, audited) and
the partials the runbook page includes (trigger banner, success criteria, monitoring)."""
from django import forms
from django.shortcuts import get_object_or_404, render

from checklist import actions, rules
from checklist.models import Runbook
from checklist.views import reader_required

from checks import reach, readonly_sql

from . import actions as check_actions
from . import criteria, monitor, triggers
from .models import RunbookCheckSettings, RunbookProofSettings

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


def _strings(value, what):
    if value in (None, ""):
        return []  # an empty field is an empty list
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise forms.ValidationError(f"{what} is a JSON list of texts, e.g. [\"a\", \"b\"].")
    return value


def _mapping(value, what):
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise forms.ValidationError(f"{what} is a JSON object, e.g. {{\"key\": ...}}.")
    return value


class ProofSettingsForm(forms.ModelForm):
    """What the proof jobs read. The token is write-only: never rendered back (PasswordInput
    without its value), stored encrypted, shown redacted."""

    do_token = forms.CharField(required=False, max_length=200, strip=True,
                               widget=forms.PasswordInput(render_value=False),
                               label="DigitalOcean API token",
                               help_text="Stored encrypted, shown redacted; leave empty to keep "
                                         "the current one.")
    clear_do_token = forms.BooleanField(required=False, label="Remove the stored token")

    class Meta:
        model = RunbookProofSettings
        fields = RunbookProofSettings.FIELDS
        widgets = {"window_start": forms.DateTimeInput(attrs={"type": "datetime-local"}),
                   "window_end": forms.DateTimeInput(attrs={"type": "datetime-local"})}

    def clean_do_api_endpoint(self):
        url = self.cleaned_data["do_api_endpoint"].strip().rstrip("/")
        # pydo sends the token only over HTTPS; a URL with credentials would leak into logs.
        if not url.startswith("https://") or "@" in url:
            raise forms.ValidationError("The API endpoint is an https:// URL without "
                                        "credentials, e.g. https://api.digitalocean.com.")
        return url

    def clean_repo_scripts(self):
        return _strings(self.cleaned_data["repo_scripts"], "Scripts")

    def clean_repo_config_files(self):
        return _strings(self.cleaned_data["repo_config_files"], "Configuration files")

    def clean_app_tables(self):
        return _strings(self.cleaned_data["app_tables"], "Tables")

    def clean_docs_map(self):
        return _mapping(self.cleaned_data["docs_map"], "The documents map")

    def clean_test_map(self):
        found = _mapping(self.cleaned_data["test_map"], "The test mapping")
        for item, tests in found.items():
            _strings(tests, f"The tests of {item!r}")
        return found

    def clean_app_seed_rows(self):
        found = _mapping(self.cleaned_data["app_seed_rows"], "Seed rows")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                   for v in found.values()):
            raise forms.ValidationError("Seed rows map each table to its fewest rows, a whole "
                                        "number.")
        return found

    def clean(self):
        data = super().clean()
        start, end = data.get("window_start"), data.get("window_end")
        if start and end and end <= start:
            self.add_error("window_end", "The maintenance window ends after it starts.")
        return data


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


@reader_required
def proof_settings_page(request, runbook_id):
    """The proof jobs' settings (DigitalOcean, the MINGUS checkout, the app's database, the test
    report, the maintenance window): everyone who reads the runbook sees them, the token only
    redacted; a lead saves them through the audited action."""
    runbook = _runbook(runbook_id)
    ps = RunbookProofSettings.of(runbook)
    may_edit = bool(rules.can_configure(request.user))
    status, saved = 200, False
    if request.method == "POST":
        decision = rules.can_configure(request.user)
        if not decision:
            try:
                actions.deny(request.user, "proof-settings", decision, obj=runbook,
                             runbook=runbook)
            except actions.Refused as refused:
                return render(request, "checklist/refused.html", {"message": str(refused)},
                              status=refused.status)
        form = ProofSettingsForm(request.POST, instance=RunbookProofSettings.of(runbook))
        if form.is_valid():
            try:
                ps = check_actions.save_proof_settings(
                    request.user, runbook,
                    {f: form.cleaned_data[f] for f in RunbookProofSettings.FIELDS},
                    do_token=form.cleaned_data["do_token"],
                    clear_do_token=form.cleaned_data["clear_do_token"])
            except actions.Refused as refused:
                return render(request, "checklist/refused.html", {"message": str(refused)},
                              status=refused.status)
            form, saved = ProofSettingsForm(instance=ps), True
        else:
            status = 400
    else:
        form = ProofSettingsForm(instance=ps)
    return render(request, "deploychecks/proof_settings.html",
                  {"runbook": runbook, "form": form, "settings": ps, "may_edit": may_edit,
                   "saved": saved}, status=status)
