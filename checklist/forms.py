"""Forms that parse page input (filters); writes go through actions.py."""
from django import forms


class HistoryFilterForm(forms.Form):
    """Filters of the audit history; every field is optional, and a bad value is a 400 naming it
    (never a database error: ids are bounded to what the id column holds)."""

    phase = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    item = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, label="Item id")
    person = forms.CharField(required=False, max_length=150)
    action = forms.ChoiceField(required=False)
    date_from = forms.DateField(required=False, label="From",
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To",
                              widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data, *, phases, actions, people):
        super().__init__(data)
        self.fields["phase"].choices = [("", "Any phase")] + [(p.pk, p.title) for p in phases]
        self.fields["action"].choices = [("", "Any action")] + [(a, a) for a in actions]
        self.fields["person"].widget = forms.Select(
            choices=[("", "Anyone")] + [(p, p) for p in people])

    def problem(self):
        """What is wrong with the filters, in one line naming the fields, or "" when nothing."""
        if not self.is_bound or self.is_valid():
            return ""
        return "Bad filter: " + "; ".join(
            f"{name}: {' '.join(errors)}" for name, errors in self.errors.items())

    def filter(self, events):
        if not self.is_valid():
            return events
        data = self.cleaned_data
        if data.get("phase"):
            events = events.filter(phase_id=data["phase"])
        if data.get("item"):
            events = events.filter(item_id=data["item"])
        if data.get("person"):
            events = events.filter(actor_label=data["person"])
        if data.get("action"):
            events = events.filter(action=data["action"])
        if data.get("date_from"):
            events = events.filter(created_at__date__gte=data["date_from"])
        if data.get("date_to"):
            events = events.filter(created_at__date__lte=data["date_to"])
        return events


class RunbookSettingsForm(forms.Form):
    """A lead's configuration of a runbook: its SQLite sources and its target URL.

    The target URL field is never filled in from what is stored (only the redacted form is ever
    shown); left empty, it keeps the stored URL."""

    sources = forms.CharField(
        required=False, label="SQLite sources",
        widget=forms.Textarea(attrs={"rows": 5, "cols": 60, "spellcheck": "false"}),
        help_text="One source a line: its name, a space (or '='), then the file's path on the "
                  "worker, e.g. main /srv/mingus/main.db",
    )
    target_url = forms.CharField(
        required=False, label="Target PostgreSQL URL", max_length=2000, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="postgresql://user:password@host:5432/db?sslmode=verify-full. Leave empty to "
                  "keep the stored URL.",
    )

    def clean_sources(self):
        sources = {}
        for number, line in enumerate(self.cleaned_data["sources"].splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "=" in line:
                name, _, path = line.partition("=")
            else:
                name, _, path = line.partition(" ")
            name, path = name.strip(), path.strip()
            if not name or not path:
                raise forms.ValidationError(f"Line {number}: write a name, then the path.")
            if name in sources:
                raise forms.ValidationError(f"Line {number}: the name '{name}' is used twice.")
            sources[name] = path
        return sources

    @staticmethod
    def as_text(sources):
        return "\n".join(f"{s.name} {s.path}" for s in sources)
