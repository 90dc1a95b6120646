"""Who the caller is: the customer an account acts as, and what the events it causes record.

A customer is a non-staff user; their `customer_id` is their user's primary key as a string
(stable for the life of the account, unlike a username). Staff act for any customer_id.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from eventstore.api import set_correlation_id


class CustomerScopedMixin:
    """Viewset mixin: staff see every row, a customer only the rows of their own customer_id
    (anyone else's then answers 404, as if it did not exist)."""

    def get_queryset(self):
        queryset = super().get_queryset()
        user = self.request.user
        if user.is_staff:
            return queryset
        return queryset.filter(customer_id=customer_id_for(user))


def customer_id_for(user) -> str:
    """The customer id of an account: its primary key as a string."""
    return str(user.pk)


def customer_usernames(customer_ids: Iterable[str]) -> dict[str, str]:
    """The username of each of these customer ids that is an account's (the inverse of
    customer_id_for), from one query; ids of no account are left out."""
    user_model = get_user_model()
    pk_field = user_model._meta.pk
    pks = set()
    for customer_id in set(customer_ids):
        try:  # an id that cannot be a primary key (a staff-chosen "c-7") names no account
            pks.add(pk_field.clean(customer_id, None))
        except ValidationError:
            continue
    if not pks:
        return {}
    accounts = user_model._default_manager.filter(pk__in=pks)
    return {str(pk): name for pk, name in accounts.values_list("pk", user_model.USERNAME_FIELD)}


def actor_for(user) -> str:
    """How events record who asked for a change."""
    return f"user:{user.pk}"


def command_metadata(request, correlation_id: str | None = None) -> dict[str, str]:
    """Metadata for the events an API command appends: who asked, in which request (its id,
    which the events it causes carry on), and for which order (which the request's log records
    then carry too)."""
    metadata = {"actor": actor_for(request.user)}
    request_id = getattr(request, "request_id", None)
    if request_id:
        metadata["request_id"] = request_id
    if correlation_id:
        metadata["correlation_id"] = correlation_id
        set_correlation_id(correlation_id)
    return metadata
