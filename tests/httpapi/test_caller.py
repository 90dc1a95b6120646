"""Customers are accounts: a customer id is its user's primary key, and back."""

import pytest

from httpapi.caller import customer_id_for, customer_usernames
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_customer_usernames_names_the_accounts_of_customer_ids(django_assert_num_queries):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")

    with django_assert_num_queries(1):
        names = customer_usernames([customer_id_for(alice), customer_id_for(bob), "c-7"])

    assert names == {customer_id_for(alice): "alice", customer_id_for(bob): "bob"}


def test_customer_ids_that_cannot_be_an_account_are_left_out_without_a_query(
    django_assert_num_queries,
):
    # Not a key at all, a key out of the database's integer range, nothing.
    with django_assert_num_queries(0):
        assert customer_usernames(["c-7", "99999999999999999999", ""]) == {}
