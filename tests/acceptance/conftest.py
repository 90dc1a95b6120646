"""Fixtures for the end-to-end scenarios: a shop driven only through its HTTP API."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.acceptance.shop import Shop
from tests.factories import UserFactory


@pytest.fixture
def shop(staff_client):
    """The shop's API, with staff credentials for stocking and reading payments."""
    return Shop(staff_client)


@pytest.fixture
def other_customer_client(db):
    """A second customer's token-authenticated client (with `.user`, like customer_client)."""
    user = UserFactory()
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    client.user = user
    return client
