"""Custom performance queries: one read-only statement each, refused before reaching the server.

A lead saves these queries in the check settings; the performance check runs them on the
production target with stored credentials, so the text is hostile until proven a plain read.
The gate here is the first of three (docs/trust-boundary.md): each query must be exactly one
statement (split by sqlparse, which knows quotes, comments and dollar quoting), a SELECT, VALUES,
TABLE or read-only WITH, with no transaction control, no SET, no INTO, no data-changing or
locking clause and none of the side-effecting functions PostgreSQL lets a read-only transaction
call. Then the check runs it through the extended protocol (a prepared statement: one command,
never a `;`-joined batch) inside a READ ONLY transaction that is always rolled back; and the
docs give the read-only role the checks should connect as.
"""
import re

import sqlparse
from sqlparse import tokens as T

MAX_LENGTH = 10_000

_READS = {"SELECT", "VALUES", "TABLE", "WITH"}
# Keywords that change data, schema, session or transaction state, wherever they stand (a
# writable CTE hides its DELETE inside a WITH; SELECT ... INTO creates a table).
_REFUSED_KEYWORDS = {
    "INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "INTO", "COPY", "CREATE", "DROP", "ALTER",
    "GRANT", "REVOKE", "COMMIT", "ROLLBACK", "BEGIN", "START", "SAVEPOINT", "RELEASE", "ABORT",
    "END", "SET", "RESET", "LOCK", "VACUUM", "ANALYZE", "CLUSTER", "REINDEX", "REFRESH",
    "CALL", "DO", "EXECUTE", "PREPARE", "DEALLOCATE", "LISTEN", "NOTIFY", "UNLISTEN", "LOAD",
    "DISCARD", "CHECKPOINT", "IMPORT", "SECURITY", "COMMENT", "SHARE",
}
# Functions that act even in a read-only transaction (signals, files, locks, settings, other
# databases), or that a read-only transaction refuses anyway (named here to say so up front).
# pg_sleep stays allowed: statement_timeout bounds it, and it is how a slow query is simulated.
_REFUSED_FUNCTIONS = re.compile(
    r"^(pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile|pg_promote|"
    r"pg_read_\w*file|pg_ls_\w+|pg_stat_file|pg_file_\w+|pg_advisory\w*|"
    r"pg_try_advisory\w*|pg_notify|pg_switch_wal|pg_create_\w+|pg_drop_\w+|pg_replication_\w+|"
    r"pg_logical_\w+|pg_import_\w+|pg_log_backend_memory_contexts|set_config|nextval|setval|"
    r"lo_\w+|dblink\w*|query_to_xml\w*|table_to_xml\w*|txid_current|pg_current_xact_id|"
    r"pg_stat_reset\w*|pg_catalog\.\w+_file|current_setting)$", re.I)


def refusal(sql):
    """Why `sql` may not run as a custom performance query, or None when it may."""
    if not isinstance(sql, str) or not sql.strip():
        return "a query must be non-empty text"
    if len(sql) > MAX_LENGTH:
        return f"a query must be at most {MAX_LENGTH} characters"
    if "\x00" in sql:
        return "a query must not contain NUL bytes"
    statements = [s for s in sqlparse.parse(sql) if _meaningful(s)]
    if len(statements) != 1 or _has_separator(statements[0]):
        return "a query must be exactly one statement (no ';'-joined statements)"
    statement = statements[0]
    first = next((t for t in statement.flatten()
                  if not t.is_whitespace and t.ttype not in T.Comment), None)
    if first is None or first.normalized.upper() not in _READS:
        return "a query must be a read (SELECT, VALUES, TABLE or WITH ... SELECT)"
    for token in statement.flatten():
        if token.ttype in T.Keyword or token.ttype in T.Keyword.DML or \
                token.ttype in T.Keyword.DDL or token.ttype in T.Keyword.TZCast:
            word = token.normalized.upper()
            if word in _REFUSED_KEYWORDS or word.split()[0] in _REFUSED_KEYWORDS or \
                    word in ("FOR UPDATE", "FOR SHARE", "FOR NO KEY UPDATE", "FOR KEY SHARE"):
                return f"a query must only read: '{word}' is not allowed"
    if _has_unicode_escaped_name(statement):
        # U&"..." spells a name through escapes (U&"pg\005fsleep"): no name check could read it.
        return "a query must only read: Unicode-escaped names (U&\"...\") are not allowed"
    for name in _function_names(statement):
        if _REFUSED_FUNCTIONS.match(name):
            return f"a query must only read: the function {name}() is not allowed"
    return None


def _meaningful(statement):
    return any(not t.is_whitespace and t.ttype not in T.Comment and t.ttype is not T.Punctuation
               and t.ttype not in (T.Comment.Single, T.Comment.Multiline)
               for t in statement.flatten())


def _has_separator(statement):
    return any(t.ttype is T.Punctuation and t.value == ";" for t in statement.flatten())


def _has_unicode_escaped_name(statement):
    tokens = [t for t in statement.flatten() if not t.is_whitespace and t.ttype not in T.Comment]
    return any(a.value.upper() == "U" and b.value == "&" and c.value.startswith('"')
               for a, b, c in zip(tokens, tokens[1:], tokens[2:]))


def _identifier(value):
    """A name as PostgreSQL resolves it: a quoted one ("pg_sleep", with "" for a quote) is taken
    literally, an unquoted one is folded to lower case. Folding both is stricter, never looser."""
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        value = value[1:-1].replace('""', '"')
    return value.lower()


def _function_names(statement):
    """Every name that is called (a name followed by '('), quoted or not, schema-qualified
    names included. sqlparse reads a quoted name as a Symbol: it is a name all the same."""
    tokens = [t for t in statement.flatten() if not t.is_whitespace and t.ttype not in T.Comment]
    for i, token in enumerate(tokens[:-1]):
        if tokens[i + 1].value == "(" and (token.ttype in T.Name or token.ttype in T.Keyword
                                          or token.ttype is T.Name.Builtin
                                          or token.ttype in T.Literal.String.Symbol):
            name = _identifier(token.value)
            yield name
            if i >= 2 and tokens[i - 1].value == ".":
                yield f"{_identifier(tokens[i - 2].value)}.{name}"


def check_all(queries):
    """The queries, or ValueError naming the first refused one by its position."""
    if queries in (None, ""):
        return []
    if not isinstance(queries, list):
        raise ValueError("queries must be a list of SQL strings")
    for n, sql in enumerate(queries, 1):
        reason = refusal(sql)
        if reason:
            raise ValueError(f"query {n}: {reason}")
    return queries
