"""Fixtures for the notifications suites: a customer with an account and an email address."""

import pytest

from httpapi.caller import customer_id_for
from tests.factories import UserFactory


@pytest.fixture
def customer(db):
    """A customer with a user account and an email address."""
    return UserFactory(email="ada@example.com")


@pytest.fixture
def customer_id(customer):
    """The customer id of `customer` (their user's primary key as a string)."""
    return customer_id_for(customer)
