"""The profile and census are one aggregate scan per table in SQLite: the same answers as the
census SQL they replace, the same in key ranges as in one scan, and the MINGUS schema file
byte for byte what it was before."""
import hashlib

import pytest

from migration import census as census_mod
from migration.catalog import qi, read_catalog
from migration.plan import build_plan
from migration.profile import PACK_ROWS, TableProfile, absorb, profile_table, profile_tables, scan
from migration.schema import prepare, read_sources
from migration.sources import open_source

from .conftest import copy_fixtures
from .sqlite_files import build_hard, build_odd_values

# unified_schema.sql of the six MINGUS fixtures (no target), source paths left out; made by the
# engine before the census moved into the profile's scan
MINGUS_SCHEMA_SHA256 = "58003115402eeed6c5b7fa2aa6892a447cd536365c9cfb9d95ed7daf9d86afb7"


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
