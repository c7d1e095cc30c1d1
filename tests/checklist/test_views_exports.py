"""History exports, the evidence pack, and evidence downloads with their sha256 re-check."""
import csv
import hashlib
import io
import json
import zipfile

import pytest
from django.urls import reverse

from checklist import actions
from checklist.models import AuditEvent, Evidence, TaskRun

from .factories import gated, hand_states, states_of

pytestmark = pytest.mark.django_db


def login(client, user):
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_quoted(client, users, template):
    md = '# =1+2\n\n## =SUM(1)\n\n- [ ] =HYPERLINK("http://e")\n- [ ] -2 rows, @home\n'
    tpl, _ = actions.import_template(md.encode(), name="formulas")
    book = actions.start_runbook(users["lead"], tpl, "formulas")
    for st in states_of(book, gated(book)[0]):
        actions.tick(users["member"], st)
    response = login(client, users["auditor"]).get(reverse("history-csv", args=[book.pk]),
                                                   {"action": "tick"})
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    cells = [value for row in rows for value in row.values()]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")], cells
    assert "'=HYPERLINK(\"http://e\")" in cells and "'-2 rows, @home" in cells
    # The JSON export keeps every value exactly.
    events = json.loads(client.get(reverse("history-json", args=[book.pk])).content)["events"]
    assert any(e.get("item") == '=HYPERLINK("http://e")' for e in events)


@pytest.fixture
def evidence(runbook, users, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    data = b"backup manifest\nmingus.db 0123abcd\n"
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "manifest.txt").write_bytes(data)
    run = TaskRun.objects.create(runbook=runbook, kind="backup", started_by=users["member"],
                                 state=TaskRun.SUCCEEDED, log="line 1\nline 2\n")
    run.items.set([hand_states(runbook, gated(runbook)[0])[0].item])
    return Evidence.objects.create(run=run, name="manifest", kind="artifact",
                                   path="runs/manifest.txt", size=len(data),
                                   sha256=hashlib.sha256(data).hexdigest())


def test_csv_export_holds_the_filtered_history_and_is_audited(client, users, runbook):
    for st in hand_states(runbook, gated(runbook)[0])[:2]:
        actions.tick(users["member"], st)
    response = login(client, users["auditor"]).get(reverse("history-csv", args=[runbook.pk]),
                                                   {"action": "tick"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["action"] for r in rows] == ["tick", "tick"]
    assert rows[0]["actor"] == "member" and len(rows[0]["hash"]) == 64
    export = AuditEvent.objects.filter(action="export").last()
    assert export.actor_label == "auditor" and export.after["format"] == "csv"


def test_json_export_includes_chain_status(client, users, runbook):
    response = login(client, users["lead"]).get(reverse("history-json", args=[runbook.pk]))
    doc = json.loads(response.content)
    assert doc["chain"]["ok"] is True
    assert doc["events"][0]["action"] == "runbook-start"


def test_member_cannot_export(client, users, runbook):
    response = login(client, users["member"]).get(reverse("history-json", args=[runbook.pk]))
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="denied", after__attempted="export").exists()


def test_evidence_pack_manifest_checksums_match(client, users, runbook, evidence):
    response = login(client, users["auditor"]).get(reverse("evidence-pack", args=[runbook.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    manifest = json.loads(zf.read("manifest.json"))
    names = set(zf.namelist()) - {"manifest.json", "manifest.sig"}  # the signature signs the manifest
    assert {f["name"] for f in manifest["files"]} == names
    for f in manifest["files"]:
        assert hashlib.sha256(zf.read(f["name"])).hexdigest() == f["sha256"]
    assert {"history.json", "history.csv", "report.html", "runbook.json"} <= names
    ev_name = f"evidence/run-{evidence.run_id}/{evidence.pk}-manifest.txt"
    assert zf.read(ev_name) == b"backup manifest\nmingus.db 0123abcd\n"
    assert manifest["evidence"][0]["matches_record"] is True
    report = zf.read("report.html").decode()
    assert "MINGUS production" in report and "<script" not in report and 'src="http' not in report
    history = json.loads(zf.read("history.json"))
    assert history["events"][-1]["action"] == "export"


def test_evidence_download_serves_a_matching_file(client, users, runbook, evidence):
    response = login(client, users["auditor"]).get(
        reverse("evidence-download", args=[runbook.pk, evidence.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"backup manifest")


def test_evidence_download_refuses_a_changed_file(client, users, runbook, evidence, settings):
    (settings.MEDIA_ROOT / evidence.path).write_bytes(b"tampered")
    response = login(client, users["member"]).get(
        reverse("evidence-download", args=[runbook.pk, evidence.pk]))
    assert response.status_code == 409
    assert "no longer matches the checksum" in response.content.decode()
    denied = AuditEvent.objects.filter(action="denied").last()
    assert denied.after["attempted"] == "evidence-download"


def test_evidence_download_refuses_paths_outside_media_root(client, users, runbook, evidence):
    bad = Evidence.objects.create(run=evidence.run, name="escape", kind="artifact",
                                  path="../../etc/passwd", sha256="0" * 64)
    response = login(client, users["member"]).get(
        reverse("evidence-download", args=[runbook.pk, bad.pk]))
    assert response.status_code == 409


def test_item_detail_lists_runs_and_evidence_links(client, users, runbook, evidence):
    st = hand_states(runbook, gated(runbook)[0])[0]
    body = login(client, users["member"]).get(
        reverse("item-detail", args=[runbook.pk, st.pk])).content.decode()
    assert f"Run #{evidence.run_id}" in body
    assert reverse("evidence-download", args=[runbook.pk, evidence.pk]) in body
    assert "line 2" in body
