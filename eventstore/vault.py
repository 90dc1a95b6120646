"""A short-lived vault for secrets that must never enter the log (payment tokens).

The log is kept for ever and shown to customers and staff, so an event carries a reference to
a secret instead of the secret. The service that puts a secret writes it in its own transaction
(it rolls back with the events that name it); the service that uses it takes it, then erases it
once done. A secret nobody erased is erased once its retention runs out (`vault_erase_expired`,
run on every worker pass), so an abandoned secret lives for the retention at most.

Every service may use the vault: it lives in the event store's shared layer, so handing a secret
from one service to another needs no import between them.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.utils import timezone

from eventstore import rows
from eventstore.models import VaultedSecret

logger = logging.getLogger(__name__)


def _as_uuid(reference: str | uuid.UUID | None) -> uuid.UUID | None:
    if not reference:
        return None
    try:
        return reference if isinstance(reference, uuid.UUID) else uuid.UUID(str(reference))
    except ValueError:
        return None


def vault_put(*, kind: str, secret: str, retention: timedelta) -> str:
    """Keep `secret` for `retention` at most; returns the reference events may carry."""
    reference, now = uuid.uuid4(), timezone.now()
    rows.insert(
        VaultedSecret,
        reference=reference,
        kind=kind,
        secret=secret,
        created_at=now,
        erase_after=now + retention,
    )
    return str(reference)


def vault_take(reference: str | uuid.UUID | None, *, now: datetime | None = None) -> str | None:
    """The secret under `reference`, or None when there is none (never put, erased, expired)."""
    key = _as_uuid(reference)
    if key is None:
        return None
    row = rows.in_bulk(VaultedSecret, [key]).get(key)
    if row is None or row.erase_after <= (now or timezone.now()):
        return None
    return row.secret


def vault_erase(reference: str | uuid.UUID | None) -> bool:
    """Erase the secret under `reference`; whether there was one. Safe to call again."""
    key = _as_uuid(reference)
    if key is None:
        return False
    return bool(rows.delete(VaultedSecret, key))


def vault_erase_expired(*, now: datetime | None = None) -> int:
    """Erase every secret past its retention; how many were erased."""
    deleted, _ = VaultedSecret.objects.filter(erase_after__lte=now or timezone.now()).delete()
    return deleted


def erase_expired_secrets_on_worker_pass(sender=None, **kwargs) -> None:
    """`worker_pass` receiver: forgotten secrets do not outlive their retention."""
    erased = vault_erase_expired()
    if erased:
        logger.info("Erased %d expired secret(s) from the vault", erased)
