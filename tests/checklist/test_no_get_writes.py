"""A GET writes nothing: every GET route from the URL resolver, with real ids of a seeded runbook,
as lead, member, auditor, admin and anonymous, leaves every table (and the audit head) and the
evidence, work and digest files as they were. The one recorded read is an export: who exported
what is itself audited (one 'export' event, and the digest an evidence pack is signed with)."""
import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib import admin
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from checklist import actions, jobs
from checklist.models import AuditEvent, ContactField, Evidence, ItemState, Phase, TaskRun
from checklist.job_context import JobContext, JobResult
from checklist.runner import finish
from deploychecks.models import RunbookCheckSettings

from .factories import sign_off_through

pytestmark = pytest.mark.django_db

# Reads that are recorded on purpose (the export is the audited act).
EXPORTS = {"history-csv", "history-json", "evidence-pack"}


def table_fingerprint():
    """Every table's row count and a digest of its rows: any insert, update or delete shows."""
    out = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names()):
            cursor.execute(f'SELECT count(*), md5(coalesce(string_agg(t::text, \'|\' ORDER BY '
                           f't::text), \'\')) FROM "{table}" t')
            out[table] = cursor.fetchone()
    return out


def file_fingerprint(runbook_id):
    """The runbook's evidence and work files and the audit digests (other tests' runbooks keep
    their files beside these, so only this runbook's folders are compared)."""
    found = {}
    for root in (Path(settings.MEDIA_ROOT) / "evidence" / f"runbook-{runbook_id}",
                 Path(settings.JOB_WORKDIR) / f"runbook-{runbook_id}", settings.AUDIT_DIGEST_DIR):
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = Path(dirpath) / name
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def seeded(runbook, users, tmp_path):
    """A runbook with a signed-off phase, notes, a finished run with evidence, a running run that
    stopped beating (a GET must not mark it lost) and no saved check settings."""
    sign_off_through(runbook, 1, users["member"], users["lead"])
    states = ItemState.objects.filter(runbook=runbook).order_by(
        "item__group__phase__order", "item__group__order", "item__order")
    state = states.filter(checked=False, not_applicable=False,
                          item__job_bindings__isnull=True).last()
    for candidate in states.filter(checked=False, item__job_bindings__isnull=True):
        try:
            actions.add_note(users["member"], candidate, "a note")
            state = candidate
            break
        except actions.Refused:
            continue
    done = TaskRun.objects.create(runbook=runbook, kind="assess", started_by=users["member"],
                                  state=TaskRun.RUNNING)
    finish(done, JobContext(done, {}), JobResult(ok=True, summary="ok", report={"ok": True},
                                                 figures={"rows": 3}), TaskRun.SUCCEEDED)
    stale = TaskRun.objects.create(runbook=runbook, kind="backup", started_by=users["member"],
                                   state=TaskRun.RUNNING, worker="gone@host",
                                   heartbeat_at=timezone.now() - timedelta(hours=1))
    stale.items.set(jobs.items_for(runbook, "backup"))
    assert not RunbookCheckSettings.objects.exists()
    return {"runbook": runbook, "state": state, "run": done, "stale": stale,
            "evidence": Evidence.objects.filter(run=done).first(),
            "phase": Phase.objects.filter(template=runbook.template).order_by("order").first(),
            "field": ContactField.objects.filter(template=runbook.template).first()}


def _patterns(resolvers, prefix=""):
    for entry in resolvers:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue  # the admin's routes are walked model by model below
            yield from _patterns(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and entry.name:
            yield entry


def get_routes(seeded):
    fill = {"runbook_id": seeded["runbook"].pk, "state_id": seeded["state"].pk,
            "phase_id": seeded["phase"].pk, "evidence_id": seeded["evidence"].pk,
            "run_id": seeded["run"].pk, "kind": "backup",
            "field_id": seeded["field"].pk if seeded["field"] else 1,
            "template_id": seeded["runbook"].template_id, "item_id": seeded["state"].item_id}
    routes = {}
    for pattern in _patterns(get_resolver().url_patterns):
        names = pattern.pattern.converters.keys()
        routes[pattern.name] = reverse(pattern.name, kwargs={k: fill[k] for k in names})
    routes["run-detail-stale"] = reverse("run-detail", args=[seeded["runbook"].pk,
                                                             seeded["stale"].pk])
    routes["item-detail-stale"] = reverse("item-detail", args=[seeded["runbook"].pk,
                                                               seeded["state"].pk])
    routes["admin-index"] = reverse("admin:index")
    for model in admin.site._registry:
        meta = model._meta
        routes[f"admin-{meta.label}"] = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        obj = model.objects.order_by("pk").first()
        if obj is not None:
            routes[f"admin-{meta.label}-change"] = reverse(
                f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    return routes


def test_the_walk_covers_every_named_route(seeded):
    routes = get_routes(seeded)
    for name in ("runbook", "runbook-poll", "item-detail", "run-detail", "history", "go-live",
                 "api-runbook", "check-settings", "success-criteria", "monitoring",
                 "trigger-banner", "evidence-download", "healthz", "login", "runbook-list",
                 "template-list", "template-detail", "item-binding", "phase-gating"):
        assert name in routes, name
    assert any(name.startswith("admin-") and name.endswith("-change") for name in routes)


@pytest.mark.parametrize("role", ["lead", "member", "auditor", "admin", "anonymous"])
def test_no_get_route_writes(client, users, seeded, role):
    if role != "anonymous":
        client.force_login(users[role])
    routes = get_routes(seeded)
    tables, files = table_fingerprint(), file_fingerprint(seeded["runbook"].pk)
    for name, url in sorted(routes.items()):
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.get(url, **headers)
            assert response.status_code < 500, (name, url, response.status_code)
            if name in EXPORTS:  # audited on purpose (test below): start the comparison anew
                tables, files = table_fingerprint(), file_fingerprint(seeded["runbook"].pk)
                continue
            after = table_fingerprint()
            changed = [t for t in after if after[t] != tables.get(t)]
            if response.status_code == 403 and changed == ["checklist_auditevent"]:
                # A refused read is on the record (a 'denied' event), and that is all it writes.
                assert set(AuditEvent.objects.order_by("-seq")[:after[changed[0]][0]
                                                               - tables[changed[0]][0]]
                           .values_list("action", flat=True)) == {"denied"}, (name, role)
                tables, changed = after, []
            assert not changed, f"GET {url} ({name}) as {role} wrote to {changed}"
            now = file_fingerprint(seeded["runbook"].pk)
            assert now == files, (f"GET {url} ({name}) as {role} wrote a file: "
                                  f"{sorted(set(now.items()) ^ set(files.items()))}")
    # The stale run is shown as stale, never marked lost by a read.
    seeded["stale"].refresh_from_db()
    assert seeded["stale"].state == TaskRun.RUNNING and seeded["stale"].stale
    assert not RunbookCheckSettings.objects.exists()


def test_an_export_records_only_its_own_audit_event(client, users, seeded):
    client.force_login(users["auditor"])
    before = AuditEvent.objects.count()
    tables = table_fingerprint()
    assert client.get(reverse("history-csv", args=[seeded["runbook"].pk])).status_code == 200
    after = table_fingerprint()
    assert [t for t in after if after[t] != tables[t]] == ["checklist_auditevent"]
    assert AuditEvent.objects.count() == before + 1


def test_api_shows_a_silent_run_as_stale_without_marking_it_lost(client, users, seeded):
    client.force_login(users["member"])
    data = client.get(reverse("api-runbook", args=[seeded["runbook"].pk])).json()
    runs = [r for i in (i for p in data["phases"] for g in p["groups"] for i in g["items"])
            for r in i.get("runs", [])]
    stale = [r for r in runs if r["id"] == seeded["stale"].pk]
    assert stale and all(r["stale"] and r["state"] == "running" for r in stale)


def test_the_run_page_shows_a_silent_run_as_stale(client, users, seeded):
    client.force_login(users["member"])
    page = client.get(reverse("run-detail", args=[seeded["runbook"].pk, seeded["stale"].pk]))
    assert "stale (no heartbeat)" in page.content.decode()
    seeded["stale"].refresh_from_db()
    assert seeded["stale"].state == TaskRun.RUNNING
