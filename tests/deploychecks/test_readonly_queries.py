"""Custom performance queries are read-only, against the real PostgreSQL: refused before they
reach the server when they are not one plain read, and run (if they got that far) as one
prepared statement in a READ ONLY transaction that is always rolled back. The table survives."""
import psycopg
import pytest

from checks import connectivity, performance, readonly_sql
from deploychecks.models import RunbookCheckSettings
from checks.report import CheckInputError

from .assertions import criterion

HOSTILE = [
    "COMMIT; BEGIN READ WRITE; DROP TABLE victims",
    "SELECT 1; DROP TABLE victims",
    "SET default_transaction_read_only = off",
    "BEGIN",
    "WITH gone AS (DELETE FROM victims RETURNING *) SELECT * FROM gone",
    "SELECT * INTO stolen FROM victims",
    "SELECT nextval('victims_id_seq')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT pg_terminate_backend(pg_backend_pid())",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT * FROM victims FOR UPDATE",
    "/* a read */ DELETE FROM victims",
    "EXPLAIN ANALYZE DELETE FROM victims",
    "TRUNCATE victims",
    # quoted and Unicode-escaped names are names too (sqlparse reads "x" as a Symbol)
    'SELECT "pg_terminate_backend"(pg_backend_pid())',
    """SELECT "pg_catalog"."set_config"('default_transaction_read_only', 'off', false)""",
    """SELECT "nextval"('victims_id_seq')""",
    """SELECT U&"nextval"('victims_id_seq')""",
    "SELECT pg_stat_reset()",
]


@pytest.fixture
def victims(chk_database):
    url = chk_database("chk_ro")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE victims (id serial PRIMARY KEY, secret text);"
                     "INSERT INTO victims (secret) VALUES ('Row-Secret-7741'), ('b'), ('c')")
    return url


def survives(url):
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM victims").fetchone()[0] == 3
        assert conn.execute("SELECT to_regclass('public.stolen')").fetchone()[0] is None
        assert conn.execute("SELECT last_value, is_called FROM victims_id_seq").fetchone() == (
            3, True)


@pytest.mark.parametrize("sql", HOSTILE)
def test_hostile_query_is_refused_before_it_reaches_the_server(victims, sql):
    assert readonly_sql.refusal(sql)
    with pytest.raises(CheckInputError, match="query 1: a query must"):
        performance.run(victims, default_queries=False, queries=[sql], iterations=1,
                        pool_requests=1)
    survives(victims)


@pytest.mark.parametrize("sql", HOSTILE + [
    "SELECT 1; SELECT 2",
    "CREATE TABLE stolen (id int)",
])
def test_past_the_gate_the_server_still_refuses_or_rolls_back(victims, sql):
    """The second line: the same texts sent straight to read_only_execute (as if the gate had
    missed them) fail or change nothing."""
    with psycopg.connect(victims, autocommit=True) as conn:
        try:
            performance.read_only_execute(conn, sql)
        except psycopg.Error:
            pass
        else:  # ran: then it changed nothing that outlives its transaction
            assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] in ("on",
                                                                                          "off")
    survives(victims)


def test_reads_still_run_and_time(victims):
    report = performance.run(victims, default_queries=False, iterations=2, pool_requests=4,
                             queries=["SELECT * FROM victims WHERE id = 2",
                                      "WITH a AS (SELECT count(*) FROM victims) SELECT * FROM a",
                                      "SELECT 'a;b' AS semicolon_in_a_string",
                                      'SELECT "secret" FROM "victims" WHERE "id" = 2'])
    assert criterion(report, "queries_run").ok
    assert report.figures["query_count"] == 4
    survives(victims)


def test_a_failing_query_leaks_no_row_contents(victims):
    report = performance.run(victims, default_queries=False, iterations=1, pool_requests=2,
                             queries=["SELECT secret::int FROM victims ORDER BY id"])
    ran = criterion(report, "queries_run")
    assert not ran.ok and "SQLSTATE 22P02" in ran.detail
    assert "Row-Secret-7741" not in repr(report.to_dict())


def test_connectivity_report_names_the_role_it_used(victims):
    report = connectivity.run(victims, require_tls=False, pool_size=2, samples=2)
    assert report.figures["role"] == "root"
    assert "as role root" in criterion(report, "connect").detail


@pytest.mark.django_db
def test_check_settings_refuse_a_query_that_could_write(client, runbook, users):
    from .test_check_settings_views import post_settings

    client.force_login(users["lead"])
    response = post_settings(client, runbook,
                             performance_queries='["SELECT 1", "COMMIT; DROP TABLE victims"]')
    assert response.status_code == 400
    assert "query 2: a query must be exactly one statement" in response.content.decode()
    assert not RunbookCheckSettings.objects.filter(runbook=runbook).exclude(
        performance_queries=[]).exists()
    assert post_settings(client, runbook, performance_queries='["SELECT 1"]').status_code == 200
    assert RunbookCheckSettings.objects.get(runbook=runbook).performance_queries == ["SELECT 1"]
