"""manage.py seed_demo: the demo accounts, their API tokens and the catalogue, created once."""

import io
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from demo.seeding import DEMO_PRODUCTS, LOW_STOCK_PRODUCT
from eventstore.models import Event
from eventstore.store import event_store
from inventory.models import ProductStock
from inventory.services import product_create

User = get_user_model()

pytestmark = pytest.mark.django_db


def run(*args, **options):
    """Run seed_demo; return what it wrote to stdout."""
    stdout = io.StringIO()
    call_command("seed_demo", *args, stdout=stdout, stderr=io.StringIO(), **options)
    return stdout.getvalue()


def account_rows(output):
    """The accounts table's rows, by username (its first column)."""
    rows = {}
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] in ("admin", "alice", "bob"):
            rows[cells[0]] = cells
    return rows


@pytest.fixture
def debug(settings):
    settings.DEBUG = True


def test_seed_demo_creates_a_staff_user_and_two_customers_with_tokens(debug):
    output = run()

    admin, alice, bob = (User.objects.get(username=name) for name in ("admin", "alice", "bob"))
    assert admin.is_staff and admin.is_superuser
    assert not alice.is_staff and not bob.is_staff
    rows = account_rows(output)
    for user, role, customer_id in (
        (admin, "staff", "(staff:"),
        (alice, "customer", str(alice.pk)),
        (bob, "customer", str(bob.pk)),
    ):
        _, shown_role, shown_customer, *rest = rows[user.username]
        password, token = rest[-2:]
        assert (shown_role, shown_customer) == (role, customer_id)
        assert user.check_password(password), "the printed password logs the user in"
        assert token == Token.objects.get(user=user).key
    assert "Accounts created: admin, alice, bob." in output


def test_seed_demo_creates_the_catalogue_through_inventory_with_one_low_stock_product(debug):
    output = run()

    stock = {row.product_id: row for row in ProductStock.objects.all()}
    assert set(stock) == {spec.product_id for spec in DEMO_PRODUCTS}
    for spec in DEMO_PRODUCTS:
        row = stock[spec.product_id]
        assert (row.name, row.price, row.available_stock) == (spec.name, spec.price, spec.stock)
        assert spec.price > 0 and spec.price == spec.price.quantize(Decimal("0.01"))
        assert spec.product_id in output
    # The catalogue is events in the log, like any product's.
    assert Event.objects.filter(event_type="ProductCreated").count() == len(DEMO_PRODUCTS)
    assert stock[LOW_STOCK_PRODUCT].available_stock <= 3
    assert all(row.available_stock >= 10 for pid, row in stock.items() if pid != LOW_STOCK_PRODUCT)
    assert f"{LOW_STOCK_PRODUCT} has 3 units available: order 4 to see a shortage." in output


def test_a_second_run_creates_nothing_and_prints_the_same_accounts_table(debug):
    first = run()
    tokens = dict(Token.objects.values_list("user__username", "key"))
    hashes = dict(User.objects.values_list("username", "password"))
    last_position = event_store.last_position()

    second = run()

    assert dict(Token.objects.values_list("user__username", "key")) == tokens
    assert dict(User.objects.values_list("username", "password")) == hashes
    assert User.objects.count() == 3
    assert event_store.last_position() == last_position, "no new events"
    assert account_rows(second) == account_rows(first)
    assert "Accounts created" not in second
    assert "Accounts already there (password and token unchanged): admin, alice, bob." in second
    assert "Products already there (unchanged): keyboard, mouse, monitor" in second


def test_existing_accounts_and_products_are_left_as_they_were(debug):
    User.objects.create_user(username="admin", password="someone-elses-password")
    product_create(product_id="keyboard", name="Old keyboard", price=Decimal("5.00"))

    output = run()

    admin = User.objects.get(username="admin")
    assert admin.check_password("someone-elses-password")
    assert not admin.is_staff, "an existing account's flags are not changed"
    assert account_rows(output)["admin"][3:5] == ["(not", "the"]
    assert "admin-demo-pass" not in output, "a password that is not the account's is not shown"
    keyboard = ProductStock.objects.get(pk="keyboard")
    assert (keyboard.name, keyboard.price, keyboard.received_stock) == (
        "Old keyboard",
        Decimal("5.00"),
        0,
    )
    assert "Accounts created: alice, bob." in output
    assert "Accounts already there (password and token unchanged): admin." in output
    assert "Products already there (unchanged): keyboard." in output


def test_demo_accounts_have_email_addresses_for_their_notifications(debug):
    run()

    assert {user.username: user.email for user in User.objects.all()} == {
        "admin": "admin@example.com",
        "alice": "alice@example.com",
        "bob": "bob@example.com",
    }


def test_an_existing_account_without_an_email_address_is_given_one_and_others_are_kept(debug):
    User.objects.create_user(username="alice", password="pw")  # no email address
    User.objects.create_user(username="bob", password="pw", email="bob@elsewhere.example")

    run()

    alice, bob = (User.objects.get(username=name) for name in ("alice", "bob"))
    assert alice.email == "alice@example.com"
    assert alice.check_password("pw")
    assert bob.email == "bob@elsewhere.example"


def test_seed_demo_refuses_to_run_without_debug(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match=r"known passwords.*--force"):
        run()

    assert not User.objects.exists()
    assert event_store.last_position() == 0


def test_force_runs_seed_demo_without_debug(settings):
    settings.DEBUG = False

    output = run("--force")

    assert set(User.objects.values_list("username", flat=True)) == {"admin", "alice", "bob"}
    assert "alice-demo-pass" in output


def test_verbosity_0_prints_only_the_accounts_table(debug):
    output = run(verbosity=0)

    assert set(account_rows(output)) == {"admin", "alice", "bob"}
    assert "Demo catalogue" not in output
    assert ProductStock.objects.count() == len(DEMO_PRODUCTS)
