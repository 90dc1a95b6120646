"""A short-lived vault for secrets that must never enter the log (payment tokens).

The log is kept for ever and shown to customers and staff, so an event carries a reference to
a secret instead of the secret. The service that puts a secret writes it in its own transaction
(it rolls back with the events that name it); the service that uses it takes it, then erases it
once done. A secret nobody erased is erased once its retention runs out (`vault_erase_expired`,
run on every worker pass), so an abandoned secret lives for the retention at most.

Every service may use the vault: it lives in the event store's shared layer, so handing a secret
from one service to another needs no import between them.

What the table holds is encrypted (Fernet, with the keys of VAULT_KEYS: the first encrypts, every
one decrypts), so a copy of the database or a backup does not give the secrets away. A secret no
configured key decrypts reads as absent. `vault_rotate` re-encrypts every secret under the first
key, so an old key can then be removed.

What may be shown of a secret (a card's brand and last four digits) is known to the service the
secret is meant for: it registers a describer for the secret's kind (`vault_describer_register`,
in its `ready()`), and the service that puts the secret asks `vault_describe`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from eventstore import rows
from eventstore.models import VaultedSecret

logger = logging.getLogger(__name__)

Describer = Callable[[str], Mapping[str, str]]

_describers: dict[str, Describer] = {}


class DescriberError(Exception):
    """Raised when a second, different describer is registered for a kind of secret."""


def vault_describer_register(*, kind: str, describe: Describer) -> None:
    """Let `describe` say what may be shown of a secret of `kind` (never the secret itself).
    Registering the same function again changes nothing (an app's ready() may run twice);
    another function for the same kind is refused."""
    if _describers.get(kind, describe) is not describe:
        raise DescriberError(f"A describer for {kind!r} secrets is already registered")
    _describers[kind] = describe


def vault_describe(*, kind: str, secret: str) -> dict[str, str]:
    """What may be shown of `secret`, as the describer of its kind says; {} when none is
    registered."""
    describe = _describers.get(kind)
    return dict(describe(secret)) if describe else {}


@lru_cache(maxsize=4)
def _ciphers(keys: tuple[str, ...]) -> tuple[Fernet, MultiFernet]:
    """The newest key's cipher, and the one that encrypts with it and decrypts with any key."""
    fernets = [Fernet(key) for key in keys]
    return fernets[0], MultiFernet(fernets)


def _cipher() -> MultiFernet:
    # Read at each call, not once: a test (or a process reconfigured) may change the keys.
    return _ciphers(tuple(settings.VAULT_KEYS))[1]


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
        secret=_cipher().encrypt(secret.encode()).decode(),
        created_at=now,
        erase_after=now + retention,
    )
    return str(reference)


def vault_take(reference: str | uuid.UUID | None, *, now: datetime | None = None) -> str | None:
    """The secret under `reference`, or None when there is none (never put, erased, expired,
    or encrypted with a key VAULT_KEYS no longer holds)."""
    key = _as_uuid(reference)
    if key is None:
        return None
    row = rows.in_bulk(VaultedSecret, [key]).get(key)
    if row is None or row.erase_after <= (now or timezone.now()):
        return None
    try:
        return _cipher().decrypt(row.secret.encode()).decode()
    except InvalidToken:
        # Its key was removed before `vault_rotate` ran (or the row was never encrypted): the
        # secret is lost, and whoever needed it proceeds as if it had expired.
        logger.warning(
            "Vault secret %s (%s) is not decrypted by any key of VAULT_KEYS: treated as absent",
            key,
            row.kind,
        )
        return None


def vault_retain(reference: str | uuid.UUID | None, *, until: datetime) -> bool:
    """Keep the secret under `reference` until `until` at most (sooner than its retention, e.g.
    a superseded key's grace period); whether there was one."""
    key = _as_uuid(reference)
    if key is None:
        return False
    return bool(VaultedSecret.objects.filter(pk=key).update(erase_after=until))


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


@dataclass
class VaultRotation:
    """What `vault_rotate` found: secrets re-encrypted under the newest key, secrets already
    under it, and secrets no configured key decrypts (left as they are, until they expire)."""

    rotated: int = 0
    current: int = 0
    unreadable: int = 0


def vault_rotate(
    *,
    batch_size: int = 500,
    dry_run: bool = False,
    progress: Callable[[int], object] | None = None,
    now: datetime | None = None,
) -> VaultRotation:
    """Re-encrypt every live secret under the first key of VAULT_KEYS, `batch_size` rows per
    short transaction; with `dry_run`, count them and write nothing. Safe to run again (secrets
    already under that key are left alone) and beside the running shop (a row erased meanwhile
    is simply not updated). `progress` is called with the number of rows each batch looked at."""
    newest, cipher = _ciphers(tuple(settings.VAULT_KEYS))
    live = VaultedSecret.objects.filter(erase_after__gt=now or timezone.now()).order_by("pk")
    result, after = VaultRotation(), None
    while True:
        batch = list(
            (live.filter(pk__gt=after) if after else live).values_list("pk", "secret")[:batch_size]
        )
        if not batch:
            return result
        with transaction.atomic():
            for reference, secret in batch:
                try:
                    newest.decrypt(secret.encode())
                    result.current += 1
                    continue
                except InvalidToken:
                    pass
                try:
                    rotated = cipher.rotate(secret.encode()).decode()
                except InvalidToken:
                    result.unreadable += 1
                    continue
                # Only over the ciphertext read: a secret erased meanwhile stays erased.
                if dry_run or VaultedSecret.objects.filter(pk=reference, secret=secret).update(
                    secret=rotated
                ):
                    result.rotated += 1
        after = batch[-1][0]
        if progress:
            progress(len(batch))
