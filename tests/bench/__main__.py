"""`make bench`: run every workload three times on fresh databases and report the medians.

    python -m tests.bench [--postgres [URL]] [--runs 3] [--only NAME ...] [--scale 1.0]
                          [--output BENCHMARKS.md | --no-write] [--profile DIR]

SQLite always runs; --postgres adds a pass on PostgreSQL (default URL: $POSTGRES_URL or
postgres://postgres@127.0.0.1:5432/postgres, which must be allowed to create databases).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench import report
from tests.bench.setup import configure_django
from tests.bench.workloads import NAMES, get_workload

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
ROOT = Path(__file__).resolve().parents[2]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=os.environ.get("POSTGRES_URL", DEFAULT_POSTGRES_URL),
        default=None,
        metavar="URL",
        help="Also run on PostgreSQL (an admin URL: each run creates and drops its databases).",
    )
    parser.add_argument("--runs", type=int, default=3, help="Runs per workload (default 3).")
    parser.add_argument("--only", nargs="+", choices=NAMES, default=None, metavar="NAME")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="Multiply the workloads' sizes (quick checks)."
    )
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave the file.")
    parser.add_argument(
        "--profile", type=Path, default=None, metavar="DIR", help="cProfile each project run."
    )
    options = parser.parse_args(argv)
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    if not 0 < options.scale <= 1:
        parser.error("--scale must be above 0 and at most 1")
    return options


def run_once(
    name: str, backend: str, options: argparse.Namespace, run: int
) -> tuple[dict | None, str]:
    """One worker process; (its result, or None when it failed; the tail of its stderr)."""
    command = [sys.executable, "-m", "tests.bench.worker", name, "--backend", backend]
    command += ["--scale", str(options.scale)]
    if backend == "postgres":
        command += ["--postgres-url", options.postgres]
    if options.profile:
        options.profile.mkdir(parents=True, exist_ok=True)
        command += ["--profile", str(options.profile / f"{backend}-{name}-{run}.prof")]
    process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if process.returncode != 0:
        return None, process.stderr.strip()[-2000:]
    return json.loads(process.stdout.strip().splitlines()[-1]), ""


def run_backend(backend: str, options: argparse.Namespace) -> list[report.WorkloadResult]:
    results = []
    for name in options.only or NAMES:
        workload = get_workload(name)
        if backend not in workload.backends:
            only = " and ".join(workload.backends)
            print(f"[{backend}] {name}: skipped, it runs on {only} only", flush=True)
            if "postgres" in workload.backends and not options.postgres:
                print(f"  (add --postgres to run {name})", flush=True)
            continue
        result = report.WorkloadResult(workload)
        if workload.prepare:
            workload.prepare(lambda text: print(text, flush=True))
        for run in range(1, options.runs + 1):
            print(f"[{backend}] {name}: run {run} of {options.runs}", flush=True)
            figures, error = run_once(name, backend, options, run)
            if figures is None:
                print(error, file=sys.stderr)
                result.errors.append(error.splitlines()[-1] if error else "no output")
                continue
            result.project_runs.append(figures["project"])
            if figures["baseline"]:
                result.baseline_runs.append(figures["baseline"])
            result.notes.extend(figures["notes"])
        results.append(result)
    return results


def chart_path(output: Path, name: str) -> Path:
    """Where a workload's chart goes: docs/bench/NAME.png beside the report."""
    return output.parent / "docs" / "bench" / f"{name}.png"


def draw_chart(result: report.WorkloadResult, output: Path) -> None:
    """The workload's chart of its medians, when it draws one and a run reported figures."""
    workload = result.workload
    if workload.chart is None or not result.project_runs:
        return
    path = chart_path(output, workload.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    workload.chart({figure.key: result.project(figure.key) for figure in workload.figures}, path)
    print(f"Chart written to {path}")


def postgres_version(url: str) -> str:
    import psycopg

    with psycopg.connect(url) as connection:
        return str(connection.execute("SHOW server_version").fetchone()[0])


def sections(
    backend: str,
    server: str,
    results: list[report.WorkloadResult],
    rendered: dict[str, list[tuple[str, str, report.WorkloadResult]]],
    options: argparse.Namespace,
) -> list[tuple[str, str]]:
    """(section name, text) to write after a backend's pass: the backend's table, then each
    workload that keeps a section of its own. A section is written only when something ran for
    it, so a run of some workloads leaves the others' figures where they are; one that renders
    itself gets its results on every backend of this run so far."""
    chosen = [(backend, [r for r in results if not r.workload.section])]
    chosen += [(r.workload.section, [r]) for r in results if r.workload.section]
    texts = []
    for name, among in chosen:
        if not among:
            continue
        render = among[0].workload.render if name != backend else None
        if render:
            text = render(rendered[among[0].workload.name], options.runs, options.scale)
        else:
            text = report.section(backend, among, options.runs, options.scale, server)
        texts.append((name, text))
    return texts


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    # Workload definitions import the project's models; nothing here touches this database.
    configure_django(f"sqlite:///{Path(tempfile.gettempdir()) / 'bench-unused.sqlite3'}")
    backends = ["sqlite"] + (["postgres"] if options.postgres else [])
    failed = False
    # Workloads that render their section themselves: their results on every backend so far.
    rendered: dict[str, list[tuple[str, str, report.WorkloadResult]]] = {}
    for backend in backends:
        server = postgres_version(options.postgres) if backend == "postgres" else ""
        results = run_backend(backend, options)
        for result in results:
            if result.workload.render:
                rendered.setdefault(result.workload.name, []).append((backend, server, result))
        for name, text in sections(backend, server, results, rendered, options):
            print()
            print(text)
            if not options.no_write:
                report.write_section(options.output, name, text)
                print(f"Written to {options.output}")
        if not options.no_write:
            for result in results:
                draw_chart(result, options.output)
        failed = failed or any(result.errors for result in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
