"""Who the caller is: the customer an account acts as, and what the events it causes record.

A customer is a non-staff user; their `customer_id` is their user's primary key as a string
(stable for the life of the account, unlike a username). Staff act for any customer_id.
"""

from __future__ import annotations

from eventstore.logs import set_correlation_id


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
