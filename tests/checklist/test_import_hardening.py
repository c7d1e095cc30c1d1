"""Hostile checklist text never reaches PostgreSQL: lengths, NUL bytes, encodings and duplicate
groups are refused before anything is saved, with exit 2 naming the line (never a traceback)."""
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from checklist import importer
from checklist.models import (ChecklistTemplate, ContactField, Group, Item, Phase, Runbook)

pytestmark = pytest.mark.django_db

HEAD = "# Release\n\n## Ship\n\n"


def _write(tmp_path, data):
    path = tmp_path / "checklist.md"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def _refused(path, *args):
    with pytest.raises(CommandError) as exc:
        call_command("import_checklist", str(path), *args)
    assert exc.value.returncode == 2
    assert ChecklistTemplate.objects.count() == 0 and Item.objects.count() == 0
    return str(exc.value)


def test_the_limits_are_the_models_max_lengths():
    fields = {
        "title": ChecklistTemplate._meta.get_field("title"),
        "subtitle": ChecklistTemplate._meta.get_field("subtitle"),
        "phase title": Phase._meta.get_field("title"),
        "group title": Group._meta.get_field("title"),
        "section": Group._meta.get_field("section"),
        "item text": Item._meta.get_field("text"),
        "contact label": ContactField._meta.get_field("label"),
        "contact placeholder": ContactField._meta.get_field("placeholder"),
    }
    assert importer.MAX_LENGTHS == {what: f.max_length for what, f in fields.items()}


@pytest.mark.parametrize(("source", "line", "what", "length"), [
    (HEAD + "- [ ] **G**\n  - [ ] " + "x" * 501 + "\n", 6, "item text", 501),
    (HEAD + "- [ ] **" + "g" * 201 + "**\n  - [ ] a\n", 5, "group title", 201),
    ("# Release\n\n## " + "p" * 201 + "\n\n- [ ] **G**\n  - [ ] a\n", 3, "phase title", 201),
    ("# " + "t" * 301 + "\n\n## Ship\n\n- [ ] **G**\n  - [ ] a\n", 1, "title", 301),
    (HEAD + "### " + "s" * 201 + "\n- [ ] **G**\n  - [ ] a\n", 5, "section", 201),
])
def test_over_long_text_is_exit_2_naming_the_line(tmp_path, source, line, what, length):
    message = _refused(_write(tmp_path, source))
    assert f"line {line}: {what} is {length} characters long" in message


def test_text_at_the_limit_imports(tmp_path, capsys):
    path = _write(tmp_path, HEAD + "- [ ] **" + "g" * 200 + "**\n  - [ ] " + "x" * 500 + "\n")
    call_command("import_checklist", str(path), "--name", "At the limit")
    assert Item.objects.get().text == "x" * 500
    assert Group.objects.get().title == "g" * 200


def test_a_title_too_long_for_a_name_is_refused_unless_a_name_is_given(tmp_path):
    path = _write(tmp_path, "# " + "t" * 250 + "\n\n## Ship\n\n- [ ] **G**\n  - [ ] a\n")
    assert "the title (the template's name) is 250 characters long" in _refused(path)
    assert "the name is 201 characters long" in _refused(path, "--name", "n" * 201)
    call_command("import_checklist", str(path), "--name", "Short")
    assert ChecklistTemplate.objects.get().title == "t" * 250


def test_a_nul_byte_is_exit_2_naming_the_line(tmp_path):
    message = _refused(_write(tmp_path, HEAD.encode() + b"- [ ] **G**\n  - [ ] a\x00b\n"))
    assert "line 6: contains a NUL byte" in message


def test_undecodable_bytes_are_exit_2_naming_the_line(tmp_path):
    message = _refused(_write(tmp_path, HEAD.encode() + b"- [ ] **G**\n  - [ ] caf\xe9\n"))
    assert "line 6: not valid UTF-8 (byte 0xe9)" in message


def test_text_with_a_lone_surrogate_is_refused_not_a_crash():
    from checklist.actions import import_template

    with pytest.raises(importer.ChecklistParseError) as raised:
        import_template(HEAD + "- [ ] **G**\n  - [ ] caf\udce9\n")
    assert raised.value.line == 6 and "not valid UTF-8" in raised.value.message
    assert ChecklistTemplate.objects.count() == 0


def test_duplicate_group_names_in_one_phase_are_refused_naming_both_lines(tmp_path):
    source = HEAD + "- [ ] **Checks**\n  - [ ] a\n- [ ] **checks**\n  - [ ] b\n"
    message = _refused(_write(tmp_path, source))
    assert "line 7: duplicate group 'checks' in phase 'Ship' (first at line 5)" in message


def test_the_same_group_name_in_two_phases_is_fine(tmp_path):
    source = HEAD + "- [ ] **Checks**\n  - [ ] a\n\n## Verify\n\n- [ ] **Checks**\n  - [ ] b\n"
    call_command("import_checklist", str(_write(tmp_path, source)))
    assert Group.objects.filter(title="Checks").count() == 2


def test_start_runbook_refuses_an_unusable_name_with_exit_2(tmp_path, users):
    call_command("import_checklist", str(_write(tmp_path, HEAD + "- [ ] **G**\n  - [ ] a\n")))
    template = ChecklistTemplate.objects.get()
    for name, fragment in (("r" * 201, "at most 200 characters (201 given)"),
                           ("bad\x00name", "cannot contain a NUL byte")):
        with pytest.raises(CommandError) as exc:
            call_command("start_runbook", "--template", str(template.pk), "--name", name,
                         "--user", "lead")
        assert exc.value.returncode == 2 and fragment in str(exc.value)
    assert Runbook.objects.count() == 0
    call_command("start_runbook", "--template", str(template.pk), "--name", "r" * 200,
                 "--user", "lead")
    assert Runbook.objects.get().name == "r" * 200


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be"])
def test_utf16_with_its_byte_order_mark_is_read_not_refused(tmp_path, codec):
    text = HEAD + "- [ ] Café ✅ opened\n"
    data = text.encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data  # Python's utf-16-be writes no mark; editors do
    call_command("import_checklist", str(_write(tmp_path, data)))
    assert list(Item.objects.values_list("text", flat=True)) == ["Café ✅ opened"]


def test_a_broken_utf16_file_is_exit_2():
    with pytest.raises(importer.ChecklistParseError, match="not valid UTF-16"):
        importer.parse_checklist(b"\xff\xfe" + "# T\n".encode("utf-16-le") + b"\x00\xd8")


def test_more_items_than_a_checklist_may_hold_is_exit_2_with_the_count(tmp_path):
    items = "".join(f"- [ ] item {i}\n" for i in range(importer.MAX_ITEMS + 1))
    message = _refused(_write(tmp_path, HEAD + items))
    assert f"{importer.MAX_ITEMS + 1} items, more than the {importer.MAX_ITEMS}" in message
    at_limit = "".join(f"- [ ] item {i}\n" for i in range(importer.MAX_ITEMS))
    assert importer.parse_checklist(HEAD + at_limit).item_count == importer.MAX_ITEMS
