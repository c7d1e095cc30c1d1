"""Verify an exported evidence pack offline, with nothing but the pack and the public key.

Plain Python, no Django and no database: `verify_audit --pack FILE.zip --public-key KEY.pem` runs
it, and so can an auditor's own copy of this file. What is checked:

1. manifest.json is signed (manifest.sig) by the key the auditor trusts;
2. every file the manifest lists is in the zip, reads back whole, and has the listed sha256;
   nothing else is in the zip;
3. the audit digests in audit/digests/ are signed by that key and chain to one another;
4. audit/events.jsonl links from the first event to the last, every hash recomputes (events of
   other runbooks are carried as their body hash only), and the event at each digest's seq
   carries the head that digest signed.

The layout is written by checklist.exports.build_evidence_pack; README.txt in the pack says the
same in words for the auditor.
"""
import base64
import hashlib
import json
import zipfile
import zlib

from cryptography.exceptions import InvalidSignature

from . import chain

MANIFEST, SIGNATURE = "manifest.json", "manifest.sig"
EVENTS = "audit/events.jsonl"
DIGESTS = "audit/digests/"
PUBLIC_KEY = "audit/public_key.pem"


class PackUnusable(Exception):
    """The file is not a pack at all (not a zip, no manifest): nothing can be checked."""


def _read(zf, name):
    """(bytes, None) or (None, reason) for one member, the CRC checked by zipfile as it reads."""
    try:
        return zf.read(name), None
    except KeyError:
        return None, "missing from the pack"
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
        # A flipped byte in compressed data shows as a bad CRC or a broken deflate stream.
        return None, f"cannot be read back intact ({exc})"


def verify_pack(path, public_key):
    """Check the pack at `path`; return (summary dict, problems as a list of (where, reason))."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackUnusable(f"{path} is not a readable zip file ({exc})") from None
    problems = []
    with zf:
        manifest_bytes, problem = _read(zf, MANIFEST)
        if manifest_bytes is None:
            raise PackUnusable(f"{MANIFEST}: {problem}")
        signature, problem = _read(zf, SIGNATURE)
        if signature is None:
            problems.append((SIGNATURE, problem))
        else:
            try:
                public_key.verify(base64.b64decode(signature), manifest_bytes)
            except (InvalidSignature, ValueError):
                problems.append((MANIFEST, "its signature does not verify under the public key "
                                           "(the manifest was changed or another key signed it)"))
        try:
            manifest = json.loads(manifest_bytes)
            listed = {f["name"]: f["sha256"] for f in manifest["files"]}
        except (ValueError, KeyError, TypeError):
            raise PackUnusable(f"{MANIFEST} is not a pack manifest") from None

        for name, sha256 in listed.items():
            data, problem = _read(zf, name)
            if data is None:
                problems.append((name, problem))
            elif hashlib.sha256(data).hexdigest() != sha256:
                problems.append((name, "its sha256 differs from the manifest's"))
        for name in zf.namelist():
            if name not in listed and name not in (MANIFEST, SIGNATURE) and not name.endswith("/"):
                problems.append((name, "not listed in the manifest"))

        events, digests = _audit_content(zf, listed, problems)
        problems += _check_audit(public_key, events, digests)
    summary = {"files": len(listed), "events": len(events), "digests": len(digests),
               "key_id": chain.key_id(public_key),
               "runbook": manifest.get("runbook", {}).get("name", "")}
    return summary, problems


def _audit_content(zf, listed, problems):
    events, digests = [], []
    data, problem = _read(zf, EVENTS)
    if data is None:
        problems.append((EVENTS, problem))
    else:
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            try:
                events.append(json.loads(line))
            except ValueError:
                problems.append((f"{EVENTS} line {number}", "not a JSON event"))
    for name in sorted(n for n in listed if n.startswith(DIGESTS)):
        data, _ = _read(zf, name)  # an unreadable one is already reported above
        try:
            digests.append((name, json.loads(data)))
        except (TypeError, ValueError):
            problems.append((name, "not a digest document"))
    return events, digests


def _check_audit(public_key, events, digests):
    problems = list(chain.check_digests(public_key, digests))
    try:
        checked, broken, reason = chain.walk_chain(events)
    except (KeyError, TypeError, ValueError) as exc:
        return problems + [(EVENTS, f"an event lacks a field ({exc})")]
    if broken is not None:
        problems.append((f"{EVENTS} event #{broken}", reason))
    by_seq = {e["seq"]: (e["hash"], e["content"]["action"] if "content" in e else None)
              for e in events}
    good = [d["digest"] for _, d in digests if chain.check_digest_signature(public_key, d) is None]
    problems += [(f"{EVENTS} event #{seq}", reason)
                 for seq, reason in chain.check_events_against_digests(by_seq, good)]
    if not good:
        problems.append((DIGESTS, "the pack holds no signed digest to anchor its events"))
    return problems


README = """\
Evidence pack of runbook "{runbook}" exported {generated_at} by {generated_by}.

What is in it
  manifest.json        every other file's name, size and sha256, and what the pack covers
  manifest.sig         Ed25519 signature (base64) of manifest.json's bytes
  history.json/.csv    the runbook's audit events, readable
  runbook.json         the runbook's state at export: items, sign-offs, go-live
  report.html          the same for people
  evidence/...         the files jobs recorded as evidence (sha256 also in manifest.json)
  audit/events.jsonl   the audit hash chain from event #1 to #{last_seq}: this runbook's events in
                       full, other events as their hash only (so the chain still links)
  audit/digests/       the signed digests of the chain (each names the previous one's hash)
  audit/public_key.pem the public key the app signs with (key id {key_id})

How to verify it (no database, no network)
  Get the app's public key from someone you trust, not from this pack, then run
      python manage.py verify_audit --pack THIS.zip --public-key app-public-key.pem
  It checks that manifest.sig verifies under that key, that every file's sha256 matches the
  manifest, that the digests are signed by that key and chain together, and that the events
  link up with each event at a digest's seq carrying the hash that digest signed. It exits 0
  when all holds and 1 naming the first file or event that does not.

What it cannot prove
  Digests prove the chain up to their seq; events after the newest digest rest on the signed
  manifest alone. Someone holding the private key can sign anything: keep it secret.
"""


def main(argv=None):
    """`python -m checklist.pack PACK.zip PUBLIC_KEY`: the check with nothing but Python and
    `cryptography` installed. Exit 0 verified, 1 problems found, 2 unusable input."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m checklist.pack PACK.zip PUBLIC_KEY.pem", file=sys.stderr)
        return 2
    try:
        with open(args[1], "rb") as handle:
            public = chain.load_public_key(handle.read())
        summary, problems = verify_pack(args[0], public)
    except (OSError, ValueError, PackUnusable) as exc:
        print(f"unusable input: {exc}", file=sys.stderr)
        return 2
    for where, reason in problems:
        print(f"{where}: {reason}", file=sys.stderr)
    if problems:
        return 1
    print(f"verified: {summary['files']} files, {summary['events']} events, "
          f"{summary['digests']} digests, key {summary['key_id']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
