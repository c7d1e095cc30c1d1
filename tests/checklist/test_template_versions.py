"""Versions of a checklist: an edited file is a new version, the template page shows what changed
(added, removed, reworded, moved), and `export_checklist` writes Markdown that re-imports to the
same phases, groups, items and gating."""
import html
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from checklist import actions
from checklist.models import ChecklistTemplate, Item
from checklist.template_diff import diff_templates

from tests.conftest import SEED, require_shared

pytestmark = pytest.mark.django_db

CHECKLISTS = Path(__file__).resolve().parent / "checklists"


def _shape(template):
    return [(p.title, p.kind, [(g.title, g.section, list(g.items.values_list("text", flat=True)))
                               for g in p.groups.all()])
            for p in template.phases.order_by("order")]


def _export(template_id, capsys):
    call_command("export_checklist", str(template_id))
    return capsys.readouterr().out


@pytest.mark.parametrize("name", ["release", "flat", "numbered", "mixed", "seed"])
def test_an_export_reimports_to_the_same_version(name, capsys):
    if name == "seed":
        require_shared()
    source = SEED if name == "seed" else CHECKLISTS / f"{name}.md"
    template, _ = actions.import_template(source.read_bytes(), name=name)
    exported = _export(template.pk, capsys)
    again, created = actions.import_template(exported.encode(), name=f"{name} again")
    assert created
    assert _shape(again) == _shape(template)
    assert (again.title, again.subtitle) == (template.title, template.subtitle)
    assert list(again.contact_fields.values_list("section", "label", "placeholder")) == list(
        template.contact_fields.values_list("section", "label", "placeholder"))
    # The prose kept as guidance, the metadata and the computed sections come back too.
    def guidance(t):
        return sorted((g["title"], g["markdown"].strip()) for g in t.guidance)
    assert guidance(again) == guidance(template)
    assert again.metadata == template.metadata
    assert again.computed_sections == template.computed_sections
    assert [i.if_applicable for i in Item.objects.filter(group__phase__template=again).order_by(
        "group__phase__order", "group__order", "order")] == [
        i.if_applicable for i in Item.objects.filter(group__phase__template=template).order_by(
            "group__phase__order", "group__order", "order")]


def test_an_export_keeps_a_leads_gating(capsys, users):
    template, _ = actions.import_template((CHECKLISTS / "numbered.md").read_bytes())
    actions.set_phase_gating(users["lead"], template.phases.get(title="Monitoring"), "gated")
    actions.set_phase_gating(users["lead"], template.phases.get(title="Verify"), "success")
    exported = _export(template.pk, capsys)
    assert "## Monitoring (gated)" in exported and "## Verify (success criteria)" in exported
    again, _ = actions.import_template(exported.encode(), name="again")
    assert _shape(again) == _shape(template)


def test_export_of_an_unknown_template_is_exit_2():
    with pytest.raises(CommandError) as exc:
        call_command("export_checklist", "999999")
    assert exc.value.returncode == 2 and "No template with id 999999" in str(exc.value)


EDITED = """# Acme Web Release Checklist

## Preparation

### Code
- [ ] Release branch cut from `main`
- [ ] Changelog updated and reviewed
- [ ] Database backup taken

### Infrastructure
- [ ] Staging environment matches production
- [ ] Feature flags listed

## Release

### Deploy
- [ ] Migrations executed on production
- [ ] Application deployed to all nodes

### Verify
- [ ] Health check endpoint returns 200
- [ ] TLS certificate valid for 30 more days
- [ ] Smoke tests pass

## Rollback

### If something breaks
- [ ] Previous release redeployed
- [ ] Database restored from backup

## Success Criteria

- [ ] Error rate below 1% for one hour
- [ ] No customer-facing incidents
"""


def _two_versions(tmp_path, capsys):
    call_command("import_checklist", str(CHECKLISTS / "release.md"), "--name", "Acme")
    edited = tmp_path / "release.md"
    edited.write_text(EDITED, encoding="utf-8")
    call_command("import_checklist", str(edited), "--name", "Acme")
    capsys.readouterr()
    return (ChecklistTemplate.objects.get(name="Acme", version=1),
            ChecklistTemplate.objects.get(name="Acme", version=2))


def test_an_edited_file_is_a_new_version_and_the_diff_names_each_change(tmp_path, capsys):
    v1, v2 = _two_versions(tmp_path, capsys)
    diff = diff_templates(v1, v2)
    assert diff.added == [("Preparation › Infrastructure", "Feature flags listed")]
    assert diff.removed == [("Preparation › Code", "Version bumped in `pyproject.toml`")]
    assert diff.reworded == [("Preparation › Code", "Changelog updated",
                              "Changelog updated and reviewed")]
    assert diff.moved == [("Database backup taken", "Preparation › Infrastructure",
                           "Preparation › Code")]


def test_the_template_page_shows_the_diff_with_the_previous_version(tmp_path, capsys, client, users):
    v1, v2 = _two_versions(tmp_path, capsys)
    client.force_login(users["auditor"])
    page = html.unescape(client.get(f"/templates/{v2.pk}/").content.decode())
    assert "Changes from v1" in page
    for text in ("Feature flags listed", "Version bumped in `pyproject.toml`",
                 "Changelog updated and reviewed", "Database backup taken"):
        assert text in page
    assert "Changes from" not in client.get(f"/templates/{v1.pk}/").content.decode()
    page = html.unescape(client.get(f"/templates/{v1.pk}/?against={v2.pk}").content.decode())
    assert "Changes from v2" in page
    assert client.get(f"/templates/{v2.pk}/?against=99999999999999999999").status_code == 200
