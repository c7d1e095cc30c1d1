"""Verify the audit log: chain, signed digests, replayed state; or an exported pack offline."""
import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from checklist import chain, pack


class Command(BaseCommand):
    help = ("Check the audit hash chain, every signed digest (and that the chain still holds each "
            "digest's head), and that replaying the events gives the state in the tables. Exit 0 "
            "when all holds, 1 naming the first event or object that does not, 2 on unusable "
            "input. With --pack, check an exported evidence pack offline (no database).")
    # --pack must work on an auditor's machine with no database: no checks that might touch one.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--pack", help="an evidence pack .zip to verify offline")
        parser.add_argument("--public-key", help="the app's public key (PEM or base64); "
                                                 "default: the configured signing key's")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, pack=None, public_key=None, json=False, **options):
        public = self._public_key(public_key) if public_key else None
        if pack:
            if public is None:
                raise CommandError("--pack needs --public-key: the key you trust, not the pack's.",
                                   returncode=2)
            result = self._pack(pack, public)
        else:
            result = self._database(public)
        self._report(result, json)
        if result["problems"]:
            sys.exit(1)

    def _public_key(self, path):
        try:
            return chain.load_public_key(Path(path).read_bytes())
        except OSError as exc:
            raise CommandError(f"--public-key: cannot read {path} ({exc.strerror})",
                               returncode=2) from None
        except ValueError as exc:
            raise CommandError(f"--public-key: {exc}", returncode=2) from None

    def _pack(self, path, public):
        try:
            summary, problems = pack.verify_pack(path, public)
        except pack.PackUnusable as exc:
            raise CommandError(f"--pack: {exc}", returncode=2) from None
        return {"kind": "pack", **summary,
                "problems": [{"where": where, "reason": reason} for where, reason in problems]}

    def _database(self, public):
        from checklist import audit, digests, replay

        ok, checked, broken, reason = audit.verify_chain()
        problems = []
        if not ok:
            problems.append({"where": f"event #{broken}",
                             "reason": f"chain broken: {reason} ({checked} events before it "
                                       "verified)"})
        count, digest_problems = digests.verify(public)
        problems += [{"where": where, "reason": why} for where, why in digest_problems]
        disagreements = replay.compare()
        problems += [{"where": (f"event #{d.seq}, " if d.seq else "") + d.where,
                      "reason": d.reason} for d in disagreements]
        return {"kind": "database", "events": checked if ok else None, "digests": count,
                "problems": problems}

    def _report(self, result, as_json):
        if as_json:
            self.stdout.write(json.dumps(result, indent=2))
            return
        problems = result["problems"]
        if result["kind"] == "pack":
            subject = (f"Evidence pack of \"{result['runbook']}\": {result['files']} files, "
                       f"{result['events']} events, {result['digests']} digests, key "
                       f"{result['key_id']}")
        else:
            subject = (f"Audit log: {result['events']} events, {result['digests']} signed "
                       "digests, state replayed against the tables")
        if not problems:
            unbroken = "chain unbroken, " if result["kind"] == "database" else ""
            self.stdout.write(f"{subject}: verified ({unbroken}every check holds).")
            return
        first = problems[0]
        self.stderr.write(f"{subject}: NOT verified, {len(problems)} problem(s).")
        self.stderr.write(f"First: {first['where']}: {first['reason']}")
        for problem in problems[1:20]:
            self.stderr.write(f"  also {problem['where']}: {problem['reason']}")
        if len(problems) > 20:
            self.stderr.write(f"  ... and {len(problems) - 20} more (--json lists all)")
