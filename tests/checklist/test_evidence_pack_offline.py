"""The evidence pack verified offline: no database, only the pack and the public key."""
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from checklist import actions, digests
from checklist.exports import build_evidence_pack

from .factories import gated, hand_states, states_of

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def offline(*args, tmp_path):
    """verify_audit in a child process whose database is a closed port: any query would fail."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL")}
    env.update({"DATABASE_URL": "postgres://root@127.0.0.1:1/none", "SECRET_KEY": "k" * 50,
                "AUDIT_SIGNING_KEY": "b2ZmbGluZS1hdWRpdG9yLWhhcy1ub3QtdGhlLWtleSE=",
                "MINGUS_VAR_DIR": str(tmp_path / "auditor-var")})
    return subprocess.run([sys.executable, "manage.py", "verify_audit", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def exported(runbook, users, tmp_path):
    other = actions.start_runbook(users["lead"], runbook.template, "Another runbook")
    actions.add_note(users["member"], states_of(other, gated(other)[0])[0], "someone else's secret")
    for st in hand_states(runbook, gated(runbook)[0])[:3]:
        actions.tick(users["member"], st, "checked")
    digests.write("test")
    actions.add_note(users["member"], states_of(runbook, gated(runbook)[0])[0], "after it")
    path = tmp_path / "pack.zip"
    with open(path, "wb") as out:
        build_evidence_pack(runbook, users["auditor"], out)
    key = tmp_path / "public.pem"
    key.write_text(digests.public_key_pem())
    return path, key


def test_a_pack_verifies_offline_with_only_the_public_key(exported, tmp_path):
    path, key = exported
    result = offline("--pack", str(path), "--public-key", str(key), tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified" in result.stdout and "2 digests" in result.stdout


def test_the_pack_carries_events_digests_key_and_readme_but_not_other_runbooks_content(exported):
    path, _ = exported
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        events = zf.read("audit/events.jsonl").decode()
        readme = zf.read("README.txt").decode()
    assert {"manifest.json", "manifest.sig", "audit/public_key.pem", "README.txt"} <= set(names)
    assert len([n for n in names if n.startswith("audit/digests/digest-")]) == 2
    assert "verify_audit --pack" in readme
    assert "someone else's secret" not in events and '"body_sha256"' in events


def _rewrite(path, member, change):
    """Copy the zip with `change(bytes)` applied to one member, as a careful forger would."""
    with zipfile.ZipFile(path) as zf:
        items = [(info, zf.read(info.filename)) for info in zf.infolist()]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in items:
            zf.writestr(info.filename, change(data) if info.filename == member else data)
    path.write_bytes(out.getvalue())


def _flip(data, at=None):
    at = len(data) // 2 if at is None else at
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


@pytest.mark.parametrize("member", ["history.json", "audit/events.jsonl", "runbook.json"])
def test_one_flipped_byte_in_one_file_fails_naming_it(exported, tmp_path, member):
    path, key = exported
    _rewrite(path, member, _flip)
    result = offline("--pack", str(path), "--public-key", str(key), tmp_path=tmp_path)
    assert result.returncode == 1
    assert f"{member}: its sha256 differs from the manifest's" in result.stderr


def test_a_flipped_byte_in_the_raw_zip_fails_naming_the_file(exported, tmp_path):
    path, key = exported
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("runbook.json")
    data = path.read_bytes()
    # Past the local header (30 bytes + name + extra) into the compressed data.
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    path.write_bytes(_flip(data, start + info.compress_size // 2))
    result = offline("--pack", str(path), "--public-key", str(key), tmp_path=tmp_path)
    assert result.returncode == 1 and "runbook.json" in result.stderr


def test_a_changed_manifest_or_another_key_fails(exported, tmp_path):
    path, key = exported
    other = tmp_path / "other.pem"
    from checklist import chain

    other.write_text(chain.public_key_pem(chain.load_private_key(chain.new_private_key_text())))
    result = offline("--pack", str(path), "--public-key", str(other), tmp_path=tmp_path)
    assert result.returncode == 1 and "manifest.json: its signature does not verify" in result.stderr
    _rewrite(path, "manifest.json", lambda d: d.replace(b'"generated_by": "auditor"',
                                                        b'"generated_by": "mallory"'))
    result = offline("--pack", str(path), "--public-key", str(key), tmp_path=tmp_path)
    assert result.returncode == 1 and "manifest.json: its signature does not verify" in result.stderr


def test_unusable_input_exits_2(exported, tmp_path):
    path, key = exported
    assert offline("--pack", str(tmp_path / "missing.zip"), "--public-key", str(key),
                   tmp_path=tmp_path).returncode == 2
    assert offline("--pack", str(path), tmp_path=tmp_path).returncode == 2
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    result = offline("--pack", str(path), "--public-key", str(bad), tmp_path=tmp_path)
    assert result.returncode == 2 and "--public-key" in result.stderr


def test_the_plain_checker_runs_where_django_cannot_be_imported(exported, tmp_path):
    path, key = exported
    code = ("import sys, runpy; sys.modules['django'] = None; sys.argv = ['pack', *sys.argv[1:]]; "
            "runpy.run_module('checklist.pack', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code, str(path), str(key)], cwd=REPO,
                            capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout
