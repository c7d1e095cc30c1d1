"""Stable keys: items and phases are found by key, never by their words or their place.

The importer keys the seed (checklist/bindings/mingus-keys.json), the bindings files bind by key,
a lead changes a key through an audited, server-checked action, and a reworded checklist keeps
working: the Deployment phase is found by key or, without one, by what its success criteria open
with.
"""
import json
import re

import pytest

from checklist import actions, item_keys, rules
from checklist.models import AuditEvent, Item, JobBinding, Phase
from deploychecks import triggers
from tests.conftest import SEED

pytestmark = pytest.mark.django_db

KEYS = json.loads((item_keys.KEYS_DIR / "mingus-keys.json").read_text())
SCHEMA_KEY = "unified-schema-sql-reviewed-and-approved"


def test_the_importer_keys_every_seed_item_and_phase(template):
    items = Item.objects.filter(group__phase__template=template)
    keys = list(items.values_list("key", flat=True))
    assert len(keys) == len(KEYS["items"]) == 136 and "" not in keys
    assert len(set(keys)) == len(keys)  # unique within the version
    phases = {p.key: p for p in template.phases.all()}
    assert list(phases) == ["pre-deployment", "migration", "deployment", "post-deployment",
                            "rollback", "success-criteria"]
    # What a rollback plan and the success criteria open with is stored, not worked out by place.
    assert phases["rollback"].opens_with == phases["migration"]
    assert phases["success-criteria"].opens_with == phases["deployment"]
    assert phases["deployment"].opens_with is None
    # The bindings files bind by key: the schema approval binds the item keyed for it.
    binding = JobBinding.objects.get(item__group__phase__template=template,
                                     kind=rules.SCHEMA_APPROVAL)
    assert binding.item.key == SCHEMA_KEY


def _reworded(tmp_path):
    text = SEED.read_bytes().decode("utf-8")
    old = next(e["text"] for e in KEYS["items"] if e["key"] == SCHEMA_KEY)
    assert old in text and "Deployment Phase**" in text
    text = re.sub(r"(?<=\s)Deployment Phase\*\*", "Go-Live Stage**", text, count=1)
    return text.replace(old, "The unified schema file was read and accepted").replace("MINGUS", "Acme")


def test_a_reworded_checklist_works_by_key_and_stored_openers(tmp_path, users):
    template, _ = actions.import_template(_reworded(tmp_path), name="acme")
    assert not Item.objects.filter(group__phase__template=template).exclude(key="").exists()
    item = Item.objects.get(group__phase__template=template,
                            text="The unified schema file was read and accepted")
    actions.set_item_key(users["lead"], item, SCHEMA_KEY)
    assert Item.objects.get(pk=item.pk).key == SCHEMA_KEY
    # No phase is keyed `deployment` here: the phase the success criteria open with stands in.
    runbook = actions.start_runbook(users["lead"], template, "acme")
    facts = rules.RunbookFacts.load(runbook)
    success = next(p for p in facts.phases if p.kind == Phase.SUCCESS)
    assert success.opens_with.title == "Go-Live Stage"  # the reworded third gated phase
    assert facts.status(success.opens_with).state == rules.LOCKED
    assert triggers.deployment_open(facts) is False


def test_a_lead_sets_an_item_key_through_the_api_audited(client, template, users):
    item = Item.objects.filter(group__phase__template=template).order_by("pk").first()
    url = f"/api/items/{item.pk}/key/"

    client.force_login(users["member"])
    refused = client.post(url, {"key": "mine"}, content_type="application/json")
    assert refused.status_code == 403
    assert AuditEvent.objects.filter(action="denied", after__attempted="item-key").exists()

    client.force_login(users["lead"])
    assert client.post(url, {"key": "Not A Slug"},
                       content_type="application/json").status_code == 400
    taken = Item.objects.filter(group__phase__template=template).exclude(pk=item.pk).first()
    assert client.post(url, {"key": taken.key}, content_type="application/json").status_code == 409
    done = client.post(url, {"key": "backups-verified"}, content_type="application/json")
    assert done.status_code == 200 and done.json()["key"] == "backups-verified"
    event = AuditEvent.objects.filter(action="item-key").latest("seq")
    assert event.before == {"key": item.key} and event.after["key"] == "backups-verified"

    # Once a runbook has started on the version its keys are fixed.
    actions.start_runbook(users["lead"], template, "started")
    assert client.post(url, {"key": "another"}, content_type="application/json").status_code == 409
    assert Item.objects.get(pk=item.pk).key == "backups-verified"
    assert client.get(url).status_code == 405  # a GET never writes
