"""A template version written back as Markdown that imports to the same phases, groups, items
and gating (``manage.py export_checklist ID``).

The shape written is one the importer reads without guessing: groups with a section as
``- [ ] **Group**`` lists under a ``### Section`` heading (the seed's shape), groups without one
as ``### Group`` headings over their items, and a gating marker on any phase heading whose title
alone would be read with another gating ("## Monitoring (gated)").

Guidance (the prose the importer kept) goes back where the importer finds it again: a phase's
notes under its heading, a one-block note whose title its own first bold words give in the
preamble, any other under a ``## Title`` section of its own; computed sections keep their heading.
"""
from .importer import GATED, ROLLBACK, SUCCESS, gating_of, loose_note_title

_MARKERS = {GATED: "gated", ROLLBACK: "rollback", SUCCESS: "success criteria", "open": "not gated"}


def export_markdown(template):
    lines = [f"# {template.title or template.name}"]
    if template.subtitle:
        lines.append(f"## {template.subtitle}")
    lines += [f"### **{key}**: {value}" for key, value in (template.metadata or {}).items()]
    phases = list(template.phases.order_by("order").prefetch_related("groups__items"))
    titles = {phase.title for phase in phases}
    notes, sections = {}, []
    for entry in template.guidance or []:
        title, markdown = entry.get("title", ""), entry.get("markdown", "").strip("\n")
        if title in titles:
            notes.setdefault(title, []).append(markdown)
        elif "\n\n" not in markdown and loose_note_title(markdown) == title:
            lines += ["", markdown]
        else:
            sections.append((title, markdown))
    for phase in phases:
        heading = phase.title
        if gating_of(heading)[0] != phase.kind:
            heading = f"{heading} ({_MARKERS[phase.kind]})"
        lines += ["", f"## {heading}"]
        for markdown in notes.get(phase.title, []):
            lines += ["", markdown]
        open_heading = None  # the '###' heading the next bold group would fall under
        for group in phase.groups.order_by("order"):
            items = [item.text for item in group.items.order_by("order")]
            if group.section or open_heading is None:
                if group.section and group.section != open_heading:
                    lines += ["", f"### {group.section}"]
                    open_heading = group.section
                lines += ["", f"- [ ] **{group.title}**", *[f"  - [ ] {text}" for text in items]]
            else:
                # A heading of its own: under the section heading above, a bold group would
                # take that section.
                lines += ["", f"### {group.title}", *[f"- [ ] {text}" for text in items]]
                open_heading = ""
    for title, markdown in sections:
        lines += ["", f"## {title}", "", markdown]
    for title in template.computed_sections or []:
        lines += ["", f"## {title}"]
    contacts = list(template.contact_fields.order_by("order"))
    if contacts:
        lines += ["", "## Emergency Contacts"]
        section = None
        for contact in contacts:
            if contact.section != section and contact.section:
                lines += ["", f"### {contact.section}"]
            section = contact.section
            lines.append(f"- [ ] **{contact.label}**: {contact.placeholder}")
    return "\n".join(lines) + "\n"
