"""Translating SQLite expressions (defaults, CHECKs, index parts, partial-index conditions,
generated columns, views) into PostgreSQL.

Only what has the same meaning on both sides is translated; anything else raises
`Untranslatable` with the reason, so the caller can leave it out of the schema *visibly*
(as a commented-out line with the reason) instead of guessing.
"""
from __future__ import annotations

from typing import Callable, Optional

from .ddl_names import quote_ident
from .sqlite_sql import SqlSyntaxError, Token, paren_body, render, split_top, tokenize


class Untranslatable(ValueError):
    """An expression that has no faithful PostgreSQL translation."""


# Words passed through as keywords (upper-cased) rather than resolved as identifiers.
KEYWORDS = {
    "AND", "OR", "NOT", "IN", "IS", "NULL", "CASE", "WHEN", "THEN", "ELSE", "END", "BETWEEN", "EXISTS",
    "CAST", "AS", "ESCAPE", "DISTINCT", "SELECT", "FROM", "WHERE", "GROUP", "BY", "ORDER", "HAVING",
    "LIMIT", "OFFSET", "JOIN", "LEFT", "INNER", "OUTER", "CROSS", "ON", "USING", "UNION", "ALL", "INTERSECT",
    "EXCEPT", "ASC", "DESC", "TRUE", "FALSE", "VALUES", "WITH", "RECURSIVE", "FILTER", "OVER", "PARTITION",
    "NATURAL", "NULLS", "FIRST", "LAST", "ROWS", "RANGE", "PRECEDING", "FOLLOWING", "UNBOUNDED", "CURRENT",
    "ROW", "WINDOW",
}
UNTRANSLATABLE_OPS = {"GLOB": "GLOB patterns", "REGEXP": "REGEXP", "MATCH": "MATCH (full-text search)"}

SIMPLE_FUNCTIONS = {
    "lower": "lower", "upper": "upper", "length": "length", "abs": "abs", "coalesce": "coalesce",
    "nullif": "nullif", "replace": "replace", "trim": "trim", "ltrim": "ltrim", "rtrim": "rtrim",
    "substr": "substr", "substring": "substr", "instr": "strpos", "ifnull": "coalesce", "count": "count",
    "sum": "sum", "avg": "avg", "char": "chr", "sign": "sign", "round": "round",
}
SQLITE_CAST_TYPES = {"INTEGER": "bigint", "INT": "bigint", "REAL": "double precision", "TEXT": "text",
                     "BLOB": "bytea", "NUMERIC": "numeric"}


def now_expr(kind: str) -> str:
    """What SQLite's CURRENT_TIMESTAMP (UTC) means for a column of the given kind."""
    if kind == "timestamptz":
        return "now()"
    if kind == "timestamp":
        return "(now() AT TIME ZONE 'utc')"
    if kind == "date":
        return "((now() AT TIME ZONE 'utc')::date)"
    if kind == "time":
        return "((now() AT TIME ZONE 'utc')::time(0))"
    return "to_char(now() AT TIME ZONE 'utc', 'YYYY-MM-DD HH24:MI:SS')"


class Translator:
    """Translate token lists in one context.

    `resolve(name)` returns the PostgreSQL spelling of a known identifier (a column or
    table) or None; `kinds(name)` returns the conversion kind of a column or None.
    `strings_for_unknown` follows SQLite's rule that a double-quoted word naming no column
    is a string literal (only meaningful in defaults and CHECKs).
    """

    def __init__(self, resolve: Callable[[str], Optional[str]], kinds: Callable[[str], Optional[str]] = lambda n: None,
                 strings_for_unknown: bool = False, now_kind: str = "timestamp"):
        self.resolve = resolve
        self.kinds = kinds
        self.strings_for_unknown = strings_for_unknown
        self.now_kind = now_kind

    def sql(self, sql: str) -> str:
        """Translate SQL text."""
        try:
            return self.tokens(tokenize(sql))
        except SqlSyntaxError as exc:
            raise Untranslatable(str(exc)) from None

    def tokens(self, toks: list[Token]) -> str:
        """Translate a token list."""
        out = self._translate(list(toks))
        return _fix_bool_literals(out)

    def _translate(self, toks: list[Token]) -> list:
        out: list = []  # items: (text, kind-of-column or None)
        i = 0
        while i < len(toks):
            tok = toks[i]
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            up = tok.upper
            if tok.kind == "param":
                raise Untranslatable("bound parameters")
            if tok.kind == "blob":
                out.append(("'\\x" + tok.text[2:-1].lower() + "'::bytea", None))
            elif tok.kind == "number":
                out.append((str(int(tok.text, 16)) if tok.text.lower().startswith("0x") else tok.text, None))
            elif tok.kind == "string":
                out.append((tok.text, None))
            elif tok.kind == "op":
                out.append(("=" if tok.text == "==" else tok.text, "op"))
                if tok.text in ("->", "->>"):
                    raise Untranslatable("JSON arrow operators")
            elif tok.kind in ("lparen", "rparen", "comma", "dot", "semi"):
                out.append((tok.text, tok.kind))
            elif tok.kind == "ident" and up in UNTRANSLATABLE_OPS:
                raise Untranslatable(UNTRANSLATABLE_OPS[up])
            elif tok.kind == "ident" and up == "LIKE":
                out.append(("ILIKE", "kw"))  # SQLite's LIKE ignores ASCII case by default
            elif tok.kind == "ident" and up == "COLLATE":
                coll = toks[i + 1].name.upper() if nxt else ""
                if coll == "BINARY":
                    i += 2
                    continue
                raise Untranslatable(f"COLLATE {coll}")
            elif tok.kind == "ident" and up in ("ISNULL", "NOTNULL"):
                out.append(("IS NULL" if up == "ISNULL" else "IS NOT NULL", "kw"))
            elif tok.kind == "ident" and up == "IS":
                neg = nxt is not None and nxt.upper == "NOT"
                after = toks[i + 2] if neg and i + 2 < len(toks) else nxt
                if after is not None and after.upper in ("NULL", "TRUE", "FALSE", "DISTINCT"):
                    out.append(("IS NOT" if neg else "IS", "kw"))
                else:
                    out.append(("IS DISTINCT FROM" if neg else "IS NOT DISTINCT FROM", "kw"))
                i += 2 if neg else 1
                continue
            elif tok.kind == "ident" and up in ("CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME"):
                kind = {"CURRENT_TIMESTAMP": self.now_kind, "CURRENT_DATE": "date", "CURRENT_TIME": "time"}[up]
                out.append((now_expr(kind), None))
            elif tok.kind == "ident" and up == "CAST" and nxt is not None and nxt.kind == "lparen":
                body, j = paren_body(toks, i + 1)
                as_at = max(k for k, t in enumerate(body) if t.upper == "AS")
                target = render(body[as_at + 1:]).upper()
                pg_type = SQLITE_CAST_TYPES.get(target.split("(")[0].strip())
                if pg_type is None:
                    raise Untranslatable(f"CAST to {target}")
                inner = _join(self._translate(body[:as_at]))
                out.append((f"CAST({inner} AS {pg_type})", None))
                i = j
                continue
            elif tok.kind in ("ident", "qident") and nxt is not None and nxt.kind == "lparen" and up not in KEYWORDS:
                text, i = self._function(tok, toks, i)
                out.append((text, None))
                continue
            elif tok.kind == "ident" and up in KEYWORDS:
                out.append((up, "kw"))
            else:
                resolved = self.resolve(tok.name)
                if resolved is not None:
                    out.append((resolved, "col:" + (self.kinds(tok.name) or "")))
                elif tok.kind == "qident" and tok.text.startswith('"') and self.strings_for_unknown:
                    out.append(("'" + tok.name.replace("'", "''") + "'", None))
                else:
                    out.append((quote_ident(tok.name.lower() if tok.kind == "ident" else tok.name), "ident"))
            i += 1
        return out

    def _function(self, tok: Token, toks: list[Token], i: int) -> tuple[str, int]:
        name = tok.name.lower()
        body, j = paren_body(toks, i + 1)
        args = split_top(body) if body else []
        targs = [_join(self._translate(a)) for a in args]
        if name in ("datetime", "date", "time") and len(args) == 1 and args[0][0].kind == "string" \
                and args[0][0].text.lower() == "'now'":
            return now_expr({"datetime": self.now_kind, "date": "date", "time": "time"}[name]), j
        if name in ("max", "min") and len(args) > 1:
            return f"{'greatest' if name == 'max' else 'least'}({', '.join(targs)})", j
        if name in ("max", "min"):
            return f"{name}({', '.join(targs)})", j
        if name == "iif" and len(args) == 3:
            return f"(CASE WHEN {targs[0]} THEN {targs[1]} ELSE {targs[2]} END)", j
        if name in ("likely", "unlikely") and len(args) == 1:
            return targs[0], j
        if name == "round" and len(args) == 2:
            return f"round(({targs[0]})::numeric, {targs[1]})", j
        if name == "group_concat":
            sep = targs[1] if len(targs) > 1 else "','"
            return f"string_agg(({targs[0]})::text, {sep})", j
        if name == "total" and len(args) == 1:
            return f"coalesce(sum({targs[0]}), 0.0)", j
        if name in SIMPLE_FUNCTIONS:
            distinct = args and args[0] and args[0][0].upper == "DISTINCT"
            if name == "count" and body and len(body) == 1 and body[0].text == "*":
                return "count(*)", j
            if distinct:
                return f"{SIMPLE_FUNCTIONS[name]}({_join(self._translate(body))})", j
            return f"{SIMPLE_FUNCTIONS[name]}({', '.join(targs)})", j
        raise Untranslatable(f"function {tok.name}()")


def _join(items: list) -> str:
    out = []
    prev = "start"
    for text, kind in items:
        if prev != "start" and not (kind in ("rparen", "comma", "dot") or prev in ("lparen", "dot")):
            out.append(" ")
        out.append(text)
        prev = kind
    return "".join(out)


def _fix_bool_literals(items: list) -> str:
    """Compare boolean columns with TRUE/FALSE where SQLite compared them with 1/0."""
    items = list(items)
    n = len(items)
    for k, (text, kind) in enumerate(items):
        if not (kind or "").startswith("col:bool"):
            continue
        # col = 1, col != 0, 1 = col
        for op_at, lit_at in ((k + 1, k + 2), (k - 1, k - 2)):
            if 0 <= lit_at < n and 0 <= op_at < n and items[op_at][0] in ("=", "!=", "<>") \
                    and items[lit_at][0] in ("0", "1"):
                items[lit_at] = ("TRUE" if items[lit_at][0] == "1" else "FALSE", None)
        # col IN (0, 1)
        if k + 2 < n and items[k + 1][0] in ("IN",) and items[k + 2][1] == "lparen":
            m = k + 3
            while m < n and items[m][1] != "rparen":
                if items[m][0] in ("0", "1"):
                    items[m] = ("TRUE" if items[m][0] == "1" else "FALSE", None)
                m += 1
    return _join(items)


def translate_default(default_sql: str, kind: str) -> Optional[str]:
    """A column DEFAULT for PostgreSQL, or None for no default; raises `Untranslatable`."""
    text = default_sql.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    up = text.upper()
    if up == "NULL":
        return None
    if kind == "bool":
        if up in ("1", "'1'", "TRUE", "'TRUE'", "'T'"):
            return "true"
        if up in ("0", "'0'", "FALSE", "'FALSE'", "'F'"):
            return "false"
    tr = Translator(resolve=lambda n: None, strings_for_unknown=True, now_kind=kind)
    if kind == "bytea":
        toks = tokenize(text)
        if len(toks) == 1 and toks[0].kind == "string":
            return "convert_to(" + toks[0].text + ", 'UTF8')"
    return tr.sql(text)
