"""Checklists written the ways teams write them import with exact phases, groups, items and
gating, through `import_checklist` and through a lead's upload form; the seed still imports as
before (136 items, 32 groups)."""
import html
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from checklist import actions
from checklist.audit import AuditEvent
from checklist.models import ChecklistTemplate, Phase, Runbook

from tests.conftest import SEED, require_shared

pytestmark = pytest.mark.django_db

CHECKLISTS = Path(__file__).resolve().parent / "checklists"

# name -> [(phase, kind, [(group, section, items)])], notes (lines of '[x]' items)
EXPECTED = {
    "release": ([
        ("Preparation", "gated", [("Code", "", 3), ("Infrastructure", "", 2)]),
        ("Release", "gated", [("Deploy", "", 2), ("Verify", "", 3)]),
        ("Rollback", "rollback", [("If something breaks", "", 2)]),
        ("Success Criteria", "success", [("Success Criteria", "", 2)]),
    ], []),
    "flat": ([
        ("Friday hotfix tasks", "gated", [("Friday hotfix tasks", "", 5)]),
    ], [9]),
    "numbered": ([
        ("Pre-flight", "gated", [("Pre-flight", "", 3)]),
        ("Upgrade", "gated", [("Upgrade", "", 4)]),
        ("Verify", "gated", [("Checks", "", 2)]),
        ("Monitoring", "open", [("Monitoring", "", 1)]),
    ], []),
    "mixed": ([
        ("Before", "gated", [("General", "", 2), ("Database", "Backups", 2),
                             ("Files", "Backups", 1), ("Access", "", 1)]),
        ("During", "gated", [("During", "", 2)]),
        ("Post-release checks", "open", [("Post-release checks", "", 2)]),
        ("Rollback Plan", "rollback", [("Triggers", "", 1), ("Steps", "", 1)]),
    ], [14]),
}
COUNTS = {"release": (4, 6, 14), "flat": (1, 1, 5), "numbered": (4, 4, 10), "mixed": (4, 8, 12)}


def _text(response):
    return html.unescape(response.content.decode())


def _structure(template):
    return [(p.title, p.kind, [(g.title, g.section, g.items.count()) for g in p.groups.all()])
            for p in template.phases.order_by("order")]


def _counts(template):
    phases = list(template.phases.all())
    groups = sum(p.groups.count() for p in phases)
    items = sum(g.items.count() for p in phases for g in p.groups.all())
    return len(phases), groups, items


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_shape_imports_exactly_through_the_command(name, capsys):
    call_command("import_checklist", str(CHECKLISTS / f"{name}.md"), "--json")
    result = json.loads(capsys.readouterr().out)
    template = ChecklistTemplate.objects.get(pk=result["id"])
    structure, ticked_lines = EXPECTED[name]
    assert _structure(template) == structure
    assert _counts(template) == COUNTS[name]
    assert [p["gated"] for p in result["phases"]] == [p[1] == "gated" for p in structure]
    assert all(p["why"] for p in result["phases"])
    assert [n["line"] for n in result["notes"]] == ticked_lines
    assert all("imported unticked" in n["message"] for n in result["notes"])


def test_the_report_says_which_phases_are_gated_and_why(capsys):
    call_command("import_checklist", str(CHECKLISTS / "mixed.md"))
    out = capsys.readouterr().out
    assert "Before (gated): 4 groups, 6 items; gated: phases are gated in order" in out
    assert "Post-release checks (open): 1 groups, 2 items; not gated: the heading says '(not gated)'" in out
    assert "Rollback Plan (rollback): 2 groups, 2 items; not gated: a rollback section" in out
    assert "note, line 14: 'Backup copied off-site' was ticked ([x])" in out


def test_mixed_text_joins_lines_and_drops_comments():
    template, _ = actions.import_template((CHECKLISTS / "mixed.md").read_bytes())
    texts = list(template.phases.get(title="During").groups.get().items.values_list("text", flat=True))
    assert texts == ["Migration executed on the primary, then the replica",
                     "Feature flag `payments_v2` enabled"]
    assert "comment" not in json.dumps(template.guidance)
    assert template.subtitle == "Payments service, spring release"
    assert {"title": "During", "markdown": "Keep the status page updated while this phase runs."} \
        in template.guidance


def test_the_seed_still_imports_136_items_in_32_groups_with_the_same_gating():
    require_shared()
    template, _ = actions.import_template(SEED.read_bytes(), name="MINGUS")
    assert _counts(template) == (6, 32, 136)
    assert [p.kind for p in template.phases.order_by("order")] == [
        "gated", "gated", "gated", "gated", "rollback", "success"]
    assert "🚀" in template.title and template.import_notes == []


def test_an_open_phase_is_never_locked(users):
    from checklist import rules

    template, _ = actions.import_template((CHECKLISTS / "numbered.md").read_bytes())
    runbook = actions.start_runbook(users["lead"], template, "upgrade")
    facts = rules.RunbookFacts.load(runbook)
    states = {p.title: facts.status(p).state for p in facts.phases}
    assert states == {"Pre-flight": "open", "Upgrade": "locked", "Verify": "locked",
                      "Monitoring": "open"}


# --- The upload form -------------------------------------------------------------------------


def _upload(client, name, data, **extra):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post("/templates/import/", {"file": SimpleUploadedFile(name, data), **extra})


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_lead_uploads_each_shape(client, users, name):
    client.force_login(users["lead"])
    response = _upload(client, f"{name}.md", (CHECKLISTS / f"{name}.md").read_bytes())
    assert response.status_code == 302
    template = ChecklistTemplate.objects.get()
    assert response["Location"] == f"/templates/{template.pk}/?imported=1"
    assert _structure(template) == EXPECTED[name][0] and _counts(template) == COUNTS[name]
    assert template.imported_by == users["lead"]
    page = client.get(response["Location"])
    assert page.status_code == 200
    for title, kind, _groups in EXPECTED[name][0]:
        assert title in _text(page)


@pytest.mark.parametrize("role", ["member", "auditor", "nobody"])
def test_only_leads_upload(client, users, role):
    client.force_login(users[role])
    response = _upload(client, "flat.md", (CHECKLISTS / "flat.md").read_bytes())
    assert response.status_code == 403
    assert ChecklistTemplate.objects.count() == 0
    if role != "nobody":
        assert AuditEvent.objects.filter(action="denied", actor=users[role]).exists()


@pytest.mark.parametrize(("data", "fragment"), [
    (b"# T\n\n## P\n\n- [ ] caf\xe9\n", "line 5: not valid UTF-8 (byte 0xe9)"),
    (b"# T\n\n## P\n\n- [ ] a\x00\n", "line 5: contains a NUL byte"),
    (b"# T\n\n## P\n\n- [ ] " + b"x" * 600 + b"\n", "line 5: item text is 600 characters long"),
    (b"just prose\n", "line 1: the checklist must start with a '# ' title"),
    (b"   \n", "choose a Markdown file"),
])
def test_hostile_uploads_are_400_with_a_message(client, users, data, fragment):
    client.force_login(users["lead"])
    response = _upload(client, "bad.md", data)
    assert response.status_code == 400
    assert fragment in _text(response)
    assert ChecklistTemplate.objects.count() == 0


def test_an_upload_over_the_size_limit_is_400(client, users, settings):
    settings.CHECKLIST_MAX_BYTES = 100
    client.force_login(users["lead"])
    response = _upload(client, "big.md", b"# T\n\n## P\n\n" + b"- [ ] item\n" * 20)
    assert response.status_code == 400
    assert "more than the 100 allowed" in _text(response)
    response = client.post("/templates/import/", {"text": "# T\n" + "x" * 200})
    assert response.status_code == 400 and ChecklistTemplate.objects.count() == 0


def test_pasted_text_imports_too(client, users):
    client.force_login(users["lead"])
    text = (CHECKLISTS / "release.md").read_text(encoding="utf-8")
    response = client.post("/templates/import/", {"text": text, "name": "Acme"})
    assert response.status_code == 302
    assert ChecklistTemplate.objects.get().name == "Acme"


# --- Changing the gating before the first runbook ---------------------------------------------


def test_a_lead_changes_gating_until_a_runbook_starts(client, users):
    template, _ = actions.import_template((CHECKLISTS / "numbered.md").read_bytes())
    monitoring = template.phases.get(title="Monitoring")
    url = f"/templates/{template.pk}/phases/{monitoring.pk}/gating/"
    client.force_login(users["member"])
    assert client.post(url, {"kind": "gated"}).status_code == 403
    client.force_login(users["lead"])
    assert client.post(url, {"kind": "nonsense"}).status_code == 400
    assert client.post(url, {"kind": "gated"}).status_code == 302
    monitoring.refresh_from_db()
    assert monitoring.kind == "gated" and monitoring.gating_reason == "set by lead, a lead"
    event = AuditEvent.objects.filter(action="phase-gating").get()
    assert event.before["kind"] == "open" and event.after["kind"] == "gated"
    actions.start_runbook(users["lead"], template, "first")
    response = client.post(url, {"kind": "open"})
    assert response.status_code == 409 and "has started on it" in _text(response)
    monitoring.refresh_from_db()
    assert monitoring.kind == "gated"


def test_the_last_gated_phase_stays_gated(client, users):
    template, _ = actions.import_template((CHECKLISTS / "flat.md").read_bytes())
    phase = template.phases.get()
    client.force_login(users["lead"])
    response = client.post(f"/templates/{template.pk}/phases/{phase.pk}/gating/", {"kind": "open"})
    assert response.status_code == 409
    assert Phase.objects.get(pk=phase.pk).kind == "gated"


def test_template_pages_are_for_readers(client, users):
    template, _ = actions.import_template((CHECKLISTS / "release.md").read_bytes())
    client.force_login(users["nobody"])
    assert client.get(f"/templates/{template.pk}/").status_code == 403
    client.force_login(users["auditor"])
    page = _text(client.get(f"/templates/{template.pk}/"))
    assert "Gated, in order" in page and "Not gated (rollback plan)" in page
    assert "Change</button>" not in page
    assert "Import a checklist" not in _text(client.get("/templates/"))
    assert Runbook.objects.count() == 0
