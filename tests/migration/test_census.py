"""The profile and census are one aggregate scan per table in SQLite: the same answers as the
census SQL they replace, the same in key ranges as in one scan, and the MINGUS schema file
byte for byte what it was before."""
import hashlib
import json
import sqlite3

import pytest

from migration import census as census_mod
from migration.catalog import qi, read_catalog
from migration.plan import build_plan
from migration.profile import PACK_ROWS, TableProfile, absorb, profile_table, profile_tables, rowid_alias, scan
from migration.schema import prepare, read_sources
from migration.sources import open_source

from .conftest import copy_fixtures
from .sqlite_files import build_hard, build_odd_values

# unified_schema.sql of the six MINGUS fixtures (no target), source paths left out; made by the
# engine before the census moved into the profile's scan
MINGUS_SCHEMA_SHA256 = "58003115402eeed6c5b7fa2aa6892a447cd536365c9cfb9d95ed7daf9d86afb7"
# every count of every column's profile (TableProfile.to_dict, one scan per table) of the odd and
# hard files, made by the engine before the profile asked cheaper questions (the rowid's alias
# read from its extremes, one GLOB per timestamp spelling, JSON counted with the other text tests)
PROFILE_SHA256 = {"odd": "e1362a99396ecc427c25492039fe8a2d35f901986073dbe71c47836cf3c81e0a",
                  "hard": "f82efdbc84c94048629f7bc5df96c9c0becf0849a0da63caa3b092f2c169cf1b"}


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return build_odd_values(tmp_path_factory.mktemp("odd") / "odd.db")


def _planned(sources: dict):
    catalogs, profiles, identities = read_sources(sources, 5.0)
    plan = build_plan(catalogs, profiles, identities, None)
    census_mod.census(sources, plan, 5.0, None, profiles)
    return plan, profiles


@pytest.mark.parametrize("which", ["odd", "hard"])
def test_census_flags_read_from_the_profile_equal_the_census_sql(which, odd, tmp_path):
    path = odd if which == "odd" else build_hard(tmp_path / "hard.db")
    plan, _ = _planned({"src": path})
    con = open_source(path)
    checked = 0
    try:
        for tp in plan.tables:
            if not tp.row_count:
                continue
            for cp in tp.columns:
                if cp.generated:
                    continue
                spec = census_mod.spec_for(cp, tp)
                keys = census_mod.keys_for(cp.kind)
                sql = ", ".join(census_mod.sql_for(spec, key) for key in keys)
                row = con.execute(f"SELECT count(*), {sql} FROM {qi(tp.table)}").fetchone()
                expected = {key: (value or 0) == row[0] for key, value in zip(keys, row[1:])}
                assert cp.fast == expected, f"{tp.table}.{cp.source} ({cp.kind})"
                checked += 1
    finally:
        con.close()
    assert checked > (15 if which == "odd" else 40)


def test_the_odd_values_are_counted_as_before(odd):
    """Pinned counts of the two oddest columns (offsets, fractions, epochs, NUL, escapes, blobs)."""
    con = open_source(odd)
    try:
        table = read_catalog(con, "odd", odd).tables[0]
        prof = profile_table(con, table)
    finally:
        con.close()
    ts = prof.columns["ts"]
    assert (ts.ints, ts.reals, ts.texts, ts.blobs, ts.nulls) == (104, 0, 444, 26, 26)
    assert (ts.iso_dates, ts.iso_timestamps, ts.times, ts.with_offset, ts.nonzero_time) == (26, 314, 52, 78, 288)
    assert (ts.epoch_s, ts.epoch_ms, ts.epoch_us, ts.with_nul, ts.max_len) == (52, 26, 26, 26, 29)
    assert (ts.min_int, ts.max_int) == (1_700_000_000, 1_700_000_000_123_456)
    tx = prof.columns["tx"]
    assert (tx.texts, tx.blobs, tx.nulls, tx.with_nul, tx.json_docs, tx.max_len) == (500, 50, 50, 50, 100, 10)
    assert tx.escapes == 250 and ts.escapes is None  # counted for text-like columns only


def test_key_ranges_packed_or_not_give_the_one_scan_profile(tmp_path):
    path = build_odd_values(tmp_path / "odd.db", rows=60_000)
    con = open_source(path)
    try:
        table = read_catalog(con, "odd", path).tables[0]
        whole = profile_table(con, table, True)  # one scan, packed counts
        unpacked = TableProfile(table=table.name, columns={c: type(v)(name=c) for c, v in whole.columns.items()})
        absorb(unpacked, *scan(con, table, True, rows=PACK_ROWS))  # as for a range too long to pack
        ranged = profile_tables(con, path, [table], True, 5.0)[table.name]  # rowid ranges on the pool
    finally:
        con.close()
    assert whole.rows == 60_000
    assert unpacked.to_dict() == whole.to_dict()
    assert ranged.to_dict() == whole.to_dict()


def test_the_mingus_schema_file_is_unchanged(tmp_path):
    sources = copy_fixtures(tmp_path / "src")
    _, text, _ = prepare(sources, tmp_path / "work", None, 5.0)
    for path in sources.values():
        text = text.replace(f"{path.parent}/", "")
    assert hashlib.sha256(text.encode()).hexdigest() == MINGUS_SCHEMA_SHA256


@pytest.mark.parametrize("which", ["odd", "hard"])
def test_every_count_of_the_profile_is_what_it_was(which, odd, tmp_path):
    path = odd if which == "odd" else build_hard(tmp_path / "hard.db")
    con = open_source(path)
    try:
        tables = read_catalog(con, which, path).tables
        profiles = {t.name: profile_table(con, t).to_dict() for t in tables}
    finally:
        con.close()
    assert len(profiles) == (1 if which == "odd" else 12)
    assert hashlib.sha256(json.dumps(profiles, sort_keys=True).encode()).hexdigest() == PROFILE_SHA256[which]


def test_only_a_true_rowid_alias_is_profiled_from_its_extremes(tmp_path):
    """INTEGER PRIMARY KEY is the rowid; INTEGER PRIMARY KEY DESC is a column like any other
    (SQLite's quirk), so a text stored in it is counted as a text."""
    path = tmp_path / "alias.db"
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE alias (id INTEGER PRIMARY KEY, v TEXT);
        CREATE TABLE desc_key (id INTEGER PRIMARY KEY DESC, v TEXT);
        INSERT INTO alias VALUES (3, 'a'), (7, 'b'), (-2, NULL);
        INSERT INTO desc_key VALUES (3, 'a'), ('not a number', 'b'), (2.5, NULL);
    """)
    con.commit()
    con.close()
    con = open_source(path)
    try:
        tables = {t.name: t for t in read_catalog(con, "a", path).tables}
        assert tables["alias"].rowid_alias == tables["desc_key"].rowid_alias == "id"  # what the catalog says
        assert rowid_alias(con, tables["alias"]) == "id"
        assert rowid_alias(con, tables["desc_key"]) is None
        alias = profile_table(con, tables["alias"]).columns["id"]
        other = profile_table(con, tables["desc_key"]).columns["id"]
    finally:
        con.close()
    assert (alias.ints, alias.reals, alias.texts, alias.blobs, alias.nulls) == (3, 0, 0, 0, 0)
    assert (alias.min_int, alias.max_int) == (-2, 7)
    assert (other.ints, other.reals, other.texts, other.nulls) == (1, 1, 1, 0)
