"""One run of one workload in a process of its own, on fresh databases; prints its figures as JSON.

    python -m tests.bench.worker WORKLOAD --backend sqlite|postgres [--postgres-url URL]
        [--scale 1.0] [--profile FILE]

The last line of output is `{"project": {...}, "baseline": {...}, "notes": [...]}`; progress
goes to stderr. A process per run keeps runs apart: no warm caches, no memory carried over.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sys
import tempfile
from pathlib import Path

from tests.bench.setup import configure_django, databases, migrate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.worker")
    parser.add_argument("workload")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--profile", type=Path, default=None, help="Write cProfile stats here.")
    options = parser.parse_args(argv)

    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp,
        databases(options.backend, Path(tmp), options.postgres_url) as (project_url, baseline),
    ):
        configure_django(project_url)
        migrate()
        # Imported once Django is set up: they import the project's models.
        from django.db import connections

        from tests.bench.core import Context
        from tests.bench.raw import RawLog
        from tests.bench.workloads import get_workload

        workload = get_workload(options.workload)
        context = Context(
            backend=options.backend,
            scale=options.scale,
            workdir=Path(tmp),
            database_url=project_url,
            raw_log=lambda: RawLog(options.backend, baseline),
            admin_url=options.postgres_url,
            progress=lambda text: print(f"  {text}", file=sys.stderr, flush=True),
        )
        profiler = cProfile.Profile() if options.profile else None
        if profiler:
            profiler.enable()
        project = workload.project(context)
        if profiler:
            profiler.disable()
            profiler.dump_stats(options.profile)
        baseline_figures = workload.baseline(context, project) if workload.baseline else {}
        connections.close_all()
    print(json.dumps({"project": project, "baseline": baseline_figures, "notes": context.notes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
