"""The census: which columns the fast load path can take without per-row checks.

A column whose every value passes its guard (`fastpath.copy_guard`), needs no COPY escaping
and whose floats print exactly is loaded and validated without per-value checks -- but only
while the file is the very version counted (run.column_specs, census_holds=False otherwise).

The answers are counts the profile's one scan already made (`profile._column_aggregates`), read
here for the kind the plan chose (`derive`); a column whose kind needs a count the profile does
not make (an epoch decision, a time of day, a column typed unlike its declaration) is counted
with its guard in SQL, by the same pool of processes and key ranges as the profile.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from . import decisions, fastpath
from .catalog import affinity, qi
from .plan import Plan
from .profile import ColumnProfile, is_datetime_type, key_ranges, wait_result, PARALLEL_ROWS
from .progress import Reporter
from .sources import open_source

UNKNOWN = None


def spec_for(cp, tp) -> fastpath.ColumnSpec:
    """The loader's view of a planned column (before the target's real types are known)."""
    always_int = cp.source == tp.rowid_alias or (tp.strict and cp.declared.upper() in ("INT", "INTEGER"))
    params = {**cp.params, **decisions.check_kind(cp.source, cp.decisions, cp.kind)}
    return fastpath.ColumnSpec(source=cp.source, target=cp.target, kind=cp.kind, params=params,
                               notnull=cp.notnull, always_int=always_int)


def keys_for(kind: str) -> tuple:
    """The census flags of a column of this kind, in the order plan.json lists them."""
    keys = ("guard", "nonull")
    if kind in ("text", "json", "jsonb"):
        keys += ("plain",)
    if kind == "float":
        keys += ("float17",)
    if kind == "timestamp":
        keys += ("ts19", "ts26")
    return keys


def derive(spec: fastpath.ColumnSpec, declared: str, prof: ColumnProfile, rows: int) -> dict:
    """{flag: True/False, or None when the profile's counts cannot tell} for one column.

    Each answer is what the census SQL (`sql_for`) would count over the same file version:
    a flag holds when every row passes. NULLs pass every guard of a nullable column.
    """
    nn = prof.non_null
    nulls_ok = prof.nulls == 0 or not spec.notnull
    out = {"nonull": prof.nulls == 0, "guard": _guard(spec, declared, prof, nn)}
    if fastpath.copy_guard(spec, census=True) is None:
        out["guard"] = True  # no guard: every row passes, NULL or not
    elif out["guard"] is not None:
        out["guard"] = out["guard"] and nulls_ok
    if spec.kind in ("text", "json", "jsonb"):
        out["plain"] = None if prof.escapes is None else prof.escapes == 0
        if prof.texts == 0 and prof.blobs == 0:
            out["plain"] = True  # numbers never hold a character COPY escapes
    if spec.kind == "float":
        out["float17"] = None if prof.inexact_floats is None else prof.inexact_floats == 0
        if prof.reals == 0:
            out["float17"] = True
    if spec.kind == "timestamp":
        for key in ("ts19", "ts26"):
            counted = getattr(prof, key)
            out[key] = None if counted is None else prof.nulls + counted == rows
    return out


def _guard(spec: fastpath.ColumnSpec, declared: str, prof: ColumnProfile, nn: int) -> Optional[bool]:
    """Whether every non-NULL value passes the guard of `spec`'s kind, or None (not known)."""
    k, params = spec.kind, spec.params
    if fastpath.copy_guard(spec, census=True) is None:
        return True
    if nn == 0:
        return True
    up = declared.upper()
    if k == "int":
        if prof.ints != nn:
            return False
        if "min" not in params:
            return True
        if prof.min_int is None:
            return UNKNOWN  # not counted for this declared type
        return params["min"] <= prof.min_int and prof.max_int <= params["max"]
    if k in ("float", "numeric"):
        return prof.ints + prof.reals == nn
    if k in ("text", "json", "jsonb"):
        if prof.blobs:
            return False
        if "length" in params and (prof.ints or prof.reals):
            return UNKNOWN  # the length of a number's text is not counted
        if prof.texts and not (affinity(declared) in ("TEXT", "BLOB") or is_datetime_type(up)):
            return UNKNOWN  # NUL and length counted only for text-like columns
        if prof.texts and prof.with_nul:
            return False
        return "length" not in params or prof.max_len <= params["length"]
    if k == "bytea":
        return True  # any value but NULL passes
    if k == "bool":
        return UNKNOWN if prof.bool01 is None else prof.bool01 == nn
    if k == "date" and is_datetime_type(up):
        return prof.iso_dates == nn
    if k == "timestamp" and not params.get("epoch"):
        return UNKNOWN if prof.ts_guard is None else prof.ts_guard == nn
    if k == "uuid" and prof.uuids == nn:
        return True  # a UUID spelling holds no backslash
    return UNKNOWN


def sql_for(spec: fastpath.ColumnSpec, key: str) -> str:
    """The census aggregate of one flag, counted over the rows (it holds when it equals count(*))."""
    c = qi(spec.source)
    if key == "guard":
        guard = fastpath.copy_guard(spec, census=True)
        return f"sum(CASE WHEN {guard} THEN 1 ELSE 0 END)" if guard else "count(*)"
    if key == "nonull":
        return f"count({c})"
    if key == "plain":
        return f"sum(CASE WHEN {fastpath.needs_escape(c)} THEN 0 ELSE 1 END)"
    if key == "float17":
        return f"sum(CASE WHEN {fastpath.float17_exact(c)} THEN 1 ELSE 0 END)"
    n = 19 if key == "ts19" else 26  # NULLs count as spelled right: they print \N on both sides
    return f"sum({c} IS NULL OR (length({c})={n} AND substr({c}, 11, 1)=' '))"


def census(sources: dict, plan: Plan, busy_timeout: float, reporter: Optional[Reporter] = None,
           profiles: Optional[dict] = None) -> None:
    """Set every planned column's census flags (`cp.fast`) and each table's COPY row width.

    `profiles` ({(source, table): TableProfile}, from the same file version) answer most
    flags; the rest are counted in SQL, long tables in rowid ranges on a pool of processes.
    """
    from .workers import process_executor

    workers = max(1, min(os.cpu_count() or 1, 8))
    profiles = profiles or {}
    for name, path in sources.items():
        tables = [tp for tp in plan.tables if tp.source == name and tp.row_count]
        if not tables:
            continue
        con = open_source(Path(path), busy_timeout=busy_timeout)
        try:
            work = []
            for tp in tables:
                prof = profiles.get((name, tp.table))
                exprs, layout = ["count(*)"], []
                for cp in tp.columns:
                    if cp.generated:
                        continue
                    spec = spec_for(cp, tp)
                    known = {}
                    if prof is not None and cp.source in prof.columns:
                        known = derive(spec, cp.declared, prof.columns[cp.source], prof.rows)
                    cp.fast = {}
                    for key in keys_for(cp.kind):
                        cp.fast[key] = known.get(key)
                        if cp.fast[key] is None:
                            exprs.append(sql_for(spec, key))
                            layout.append((cp, key))
                if layout:
                    work.append((tp, exprs, layout))
            if work:
                if reporter:
                    reporter.log(f"counting load shapes of {name}: {sum(len(w[2]) for w in work)} flags the "
                                 f"profile does not answer")
                _count(con, path, work, workers, busy_timeout, reporter, process_executor)
            fastpath.register_functions(con)
            for tp in tables:
                specs = [spec_for(cp, tp) for cp in tp.columns if not cp.generated]
                line, _ = fastpath.copy_line(specs)
                n, size = con.execute(f"SELECT count(*), sum(length(CAST(line AS BLOB))) FROM (SELECT {line} AS line "
                                      f"FROM {qi(tp.table)} LIMIT 2000)").fetchone()
                tp.copy_bytes_per_row = round((size or 0) / n, 1) if n else 0.0
        finally:
            con.close()


def _count(con, path, work: list, workers: int, busy_timeout: float, reporter, process_executor) -> None:
    if workers > 1 and sum(tp.row_count for tp, _, _ in work) >= PARALLEL_ROWS:
        with process_executor(workers) as pool:
            futures = [[pool.submit(census_range, str(path), tp.table, exprs, where, params, busy_timeout)
                        for where, params, _ in key_ranges(con, tp.table, tp.rowid_name, tp.row_count, workers)]
                       for tp, exprs, _ in work]
            answers = [[wait_result(f, reporter) for f in fs] for fs in futures]
    else:
        answers = [[con.execute(f"SELECT {', '.join(exprs)} FROM {qi(tp.table)}").fetchone()] for tp, exprs, _ in work]
    for (tp, exprs, layout), rows in zip(work, answers):
        row = [sum(r[k] or 0 for r in rows) for k in range(len(exprs))]
        for (cp, key), value in zip(layout, row[1:]):
            cp.fast[key] = (value or 0) == row[0]


def census_range(path: str, table: str, exprs: list, where: str, params: tuple, busy_timeout: float) -> tuple:
    """The census counts of one rowid range of a table, in a worker process."""
    con = open_source(Path(path), busy_timeout=busy_timeout)
    try:
        return con.execute(f"SELECT {', '.join(exprs)} FROM {qi(table)} WHERE {where}", params).fetchone()
    finally:
        con.close()
