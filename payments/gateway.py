"""The payment gateway interface, and the simulated gateway the project ships with.

Every call passes an idempotency key (the payment id, or the refund's key), as real providers
accept, so a command retried after a crash or a lost race never charges twice. Set
PAYMENTS_GATEWAY to the dotted path of another `PaymentGateway` to use a real provider; its
constructor gets the keywords `failure_rate`, `seed` and `latency_ms` from the PAYMENTS_* settings.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Protocol, TypedDict

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

DEFAULT_TOKEN = "tok_visa_success"
DECLINING_TOKENS = {
    "tok_decline": "card_declined",
    "tok_insufficient_funds": "insufficient_funds",
}
TIMEOUT_TOKEN = "tok_timeout"
# The test cards the simulated gateway's tokens stand for (brand, last four digits): the numbers
# providers give their test cards with these outcomes. Other tokens name no card.
TEST_CARDS = {
    DEFAULT_TOKEN: ("visa", "4242"),
    "tok_decline": ("visa", "0002"),
    "tok_insufficient_funds": ("visa", "9995"),
}
TRANSACTION_NAMESPACE = uuid.UUID("0c4a1f52-3a5e-4b8e-9d7c-2f1e6b5a9c30")


class PaymentMethodDescription(TypedDict):
    """What a shop may show of a payment token: a card's brand and last four digits ("visa",
    "4242"), or a plain kind ("token") and no digits for a token that names no known card."""

    kind: str
    last4: str


@dataclass(frozen=True)
class ChargeResult:
    """A gateway's answer to a charge: approved with a transaction id, or declined with a reason."""

    approved: bool
    transaction_id: str = ""
    reason: str = ""


class GatewayTimeout(Exception):
    """The gateway gave no answer: whether the customer was charged is unknown."""


class PaymentGateway(Protocol):
    """What the payments service needs from a provider."""

    def charge(
        self, *, idempotency_key: str, amount: Decimal, payment_token: str
    ) -> ChargeResult: ...

    def refund(self, *, idempotency_key: str, transaction_id: str, amount: Decimal) -> None: ...

    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        """The answer the charge with this key got (None: no charge was made with it); never
        charges. Raises GatewayTimeout when the provider cannot say."""
        ...

    def describe(self, payment_token: str) -> PaymentMethodDescription: ...


class SimulatedGateway:
    """Decides by payment token, deterministically: tok_visa_success approves, tok_decline and
    tok_insufficient_funds decline with that reason, tok_timeout never answers (and charges
    nothing), any other token is declined as invalid_token. `find_charge` tells the answers
    given, by key. With `failure_rate` > 0 an approvable charge is declined
    (processing_error) with that probability, drawn from `seed` and the idempotency key.

    Every charge and refund first waits `latency_ms` milliseconds, as a real provider's round
    trip does. The wait holds no lock, so concurrent calls overlap as they would with a real
    provider; only the bookkeeping of answers given is serialised.
    """

    def __init__(self, *, failure_rate: float = 0.0, seed: int = 0, latency_ms: int = 0) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        if latency_ms < 0:
            raise ValueError("latency_ms must be 0 or more")
        self.failure_rate = failure_rate
        self.seed = seed
        self.latency_ms = latency_ms
        self._lock = threading.Lock()
        self.charges: dict[str, ChargeResult] = {}
        self.refunds: dict[str, str] = {}

    def charge(self, *, idempotency_key: str, amount: Decimal, payment_token: str) -> ChargeResult:
        self._round_trip()
        with self._lock:
            if idempotency_key in self.charges:
                return self.charges[idempotency_key]
        if payment_token == TIMEOUT_TOKEN:
            logger.info("Simulated gateway: charge %s timed out", idempotency_key)
            raise GatewayTimeout(f"The gateway did not answer the charge {idempotency_key!r}")
        result = self._decide(idempotency_key, payment_token)
        with self._lock:
            result = self.charges.setdefault(idempotency_key, result)
        logger.info(
            "Simulated gateway: charge %s of %s %s",
            idempotency_key,
            amount,
            "approved" if result.approved else f"declined ({result.reason})",
        )
        return result

    def _round_trip(self) -> None:
        """Wait as long as a provider takes to answer; never with `_lock` held, so that one
        call's wait does not delay another's."""
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)

    def _decide(self, idempotency_key: str, payment_token: str) -> ChargeResult:
        if payment_token in DECLINING_TOKENS:
            return ChargeResult(approved=False, reason=DECLINING_TOKENS[payment_token])
        if payment_token != DEFAULT_TOKEN:
            return ChargeResult(approved=False, reason="invalid_token")
        if self.failure_rate:
            draw = random.Random(f"{self.seed}:{idempotency_key}").random()
            if draw < self.failure_rate:
                return ChargeResult(approved=False, reason="processing_error")
        transaction_id = f"txn_{uuid.uuid5(TRANSACTION_NAMESPACE, idempotency_key).hex[:24]}"
        return ChargeResult(approved=True, transaction_id=transaction_id)

    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        self._round_trip()
        with self._lock:
            return self.charges.get(idempotency_key)

    def describe(self, payment_token: str) -> PaymentMethodDescription:
        """The test card the token stands for (TEST_CARDS), else the plain kind "token"."""
        brand, last4 = TEST_CARDS.get(payment_token, ("token", ""))
        return {"kind": brand, "last4": last4}

    def refund(self, *, idempotency_key: str, transaction_id: str, amount: Decimal) -> None:
        self._round_trip()
        with self._lock:
            if idempotency_key in self.refunds:
                return
            self.refunds[idempotency_key] = transaction_id
        logger.info("Simulated gateway: refunded %s of %s", amount, transaction_id)


@cache
def get_gateway() -> PaymentGateway:
    """The configured gateway (PAYMENTS_GATEWAY), built once per process."""
    gateway_class = import_string(settings.PAYMENTS_GATEWAY)
    return gateway_class(
        failure_rate=settings.PAYMENTS_FAILURE_RATE,
        seed=settings.PAYMENTS_FAILURE_SEED,
        latency_ms=settings.PAYMENTS_GATEWAY_LATENCY_MS,
    )


def payment_token_described(payment_token: str) -> PaymentMethodDescription:
    """What may be shown of a payment token, as the configured gateway knows it: the vault's
    describer of `payment_token` secrets (registered in PaymentsConfig.ready)."""
    return get_gateway().describe(payment_token)
