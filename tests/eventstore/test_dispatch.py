"""How reactions run after a commit is a question the event store answers; nothing else reads
the EVENTSTORE_DISPATCH setting."""

import inspect
import re
from pathlib import Path

from eventstore import dispatch

PROJECT = Path(__file__).resolve().parents[2]


def test_reactions_run_later_in_celery_mode_only(settings):
    settings.EVENTSTORE_DISPATCH = "celery"
    assert dispatch.reactions_run_later() is True

    settings.EVENTSTORE_DISPATCH = "inline"
    assert dispatch.reactions_run_later() is False


def project_modules():
    """The project's own Python files, without the tests (which set the mode) and the settings
    (which define it)."""
    for package in PROJECT.iterdir():
        if (package / "__init__.py").exists() and package.name not in {"tests", "config"}:
            yield from package.rglob("*.py")
    yield from (PROJECT / "config").glob("*.py")  # not config/settings/


def test_the_dispatch_mode_is_read_in_one_place():
    readers = {
        path.relative_to(PROJECT)
        for path in project_modules()
        if re.search(r"settings\.EVENTSTORE_DISPATCH\b", path.read_text())
    }

    assert readers == {Path(inspect.getsourcefile(dispatch)).relative_to(PROJECT)}
