"""The vault: secrets kept out of the log, taken by reference, erased when used or expired."""

import logging
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from eventstore import signals
from eventstore.models import VaultedSecret
from eventstore.vault import (
    erase_expired_secrets_on_worker_pass,
    vault_erase,
    vault_erase_expired,
    vault_put,
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
    assert list(VaultedSecret.objects.values_list("secret", flat=True)) == ["a"]


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
