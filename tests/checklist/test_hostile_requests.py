"""Every route answers hostile parameters with a refusal, never a 500: each named route (the GET
walk's list), read and posted, as a member and as a lead, with every parameter the views read
set to a NUL and markup, a number too large for any column, a negative number, nothing, and a
path out of the tree; and with the ids of another runbook's objects under this runbook's URL."""
import pytest
from django.urls import reverse

from checklist import actions
from checklist.models import ItemState

from .test_no_get_writes import get_routes, seeded  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db

# Every name a view reads from request.GET or request.POST (grep), and a few it might.
PARAMS = ("against", "imported", "page", "rev", "same", "worker", "binding", "comment", "confirm",
          "kind", "name", "note", "reason", "template", "text", "unbind", "value", "version",
          "state", "run", "params", "key", "part", "item", "phase", "q", "next")
HOSTILE = ("\x00<script>alert(1)</script>'\"", "9" * 30, "-1", "", "../../../../etc/passwd")
STREAMS = {"runbook-events"}  # a stream would not end; its parameters are tested in test_live


def _status(client, method, url, data):
    response = getattr(client, method)(url, data, HTTP_HX_REQUEST="true")
    return response.status_code


@pytest.mark.parametrize("role", ["member", "lead"])
def test_no_route_answers_500_to_hostile_parameters(client, users, seeded, role):  # noqa: F811
    client.raise_request_exception = False
    client.force_login(users[role])
    failures = []
    for name, url in sorted(get_routes(seeded).items()):
        if name in STREAMS or name.startswith("admin-"):
            continue
        for value in HOSTILE:
            data = {p: value for p in PARAMS}
            for method in ("get", "post"):
                status = _status(client, method, url, data)
                if status >= 500 and not (name == "healthz" and status == 503):  # no worker here
                    failures.append((method.upper(), name, url, repr(value)[:20], status))
    assert not failures, failures


def test_another_runbooks_objects_under_this_runbooks_url_are_refused(client, users, seeded,  # noqa: F811
                                                                      template):
    client.raise_request_exception = False
    other = actions.start_runbook(users["lead"], template, "another deployment")
    other_state = ItemState.objects.filter(runbook=other).first()
    mine = seeded["runbook"]
    client.force_login(users["lead"])
    for name in ("item-detail", "item-tick", "item-untick", "item-note"):
        url = reverse(name, args=[mine.pk, other_state.pk])
        for method in ("get", "post"):
            status = _status(client, method, url, {"version": 1, "note": "x"})
            assert status in (403, 404, 405), (name, method, status)
    other_state.refresh_from_db()
    assert not other_state.checked and not other_state.notes.exists()


def test_a_nul_anywhere_is_refused_before_any_view_reads_it(client, users, seeded):  # noqa: F811
    from checklist.middleware import NUL_REFUSAL

    client.force_login(users["member"])
    state = seeded["state"]
    notes = state.notes.count()
    url = reverse("item-note", args=[seeded["runbook"].pk, state.pk])
    response = client.post(url, {"note": "before\x00after"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and response["X-Mingus-Message"] == "refused"
    assert response.content.decode() == NUL_REFUSAL
    assert state.notes.count() == notes
    api = reverse("api-runbook-jobs", args=[seeded["runbook"].pk])
    response = client.post(api, '{"kind": "backup", "params": {"label": "a\\u0000b"}}',
                           content_type="application/json", HTTP_X_CSRFTOKEN="x")
    assert response.status_code == 400


def test_the_json_api_refuses_a_form_body_with_its_shape(client, users, seeded):  # noqa: F811
    client.force_login(users["lead"])
    response = client.post(reverse("api-item-key", args=[seeded["state"].item_id]),
                           {"key": "backup-verified"})
    assert response.status_code == 400
    assert response.json()["error"] == 'The body must be a JSON object: {"key": "a-slug"}.'


def test_json_nested_deeper_than_the_parser_goes_is_400(client, users, seeded):  # noqa: F811
    client.force_login(users["member"])
    deep = "[" * 50_000 + "]" * 50_000
    for url in (reverse("api-item-key", args=[seeded["state"].item_id]),
                reverse("api-runbook-jobs", args=[seeded["runbook"].pk])):
        response = client.post(url, deep, content_type="application/json",
                               HTTP_X_CSRFTOKEN="x")
        assert response.status_code in (400, 403), (url, response.status_code)


@pytest.mark.parametrize("field,value", [
    ("deployed_url", "https://[::1/"), ("http_url", "http://[x/"),
    ("deployed_url", "https://app.example.com:99999/"),
])
def test_site_urls_urlsplit_cannot_take_are_refused_not_a_500(client, users, seeded, field,  # noqa: F811
                                                              value):
    from tests.deploychecks.test_check_settings_views import post_settings

    client.force_login(users["lead"])
    response = post_settings(client, seeded["runbook"], **{field: value})
    assert response.status_code == 400
    assert "a numeric port, if any" in response.content.decode()


def test_a_webhook_url_urlsplit_cannot_take_is_shown_as_nothing_of_it():
    from checks.redact import redact_webhook

    for url in ("https://hooks.example.com:abc/x", "https://h:99999/x", "https://[::1/x"):
        assert redact_webhook(url) == "***"
    assert redact_webhook("https://hooks.example.com/T0/B0/x") == "https://hooks.example.com/***"


def test_a_note_longer_than_a_page_is_refused_and_nothing_changes(client, users, seeded):  # noqa: F811
    from checklist.actions import NOTE_MAX_CHARS
    from checklist.models import AuditEvent

    client.force_login(users["member"])
    state = seeded["state"]
    notes, events = state.notes.count(), AuditEvent.objects.filter(action="note").count()
    url = reverse("item-note", args=[seeded["runbook"].pk, state.pk])
    response = client.post(url, {"note": "x" * (NOTE_MAX_CHARS + 1)}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert f"at most {NOTE_MAX_CHARS} characters" in response.content.decode()
    assert state.notes.count() == notes
    assert AuditEvent.objects.filter(action="note").count() == events
    assert client.post(url, {"note": "y" * NOTE_MAX_CHARS}, HTTP_HX_REQUEST="true").status_code == 200
    assert state.notes.count() == notes + 1


def test_a_contact_longer_than_its_field_is_refused_not_a_500(client, users, seeded):  # noqa: F811
    from checklist.models import ContactValue

    client.force_login(users["lead"])
    field = seeded["field"]
    limit = ContactValue._meta.get_field("value").max_length
    url = reverse("contact-edit", args=[seeded["runbook"].pk, field.pk])
    response = client.post(url, {"value": "x" * (limit + 1)}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert f"at most {limit} characters" in response.content.decode()
    assert not ContactValue.objects.filter(field=field, value__startswith="xxx").exists()
    assert client.post(url, {"value": "x" * limit}, HTTP_HX_REQUEST="true").status_code < 400
