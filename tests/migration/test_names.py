"""PostgreSQL names and translated expressions in the generated schema."""
import pytest

from migration.ddl_names import NameSpace, fit_name, quote_ident, schema_name
from migration.translate import Translator, Untranslatable, translate_default


def test_reserved_odd_and_mixed_case_names_are_quoted_plain_ones_not():
    assert [quote_ident(n) for n in ("users", "user", "order by", "Name", "ünï", 'a"b')] == \
        ["users", '"user"', '"order by"', '"Name"', '"ünï"', '"a""b"']


def test_names_over_63_bytes_are_shortened_uniquely():
    a, b = "x" * 70 + "_first", "x" * 70 + "_second"
    assert len(fit_name(a).encode()) <= 63 and fit_name(a) != fit_name(b)
    space = NameSpace()
    assert [space.claim("t_pkey"), space.claim("T_PKEY")] == ["t_pkey", "T_PKEY_2"]


def test_schema_names_come_from_source_names():
    assert [schema_name(n) for n in ("instance-mingus", "2024", "pg_x")] == ["instance_mingus", "s_2024", "src_pg_x"]


def _tr():
    cols = {"flag": ("flag", "bool"), "name": ("name", "text"), "Total": ('"Total"', "int")}
    return Translator(resolve=lambda n: cols.get(n, (None,))[0] if n in cols else
                      next((v[0] for k, v in cols.items() if k.lower() == n.lower()), None),
                      kinds=lambda n: next((v[1] for k, v in cols.items() if k.lower() == n.lower()), None))


@pytest.mark.parametrize("sqlite,pg", [
    ("flag = 1", "flag = TRUE"),
    ("name LIKE 'a%' AND total == 3", "name ILIKE 'a%' AND \"Total\" = 3"),
    ("ifnull(name, '') <> ''", "coalesce(name, '') <> ''"),
    ("name IS NOT NULL", "name IS NOT NULL"),
    ("max(total, 0) > 1", "greatest(\"Total\", 0) > 1"),
])
def test_expressions_translate_with_the_same_meaning(sqlite, pg):
    assert _tr().sql(sqlite) == pg


@pytest.mark.parametrize("sqlite", ["name GLOB 'a*'", "typeof(total) = 'integer'", "name REGEXP 'x'"])
def test_expressions_without_an_equivalent_are_refused(sqlite):
    with pytest.raises(Untranslatable):
        _tr().sql(sqlite)


def test_defaults_follow_the_column_type():
    assert translate_default("CURRENT_TIMESTAMP", "timestamp") == "(now() AT TIME ZONE 'utc')"
    assert translate_default("1", "bool") == "true"
    assert translate_default("(datetime('now'))", "timestamptz") == "now()"
    assert translate_default("'USA'", "text") == "'USA'"
