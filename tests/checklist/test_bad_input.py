"""Bad input answers 400 with a message naming what is wrong, never a 500: item versions that
are not numbers, out-of-range ids in the history filters and exports, a template id that is not
one."""
import pytest
from django.urls import reverse

from checklist.models import AuditEvent, ItemState, Runbook

from .factories import gated, hand_states

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("version", ["abc", "1.5", "-1", "9" * 20, "1e3"])
@pytest.mark.parametrize("action", ["item-tick", "item-untick"])
def test_a_version_that_is_not_a_number_is_400(client, users, runbook, version, action):
    st = hand_states(runbook, gated(runbook)[0])[0]
    client.force_login(users["member"])
    if action == "item-untick":
        client.post(reverse("item-tick", args=[runbook.pk, st.pk]), HTTP_HX_REQUEST="true")
    before = ItemState.objects.get(pk=st.pk).checked
    response = client.post(reverse(action, args=[runbook.pk, st.pk]), {"version": version},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "must be the item&#x27;s version number" in response.content.decode()
    assert ItemState.objects.get(pk=st.pk).checked == before
    assert AuditEvent.objects.filter(action="denied", after__status=400).exists()


@pytest.mark.parametrize("name", ["history", "history-csv", "history-json"])
@pytest.mark.parametrize("item", ["9" * 20, "abc", "0", "-4"])
def test_history_filters_out_of_range_are_400(client, users, runbook, name, item):
    client.force_login(users["auditor"])
    exports_before = AuditEvent.objects.filter(action__startswith="export").count()
    response = client.get(reverse(name, args=[runbook.pk]), {"item": item})
    assert response.status_code == 400
    assert "item" in response.content.decode()
    # A refused export exports nothing and records no export.
    assert AuditEvent.objects.filter(action__startswith="export").count() == exports_before


@pytest.mark.parametrize("raw", ["abc", "", "9" * 20, "1; DROP TABLE x"])
def test_start_runbook_with_a_bad_template_id_is_400(client, users, runbook, raw):
    client.force_login(users["lead"])
    count = Runbook.objects.count()
    response = client.post(reverse("runbook-start"), {"template": raw, "name": "x"})
    assert response.status_code == 400
    assert "'template' must be the id" in response.content.decode()
    assert Runbook.objects.count() == count


def test_an_unknown_template_id_is_404(client, users, runbook):
    client.force_login(users["lead"])
    assert client.post(reverse("runbook-start"), {"template": "999999", "name": "x"}
                       ).status_code == 404
