"""Tests for checklist/importer.py: the Markdown checklist parser (no database needed)."""

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from checklist.importer import (
    ChecklistParseError,
    ParsedChecklist,
    parse_checklist,
    repair_text,
)

REPO = Path(__file__).resolve().parents[2]
SEED = REPO.parent / "shared" / "seed" / "mingus-deployment-checklist.md"


@pytest.fixture(scope="module")
def seed_bytes():
    return SEED.read_bytes()


@pytest.fixture(scope="module")
def seed(seed_bytes):
    return parse_checklist(seed_bytes)


def _item_texts(checklist):
    return [item.text for p in checklist.phases for g in p.groups for item in g.items]


# --- The seed checklist ----------------------------------------------------------------------


def test_seed_phases_in_order_with_kinds_and_counts(seed):
    shape = [
        (phase.title, phase.kind, len(phase.groups), sum(len(g.items) for g in phase.groups))
        for phase in seed.phases
    ]
    assert shape == [
        ("Pre-Deployment Phase", "gated", 7, 32),
        ("Migration Phase", "gated", 6, 26),
        ("Deployment Phase", "gated", 6, 26),
        ("Post-Deployment Phase", "gated", 7, 28),
        ("Rollback Plan", "rollback", 3, 12),
        ("Success Criteria", "success", 3, 12),
    ]
    assert (seed.item_count, seed.group_count) == (136, 32)
    assert [phase.line for phase in seed.phases] == [10, 63, 107, 151, 200, 224]


def test_seed_first_phase_groups_and_sections(seed):
    groups = seed.phases[0].groups
    assert [(g.title, g.section) for g in groups] == [
        ("Backup Verification", "Database Migration Preparation"),
        ("Database Assessment Complete", "Database Migration Preparation"),
        ("Schema Validation", "Database Migration Preparation"),
        ("Environment Variables", "Application Configuration"),
        ("Configuration Files", "Application Configuration"),
        ("App Platform Configuration", "Digital Ocean Setup"),
        ("Resource Allocation", "Digital Ocean Setup"),
    ]
    assert groups[0].line == 13


def test_item_text_keeps_inline_code_and_drops_bold(seed):
    assessment = seed.phases[0].groups[1]
    first = assessment.items[0]
    assert (first.text, first.line) == ("`assess_databases.py` executed and report reviewed", 20)
    texts = _item_texts(seed)
    assert "`DB_SSL_MODE` set to 'require'" in texts
    assert "Performance degradation > 50%" in texts
    assert texts[-1] == "User adoption maintained"
    assert not any("**" in text or text.startswith("[") for text in texts)


def test_if_applicable_flags_only_the_optional_item(seed):
    flagged = [
        item.text for p in seed.phases for g in p.groups for item in g.items if item.if_applicable
    ]
    assert flagged == ["Custom domain configured (if applicable)"]


def test_title_subtitle_and_metadata_are_repaired(seed):
    assert seed.title == "🚀 MINGUS Production Deployment Checklist"
    assert seed.subtitle == "SQLite to PostgreSQL Migration on Digital Ocean Platform"
    assert seed.metadata == {
        "Date": "January 2025",
        "Status": "📋 PRE-DEPLOYMENT CHECKLIST",
        "Priority": "🔴 CRITICAL",
    }


def test_emergency_contacts_become_contacts_not_items(seed):
    assert len(seed.contacts) == 7
    first, last = seed.contacts[0], seed.contacts[-1]
    assert (first.section, first.label, first.placeholder, first.line) == (
        "Team Contacts", "Primary Contact", "[Your Name] - [Phone/Email]", 252,
    )
    assert (last.section, last.label, last.placeholder) == (
        "Vendor Contacts", "Domain Provider", "[If applicable]",
    )
    assert "Primary Contact" not in _item_texts(seed)


def test_completion_section_is_computed_not_items(seed):
    assert seed.computed_sections == ["Checklist Completion"]
    titles = {g.title for p in seed.phases for g in p.groups}
    assert not titles & {"Phase Status", "Overall Status", "Ready for Production", "Team Approval"}


def test_next_steps_and_closing_notes_become_guidance(seed):
    assert [(g.title, g.line) for g in seed.guidance] == [
        ("Next Steps", 280),
        ("IMPORTANT", 291),
        ("For questions or issues", 293),
    ]
    next_steps = seed.guidance[0].markdown
    assert next_steps.startswith("1. **Complete Pre-Deployment Checklist**")
    assert next_steps.endswith("6. **Document Results**")
    assert seed.guidance[1].markdown.startswith(
        "**⚠️ IMPORTANT**: This checklist must be completed in order."
    )


def test_str_and_bytes_input_parse_the_same(seed, seed_bytes):
    assert parse_checklist(seed_bytes.decode("utf-8")) == seed


def test_crlf_input_keeps_line_numbers(seed, seed_bytes):
    assert parse_checklist(seed_bytes.replace(b"\n", b"\r\n")) == seed


def test_parser_imports_nothing_from_django():
    code = (
        "import sys, checklist.importer; "
        "sys.exit(any(name.split('.')[0] == 'django' for name in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


# --- Mojibake --------------------------------------------------------------------------------


def test_repair_fixes_double_encoded_emoji_in_the_seed(seed_bytes):
    repaired = repair_text(seed_bytes.decode("utf-8"))
    assert repaired.startswith("# 🚀 MINGUS Production Deployment Checklist\n")
    assert "### **✅ Database Migration Preparation**" in repaired
    assert "âœ…" not in repaired
    assert "**⚠️ IMPORTANT**: This checklist" in repaired


def test_repair_restores_emoji_whose_variation_selector_lost_a_byte():
    assert repair_text("**âš\xa0ï¸ IMPORTANT**") == "**⚠️ IMPORTANT**"


@pytest.mark.parametrize(
    "damaged",
    [
        "## **ğŸ” Post-Deployment Phase**",  # last byte of 🔍 lost: many emoji fit
        "**ğŸ“ For questions**",
        "âŒ Not Ready",
        "ğŸ¯ğŸ¯ â³ ï¸ Ÿ",
    ],
)
def test_unrecoverable_mojibake_is_left_as_is(damaged):
    # ftfy on its own would guess the space was a lost byte, eating it and picking another emoji.
    assert repair_text(damaged) == damaged


def test_unrepaired_emoji_is_still_stripped_from_titles(seed):
    assert seed.phases[3].title == "Post-Deployment Phase"


def test_repair_leaves_ordinary_text_alone():
    text = "Café naïve “quoted” &amp; ＡＢ 日本語 Ébauche"
    assert repair_text(text) == text


# --- Decisions -------------------------------------------------------------------------------


def test_pre_ticked_boxes_are_read_as_unticked_items():
    parsed = parse_checklist("# T\n\n## Go\n\n- [x] **Group**\n  - [X] Done already\n")
    group = parsed.phases[0].groups[0]
    assert (group.title, group.section, group.items[0].text) == ("Group", "", "Done already")


def test_any_other_checkbox_section_is_a_gated_phase():
    parsed = parse_checklist(
        "# T\n\n## Smoke Tests\n\n### Web\n- [ ] **Pages**\n  - [ ] Home loads (If Applicable)\n"
        "\n## Notes\n\nPlain prose.\n"
    )
    assert [(p.title, p.kind) for p in parsed.phases] == [("Smoke Tests", "gated")]
    assert parsed.phases[0].groups[0].items[0].if_applicable
    assert [(g.title, g.markdown) for g in parsed.guidance] == [("Notes", "Plain prose.")]


# --- Broken input ----------------------------------------------------------------------------

GOOD_HEAD = "# T\n\n## Phase\n\n"
ONE_GROUP = "- [ ] **G**\n  - [ ] a\n"


@pytest.mark.parametrize(
    ("source", "line", "fragment"),
    [
        ("", 1, "empty"),
        ("  \n\n\t\n", 1, "empty"),
        ("[ref]: https://example.com\n", 1, "'# ' title"),
        ("## Phase\n\n- [ ] **G**\n  - [ ] a\n", 1, "'# ' title"),
        ("# T\n\n## Notes\n\nOnly prose here.\n", 1, "no checkbox items"),
        (GOOD_HEAD + "- [ ] **G**\n  - [ ] a\n- [ ] **Lonely group**\n", 7,
         "'Lonely group' has no items"),
        (GOOD_HEAD + "- [ ] **G**\n  - [ ] a\n    - [ ] deeper\n", 7, "nested too deep"),
        (GOOD_HEAD + ONE_GROUP + "\n---\n\n- [ ] **H**\n  - [ ] b\n", 10, "outside any"),
        (GOOD_HEAD + "- [ ] a\n- b\n", 6, "has no '[ ]' checkbox"),
        (GOOD_HEAD + "- [ ] **G**\n  - [ ]\n", 6, "has no text"),
        (GOOD_HEAD + ONE_GROUP + "\n## Phase\n\n" + ONE_GROUP, 8, "duplicate"),
        ("# T\n\n---\n\n### Orphan\n", 1, "no checkbox items"),
        ("# T\n\n##\n\n- [ ] **G**\n  - [ ] a\n", 3, "section heading is empty"),
        ("# T\n\n## Emergency Contacts\n\n- [ ] no colon here\n", 5, "a contact must read"),
        ("# T\n\n## Rollback Plan\n\nProse only.\n", 3, "has no '- [ ]' items"),
    ],
)
def test_broken_input_names_the_line(source, line, fragment):
    with pytest.raises(ChecklistParseError) as raised:
        parse_checklist(source)
    assert raised.value.line == line
    assert str(raised.value).startswith(f"line {line}: ")
    assert fragment in raised.value.message


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_bytes_that_are_not_utf8_name_the_line(bom):
    source = bom + b"# T\n\n## Phase\n\n- [ ] **G**\n  - [ ] caf\xe9\n"
    with pytest.raises(ChecklistParseError, match=r"^line 6: not valid UTF-8 \(byte 0xe9\)"):
        parse_checklist(source)


def test_utf8_bom_is_ignored(seed, seed_bytes):
    assert parse_checklist(b"\xef\xbb\xbf" + seed_bytes) == seed


@pytest.mark.parametrize("value", [None, 42, ["# T"]])
def test_non_text_input_is_a_parse_error(value):
    with pytest.raises(ChecklistParseError) as raised:
        parse_checklist(value)
    assert raised.value.line is None
    assert str(raised.value) == f"expected Markdown text or bytes, got {type(value).__name__}"


def test_error_message_format():
    error = ChecklistParseError(12, "boom")
    assert (error.line, error.message, str(error)) == (12, "boom", "line 12: boom")
    assert isinstance(error, ValueError)


def _mutate(rng, data):
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 6)):
        if not lines:
            lines = [b""]
        where = rng.randrange(len(lines))
        action = rng.choice(("delete", "duplicate", "swap", "shuffle", "bytes", "indent", "chars"))
        if action == "delete":
            del lines[where]
        elif action == "duplicate":
            lines.insert(where, lines[where])
        elif action == "swap":
            other = rng.randrange(len(lines))
            lines[where], lines[other] = lines[other], lines[where]
        elif action == "shuffle":
            chunk = lines[where : where + rng.randint(2, 40)]
            rng.shuffle(chunk)
            lines[where : where + len(chunk)] = chunk
        elif action == "bytes":
            line = bytearray(lines[where])
            start = rng.randint(0, len(line))
            line[start : start + rng.randint(0, 3)] = rng.randbytes(rng.randint(1, 6))
            lines[where] = bytes(line)
        elif action == "indent":
            lines[where] = b" " * rng.randint(1, 8) + lines[where]
        else:
            lines[where] += rng.choice(
                [b"[ ]", b"**", b"`", b"\r", b"\x00", b"    - [ ] x", b"\xc2\xa0", b"---", b"#"]
            )
    return b"\n".join(lines)


def test_random_mutations_parse_or_raise_parse_error(seed_bytes):
    rng = random.Random(20250101)
    outcomes = {"parsed": 0, "error": 0}
    for _ in range(400):
        mutated = _mutate(rng, seed_bytes)
        source = mutated if rng.random() < 0.5 else mutated.decode("utf-8", "surrogateescape")
        try:
            result = parse_checklist(source)
        except ChecklistParseError as error:
            outcomes["error"] += 1
            line_count = len(re.split(rb"\r\n|\r|\n", mutated))
            assert error.line is None or 1 <= error.line <= line_count
        else:
            outcomes["parsed"] += 1
            assert isinstance(result, ParsedChecklist) and result.item_count > 0
    # Both paths must be exercised, or the fuzzing proves nothing.
    assert outcomes["parsed"] > 20 and outcomes["error"] > 20


def test_a_phase_right_under_the_title_is_a_phase_not_the_subtitle():
    # The README's own example has no blank line between the title and its first phase.
    parsed = parse_checklist("# Acme\n## Preparation\n### Code\n- [ ] tests pass\n## Ship\n- [ ] go\n")
    assert parsed.subtitle == ""
    assert [p.title for p in parsed.phases] == ["Preparation", "Ship"]
    assert [g.title for g in parsed.phases[0].groups] == ["Code"]
    rollback = parse_checklist("# T\n## Rollback Plan\n- [ ] restore\n")
    assert [p.title for p in rollback.phases] == ["Rollback Plan"]
    # A `##` right under the title that heads no items stays the subtitle (as the seed's does).
    sub = parse_checklist("# T\n## On DigitalOcean\n### **Date**: May\n\n---\n\n## P\n- [ ] a\n")
    assert sub.subtitle == "On DigitalOcean" and sub.metadata == {"Date": "May"}
