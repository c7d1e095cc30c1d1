"""Stable keys: how code and bindings find an item or a phase of a checklist version, whatever
its words say.

An item's `key` is a slug, unique within its template version (blank allowed); a phase's `key`
likewise. The importer sets them for the checklists it knows: a `bindings/*-keys.json` file whose
`template_title_contains` matches the title gives each known phase's key by its title and each
known item's key by its text (and group, where the text repeats). That file is the only place the
seed's words stand for an item: the bindings files, the job handlers, the success criteria and
the rollback triggers all use keys. A lead changes an item's key with `actions.set_item_key`
until the first runbook starts on the version.

Rollback plans and success criteria open with a gated phase; which one is stored on the phase
(`Phase.opens_with`), set at import from the checklist's shape (a rollback plan opens with the
second gated phase, success criteria with the third, a shorter checklist with its last) and again
when a lead changes gating.
"""
import json
import re
from pathlib import Path

from .models import Item, Phase

KEYS_DIR = Path(__file__).resolve().parent / "bindings"
KEY_MAX = 100
_KEY = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
# The gated phase (by its place among the gated ones) a rollback plan or success criteria open
# with, unless the checklist has fewer gated phases (then its last).
OPENS_WITH_GATED = {Phase.ROLLBACK: 1, Phase.SUCCESS: 2}


def key_problem(key):
    """Why `key` cannot be an item key, or '' when it can ('' itself is allowed: no key)."""
    if not isinstance(key, str):
        return "key: a slug of lower-case letters, digits, '-' and '_'."
    if key == "":
        return ""
    if len(key) > KEY_MAX:
        return f"key: at most {KEY_MAX} characters."
    if not _KEY.fullmatch(key):
        return "key: a slug of lower-case letters, digits, '-' and '_' (like 'backup-verified')."
    return ""


def known_keys(title):
    """The keys files that apply to a template of this title (their parsed data)."""
    found = []
    for path in sorted(KEYS_DIR.glob("*-keys.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("template_title_contains", "\0") in title:
            found.append(data)
    return found


def assign_known_keys(template):
    """Set the phase and item keys of a freshly imported version from the keys files that know
    its title; returns how many items got a key."""
    made = 0
    for data in known_keys(template.title):
        by_title = data.get("phases", {})
        for phase in template.phases.all():
            if phase.title in by_title and not phase.key:
                phase.key = by_title[phase.title]
                phase.save(update_fields=["key"])
        wanted = {(e.get("group"), e["text"]): e["key"] for e in data.get("items", [])}
        changed = []
        for item in Item.objects.filter(group__phase__template=template).select_related("group"):
            key = wanted.get((item.group.title, item.text)) or wanted.get((None, item.text))
            if key and not item.key:
                item.key = key
                changed.append(item)
        Item.objects.bulk_update(changed, ["key"])
        made += len(changed)
    return made


def settle_openers(template):
    """Store which gated phase opens each rollback plan and success criteria of the version."""
    phases = list(template.phases.order_by("order"))
    gated = [p for p in phases if p.kind == Phase.GATED]
    for phase in phases:
        place = OPENS_WITH_GATED.get(phase.kind)
        opener = gated[min(place, len(gated) - 1)] if place is not None and gated else None
        if phase.opens_with_id != (opener.pk if opener else None):
            phase.opens_with = opener
            phase.save(update_fields=["opens_with"])


def items_with_keys(template_id, keys):
    """key -> Item of one template version, for the keys asked."""
    return {i.key: i for i in Item.objects.filter(group__phase__template_id=template_id,
                                                  key__in=list(keys))}
