"""The HTTP helpers every service's views share: reading the client's `Prefer` header."""

import pytest
from django.test import RequestFactory

from httpapi.headers import PREFER_WAIT_MAX, prefer_wait


def wait_asked(*prefer):
    """What prefer_wait reads from a request with these Prefer headers (none: no header)."""
    headers = {"Prefer": ", ".join(prefer)} if prefer else {}
    return prefer_wait(RequestFactory().post("/", headers=headers))


@pytest.mark.parametrize(
    ("prefer", "seconds"),
    [
        ("wait=5", 5),
        ("wait=1", 1),
        ("WAIT = 3", 3),
        ('wait="7"', 7),
        ("wait=05", 5),
        ("respond-async, wait=5", 5),
        ("wait=4; foo=bar, respond-async", 4),
        ("handling=lenient;wait=9, wait=2", 2),
        ("wait=10", 10),
    ],
)
def test_a_wait_preference_gives_its_seconds_whatever_else_the_header_says(prefer, seconds):
    assert wait_asked(prefer) == seconds


@pytest.mark.parametrize("prefer", ["wait=11", "wait=50", "wait=" + "9" * 5000])
def test_a_longer_wait_is_capped(prefer):
    assert wait_asked(prefer) == PREFER_WAIT_MAX == 10


@pytest.mark.parametrize(
    "prefer",
    ["wait=abc", "wait=-1", "wait=0", "wait=", "wait", "wait=1.5", "wait=5s", "wait=٣", "wait=+5"],
)
def test_a_wait_that_is_not_whole_seconds_over_0_is_ignored(prefer):
    assert wait_asked(prefer) is None


def test_only_the_first_wait_counts_even_when_it_is_ignored():
    assert wait_asked("wait=3, wait=8") == 3
    assert wait_asked("wait=abc, wait=8") is None


@pytest.mark.parametrize("prefer", [(), ("respond-async",), ("",), ("return=minimal",)])
def test_no_wait_preference_is_none(prefer):
    assert wait_asked(*prefer) is None
