import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from checklist.models import ChecklistTemplate, ContactField, Item, Phase

from tests.conftest import SEED, require_shared

pytestmark = pytest.mark.django_db

EXPECTED = [
    ("Pre-Deployment Phase", "gated", 7, 32),
    ("Migration Phase", "gated", 6, 26),
    ("Deployment Phase", "gated", 6, 26),
    ("Post-Deployment Phase", "gated", 7, 28),
    ("Rollback Plan", "rollback", 3, 12),
    ("Success Criteria", "success", 3, 12),
]


def _import(capsys, *args):
    call_command("import_checklist", *args, "--json")
    return json.loads(capsys.readouterr().out)


def test_seed_imports_the_exact_structure(capsys):
    require_shared()
    result = _import(capsys, str(SEED))
    assert [(p["title"], p["kind"], p["groups"], p["items"]) for p in result["phases"]] == EXPECTED
    assert result["items"] == 136 and result["contacts"] == 7
    tpl = ChecklistTemplate.objects.get(pk=result["id"])
    assert Item.objects.filter(group__phase__template=tpl).count() == 136
    assert sum(p.groups.count() for p in Phase.objects.filter(template=tpl)) == 32
    assert tpl.source_text == SEED.read_text(encoding="utf-8")
    assert len(tpl.sha256) == 64
    assert Item.objects.filter(text="`assess_databases.py` executed and report reviewed").exists()
    assert list(ContactField.objects.filter(template=tpl).values_list("label", flat=True))[:2] == [
        "Primary Contact", "Backup Contact"]
    assert "🚀" in tpl.title
    assert any("IMPORTANT" in g["markdown"] for g in tpl.guidance)
    assert any("Next Steps" in g["title"] for g in tpl.guidance)


def test_same_text_twice_is_one_version_and_changed_text_a_new_one(capsys, tmp_path):
    require_shared()
    first = _import(capsys, str(SEED), "--name", "MINGUS")
    again = _import(capsys, str(SEED), "--name", "MINGUS")
    assert again["id"] == first["id"] and not again["created"] and first["version"] == 1
    changed = tmp_path / "changed.md"
    changed.write_text(SEED.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    second = _import(capsys, str(changed), "--name", "MINGUS")
    assert second["created"] and second["version"] == 2
    assert ChecklistTemplate.objects.filter(name="MINGUS").count() == 2


def test_broken_markdown_is_a_clear_error_naming_the_line(tmp_path):
    bad = tmp_path / "bad.md"
    bad.write_text("# Title\n\n## Phase\n\n- [ ] **G**\n  - [ ] a\n    - [ ] too deep\n",
                   encoding="utf-8")
    with pytest.raises(CommandError) as exc:
        call_command("import_checklist", str(bad))
    assert "line" in str(exc.value) and str(bad) in str(exc.value)
    assert exc.value.returncode == 2
    assert ChecklistTemplate.objects.count() == 0


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError) as exc:
        call_command("import_checklist", str(tmp_path / "nope.md"))
    assert "nope.md" in str(exc.value)
