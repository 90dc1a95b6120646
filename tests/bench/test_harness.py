"""The benchmark harness: targets, medians and ratios, the BENCHMARKS.md sections, the baseline
log, the workload registry, how HTTP customers follow an order to its end, and one real (tiny)
run of `python -m tests.bench` end to end, and the settings its server runs with; the peers
workload's pure parts (its runner's output, its marks and table, its environment's pins),
none of which installs anything."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench import __main__ as bench_main
from tests.bench import peers_env, peers_runner, report, shoppers
from tests.bench.core import Figure, Workload, percentile
from tests.bench.raw import RawLog, VersionConflict
from tests.bench.setup import BENCH_ENVIRONMENT
from tests.bench.workloads import NAMES, get_workload, peers
from tests.bench.workloads import concurrent as appends

ROOT = Path(__file__).resolve().parents[2]


def test_a_throughput_target_is_a_minimum_ratio_to_the_baseline():
    figure = Figure("events_per_s", "throughput", "events/s", target_ratio=0.8)

    assert figure.meets(800, 1000) is True
    assert figure.meets(799, 1000) is False
    assert figure.meets(None, 1000) is None
    assert figure.target_text() == ">= 0.8x"


def test_a_time_target_is_a_maximum_ratio_and_an_absolute_target_ignores_the_baseline():
    load = Figure("ms", "load", "ms", higher_is_better=False, target_ratio=1.5)
    errors = Figure("errors", "5xx", "answers", higher_is_better=False, target_value=0)
    orders = Figure("orders", "throughput", "orders/s", target_value=300)

    assert (load.meets(15, 10), load.meets(15.1, 10)) == (True, False)
    assert (errors.meets(0, None), errors.meets(1, None)) == (True, False)
    assert (orders.meets(300, 1), orders.meets(299, 10_000)) == (True, False)
    assert Figure("x", "x", "x").meets(5, 1) is None  # no target, nothing to meet
    assert errors.target_text() == "<= 0 answers"


def test_percentile_takes_the_nearest_rank():
    values = [float(n) for n in range(1, 101)]

    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([], 0.5) == 0


def _result(project_runs, baseline_runs, **figure):
    workload = Workload(
        name="w",
        title="A workload",
        figures=(Figure("rate", "throughput", "events/s", target_ratio=0.8, **figure),),
        project=lambda context: {},
    )
    return report.WorkloadResult(workload, project_runs, baseline_runs)


def test_the_table_shows_medians_and_their_ratio_against_the_target():
    result = _result([{"rate": 90}, {"rate": 500}, {"rate": 100}], [{"rate": 200}] * 3)

    [row] = report.rows([result])

    assert row == [
        "A workload",
        "throughput (events/s)",
        "100",
        "200",
        "0.50x",
        ">= 0.8x",
        "**no**",
    ]


def test_a_workload_whose_runs_all_failed_says_so():
    result = _result([], [])
    result.errors.append("boom")

    other = _result([{"rate": 1}], [{"rate": 1}])
    other.notes.append("slow")

    assert report.rows([result])[0][:2] == ["A workload", "failed"]
    assert "- failed: boom" in report.section("sqlite", [result], runs=3, scale=1)
    both = report.section("sqlite", [result, other], runs=3, scale=1)
    assert "- w failed: boom" in both
    assert "- w: slow" in both


def test_a_section_is_added_once_then_replaced_between_its_markers(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nWritten by hand.\n")

    report.write_section(path, "sqlite", "first run")
    report.write_section(path, "postgres", "postgres run")
    report.write_section(path, "sqlite", "second run")

    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nWritten by hand.\n")
    assert "first run" not in text
    assert text.count("second run") == 1
    assert text.index("second run") < text.index("postgres run")


def test_a_section_is_written_with_its_tables_unpadded(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    result = _result([{"rate": 1234.5}], [{"rate": 2000.0}])

    report.write_section(path, "sqlite", report.section("sqlite", [result], runs=1, scale=1))

    rows = [line for line in path.read_text().splitlines() if line.startswith("|")]
    assert rows[0].startswith("| Workload | Figure | Project | Baseline |")
    assert rows[1] == "| --- | --- | --- | --- | --- | --- | --- |"
    assert "| 1,234 | 2,000 | 0.62x |" in rows[2]
    assert not any("  " in row for row in rows)


def test_a_table_without_baselines_leaves_out_their_columns():
    def cells(line):
        return [cell.strip() for cell in line.strip("|").split("|")]

    without = _result([{"rate": 90}], [], baseline=False)
    with_one = _result([{"rate": 90}], [{"rate": 100}])

    header, _, row = report.table([without]).splitlines()
    assert cells(header) == ["Workload", "Figure", "Project", "Target", "Met"]
    assert cells(row)[:3] == ["A workload", "throughput (events/s)", "90"]
    assert cells(report.table([without, with_one]).splitlines()[0])[3:5] == ["Baseline", "Ratio"]


def test_the_baseline_log_checks_the_expected_version_and_writes_nothing_on_conflict(tmp_path):
    log = RawLog("sqlite", str(tmp_path / "baseline.sqlite3"))
    assert log.append("Thing", "t1", [("Happened", {"n": 1}), ("Happened", {"n": 2})], 0) == 2

    with pytest.raises(VersionConflict):
        log.append("Thing", "t1", [("Happened", {"n": 3})], 1)

    assert log.count() == 2
    assert [row[4] for row in log.read_stream("Thing", "t1")] == [{"n": 1}, {"n": 2}]
    assert log.rebuild_streams(batch_size=1) == 2
    log.close()


def test_every_registered_workload_is_found_under_its_own_name():
    assert {get_workload(name).name for name in NAMES} == set(NAMES)
    assert "http-latency" in NAMES


def test_the_latency_workloads_headline_is_the_ratio_with_a_3x_target():
    headline = get_workload("http-latency").figures[0]

    assert headline.key == "ratio"
    assert (headline.meets(3.0, None), headline.meets(1.7, None)) == (True, False)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # pg_stat_activity is read afresh after the block
def test_the_foreign_workloads_transaction_is_another_applications_and_ends_with_its_block():
    from django.db import connection

    from eventstore.recorders import recorder
    from tests.bench.workloads.http_foreign import foreign_transaction
    from tests.processes import postgres_server

    url = f"{postgres_server()}/{connection.settings_dict['NAME']}"
    with foreign_transaction(url, seconds=30) as pid:
        ignored = recorder().held_by()["ignored"]
        assert (ignored["pid"], ignored["application_name"]) == (pid, "psql")

    assert recorder().held_by()["ignored"] is None


def test_the_concurrent_append_workloads_headline_is_16_clients_concurrent_over_locked():
    workload = get_workload("append-concurrent")
    headline = workload.figures[0]

    assert (workload.backends, workload.section, workload.baseline) == (
        ("postgres",),
        "append-concurrent",
        None,
    )
    assert headline.key == "ratio"
    assert (headline.meets(1.5, None), headline.meets(1.49, None)) == (True, False)
    assert appends.ratio(900, 600) == 1.5
    assert appends.ratio(900, 0) == 0
    keys = {figure.key for figure in workload.figures}
    assert {appends.figure_key(m, c) for m in appends.MODES for c in (1, 4, 16)} < keys


def test_each_concurrent_client_appends_round_robin_to_streams_of_its_own():
    streams = {
        (mode, clients, thread): {
            appends.stream_name(mode, clients, thread, call) for call in range(250)
        }
        for mode in appends.MODES
        for clients in (1, 4, 16)
        for thread in range(clients)
    }

    assert appends.stream_name("locked", 16, 3, 205) == "lock-c16-t3-s5"
    assert appends.stream_name("concurrent", 16, 3, 205) == "free-c16-t3-s5"
    assert {len(names) for names in streams.values()} == {appends.STREAMS_PER_CLIENT}
    assert sum(map(len, streams.values())) == len(set().union(*streams.values()))
    for (mode, clients, _), names in streams.items():  # a point's prefix finds only its own
        prefix = appends.point_prefix(mode, clients)
        assert all(name.startswith(prefix) for name in names)
    assert not appends.stream_name("locked", 16, 0, 0).startswith(appends.point_prefix("locked", 1))


def test_the_concurrent_appends_last_at_least_a_second_and_say_whether_they_locked():
    assert appends.duration(1.0) == 5.0
    assert appends.duration(0.001) == 1.0
    assert appends.slice_seconds(5.0) == 1.25
    assert sorted(appends.ORDER) == sorted(appends.MODES * 4)  # the same time for each mode
    assert len(appends.lock_notes({"locked": True, "concurrent": False})) == 2
    [*_, warning] = appends.lock_notes({"locked": True, "concurrent": True})
    assert "does not read EVENTSTORE_APPEND_LOCK" in warning


def test_the_concurrent_appends_check_finds_missing_extra_and_gapped_streams():
    appended = {"a": 3, "b": 2, "c": 1}

    stored = [("a", 3, 1, 3), ("b", 2, 1, 2), ("c", 1, 1, 1)]
    assert appends.stream_problems(stored, appended) == []
    problems = appends.stream_problems([("a", 3, 1, 4), ("b", 1, 1, 1), ("x", 1, 1, 1)], appended)
    assert problems == [
        "a: versions 1..4 for 3 events",
        "b: 1 events stored, 2 appended",
        "x: 1 events stored, none appended",
        "c: nothing stored, 1 appended",
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_clients_appends_are_all_in_the_log_and_a_miscount_fails_the_check():
    records = [appends._Client(index) for index in range(4)]

    first = appends._run_slice("concurrent", records, seconds=0.2)
    calls = [record.calls for record in records]
    second = appends._run_slice("concurrent", records, seconds=0.2)  # goes on from the first

    assert min(first, second) >= 0.2
    assert all(record.calls > before > 0 for record, before in zip(records, calls, strict=True))
    appends._verify("concurrent", 4, records)  # the log agrees with the counts
    records[0].versions[appends.stream_name("concurrent", 4, 0, 0)] += 1
    with pytest.raises(RuntimeError, match="the log disagrees"):
        appends._verify("concurrent", 4, records)


class FakeSession:
    """Answers GET /api/orders/{id}/ with the given statuses in turn, counting the requests."""

    def __init__(self, *statuses):
        self.tally = shoppers.Tally()
        self.statuses = list(statuses)
        self.requests = []

    def request(self, method, path, body=None):
        self.requests.append((method, path))
        status = self.statuses.pop(0)
        return 200, json.dumps({"order_id": "o-1", "status": status}).encode()


@pytest.fixture
def no_waiting(monkeypatch):
    monkeypatch.setattr(shoppers, "POLL_INTERVAL", 0)


def test_an_order_answered_final_is_counted_without_asking_again(no_waiting):
    session = FakeSession()

    shoppers._follow(session, {"order_id": "o-1", "status": "completed"}, sent=0.0)

    assert session.requests == []
    assert (session.tally.outcomes, len(session.tally.to_final)) == ({"completed": 1}, 1)


def test_an_order_answered_pending_is_polled_until_final(no_waiting):
    session = FakeSession("inventory_reserved", "payment_processed", "cancelled")

    shoppers._follow(session, {"order_id": "o-1", "status": "pending"}, sent=0.0)

    assert session.requests == [("GET", "/api/orders/o-1/")] * 3
    assert session.tally.outcomes == {"cancelled": 1}
    assert session.tally.cancel_reasons == {"unknown": 1}
    assert session.tally.unsettled == 0


def test_an_order_never_final_counts_as_unsettled(no_waiting, monkeypatch):
    monkeypatch.setattr(shoppers, "FINAL_TIMEOUT", -1)
    session = FakeSession()

    shoppers._follow(session, {"order_id": "o-1", "status": "pending"}, sent=0.0)

    assert (session.tally.unsettled, session.tally.outcomes, session.requests) == (1, {}, [])


def test_make_bench_runs_a_workload_and_writes_its_table(tmp_path):
    output = tmp_path / "BENCHMARKS.md"
    command = [sys.executable, "-m", "tests.bench", "--only", "append-ten", "--runs", "1"]
    command += ["--scale", "0.005", "--output", str(output)]

    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)

    assert finished.returncode == 0, finished.stderr
    text = output.read_text()
    assert "<!-- bench:sqlite:begin -->" in text
    row = next(line for line in text.splitlines() if "Append 10 events per call" in line)
    project, baseline = (cell.strip() for cell in row.split("|")[3:5])
    assert float(project.replace(",", "")) > 0
    assert float(baseline.replace(",", "")) > 0


def test_the_benchmarked_server_is_spoken_to_in_plain_http():
    code = "from config import settings as s; print(s.DEBUG, s.SECURE_SSL_REDIRECT)"
    environment = {"PATH": os.environ.get("PATH", ""), **BENCH_ENVIRONMENT}

    settings = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert settings.stdout.split() == ["False", "False"], settings.stderr


def test_the_peers_runners_result_is_its_last_line_and_its_figures_are_numbers():
    line = {"system": "eventsourcing", "figures": {"append_per_s": 1234.5}, "checks": {}}
    stdout = "  writing 20,000 more events\n" + json.dumps(line) + "\n\n"

    assert peers_runner.parse_output(stdout) == line
    for broken in ("", "Traceback (most recent call last):", '{"figures": {"x": "fast"}}'):
        with pytest.raises(ValueError):
            peers_runner.parse_output(broken)
    with pytest.raises(ValueError):
        peers_runner.parse_output('{"figures": {"x": true}}')


def test_the_peers_spec_reaches_the_runner_unchanged():
    spec = peers_runner.Spec(
        append_events=5_000,
        append_streams=1_000,
        load_sizes=((1_000, 1_000), (10_000, 10_000)),
        load_chunk=1_000,
        load_repeats=5,
        replay_sizes=((20_000, 20_000),),
        replay_streams=1_000,
        replay_streams_per_call=10,
        replay_events_per_stream_per_call=100,
        batch_size=500,
    )

    assert peers_runner.Spec.from_json(spec.to_json()) == spec


def test_a_peers_column_is_met_only_when_the_project_is_ahead_of_the_peer():
    throughput = Figure("append_per_s", "append", "events/s")
    time = Figure("load_1k_ms", "load", "ms", higher_is_better=False)

    assert peers.mark(throughput, 1_250, 1_000) == "met (1.25x)"
    assert peers.mark(throughput, 800, 1_000) == "**missed** (0.80x)"
    assert peers.mark(time, 8, 10) == "met (1.25x)"
    assert peers.mark(time, 10, 10) == "**missed** (1.00x)"
    assert peers.mark(time, None, 10) == "-"


def test_the_peers_table_has_a_row_per_system_then_the_targets_marks():
    figures = {
        peers.figure_key(system, column): 100.0
        for system in peers.SYSTEMS
        for column in peers.COLUMNS
    }
    figures[peers.figure_key("project", peers.COLUMNS[0])] = 200.0
    notes = ["project: synchronous=FULL"]
    result = report.WorkloadResult(peers.PEERS_WORKLOAD, [figures], [], notes)

    rows = peers.table_rows("sqlite", result)
    text = peers.render([("sqlite", "", result)], runs=1, scale=1)

    assert [row[1] for row in rows[:3]] == [peers.system_label(s) for s in peers.SYSTEMS]
    assert rows[3][2:4] == ["met (2.00x)", "**missed** (1.00x)"]
    assert "Target: the project ahead of eventsourcing-django on every column." in text
    assert "- SQLite, project: synchronous=FULL" in text
    failed = report.WorkloadResult(peers.PEERS_WORKLOAD, errors=["boom"])
    dashes = ["-"] * len(peers.COLUMNS)
    assert peers.table_rows("postgres", failed) == [["PostgreSQL", "failed", *dashes]]


def test_the_peers_notes_name_once_the_durability_several_systems_share():
    notes = [
        "project: synchronous=FULL (read back from its connection)",
        "eventsourcing: synchronous=FULL (read back from its connection)",
        "eventsourcing-django: synchronous=NORMAL (read back from its connection)",
        "something else",
    ]

    assert peers._merged(notes) == [
        "project, eventsourcing: synchronous=FULL (read back from each connection)",
        "eventsourcing-django: synchronous=NORMAL (read back from its connection)",
        "something else",
    ]


def test_a_workload_that_renders_itself_gets_its_results_on_every_backend_so_far():
    workload = Workload(
        name="w",
        title="W",
        figures=(),
        project=lambda context: {},
        section="w",
        render=lambda results, runs, scale: ", ".join(backend for backend, _, _ in results),
    )
    result = report.WorkloadResult(workload, [{}])
    rendered = {"w": [("sqlite", "", result), ("postgres", "15", result)]}
    options = bench_main.parse(["--runs", "1"])

    assert bench_main.sections("postgres", "15", [result], rendered, options) == [
        ("w", "sqlite, postgres")
    ]


def test_the_peers_environment_is_reused_only_while_its_pins_are_todays(tmp_path):
    venv = tmp_path / "peers-venv"
    assert not peers_env.is_current(venv)

    peers_env.python(venv).parent.mkdir(parents=True)
    peers_env.python(venv).touch()
    (venv / peers_env.STAMP).write_text(peers_env.pins())
    assert peers_env.is_current(venv)

    (venv / peers_env.STAMP).write_text("eventsourcing==9.0.0\n")
    assert not peers_env.is_current(venv)
    assert peers_env.pinned_version("django") == "5.2.19"
    assert peers_env.pinned_version("eventsourcing_django") == "0.6"
    assert peers_env.pinned_version("left-pad") is None


def test_the_peers_runner_imports_nothing_of_the_project():
    project = ["config", "eventstore", "orders", "inventory", "payments", "notifications", "django"]
    code = (
        "import sys, tests.bench.peers_runner; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({project!r})))"
    )

    finished = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )

    assert finished.stdout.strip() == "[]", finished.stderr


@pytest.mark.django_db
def test_the_stock_check_counts_staff_corrections_in_the_units_balance():
    from inventory.services import stock_adjust, stock_reserve
    from tests.bench.catalogue import check_stock, create_products

    product_ids = create_products("check", 2, 10)
    stock_reserve(reservation_id="r1", items=[{"product_id": "check-0", "quantity": 3}])
    stock_adjust(product_id="check-0", quantity=-7, reason="damaged")
    stock_adjust(product_id="check-1", quantity=4, reason="found")
    notes: list[str] = []

    failing, _ = check_stock(product_ids, 10, notes)

    assert (failing, notes) == (0, [])


@pytest.mark.django_db
def test_the_online_rebuild_workload_reads_the_commands_closing_line(capsys):
    from django.core.management import call_command

    from tests.bench.workloads import rebuild_online

    call_command("rebuild_projections", verbosity=0)
    line = capsys.readouterr().out
    assert rebuild_online._REBUILT.search(line)["held"] is not None
    retried = "Rebuilt 10 projection(s) from 1,000 events in 2.00 s (500 events/s); "
    retried += "appends held 12.5 ms for the longest of 10 switch(es) (one switched at try 3)"
    found = rebuild_online._REBUILT.search(retried.replace("1,000", "1000"))
    assert (found["events"], found["rate"], found["held"]) == ("1000", "500", "12.5")


def test_the_online_rebuild_workloads_copies_take_fresh_ids_and_products():
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from tests.bench.workloads import rebuild_online

    order = "11111111-2222-3333-4444-555555555555"
    now = datetime.now(UTC)

    def event(aggregate_type, aggregate_id, version, payload):
        return SimpleNamespace(
            event_id=f"aaaaaaa{version}-2222-3333-4444-555555555555",
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            version=version,
            event_type="Made",
            schema_version=1,
            payload=payload,
            metadata={"correlation_id": order},
            recorded_at=now,
        )

    template = [
        event("product", "template-0", 3, {"product_id": "template-0", "order_id": order}),
        event("order", order, 1, {"order_id": order, "transaction_id": "txn_" + "0" * 24}),
    ]
    rows = list(rebuild_online._copies(template, 5, 7))
    assert len(rows) == 5
    assert [row[2] for row in rows[::2]] == ["copied-0", "copied-1", "copied-2"]
    assert len({row[0] for row in rows}) == 5  # every event id fresh
    first, second = rows[0], rows[2]
    assert first[8] != order and first[8] != second[8]  # a correlation id per copy
    assert rows[1][2] == first[8]  # the order stream is the copy's own order
    assert '"copied-0"' in first[6] and order not in first[6]
    assert "txn_" + "0" * 24 not in rows[1][6]
    assert {row[11] for row in rows} == {7}
