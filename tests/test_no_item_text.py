"""No item of the seed is named by its words in the project's code or templates: code finds items
by key, and the seed's words stand for an item only in the seed bindings (checklist/bindings/,
the importer's keys file). Django's migrations/ are left out: they are history, frozen as they
ran (a data migration writes out the bindings of its day, not today's files)."""
from pathlib import Path

from checklist.importer import parse_checklist

from .conftest import SEED

ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT = ("checklist/bindings/", "tests/", ".venv/", "var/", "test-artifacts/", "node_modules/")


def seed_item_texts():
    """Every item text of the seed as the importer stores it (after its normalisation)."""
    parsed = parse_checklist(SEED.read_bytes())
    return {item.text for phase in parsed.phases for group in phase.groups
            for item in group.items}


def project_files():
    for path in sorted([*ROOT.rglob("*.py"), *ROOT.rglob("*.html")]):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(LEFT_OUT) or "/migrations/" in relative:
            continue
        yield relative, path.read_text(encoding="utf-8", errors="replace")


def test_no_seed_item_text_outside_the_bindings_and_tests():
    texts = seed_item_texts()
    assert len(texts) > 100  # the seed parsed: its 136 items, a few of the same words
    files = dict(project_files())
    assert "checklist/actions.py" in files and "templates/checklist/_item.html" in files
    found = sorted(f"{name}: {text!r}" for name, source in files.items() for text in texts
                   if text in source)
    assert not found, "\n".join(found)


def test_the_grep_sees_a_seed_text_where_one_stands():
    """The same search finds the seed's words in the keys file it leaves out on purpose."""
    keys = (ROOT / "checklist" / "bindings" / "mingus-keys.json").read_text(encoding="utf-8")
    assert sum(1 for text in seed_item_texts() if text in keys) > 100
