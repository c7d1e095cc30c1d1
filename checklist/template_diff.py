"""What changed between two versions of a checklist: items added, removed, reworded, moved.

Items are matched by their text: the same text in another group or phase has moved; an item gone
from a group and a new one in the same group that reads much the same (difflib ratio) was
reworded; what is left was added or removed. Plain functions over rows already read.
"""
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from .models import Item

REWORDED_RATIO = 0.6


@dataclass
class TemplateDiff:
    added: list = field(default_factory=list)  # (where, text)
    removed: list = field(default_factory=list)  # (where, text)
    reworded: list = field(default_factory=list)  # (where, old text, new text)
    moved: list = field(default_factory=list)  # (text, old where, new where)

    @property
    def empty(self):
        return not (self.added or self.removed or self.reworded or self.moved)


def _items(template):
    rows = (Item.objects.filter(group__phase__template=template)
            .order_by("group__phase__order", "group__order", "order")
            .values_list("group__phase__title", "group__title", "text"))
    return [(f"{phase} › {group}", text) for phase, group, text in rows]


def diff_templates(old, new):
    """The changes from template version `old` to `new`."""
    before, after = _items(old), _items(new)
    result = TemplateDiff()
    old_where = {}
    for where, text in before:
        old_where.setdefault(text, []).append(where)
    new_where = {}
    for where, text in after:
        new_where.setdefault(text, []).append(where)
    removed = []
    for where, text in before:
        if text not in new_where:
            removed.append((where, text))
        elif where not in new_where[text]:
            result.moved.append((text, where, new_where[text][0]))
    added = [(where, text) for where, text in after if text not in old_where]
    for where, text in removed:
        match = next((a for a in added if a[0] == where and
                      SequenceMatcher(None, text, a[1]).ratio() >= REWORDED_RATIO), None)
        if match is not None:
            added.remove(match)
            result.reworded.append((where, text, match[1]))
        else:
            result.removed.append((where, text))
    result.added = added
    return result
