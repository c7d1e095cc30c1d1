"""An item's key is unique within its template version in the database itself (checklist 0010:
Item.template beside the group's, a conditional unique constraint on (template, key)), so a write
that goes around actions.set_item_key and its rule is refused too."""
import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from checklist import actions
from checklist.models import Item

from .test_template_bindings import CHECKLISTS

pytestmark = pytest.mark.django_db(transaction=True)


def two_items(template):
    return list(Item.objects.filter(group__phase__template=template).order_by("pk")[:2])


def test_the_database_refuses_a_duplicate_key_even_around_the_code(template):
    first, second = two_items(template)
    assert first.key and second.key and first.template_id == template.pk
    with pytest.raises(IntegrityError, match="item_key_unique_in_version"):
        with transaction.atomic():
            Item.objects.filter(pk=second.pk).update(key=first.key)  # no rule asked
    with pytest.raises(IntegrityError, match="item_key_unique_in_version"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE checklist_item SET key = %s WHERE id = %s",
                           [first.key, second.pk])
    second.refresh_from_db()
    assert second.key != first.key  # nothing changed


def test_blank_keys_repeat_and_a_key_repeats_across_versions(template):
    first, second = two_items(template)
    Item.objects.filter(pk__in=[first.pk, second.pk]).update(key="")  # '' is "no key"
    other, _ = actions.import_template((CHECKLISTS / "release.md").read_bytes())
    elsewhere = Item.objects.filter(group__phase__template=other).first()
    assert elsewhere.template_id == other.pk  # the importer writes the version down
    Item.objects.filter(pk=elsewhere.pk).update(key="backup-verified")
    Item.objects.filter(pk=first.pk).update(key="backup-verified")  # another version: allowed
    assert Item.objects.filter(key="backup-verified").count() == 2


def test_the_migration_fills_each_items_version_and_names_shared_keys(template):
    first, second = two_items(template)
    call_command("migrate", "checklist", "0009", verbosity=0)  # before the constraint
    try:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE checklist_item SET key = %s WHERE id = %s",
                           [first.key, second.pk])
        with pytest.raises(RuntimeError, match=rf"key '{first.key}' on items {first.pk}, "
                                               rf"{second.pk}"):
            call_command("migrate", "checklist", verbosity=0)
        with connection.cursor() as cursor:  # the lead's fix: the duplicate kept nothing lost
            cursor.execute("UPDATE checklist_item SET key = %s WHERE id = %s",
                           [second.key, second.pk])
    finally:
        call_command("migrate", "checklist", verbosity=0)
    versions = set(Item.objects.values_list("template_id", "group__phase__template_id"))
    assert versions == {(template.pk, template.pk)}
    second.refresh_from_db()
    assert second.key and second.key != first.key
