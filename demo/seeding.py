"""The demo's accounts and catalogue, created once: a second run finds them and changes nothing.

Products are created through inventory's own command handler (`product_create`), so the catalogue
is events in the log like any other; accounts and API tokens are ordinary Django rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from httpapi.caller import customer_id_for
from inventory.aggregates import ProductAlreadyExists
from inventory.models import ProductStock
from inventory.services import product_create

ACTOR = "demo:seed_demo"


@dataclass(frozen=True)
class DemoAccount:
    """An account the demo creates, with the password it is given on creation."""

    username: str
    password: str
    is_staff: bool


@dataclass(frozen=True)
class DemoProduct:
    """A product of the demo catalogue and the units it is created with."""

    product_id: str
    name: str
    price: Decimal
    stock: int


DEMO_ACCOUNTS = (
    # The staff account is a superuser so that the admin shows it every model, not an empty index.
    DemoAccount("admin", "admin-demo-pass", is_staff=True),
    DemoAccount("alice", "alice-demo-pass", is_staff=False),
    DemoAccount("bob", "bob-demo-pass", is_staff=False),
)

# The product with too few units for the shortage scenario (and the README's tour).
LOW_STOCK_PRODUCT = "headphones"

DEMO_PRODUCTS = (
    DemoProduct("keyboard", "Mechanical keyboard", Decimal("89.00"), 25),
    DemoProduct("mouse", "Wireless mouse", Decimal("29.90"), 50),
    DemoProduct("monitor", "27-inch 4K monitor", Decimal("349.00"), 10),
    DemoProduct("laptop-stand", "Aluminium laptop stand", Decimal("39.50"), 40),
    DemoProduct("usb-c-cable", "USB-C cable, 2 m", Decimal("12.99"), 100),
    DemoProduct(LOW_STOCK_PRODUCT, "Noise-cancelling headphones", Decimal("199.00"), 3),
)


@dataclass(frozen=True)
class SeededAccount:
    """An account as it stands after seeding. `password` is None when it is not (or was not
    checked to be) the demo password, e.g. an `admin` that existed before the demo."""

    username: str
    is_staff: bool
    customer_id: str
    password: str | None
    token: str
    created: bool

    @property
    def role(self) -> str:
        """Either staff (acts for every customer) or customer (acts for itself)."""
        return "staff" if self.is_staff else "customer"


@dataclass(frozen=True)
class SeededProduct:
    """A catalogue product and its stock as the read model shows it after seeding."""

    product_id: str
    name: str
    price: Decimal
    available: int
    reserved: int
    sold: int
    received: int
    created: bool


@dataclass(frozen=True)
class SeedResult:
    """Every demo account and product, and which of them this run created."""

    accounts: list[SeededAccount]
    products: list[SeededProduct]

    def account(self, username: str) -> SeededAccount:
        """The seeded account with this username (KeyError when it is not a demo account)."""
        for account in self.accounts:
            if account.username == username:
                return account
        raise KeyError(username)


def demo_email(username: str) -> str:
    """The email address a demo account is given (where `make run` prints its emails)."""
    return f"{username}@example.com"


def seed_accounts(*, check_passwords: bool = True) -> list[SeededAccount]:
    """Create the missing demo accounts and their API tokens; existing ones are left as they are
    (password, token and flags), but one without an email address is given the demo address.
    With `check_passwords`, an existing account's password is reported only if it still is the
    demo password."""
    user_model = get_user_model()
    seeded = []
    for spec in DEMO_ACCOUNTS:
        with transaction.atomic():
            user = user_model.objects.filter(username=spec.username).first()
            created = user is None
            if created:
                create = (
                    user_model.objects.create_superuser
                    if spec.is_staff
                    else user_model.objects.create_user
                )
                user = create(
                    username=spec.username,
                    email=demo_email(spec.username),
                    password=spec.password,
                )
            elif not user.email:
                # Notifications are emailed: an account without an address would park them.
                user.email = demo_email(spec.username)
                user.save(update_fields=["email"])
            token, _ = Token.objects.get_or_create(user=user)
        # Hashing is slow on purpose (~0.5 s); callers that print no passwords skip it.
        known = created or (check_passwords and user.check_password(spec.password))
        seeded.append(
            SeededAccount(
                username=user.get_username(),
                is_staff=user.is_staff,
                customer_id=customer_id_for(user),
                password=spec.password if known else None,
                token=token.key,
                created=created,
            )
        )
    return seeded


def seed_catalogue() -> list[SeededProduct]:
    """Create the missing demo products with their initial stock; an existing product (same id)
    is left as it is, whatever its name, price or stock."""
    seeded = []
    for spec in DEMO_PRODUCTS:
        try:
            product_create(
                product_id=spec.product_id,
                name=spec.name,
                price=spec.price,
                initial_stock=spec.stock,
                metadata={"actor": ACTOR},
            )
            created = True
        except ProductAlreadyExists:
            created = False
        # The stock projection runs in the appending transaction: the row is already current.
        row = ProductStock.objects.get(pk=spec.product_id)
        seeded.append(
            SeededProduct(
                product_id=row.product_id,
                name=row.name,
                price=row.price,
                available=row.available_stock,
                reserved=row.reserved_stock,
                sold=row.sold_stock,
                received=row.received_stock,
                created=created,
            )
        )
    return seeded


def seed_demo(*, check_passwords: bool = True) -> SeedResult:
    """Make sure every demo account, token and product exists; create only what is missing."""
    return SeedResult(
        accounts=seed_accounts(check_passwords=check_passwords),
        products=seed_catalogue(),
    )


def demo_product(product_id: str) -> DemoProduct:
    """The catalogue entry of a demo product (KeyError for another id)."""
    for spec in DEMO_PRODUCTS:
        if spec.product_id == product_id:
            return spec
    raise KeyError(product_id)
