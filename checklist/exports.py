"""Exports of a runbook's history (CSV, JSON) and its evidence pack (zip).

Exports are reads, so auditors may make them; each one is recorded as an 'export' audit event.
The evidence pack holds a manifest.json with the sha256 of every other file in the zip, signed
(manifest.sig) with the audit key, plus the audit chain up to a digest signed at export and every
earlier digest, so an auditor checks it offline with only the public key (checklist.pack).
"""
import base64
import csv
import hashlib
import io
import json
import tempfile
import zipfile

from django.http import HttpResponseBadRequest, FileResponse, HttpResponse
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_GET

from . import audit, digests, rules
from . import pack as pack_layout
from .api import runbook_document
from .history import chain_status, filtered_events, history_access
from .models import Evidence
from migration.hashing import file_sha256
from .views import _runbook, evidence_file, reader_required

COLUMNS = ["seq", "created_at", "actor", "action", "object_type", "object_id", "phase_id",
           "phase", "item_id", "item", "before", "after", "prev_hash", "hash"]


def event_row(event):
    return {
        "seq": event.seq,
        "created_at": event.created_at.isoformat(),
        "actor": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "phase_id": event.phase_id,
        "phase": event.phase.title if event.phase_id and event.phase else "",
        "item_id": event.item_id,
        "item": event.item.text if event.item_id and event.item else "",
        "before": event.before,
        "after": event.after,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def history_json(runbook, rows, chain):
    return json.dumps({
        "runbook": {"id": runbook.pk, "name": runbook.name},
        "generated_at": timezone.now().isoformat(),
        "chain": chain,
        "events": rows,
    }, indent=2, ensure_ascii=False, default=str)


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...) from an
# imported item's text, say). The CSV is for people and spreadsheets: such a cell is written
# behind a quote mark, as OWASP advises; the JSON export keeps every value exactly.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def history_csv(rows):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()


def _filename(runbook, suffix):
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return f"runbook-{runbook.pk}-{suffix}-{stamp}"


def _record_export(request, runbook, fmt, **extra):
    audit.record("export", actor=request.user, obj=runbook, runbook=runbook,
                 after={"format": fmt, **extra})


def _filters(request):
    return {k: v for k, v in request.GET.items() if k != "page" and v}


def _exported_rows(request, runbook, fmt):
    """The filtered history rows of an export, its audit event recorded; or the refusal."""
    refusal = history_access(request, runbook, "export")
    if refusal:
        return None, refusal
    form, events = filtered_events(request, runbook)
    if form.problem():
        return None, HttpResponseBadRequest(form.problem(), content_type="text/plain")
    rows = [event_row(e) for e in events]
    _record_export(request, runbook, fmt, events=len(rows), filters=_filters(request))
    return rows, None


@require_GET
@reader_required
def history_export_csv(request, runbook_id):
    runbook = _runbook(runbook_id)
    rows, refusal = _exported_rows(request, runbook, "csv")
    if refusal:
        return refusal
    response = HttpResponse(history_csv(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename(runbook, "history")}.csv"'
    return response


@require_GET
@reader_required
def history_export_json(request, runbook_id):
    runbook = _runbook(runbook_id)
    rows, refusal = _exported_rows(request, runbook, "json")
    if refusal:
        return refusal
    response = HttpResponse(history_json(runbook, rows, chain_status()),
                            content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename(runbook, "history")}.json"'
    return response


def build_evidence_pack(runbook, user, fileobj):
    """Write the evidence pack zip of `runbook` into `fileobj`; return the manifest."""
    facts = rules.RunbookFacts.load(runbook)
    document = runbook_document(runbook, facts)
    chain = chain_status()
    # The export event goes in first, so the pack's history includes it, then a digest signed now
    # covers it. Written at once: the export's own event is committed (views run in autocommit).
    event = audit.record("export", actor=user, obj=runbook, runbook=runbook,
                         after={"format": "evidence-pack"})
    digest = json.loads(digests.write("evidence-pack").read_text(encoding="utf-8"))["digest"]
    from .models import AuditEvent

    events = list(AuditEvent.objects.filter(runbook=runbook).select_related("phase", "item")
                  .order_by("seq"))
    rows = [event_row(e) for e in events]
    evidence = list(Evidence.objects.filter(run__runbook=runbook).select_related("run")
                    .order_by("run_id", "pk"))

    files = []
    evidence_entries = []
    with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        def add(name, data):
            if isinstance(data, str):
                data = data.encode("utf-8")
            zf.writestr(name, data)
            files.append({"name": name, "sha256": hashlib.sha256(data).hexdigest(),
                          "size": len(data)})

        add("history.json", history_json(runbook, rows, chain))
        add("history.csv", history_csv(rows))
        add("runbook.json", json.dumps(document, indent=2, ensure_ascii=False))
        for ev in evidence:
            entry = {"evidence_id": ev.pk, "run_id": ev.run_id, "kind": ev.run.kind,
                     "name": ev.name, "recorded_sha256": ev.sha256, "figures": ev.figures,
                     "problem": ""}
            path = evidence_file(ev) if ev.path else None
            if path is None or not path.is_file():
                entry["included"] = False
                entry["problem"] = "no file" if not ev.path else "file missing from storage"
            else:
                name = f"evidence/run-{ev.run_id}/{ev.pk}-{path.name}"
                actual = file_sha256(path)
                zf.write(path, name)
                files.append({"name": name, "sha256": actual, "size": path.stat().st_size})
                entry.update({"included": True, "file": name,
                              "matches_record": actual == ev.sha256})
            evidence_entries.append(entry)
        audit_summary = _add_audit_content(zf, add, files, runbook, digest)
        add("README.txt", pack_layout.README.format(
            runbook=runbook.name, generated_at=timezone.now().isoformat(),
            generated_by=user.get_username(), last_seq=digest["seq"],
            key_id=audit_summary["key_id"]))
        add("report.html", render_to_string("checklist/report.html", {
            "runbook": runbook, "doc": document, "events": events, "chain": chain,
            "evidence": evidence_entries, "generated_at": timezone.now(), "user": user,
        }))
        manifest = {
            "runbook": {"id": runbook.pk, "name": runbook.name,
                        "template": document["template"]},
            "generated_at": timezone.now().isoformat(),
            "generated_by": user.get_username(),
            "export_event": {"seq": event.seq, "hash": event.hash},
            "audit_chain": chain,
            "audit": audit_summary,
            "files": files,
            "evidence": evidence_entries,
        }
        manifest_bytes = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")
        zf.writestr(pack_layout.MANIFEST, manifest_bytes)
        zf.writestr(pack_layout.SIGNATURE,
                    base64.b64encode(digests.signing_key().sign(manifest_bytes)).decode("ascii"))
    return manifest


def _add_audit_content(zf, add, files, runbook, digest):
    """The chain up to the export digest, every digest so far and the public key.

    This runbook's events go in whole; another runbook's (form 2) only as their body hash, which
    keeps the chain checkable without handing out their content. Events hashed in form 1 (before
    request ids were recorded) cannot be cut that way and go in whole.
    """
    name = pack_layout.EVENTS
    sha, size, count = hashlib.sha256(), 0, 0
    events = audit.AuditEvent.objects.filter(seq__lte=digest["seq"]).order_by("seq")
    with zf.open(name, "w") as out:
        for event in events.iterator(chunk_size=2000):
            entry = {"seq": event.seq, "form": event.form, "prev_hash": event.prev_hash,
                     "hash": event.hash}
            if event.runbook_id == runbook.pk or event.form == 1:
                entry["content"] = event.content()
            else:
                entry["body_sha256"] = event.body_sha256()
            line = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode("utf-8")
            out.write(line)
            sha.update(line)
            size += len(line)
            count += 1
    files.append({"name": name, "sha256": sha.hexdigest(), "size": size})
    for path in digests.digest_files():
        add(pack_layout.DIGESTS + path.name, path.read_bytes())
    add(pack_layout.PUBLIC_KEY, digests.public_key_pem())
    return {"events": count, "last_seq": digest["seq"], "head": digest["head"],
            "digest": digest["number"], "key_id": digest["key_id"]}


@require_GET
@reader_required
def evidence_pack(request, runbook_id):
    runbook = _runbook(runbook_id)
    refusal = history_access(request, runbook, "export")
    if refusal:
        return refusal
    # Evidence files can be large: spool to disk past 32 MB rather than hold it all in memory.
    spool = tempfile.SpooledTemporaryFile(max_size=32 << 20)
    build_evidence_pack(runbook, request.user, spool)
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, content_type="application/zip",
                        filename=f"{_filename(runbook, 'evidence-pack')}.zip")
