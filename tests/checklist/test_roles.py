"""The role matrix: every write endpoint against every role.

Allowed roles get their change; every other role gets 403, no change, and a 'denied' audit event.
"""
import pytest
from django.urls import reverse

from checklist import actions
from checklist.models import AuditEvent, ContactValue, GoLiveApproval, GoLiveRequest, ItemNote, ItemState, Runbook, SignOff

from tests.conftest import make_user

from .factories import complete_phase, gated, sign_off_through, hand_states, states_of

pytestmark = pytest.mark.django_db

WORKERS = {"member", "lead", "admin"}
LEADS = {"lead", "admin"}


def _first_state(runbook):
    return hand_states(runbook, gated(runbook)[0])[0]


def setup_tick(rb, users):
    st = _first_state(rb)
    return reverse("item-tick", args=[rb.pk, st.pk]), {}, lambda: ItemState.objects.get(pk=st.pk).checked


def setup_untick(rb, users):
    st = _first_state(rb)
    actions.tick(users["member"], st)
    return (reverse("item-untick", args=[rb.pk, st.pk]), {},
            lambda: not ItemState.objects.get(pk=st.pk).checked)


def setup_note(rb, users):
    st = _first_state(rb)
    return (reverse("item-note", args=[rb.pk, st.pk]), {"note": "looked fine"},
            lambda: ItemNote.objects.filter(state=st, text="looked fine").exists())


def setup_not_applicable(rb, users):
    st = ItemState.objects.get(runbook=rb, item__text__icontains="(if applicable)")
    return (reverse("item-not-applicable", args=[rb.pk, st.pk]), {"reason": "no custom domain"},
            lambda: ItemState.objects.get(pk=st.pk).not_applicable)


def setup_applicable(rb, users):
    st = ItemState.objects.get(runbook=rb, item__text__icontains="(if applicable)")
    actions.mark_not_applicable(users["member"], st, "no custom domain")
    return (reverse("item-applicable", args=[rb.pk, st.pk]), {},
            lambda: not ItemState.objects.get(pk=st.pk).not_applicable)


def setup_sign_off(rb, users):
    first = gated(rb)[0]
    complete_phase(rb, first, users["member"])
    return (reverse("phase-sign-off", args=[rb.pk, first.pk]), {"comment": "ok"},
            lambda: SignOff.objects.filter(runbook=rb, phase=first).exists())


def setup_go_live_request(rb, users):
    sign_off_through(rb, 4, users["member"], users["lead"])
    return (reverse("go-live-request", args=[rb.pk]), {},
            lambda: GoLiveRequest.objects.filter(runbook=rb).exists())


def setup_go_live_approve(rb, users):
    sign_off_through(rb, 4, users["member"], users["lead"])
    actions.request_go_live(users["requester"], rb)
    return (reverse("go-live-approve", args=[rb.pk]), {},
            lambda: GoLiveApproval.objects.filter(request__runbook=rb).exists())


def setup_contact(rb, users):
    field = rb.template.contact_fields.first()
    return (reverse("contact-edit", args=[rb.pk, field.pk]), {"value": "Ana - ana@example.com"},
            lambda: ContactValue.objects.get(runbook=rb, field=field).value == "Ana - ana@example.com")


def setup_start_runbook(rb, users):
    return (reverse("runbook-start"), {"template": rb.template_id, "name": "second"},
            lambda: Runbook.objects.filter(name="second").exists())


MATRIX = {
    "tick": (setup_tick, WORKERS),
    "untick": (setup_untick, WORKERS),
    "note": (setup_note, WORKERS),
    "not-applicable": (setup_not_applicable, WORKERS),
    "applicable": (setup_applicable, WORKERS),
    "sign-off": (setup_sign_off, LEADS),
    "go-live-request": (setup_go_live_request, LEADS),
    "go-live-approve": (setup_go_live_approve, LEADS),
    "contact": (setup_contact, LEADS),
    "start-runbook": (setup_start_runbook, LEADS),
}


@pytest.mark.parametrize("role", ["member", "lead", "auditor", "admin", "nobody"])
@pytest.mark.parametrize("action", list(MATRIX))
def test_write_is_allowed_only_for_its_roles(client, runbook, users, role, action):
    users["requester"] = make_user("requester", "lead")
    setup, allowed = MATRIX[action]
    url, data, changed = setup(runbook, users)
    denied_before = AuditEvent.objects.filter(action="denied").count()
    client.force_login(users[role])

    response = client.post(url, data, HTTP_HX_REQUEST="true")

    if role in allowed:
        assert response.status_code in (200, 204), response.content[:500]
        assert changed()
    else:
        assert response.status_code == 403
        assert not changed()
        assert AuditEvent.objects.filter(action="denied").count() == denied_before + 1


@pytest.mark.parametrize("action", list(MATRIX))
def test_anonymous_writes_are_sent_to_login_and_change_nothing(client, runbook, users, action):
    users["requester"] = make_user("requester", "lead")
    url, data, changed = MATRIX[action][0](runbook, users)
    response = client.post(url, data)
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not changed()


def test_get_never_writes(client, runbook, users):
    client.force_login(users["member"])
    st = _first_state(runbook)
    response = client.get(reverse("item-tick", args=[runbook.pk, st.pk]))
    assert response.status_code == 405
    assert not ItemState.objects.get(pk=st.pk).checked


def test_post_without_csrf_token_is_refused(runbook, users):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(users["member"])
    st = _first_state(runbook)
    response = client.post(reverse("item-tick", args=[runbook.pk, st.pk]))
    assert response.status_code == 403
    assert not ItemState.objects.get(pk=st.pk).checked
