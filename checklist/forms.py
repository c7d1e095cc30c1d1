"""Forms that parse page input (filters); writes go through actions.py."""
from django import forms


class HistoryFilterForm(forms.Form):
    """Filters of the audit history; every field is optional and a bad value is ignored."""

    phase = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    item = forms.IntegerField(required=False, min_value=1, label="Item id")
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
