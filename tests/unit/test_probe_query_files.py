"""Query files of the PG / ClickHouse probes (users/query_files.py): what a good file gives, and one line naming the
option, the file, the table and the key for every bad one; the names validate as SLA metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from sla_checks.profiles import validate_metric
from users.probe_options import ProbeConfig, ProbeConfigError
from users.query_files import QueryFile, QueryFileError, load_query_file, refuse_writes, statement_kind


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "queries.toml"
    path.write_text(text)
    return str(path)


def test_good_pg_file_gives_queries_in_order_with_params_weight_and_kind(tmp_path: Path) -> None:
    path = _file(tmp_path, '''
[queries."thread history"]
sql = "SELECT role FROM messages WHERE thread_id = %s LIMIT %s;"
params = ["t-1", 20]
weight = 3

[queries.by_id]
sql = "WITH x AS (SELECT 1) SELECT * FROM threads WHERE id = %(id)s AND title LIKE '50%%'"
params = { id = "t-2" }

[queries.touch]
sql = "UPDATE threads SET updated_at = now() WHERE id = %s"
params = ["t-3"]
write = true
''')
    qf = load_query_file(path, "--pg-queries", "pg")
    assert [q.name for q in qf.queries] == ["thread history", "by_id", "touch"]
    history, by_id, touch = qf.queries
    assert history.metric_name == "query thread history" and history.params == ("t-1", 20) and history.weight == 3
    assert history.sql.endswith("LIMIT %s")  # trailing ';' dropped
    assert by_id.params == {"id": "t-2"} and by_id.kind == "WITH" and not by_id.write
    assert touch.write and touch.kind == "UPDATE" and qf.writes == (touch,)


def test_pick_follows_weights_and_skips_writes_when_read_only(tmp_path: Path) -> None:
    path = _file(tmp_path, '''
[queries.a]
sql = "SELECT 1"
weight = 9
[queries.b]
sql = "SELECT 2"
[queries.w]
sql = "DELETE FROM t"
write = true
''')
    qf = load_query_file(path, "--pg-queries", "pg")
    # every cycle of sum(weights) picks runs each query exactly its weight times, from the first cycle on
    for _ in range(3):
        cycle = [qf.pick(read_only=True).name for _ in range(10)]  # type: ignore[union-attr]
        assert sorted(cycle) == ["a"] * 9 + ["b"]
    cycle = [qf.pick().name for _ in range(11)]  # type: ignore[union-attr]  # the read-write pool: its own turns
    assert sorted(cycle) == ["a"] * 9 + ["b", "w"]


def _weighted_pair(tmp_path: Path, heavy: str, weight: int, light: str) -> QueryFile:
    text = f'[queries.{heavy}]\nsql = "SELECT 1"\nweight = {weight}\n[queries.{light}]\nsql = "SELECT 2"\n'
    return load_query_file(_file(tmp_path, text), "--pg-queries", "pg")


def test_pick_spreads_each_query_over_its_cycle(tmp_path: Path) -> None:
    """Smooth, not in runs: weights 2 and 1 give a a b a a b ... (as 'aba' from the first pick); a weight-1 query
    next to a weight-100 one runs once in the first 101 picks (a random draw misses it there 37 % of the time)."""
    qf = _weighted_pair(tmp_path, "a", 2, "b")
    assert "".join(qf.pick().name for _ in range(9)) == "aba" * 3  # type: ignore[union-attr]
    qf = _weighted_pair(tmp_path, "big", 100, "rare")
    assert [qf.pick().name for _ in range(101)].count("rare") == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(("sql", "kind"), [
    ("select 1", "SELECT"),
    ("  -- a comment\n  /* block\n */ (SELECT 1)", "SELECT"),
    ("WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d", "WITH"),
    ("explain analyze select 1", "EXPLAIN"),
    ("INSERT INTO t VALUES (1)", "INSERT"),
    ("-- only a comment", ""),
])
def test_statement_kind_skips_comments_and_parentheses(sql: str, kind: str) -> None:
    assert statement_kind(sql) == kind


@pytest.mark.parametrize(("dialect", "text", "expected"), [
    ("pg", '[queries.q]\nsql = "SELECT 1"\nweight = 0', "[queries.q] key 'weight': 0 is not a whole number"),
    ("pg", '[queries.q]\nsql = "SELECT 1"\nweight = 1.5', "[queries.q] key 'weight'"),
    ("pg", '[queries.q]\nsql = "SELECT 1"\nwrite = "yes"', "[queries.q] key 'write': 'yes' is not true or false"),
    ("pg", '[queries.q]\nsql = ""', "[queries.q] key 'sql': missing or empty"),
    ("pg", '[queries.q]\nparams = [1]', "[queries.q] key 'sql': missing or empty"),
    ("pg", '[queries.q]\nsql = "SELECT 1"\ntimeout = 3', "[queries.q] key 'timeout': unknown key"),
    ("pg", '[queries."a b"]\nsql = "SELECT %s"\nparams = "x"', '[queries."a b"] key \'params\': \'x\' is neither'),
    ("pg", '[queries.q]\nsql = "SELECT %s, %s"\nparams = [1]', "[queries.q] key 'params': 1 positional param(s)"),
    ("pg", '[queries.q]\nsql = "SELECT %(a)s"\nparams = { b = 1 }', "no value for %(a)s; not used in the sql: b"),
    ("pg", '[queries.q]\nsql = "SELECT 1 WHERE x LIKE \'a%\' AND y = %s"\nparams = [1]', "write a literal % as %%"),
    ("pg", '[queries.q]\nsql = "DELETE FROM t"', "[queries.q] key 'sql': the statement (DELETE) is not a read"),
    ("ch", '[queries.q]\nsql = "SELECT {id:UInt64}"\nparams = [1]', "ClickHouse takes named params only"),
    ("ch", '[queries.q]\nsql = "SELECT {id:UInt64}"', "[queries.q] key 'params': the sql has {id:Type}"),
    ("ch", '[queries.q]\nsql = "SELECT {id:UInt64}"\nparams = { id = [1] }', "param(s) id must be a string"),
    ("ch", '[queries.q]\nsql = "INSERT INTO t VALUES (1)"', "the statement (INSERT) is not a read"),
    ("pg", 'queries = 3', "no [queries.NAME] table"),
    ("pg", '', "no [queries.NAME] table"),
    ("pg", 'title = "x"\n[queries.q]\nsql = "SELECT 1"', "unknown top-level key 'title'"),
    ("pg", '[queries]\nq = "SELECT 1"', "[queries.q]: expected a table with sql"),
    ("pg", '[queries." q"]\nsql = "SELECT 1"', "the query name must be"),
    ("pg", '[queries.q]\nsql = "SELECT 1"\n[queries.q]', "is not valid TOML"),
])
def test_bad_file_is_one_line_naming_option_file_table_and_key(tmp_path: Path, dialect: str, text: str,
                                                               expected: str) -> None:
    path = _file(tmp_path, text)
    option = "--pg-queries" if dialect == "pg" else "--clickhouse-queries"
    with pytest.raises(QueryFileError) as info:
        load_query_file(path, option, dialect)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(f"{option} {path!r}") and "\n" not in message, message
    assert expected in message, message


def test_missing_file_and_directory_are_named(tmp_path: Path) -> None:
    with pytest.raises(QueryFileError, match=r"--pg-queries '.*nope.toml': no such file"):
        load_query_file(str(tmp_path / "nope.toml"), "--pg-queries", "pg")
    with pytest.raises(QueryFileError, match="is a directory"):
        load_query_file(str(tmp_path), "--pg-queries", "pg")


def test_write_query_is_refused_under_read_only_and_config_says_which(tmp_path: Path) -> None:
    path = _file(tmp_path, '[queries.ok]\nsql = "SELECT 1"\n[queries.touch]\nsql = "UPDATE t SET x = 1"\nwrite = true')
    qf = load_query_file(path, "--pg-queries", "pg")
    with pytest.raises(QueryFileError, match=r"\[queries.touch\] key 'write': a write query \(UPDATE\) while "
                                             "--probe-read-only is on"):
        refuse_writes(qf)
    ProbeConfig(pg_queries=path).refuse_read_only_writes()  # writes allowed: nothing to refuse
    with pytest.raises(ProbeConfigError, match="--probe-read-only is on"):
        ProbeConfig(pg_queries=path, probe_read_only=True).refuse_read_only_writes()
    reads_only = _file(tmp_path, '[queries.ok]\nsql = "SELECT 1"')
    ProbeConfig(pg_queries=reads_only, probe_read_only=True).refuse_read_only_writes()


def test_probe_config_loads_files_and_reports_bad_ones_as_probe_option_errors(tmp_path: Path) -> None:
    good = _file(tmp_path, '[queries.ok]\nsql = "SELECT {n:UInt8}"\nparams = { n = 1 }')
    cfg = ProbeConfig(clickhouse_queries=good)
    assert cfg.clickhouse_query_file is not None and cfg.pg_query_file is None
    assert [q.name for q in cfg.clickhouse_query_file.queries] == ["ok"]
    with pytest.raises(ProbeConfigError, match="--pg-queries"):
        ProbeConfig(pg_queries=str(tmp_path / "missing.toml"))


@pytest.mark.parametrize(("text", "paths"), [
    ("/health,/health/ready", ("/health", "/health/ready")),
    (" /healthz ", ("/healthz",)),
    ("/health/live,/status?verbose=1", ("/health/live", "/status?verbose=1")),
])
def test_health_paths_parse(text: str, paths: tuple[str, ...]) -> None:
    assert ProbeConfig(health_paths=text).health_paths == paths  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected"), [
    ("", "names no path"), ("health", "'health' is not a path"), ("/a b", "is not a path"),
    ("/x,/x", "names '/x' twice"),
])
def test_bad_health_paths_name_the_option(text: str, expected: str) -> None:
    with pytest.raises(ProbeConfigError, match="--health-paths") as info:
        ProbeConfig(health_paths=text)  # type: ignore[arg-type]
    assert expected in str(info.value)


@pytest.mark.parametrize(("metric", "ok"), [
    ("PG query *", True), ("PG query recent messages", True), ("CH query *", True), ("CH query top users", True),
    ("PG q*", True), ("PG thread history", True), ("PG query ", False), ("PG foo*", False), ("PG recent", False),
])
def test_query_file_metric_names_validate_as_thresholds(metric: str, ok: bool) -> None:
    problem = validate_metric(metric)
    assert (problem is None) is ok, problem
    if not ok and metric in ("PG foo*", "PG recent"):
        assert "--pg-queries" in str(problem)
