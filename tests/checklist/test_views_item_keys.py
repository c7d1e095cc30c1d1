"""A lead sees each item's key on its checklist version's page and changes it there (htmx gets
the phases back); a member sees keys read-only and is refused the write; a bad or taken key is
refused beside the field, nothing changed; once a runbook starts the keys are fixed."""
import html

import pytest

from checklist import actions
from checklist.audit import AuditEvent
from checklist.models import Item

from .test_template_bindings import CHECKLISTS

pytestmark = pytest.mark.django_db


def _release():
    template, _ = actions.import_template((CHECKLISTS / "release.md").read_bytes())
    items = Item.objects.filter(group__phase__template=template).order_by("pk")
    return template, items[0], items[1]


def url(template, item):
    return f"/templates/{template.pk}/items/{item.pk}/key/"


def test_a_lead_sets_an_items_key_on_the_page(client, users):
    template, item, _ = _release()
    client.force_login(users["lead"])
    page = html.unescape(client.get(f"/templates/{template.pk}/").content.decode())
    assert f'id="key-{item.pk}"' in page and f'hx-post="{url(template, item)}"' in page
    response = client.post(url(template, item), {"key": " release-branch-cut "},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = html.unescape(response.content.decode())
    assert 'id="template-phases"' in body and 'value="release-branch-cut"' in body
    item.refresh_from_db()
    assert item.key == "release-branch-cut"
    event = AuditEvent.objects.get(action="item-key")
    assert (event.actor, event.before, event.after["key"]) == (users["lead"], {"key": ""},
                                                               "release-branch-cut")
    # Without htmx: back to the page, at the item.
    response = client.post(url(template, item), {"key": ""})
    assert response.status_code == 302 and response["Location"].endswith(f"#titem-{item.pk}")
    item.refresh_from_db()
    assert item.key == ""


@pytest.mark.parametrize("role", ["member", "auditor"])
def test_others_see_keys_read_only_and_are_refused(client, users, role):
    template, item, _ = _release()
    actions.set_item_key(users["lead"], item, "release-branch-cut")
    client.force_login(users[role])
    page = client.get(f"/templates/{template.pk}/").content.decode()
    assert '<code class="item-key"' in page and "release-branch-cut" in page
    assert f'id="key-{item.pk}"' not in page  # no field to change it
    response = client.post(url(template, item), {"key": "mine"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert response["HX-Retarget"] == "#messages"  # shown as every refusal on the page is
    item.refresh_from_db()
    assert item.key == "release-branch-cut"
    assert AuditEvent.objects.filter(action="denied", actor=users[role],
                                     after__attempted="item-key").exists()


@pytest.mark.parametrize(("key", "status", "says"), [
    ("Not A Slug!", 400, "key: a slug of lower-case letters"),
    ("x" * 101, 400, "key: at most 100 characters."),
    ("taken", 409, "key: 'taken' is already the key of another item"),
])
def test_an_invalid_or_taken_key_is_refused_beside_the_field(client, users, key, status, says):
    template, item, other = _release()
    actions.set_item_key(users["lead"], other, "taken")
    client.force_login(users["lead"])
    response = client.post(url(template, item), {"key": key}, HTTP_HX_REQUEST="true")
    assert response.status_code == status
    assert says in html.unescape(response.content.decode())
    assert 'class="refusal"' in response.content.decode()
    item.refresh_from_db()
    assert item.key == ""


def test_keys_are_fixed_once_a_runbook_starts(client, users):
    template, item, _ = _release()
    actions.start_runbook(users["lead"], template, "release 1")
    client.force_login(users["lead"])
    page = html.unescape(client.get(f"/templates/{template.pk}/").content.decode())
    assert f'id="key-{item.pk}"' not in page
    assert "Item keys of" in page and "are fixed: runbook 'release 1' has started" in page
    response = client.post(url(template, item), {"key": "late"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    item.refresh_from_db()
    assert item.key == ""
    assert client.get(url(template, item)).status_code == 405
