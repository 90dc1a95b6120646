"""What the service apps' admin pages share beyond eventstore's read-only admin: customers shown
by their account's username."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import NoReverseMatch

from eventstore.api import ReadOnlyAdmin, admin_links, admin_url
from httpapi.caller import customer_usernames


class CustomerAdmin(ReadOnlyAdmin):
    """A read-only admin of rows with a `customer_id`: its `customer` column shows the account's
    username (the id itself when no account has it), looked up once per changelist page."""

    def prepare_page(self, rows: list) -> None:
        names = customer_usernames(row.customer_id for row in rows)
        for row in rows:
            row.customer_username = names.get(row.customer_id)

    @admin.display(description="customer", ordering="customer_id")
    def customer(self, row) -> str:
        if not hasattr(row, "customer_username"):  # a change page: one row, one query
            row.customer_username = customer_usernames([row.customer_id]).get(row.customer_id)
        return row.customer_username or row.customer_id

    @admin.display(description="customer")
    def customer_account(self, row) -> str:
        """The customer's username, linked to their account and to their other rows here."""
        name = self.customer(row)
        account = None
        if row.customer_username:
            users = get_user_model()._meta
            try:  # the user model's admin page, where it has one
                account = admin_url(
                    f"admin:{users.app_label}_{users.model_name}_change", row.customer_id
                )
            except NoReverseMatch:
                account = None
        opts = self.model._meta
        return admin_links(
            {
                name: account,
                f"all their {opts.verbose_name_plural}": admin_url(
                    f"admin:{opts.app_label}_{opts.model_name}_changelist",
                    query={"customer_id": row.customer_id},
                ),
            }
        )
