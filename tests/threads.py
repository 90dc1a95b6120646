"""Running test code on several threads, each with its own database connection."""

import threading
from collections.abc import Callable
from contextlib import contextmanager

from django.db import connections, transaction


def run_threads(target, count, *args):
    """Run `target(index, *args)` in `count` threads that start together; re-raise any error."""
    barrier = threading.Barrier(count)
    errors = []

    def body(index):
        try:
            barrier.wait()
            target(index, *args)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=body, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    assert not errors, errors


@contextmanager
def holding_a_lock(take_lock: Callable[[], object]):
    """While the block runs, another thread holds the lock `take_lock` takes, in an open
    transaction; it lets go when the block ends, pass or fail."""
    holding = threading.Event()
    release = threading.Event()

    def hold_lock(index):
        with transaction.atomic():
            take_lock()
            holding.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=run_threads, args=(hold_lock, 1))
    holder.start()
    try:
        assert holding.wait(timeout=30), "the lock holder never took the lock"
        yield
    finally:
        release.set()
        holder.join(timeout=30)


def holding_the_log_lock():
    """The event log's appenders' lock (EventStore.lock_appends), held as `holding_a_lock` does."""
    from eventstore.store import EventStore

    return holding_a_lock(EventStore.lock_appends)
