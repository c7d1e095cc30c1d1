"""The audit chain's arithmetic: hashing events, signing digests, checking both.

Plain Python, no Django: the web app (checklist.audit) uses it to write the chain, and
`verify_audit --pack` uses it to check an exported evidence pack on a machine with no database
and no app settings, holding only the public key.

Two hash forms exist. Form 1 (events written before request ids were recorded) hashes the whole
content, `prev_hash` included. Form 2 hashes the content without `prev_hash` into a body hash,
then hashes the link `prev_hash` + body hash. Form 2 lets an evidence pack carry another runbook's
event as just (seq, prev_hash, body hash, hash): the chain still links and still ends at the
signed digest's head, but that event's content stays out of the pack.

A digest is a signed statement "at this time the chain held `seq` events ending in `head`, with
these counts per action, after digest `previous`". The key is Ed25519; the app holds the private
half (AUDIT_SIGNING_KEY), auditors the public half.
"""
import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS_HASH = "0" * 64
CURRENT_FORM = 2
DIGEST_VERSION = 1


def canonical(value):
    """The one byte form that is hashed or signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def body_hash(content):
    """Form 2: the hash of an event's content without its link to the previous event."""
    body = {k: v for k, v in content.items() if k != "prev_hash"}
    return sha256_hex(canonical(body))


def link_hash(prev_hash, body_sha256):
    return sha256_hex(f"mingus-audit/2\n{prev_hash}\n{body_sha256}".encode("ascii"))


def event_hash(content, form):
    """The hash an event with this content (a dict holding `prev_hash`) must carry."""
    if form == 1:
        return sha256_hex(canonical(content))
    if form == 2:
        return link_hash(content["prev_hash"], body_hash(content))
    raise ValueError(f"unknown audit hash form {form!r}")


# --- Keys ---------------------------------------------------------------------------------------

def new_private_key_text():
    """A fresh key in AUDIT_SIGNING_KEY's format: the 32 raw private bytes, base64."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return base64.b64encode(raw).decode("ascii")


def load_private_key(text):
    """Read AUDIT_SIGNING_KEY: base64 of the 32 raw bytes (or a PEM PKCS#8 private key)."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("AUDIT_SIGNING_KEY is a PEM key but not an Ed25519 one")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError("AUDIT_SIGNING_KEY is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"AUDIT_SIGNING_KEY must hold 32 bytes, not {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_pem(private_key):
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_key(data):
    """A public key from a PEM file's text or the base64 of its 32 raw bytes."""
    if isinstance(data, bytes):
        data = data.decode("ascii", errors="replace")
    data = data.strip()
    if data.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(data.encode("ascii"))
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the public key is not an Ed25519 key")
        return key
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise ValueError("the public key is neither PEM nor base64") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_id(public_key):
    """A short name for a public key, written into every digest it signs."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_hex(raw)[:16]


# --- Digests ------------------------------------------------------------------------------------

def sign_digest(private_key, payload):
    """The digest file's document: the payload and its Ed25519 signature over canonical(payload)."""
    signature = private_key.sign(canonical(payload))
    return {"digest": payload, "signature": base64.b64encode(signature).decode("ascii")}


def digest_sha256(document):
    """What the next digest stores as `previous`: the hash of this one's signed payload."""
    return sha256_hex(canonical(document["digest"]))


def check_digest_signature(public_key, document):
    """None when the document's signature is good under `public_key`, else the reason."""
    try:
        payload, signature = document["digest"], base64.b64decode(document["signature"])
    except (KeyError, TypeError, ValueError):
        return "not a digest document (digest and signature expected)"
    try:
        public_key.verify(signature, canonical(payload))
    except InvalidSignature:
        return "signature does not verify under the public key"
    return None


def check_digests(public_key, documents):
    """Check signatures and the chain of digests (each names the previous one's hash).

    `documents` is a list of (name, document) in writing order. Returns a list of problems, each
    (name, reason); empty when all is well.
    """
    problems = []
    previous = None
    for name, document in documents:
        reason = check_digest_signature(public_key, document)
        if reason:
            problems.append((name, reason))
            previous = None
            continue
        payload = document["digest"]
        if payload.get("previous") != previous:
            problems.append((name, "its previous-digest hash does not match the digest before it "
                                   "(a digest was removed, reordered or replaced)"))
        previous = digest_sha256(document)
    return problems


def check_events_against_digests(events, digest_payloads):
    """Check a chain of events against signed digests.

    `events` maps seq -> (hash, action or None when withheld). For each digest: the chain must
    reach its seq, the event at its seq must carry its head hash, and the counts per action up to
    it must match (when every action up to it is known). Returns a list of (digest seq, reason).
    """
    problems = []
    last_seq = max(events) if events else 0
    ordered = sorted(events.items())
    counted, position, unknown, good_up_to = {}, 0, False, 0
    for payload in sorted(digest_payloads, key=lambda p: p["seq"]):
        seq, head = payload["seq"], payload["head"]
        # Counts grow with seq, so one pass over the chain serves every digest.
        while position < len(ordered) and ordered[position][0] <= seq:
            action = ordered[position][1][1]
            if action is None:
                unknown = True
            else:
                counted[action] = counted.get(action, 0) + 1
            position += 1
        if seq == 0:
            continue
        if seq > last_seq:
            problems.append((seq, f"a signed digest covers events up to #{seq} but the chain ends "
                                  f"at #{last_seq}: events after #{last_seq} were deleted"))
            continue
        entry = events.get(seq)
        if entry is None:
            problems.append((seq, f"event #{seq}, the head of a signed digest, is missing"))
            continue
        if entry[0] != head:
            # The nearest earlier digest that still holds narrows down where the change is.
            problems.append((seq, f"event #{seq} does not carry the hash signed digest "
                                  f"#{payload.get('number')} recorded for it: one of events "
                                  f"#{good_up_to + 1}..#{seq} was changed, removed or inserted "
                                  "(and the later hashes recomputed)"))
            continue
        good_up_to = seq
        counts = payload.get("counts")
        if counts is not None and not unknown and counted != counts:
            differ = sorted(a for a in set(counted) | set(counts)
                            if counted.get(a) != counts.get(a))
            problems.append((seq, "counts per action up to this digest differ from the signed "
                                  f"ones for: {', '.join(differ)}"))
    return problems


def walk_chain(entries):
    """Check links and hashes of an ordered list of chain entries.

    Each entry is a dict with `seq`, `prev_hash`, `hash`, `form` and either `content` (recompute
    the hash) or, for a form-2 event withheld from a pack, `body_sha256`. Returns
    (checked, first_broken_seq or None, reason).
    """
    expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
    for entry in entries:
        seq = entry["seq"]
        if seq != expected_seq:
            return checked, seq, f"sequence gap: expected #{expected_seq}"
        if entry["prev_hash"] != expected_prev:
            return checked, seq, "previous-hash link does not match the event before"
        if "content" in entry:
            actual = event_hash(entry["content"], entry["form"])
        elif entry["form"] == 2 and "body_sha256" in entry:
            actual = link_hash(entry["prev_hash"], entry["body_sha256"])
        else:
            return checked, seq, "the event's content is missing"
        if actual != entry["hash"]:
            return checked, seq, "content does not match its hash"
        expected_prev, expected_seq, checked = entry["hash"], expected_seq + 1, checked + 1
    return checked, None, ""
