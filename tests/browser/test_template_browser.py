"""A team's own checklist in a real browser: a lead imports it, binds an item to the backup job
with one click on a suggestion, starts a runbook, and a member's run on a real worker earns the
item with evidence."""
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from checklist import actions
from checklist.models import ChecklistTemplate, ItemState, JobBinding, Runbook, TaskRun
from migration.hashing import file_sha256
from tests.conftest import FIXTURES

from .conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RELEASE = Path(__file__).resolve().parents[1] / "checklist" / "checklists" / "release.md"
ITEM = "Database backup taken"


def test_a_lead_binds_an_imported_item_to_backup_and_a_run_earns_it(new_page, users, worker,
                                                                     tmp_path, settings):
    lead = log_in(new_page(), "lead")
    lead.goto("/templates/")
    lead.get_by_label("Markdown file").set_input_files(str(RELEASE))
    lead.get_by_role("button", name="Import").click()
    expect(lead.locator("h1")).to_have_text("Acme Web Release Checklist")
    expect(lead.locator("#template-phases")).to_contain_text("Not gated (rollback plan)")
    template = ChecklistTemplate.objects.get()

    lead.get_by_role("button", name=f"Bind to backup? ({ITEM})").click()
    row = lead.locator(f"#titem-{template.phases.get(order=0).groups.get(title='Infrastructure').items.get(text=ITEM).pk}")
    expect(row).to_contain_text("⚙ backup")
    binding = JobBinding.objects.get()
    assert (binding.kind, binding.item.text) == ("backup", ITEM)
    screenshot(lead, "template-bound")

    lead.goto("/")
    lead.get_by_label("Template").select_option(label=f"{template.name} v1")
    lead.get_by_label("Name").fill("Acme release 1")
    lead.get_by_role("button", name="Start runbook").click()
    lead.wait_for_url(re.compile(r"/runbooks/\d+/$"))
    runbook = Runbook.objects.get()
    shutil.copyfile(FIXTURES / "alerts.db", tmp_path / "alerts.db")
    actions.set_sources(users["lead"], runbook, {"alerts": str(tmp_path / "alerts.db")})

    member = log_in(new_page(), "member")
    member.goto(f"/runbooks/{runbook.pk}/")
    state = ItemState.objects.get(runbook=runbook, item__text=ITEM)
    row = member.locator(f"#item-{state.pk}")
    # The item names its job and links to the job's panel in the phase, where it is run.
    job = member.locator(row.locator("a.job-link").get_attribute("href"))
    job.get_by_role("button", name=re.compile(r"^Run: Back up")).click()
    expect(row.locator(".tick-earned")).to_have_text("Earned", timeout=60_000)

    state.refresh_from_db()
    run = TaskRun.objects.get(runbook=runbook, kind="backup")
    assert run.state == TaskRun.SUCCEEDED and state.checked and state.earned_run == run
    files = [e for e in run.evidence.all() if e.path]
    assert files
    for evidence in files:
        assert file_sha256(settings.MEDIA_ROOT / evidence.path) == evidence.sha256
