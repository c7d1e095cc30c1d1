"""Reading SQLite's own SQL text: a tokenizer and the few CREATE statements the engine parses.

SQLite's PRAGMAs give columns, keys, indexes and foreign keys, but not CHECK constraints,
generated-column expressions, collations or AUTOINCREMENT; those are read from the CREATE
statement kept in sqlite_master. The parser here is deliberately small: it splits statements
into tokens and top-level parts and leaves the meaning of expressions to `translate`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Token:
    kind: str  # ident, qident, string, blob, number, param, op, lparen, rparen, comma, semi, dot
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper()

    @property
    def name(self) -> str:
        """The identifier this token spells (quotes removed), or its text."""
        if self.kind == "qident":
            q = self.text[0]
            body = self.text[1:-1]
            if q == '"':
                return body.replace('""', '"')
            if q == "`":
                return body.replace("``", "`")
            return body  # [bracketed]
        return self.text


_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<blob>[xX]'[0-9A-Fa-f]*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<qident>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
  | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9A-Fa-f]+)
  | (?P<ident>[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*)
  | (?P<param>\?\d*|[:@$][A-Za-z0-9_]+)
  | (?P<op>\|\||<<|>>|<=|>=|==|!=|<>|->>|->|[-+*/%<>=~&|!])
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<semi>;)
  | (?P<dot>\.)
""", re.VERBOSE | re.DOTALL)


class SqlSyntaxError(ValueError):
    """SQL text the small parser does not understand."""


def tokenize(sql: str) -> list[Token]:
    """Split SQLite SQL into tokens, dropping whitespace and comments."""
    tokens = []
    pos = 0
    while pos < len(sql):
        m = _TOKEN_RE.match(sql, pos)
        if not m:
            raise SqlSyntaxError(f"cannot read SQL near {sql[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        tokens.append(Token(kind, m.group()))
    return tokens


def split_top(tokens: list[Token], sep: str = "comma") -> list[list[Token]]:
    """Split tokens at separators that are not inside parentheses."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.kind == "lparen":
            depth += 1
        elif tok.kind == "rparen":
            depth -= 1
        if tok.kind == sep and depth == 0:
            parts.append([])
        else:
            parts[-1].append(tok)
    return [p for p in parts if p]


def paren_body(tokens: list[Token], start: int) -> tuple[list[Token], int]:
    """Tokens between the '(' at `start` and its matching ')', and the index after it."""
    if start >= len(tokens) or tokens[start].kind != "lparen":
        raise SqlSyntaxError("expected '('")
    depth = 0
    for i in range(start, len(tokens)):
        if tokens[i].kind == "lparen":
            depth += 1
        elif tokens[i].kind == "rparen":
            depth -= 1
            if depth == 0:
                return tokens[start + 1:i], i + 1
    raise SqlSyntaxError("unbalanced parentheses")


_SPACED_KEYWORDS = {"IN", "AS", "AND", "OR", "NOT", "ON", "VALUES", "EXISTS", "WHEN", "THEN", "ELSE", "SELECT",
                    "FROM", "WHERE", "IS", "BETWEEN", "CHECK", "KEY", "UNIQUE", "USING"}


def render(tokens: list[Token]) -> str:
    """Tokens joined back into readable SQL (spacing normalised)."""
    out = []
    prev: Optional[Token] = None
    for tok in tokens:
        if prev is not None and not (
            tok.kind in ("rparen", "comma", "dot", "semi") or prev.kind in ("lparen", "dot")
            or (tok.kind == "lparen" and prev.kind in ("ident", "qident") and prev.upper not in _SPACED_KEYWORDS)
        ):
            out.append(" ")
        out.append(tok.text)
        prev = tok
    return "".join(out)


_COLUMN_CONSTRAINT_STARTS = {"CONSTRAINT", "PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK", "DEFAULT",
                             "COLLATE", "REFERENCES", "GENERATED", "AS"}
_TABLE_CONSTRAINT_STARTS = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}


@dataclass
class ParsedColumn:
    name: str
    type_text: str = ""
    checks: list[tuple[Optional[str], str]] = field(default_factory=list)  # (constraint name, expr sql)
    generated: Optional[str] = None
    generated_stored: bool = False
    collation: Optional[str] = None
    autoincrement: bool = False


@dataclass
class ParsedTable:
    name: str
    columns: list[ParsedColumn] = field(default_factory=list)
    checks: list[tuple[Optional[str], str]] = field(default_factory=list)
    uniques: list[tuple[Optional[str], list[str]]] = field(default_factory=list)
    pk_name: Optional[str] = None
    without_rowid: bool = False
    strict: bool = False

    def column(self, name: str) -> Optional[ParsedColumn]:
        low = name.lower()
        for col in self.columns:
            if col.name.lower() == low:
                return col
        return None


def _expr_tokens_until(tokens: list[Token], i: int, stop_words: set[str]) -> tuple[list[Token], int]:
    """Tokens of an expression from `i` up to a top-level stop word (exclusive)."""
    depth = 0
    start = i
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "lparen":
            depth += 1
        elif tok.kind == "rparen":
            depth -= 1
        elif depth == 0 and tok.kind == "ident" and tok.upper in stop_words:
            break
        i += 1
    return tokens[start:i], i


def parse_create_table(sql: str) -> ParsedTable:
    """Parse a CREATE TABLE statement for what PRAGMAs do not tell (checks, generated columns...)."""
    tokens = tokenize(sql)
    i = 0
    while i < len(tokens) and tokens[i].upper != "TABLE":
        i += 1
    i += 1
    if i + 2 < len(tokens) and tokens[i].upper == "IF" and tokens[i + 1].upper == "NOT":
        i += 3
    name_tok = tokens[i]
    i += 1
    if i < len(tokens) and tokens[i].kind == "dot":
        name_tok = tokens[i + 1]
        i += 2
    table = ParsedTable(name=name_tok.name)
    if i >= len(tokens) or tokens[i].kind != "lparen":
        raise SqlSyntaxError(f"CREATE TABLE {table.name}: no column list (CREATE TABLE ... AS SELECT?)")
    body, i = paren_body(tokens, i)
    options = {t.upper for t in tokens[i:] if t.kind == "ident"}
    table.without_rowid = "ROWID" in options and "WITHOUT" in options
    table.strict = "STRICT" in options
    for part in split_top(body):
        first = part[0]
        if first.kind == "ident" and first.upper in _TABLE_CONSTRAINT_STARTS and not (
            first.upper in ("PRIMARY", "UNIQUE", "CHECK", "FOREIGN") and len(part) > 1
            and part[1].kind not in ("lparen", "ident")
        ):
            _parse_table_constraint(table, part)
        else:
            table.columns.append(_parse_column(part))
    return table


def _parse_table_constraint(table: ParsedTable, part: list[Token]) -> None:
    i = 0
    name = None
    if part[0].upper == "CONSTRAINT":
        name = part[1].name
        i = 2
    if i >= len(part):
        return
    word = part[i].upper
    if word == "CHECK":
        expr, _ = paren_body(part, i + 1)
        table.checks.append((name, render(expr)))
    elif word == "UNIQUE":
        cols, _ = paren_body(part, i + 1)
        table.uniques.append((name, [split[0].name for split in split_top(cols)]))
    elif word == "PRIMARY":
        table.pk_name = name


def _parse_column(part: list[Token]) -> ParsedColumn:
    col = ParsedColumn(name=part[0].name)
    i = 1
    type_toks = []
    while i < len(part) and not (part[i].kind == "ident" and part[i].upper in _COLUMN_CONSTRAINT_STARTS):
        if part[i].kind == "lparen":
            inner, j = paren_body(part, i)
            type_toks.extend(part[i:j])
            i = j
            continue
        type_toks.append(part[i])
        i += 1
    col.type_text = render(type_toks)
    cname = None
    while i < len(part):
        word = part[i].upper if part[i].kind == "ident" else ""
        if word == "CONSTRAINT":
            cname = part[i + 1].name
            i += 2
            continue
        if word == "CHECK":
            expr, i = paren_body(part, i + 1)
            col.checks.append((cname, render(expr)))
        elif word == "COLLATE":
            col.collation = part[i + 1].name
            i += 2
        elif word in ("GENERATED", "AS"):
            while i < len(part) and part[i].kind != "lparen":
                i += 1
            expr, i = paren_body(part, i)
            col.generated = render(expr)
            if i < len(part) and part[i].upper == "STORED":
                col.generated_stored = True
                i += 1
        elif word == "AUTOINCREMENT":
            col.autoincrement = True
            i += 1
        elif word == "DEFAULT":
            i += 1
            if i < len(part) and part[i].kind == "lparen":
                _, i = paren_body(part, i)
            else:
                if i < len(part) and part[i].kind == "op":
                    i += 1
                i += 1
        elif word == "REFERENCES":
            i += 2
            if i < len(part) and part[i].kind == "lparen":
                _, i = paren_body(part, i)
        else:
            i += 1
        cname = None if word != "CONSTRAINT" else cname
    return col


@dataclass
class ParsedIndex:
    name: str
    table: str
    unique: bool
    parts: list[str]  # each part as SQL text: expression [COLLATE x] [ASC|DESC]
    part_tokens: list[list[Token]]
    where: Optional[str] = None
    where_tokens: Optional[list[Token]] = None


def parse_create_index(sql: str) -> ParsedIndex:
    """Parse CREATE [UNIQUE] INDEX name ON table (parts) [WHERE expr]."""
    tokens = tokenize(sql)
    unique = any(t.upper == "UNIQUE" for t in tokens[:3])
    i = next(k for k, t in enumerate(tokens) if t.upper == "INDEX") + 1
    if tokens[i].upper == "IF":
        i += 3
    name = tokens[i].name
    i += 1
    if tokens[i].kind == "dot":
        name = tokens[i + 1].name
        i += 2
    if tokens[i].upper != "ON":
        raise SqlSyntaxError(f"CREATE INDEX {name}: expected ON")
    table = tokens[i + 1].name
    body, j = paren_body(tokens, i + 2)
    parts = split_top(body)
    where_tokens = None
    if j < len(tokens) and tokens[j].upper == "WHERE":
        where_tokens = tokens[j + 1:]
        if where_tokens and where_tokens[-1].kind == "semi":
            where_tokens = where_tokens[:-1]
    return ParsedIndex(name=name, table=table, unique=unique, parts=[render(p) for p in parts],
                       part_tokens=parts, where=render(where_tokens) if where_tokens else None,
                       where_tokens=where_tokens)


def parse_create_view(sql: str) -> tuple[str, Optional[list[str]], list[Token]]:
    """Parse CREATE VIEW name [(columns)] AS select: (name, column names, select tokens)."""
    tokens = tokenize(sql)
    i = next(k for k, t in enumerate(tokens) if t.upper == "VIEW") + 1
    if tokens[i].upper == "IF":
        i += 3
    name = tokens[i].name
    i += 1
    if tokens[i].kind == "dot":
        name = tokens[i + 1].name
        i += 2
    cols = None
    if tokens[i].kind == "lparen":
        body, i = paren_body(tokens, i)
        cols = [p[0].name for p in split_top(body)]
    if tokens[i].upper != "AS":
        raise SqlSyntaxError(f"CREATE VIEW {name}: expected AS")
    select = tokens[i + 1:]
    if select and select[-1].kind == "semi":
        select = select[:-1]
    return name, cols, select
