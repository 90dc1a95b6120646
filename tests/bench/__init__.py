"""Benchmarks: `make bench` (python -m tests.bench) measures the project against its database.

Each workload runs in a process of its own on fresh databases, three times; the report gives
the median of each figure next to the same work done with the bare database driver (the
baseline) and the ratio of the two. See BENCHMARKS.md.
"""
