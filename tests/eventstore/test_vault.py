"""The vault: secrets kept out of the log, encrypted at rest, taken by reference, erased when used
or expired; its keys rotate."""

import importlib
import logging
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.utils import timezone

from eventstore import signals, vault
from eventstore.models import VaultedSecret
from eventstore.vault import (
    DescriberError,
    erase_expired_secrets_on_worker_pass,
    vault_describe,
    vault_describer_register,
    vault_erase,
    vault_erase_expired,
    vault_put,
    vault_retain,
    vault_take,
)

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def test_a_secret_is_taken_by_its_reference_until_it_is_erased():
    reference = vault_put(kind="payment_token", secret="tok_visa_success", retention=HOUR)

    assert str(uuid.UUID(reference)) == reference
    assert vault_take(reference) == vault_take(uuid.UUID(reference)) == "tok_visa_success"
    assert vault_erase(reference) is True
    assert vault_take(reference) is None
    assert vault_erase(reference) is False


@pytest.mark.parametrize("reference", [None, "", "not-a-uuid", str(uuid.uuid4())])
def test_no_secret_is_found_for_a_missing_or_malformed_reference(reference):
    assert vault_take(reference) is None
    assert vault_erase(reference) is False


def test_a_secret_past_its_retention_is_not_taken_and_is_erased():
    kept = vault_put(kind="payment_token", secret="a", retention=HOUR)
    expired = vault_put(kind="payment_token", secret="b", retention=timedelta(0))

    assert vault_take(expired) is None
    assert vault_take(kept, now=timezone.now() + 2 * HOUR) is None
    assert vault_erase_expired() == 1
    assert list(VaultedSecret.objects.values_list("reference", flat=True)) == [uuid.UUID(kept)]


def test_a_secret_can_be_kept_for_less_than_its_retention():
    reference = vault_put(kind="webhook_secret", secret="whsec_a", retention=100 * HOUR)
    until = timezone.now() + HOUR

    assert vault_retain(reference, until=until) is True
    assert vault_take(reference) == "whsec_a"
    assert vault_take(reference, now=until) is None
    assert vault_erase_expired(now=until) == 1
    assert vault_retain(reference, until=until) is False
    assert vault_retain("not-a-uuid", until=until) is False


def test_every_worker_pass_erases_expired_secrets(caplog):
    vault_put(kind="payment_token", secret="b", retention=timedelta(0))

    with caplog.at_level(logging.INFO, logger="eventstore.vault"):
        responses = signals.worker_pass.send(sender=None)

    assert erase_expired_secrets_on_worker_pass in [receiver for receiver, _ in responses]
    assert not VaultedSecret.objects.exists()
    assert "Erased 1 expired secret(s)" in caplog.text


def test_a_secret_reads_as_its_kind_and_reference_only():
    reference = vault_put(kind="payment_token", secret="tok_visa_success", retention=HOUR)

    assert str(VaultedSecret.objects.get()) == f"payment_token {reference}"


def stored(reference: str | uuid.UUID) -> str:
    """What the table's row holds for `reference`, as a copy of the database shows it."""
    return VaultedSecret.objects.values_list("secret", flat=True).get(pk=reference)


def test_the_table_holds_the_secret_encrypted_never_in_clear():
    first = vault_put(kind="payment_token", secret="tok_visa_success", retention=HOUR)
    second = vault_put(kind="payment_token", secret="tok_visa_success", retention=HOUR)

    assert "tok_visa_success" not in stored(first)
    # Each put encrypts afresh: equal secrets are not told apart by their rows.
    assert stored(first) != stored(second)
    assert vault_take(first) == vault_take(second) == "tok_visa_success"


def test_a_secret_no_configured_key_decrypts_reads_as_absent(caplog):
    reference = vault_put(kind="payment_token", secret="tok_visa_success", retention=HOUR)

    with (
        override_settings(VAULT_KEYS=[Fernet.generate_key().decode()]),
        caplog.at_level(logging.WARNING, logger="eventstore.vault"),
    ):
        assert vault_take(reference) is None

    assert f"Vault secret {reference} (payment_token) is not decrypted" in caplog.text
    assert "tok_visa_success" not in caplog.text
    assert vault_take(reference) == "tok_visa_success"  # the row is left as it was


def rotate(*arguments: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("vault_rotate", *arguments, stdout=out, stderr=err, verbosity=0)
    return out.getvalue(), err.getvalue()


def test_rotation_re_encrypts_every_secret_under_the_newest_key_so_the_old_one_can_go():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(VAULT_KEYS=[old]):
        references = [
            vault_put(kind="payment_token", secret=f"tok_{number}", retention=HOUR)
            for number in range(5)
        ]
        expired = vault_put(kind="payment_token", secret="tok_old", retention=timedelta(0))
        under_old_key = stored(references[0])

    with override_settings(VAULT_KEYS=[new, old]):
        # New secrets are encrypted with the new key at once; the old ones still read.
        fresh = vault_put(kind="payment_token", secret="tok_fresh", retention=HOUR)
        assert vault_take(references[0]) == "tok_0"
        assert rotate("--dry-run", "--batch-size", "2")[0] == (
            "5 secret(s) would be re-encrypted under the newest key, 1 already under it.\n"
        )
        assert stored(references[0]) == under_old_key
        assert rotate("--batch-size", "2")[0] == (
            "5 secret(s) re-encrypted under the newest key, 1 already under it.\n"
        )
        # Safe to run again: nothing is left to do.
        assert rotate()[0] == "0 secret(s) re-encrypted under the newest key, 6 already under it.\n"

    with override_settings(VAULT_KEYS=[new]):
        assert [vault_take(reference) for reference in references] == [
            f"tok_{number}" for number in range(5)
        ]
        assert vault_take(fresh) == "tok_fresh"
        # An expired secret is not worth rotating: the next worker pass erases it.
        assert rotate()[0] == "0 secret(s) re-encrypted under the newest key, 6 already under it.\n"
    assert stored(expired)


def test_rotation_names_the_secrets_no_key_decrypts_and_leaves_them():
    with override_settings(VAULT_KEYS=[Fernet.generate_key().decode()]):
        lost = vault_put(kind="payment_token", secret="tok_lost", retention=HOUR)
    kept = vault_put(kind="payment_token", secret="tok_kept", retention=HOUR)
    before = stored(lost)

    out, err = rotate()

    assert out == "0 secret(s) re-encrypted under the newest key, 1 already under it.\n"
    assert "1 secret(s) are not decrypted by any key of VAULT_KEYS" in err
    assert stored(lost) == before
    assert vault_take(kept) == "tok_kept"


def test_rotation_refuses_a_batch_size_below_one():
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        rotate("--batch-size", "0")


encryption_migration = importlib.import_module(
    "eventstore.migrations.0010_vaulted_secret_encrypted"
)


def test_the_encryption_migration_encrypts_the_secrets_kept_in_clear_before_it():
    apps = (
        MigrationExecutor(connection)
        .loader.project_state(("eventstore", "0010_vaulted_secret_encrypted"))
        .apps
    )
    HistoricalSecret = apps.get_model("eventstore", "VaultedSecret")
    now = timezone.now()
    # A row as the release before wrote it: the token in clear.
    in_clear = HistoricalSecret.objects.create(
        kind="payment_token", secret="tok_visa_success", erase_after=now + HOUR
    )
    encrypted = vault_put(kind="payment_token", secret="tok_decline", retention=HOUR)
    already = stored(encrypted)

    encryption_migration.encrypt_secrets_in_clear(apps, None)

    assert "tok_visa_success" not in stored(in_clear.pk)
    assert vault_take(in_clear.pk) == "tok_visa_success"
    assert stored(encrypted) == already  # encrypted once only: running it again changes nothing

    with override_settings(VAULT_KEYS=[Fernet.generate_key().decode()]):
        lost = vault_put(kind="payment_token", secret="tok_lost", retention=HOUR)
    encryption_migration.decrypt_secrets(apps, None)

    assert stored(in_clear.pk) == "tok_visa_success"
    assert stored(encrypted) == "tok_decline"
    assert not VaultedSecret.objects.filter(pk=lost).exists()


def test_a_secret_is_described_by_the_describer_registered_for_its_kind(monkeypatch):
    monkeypatch.setattr(vault, "_describers", {})

    def last_two(secret):
        return {"end": secret[-2:]}

    vault_describer_register(kind="code", describe=last_two)
    vault_describer_register(kind="code", describe=last_two)  # ready() may run twice

    assert vault_describe(kind="code", secret="1234") == {"end": "34"}
    assert vault_describe(kind="other", secret="1234") == {}
    with pytest.raises(DescriberError, match="'code' secrets is already registered"):
        vault_describer_register(kind="code", describe=lambda secret: {})
