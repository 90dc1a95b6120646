"""Payment gateway doubles: `AskedGateway` writes down, in its process, every call it is asked
to make (PAYMENTS_GATEWAY=tests.gateways.AskedGateway); `RecordingGateway` writes down every call
it answers, for tests that run the project in several processes
(PAYMENTS_GATEWAY=tests.gateways.RecordingGateway).

Each process builds its own gateway, so the calls are counted in a file shared by all of them:
RECORDING_GATEWAY_FILE names it. Every answered charge or refund appends one JSON line, written
with a single write to a file opened with O_APPEND, so lines from concurrent processes never
interleave. A call whose process dies before it answers is not written down: only what the
gateway answered counts, as a provider's own records would show.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from payments.gateway import (
    DEFAULT_TOKEN,
    TIMEOUT_TOKEN,
    ChargeResult,
    GatewayTimeout,
    SimulatedGateway,
)

FILE_VARIABLE = "RECORDING_GATEWAY_FILE"


class AskedGateway(SimulatedGateway):
    """The simulated gateway, writing down in `asked` every call it is asked to make, answered
    or not: (call, idempotency key) each, in order. While `lose_answers` is set, a tok_timeout
    charge is made (approved) and its answer lost: the provider charged, the caller cannot
    tell."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.asked: list[tuple[str, str]] = []
        self.lose_answers = False

    def charge(self, *, idempotency_key: str, amount: Decimal, payment_token: str) -> ChargeResult:
        self.asked.append(("charge", idempotency_key))
        if self.lose_answers and payment_token == TIMEOUT_TOKEN:
            super().charge(
                idempotency_key=idempotency_key, amount=amount, payment_token=DEFAULT_TOKEN
            )
            raise GatewayTimeout(f"The answer to the charge {idempotency_key!r} was lost")
        return super().charge(
            idempotency_key=idempotency_key, amount=amount, payment_token=payment_token
        )

    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        self.asked.append(("find_charge", idempotency_key))
        return super().find_charge(idempotency_key=idempotency_key)

    def refund(self, *, idempotency_key: str, transaction_id: str, amount: Decimal) -> None:
        self.asked.append(("refund", idempotency_key))
        super().refund(
            idempotency_key=idempotency_key, transaction_id=transaction_id, amount=amount
        )

    def charges_asked(self) -> int:
        """How many charges it was asked to make."""
        return sum(1 for call, _ in self.asked if call == "charge")


class RecordingGateway(SimulatedGateway):
    """The simulated gateway, deciding as it does (by token, deterministically per key), that
    also appends one line per answered call to the file named by RECORDING_GATEWAY_FILE."""

    def charge(self, *, idempotency_key: str, amount: Decimal, payment_token: str) -> ChargeResult:
        result = super().charge(
            idempotency_key=idempotency_key, amount=amount, payment_token=payment_token
        )
        self._record(
            call="charge",
            key=idempotency_key,
            amount=str(amount),
            approved=result.approved,
            transaction_id=result.transaction_id,
            reason=result.reason,
        )
        return result

    def find_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        """What the charge with this key was answered, by any process: the file is the
        provider's own record (a worker killed after the charge has taken its memory along)."""
        super().find_charge(idempotency_key=idempotency_key)  # the round trip, as a lookup takes
        for call in recorded_calls(Path(os.environ[FILE_VARIABLE])):
            if call["call"] == "charge" and call["key"] == idempotency_key:
                return ChargeResult(call["approved"], call["transaction_id"], call["reason"])
        return None

    def refund(self, *, idempotency_key: str, transaction_id: str, amount: Decimal) -> None:
        super().refund(
            idempotency_key=idempotency_key, transaction_id=transaction_id, amount=amount
        )
        self._record(
            call="refund", key=idempotency_key, amount=str(amount), transaction_id=transaction_id
        )

    @staticmethod
    def _record(**call: Any) -> None:
        line = json.dumps({**call, "pid": os.getpid()}) + "\n"
        descriptor = os.open(
            os.environ[FILE_VARIABLE], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
        )
        try:
            os.write(descriptor, line.encode())
        finally:
            os.close(descriptor)


def recorded_calls(path: Path) -> list[dict[str, Any]]:
    """Every call a RecordingGateway wrote to `path`, in the order written."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
