"""The vault encrypts what it holds: secrets put before it did (in clear, for their retention at
most: a payment token waiting to be charged) are encrypted here with the first key of
VAULT_KEYS, so they are still charged. Going back decrypts them again; one no configured key
decrypts is then erased (its payment fails with token_expired, as an expired one would)."""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import migrations, models

BATCH = 500


def _cipher() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.VAULT_KEYS])


def _is_encrypted(cipher: MultiFernet, secret: str) -> bool:
    try:
        cipher.decrypt(secret.encode())
    except InvalidToken:
        return False
    return True


def encrypt_secrets_in_clear(apps, schema_editor):
    VaultedSecret = apps.get_model("eventstore", "VaultedSecret")
    cipher = _cipher()
    changed = []
    for row in VaultedSecret.objects.only("pk", "secret").iterator(chunk_size=BATCH):
        if not _is_encrypted(cipher, row.secret):
            row.secret = cipher.encrypt(row.secret.encode()).decode()
            changed.append(row)
    VaultedSecret.objects.bulk_update(changed, ["secret"], batch_size=BATCH)


def decrypt_secrets(apps, schema_editor):
    VaultedSecret = apps.get_model("eventstore", "VaultedSecret")
    cipher = _cipher()
    changed, unreadable = [], []
    for row in VaultedSecret.objects.only("pk", "secret").iterator(chunk_size=BATCH):
        try:
            row.secret = cipher.decrypt(row.secret.encode()).decode()
            changed.append(row)
        except InvalidToken:
            unreadable.append(row.pk)
    VaultedSecret.objects.bulk_update(changed, ["secret"], batch_size=BATCH)
    VaultedSecret.objects.filter(pk__in=unreadable).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("eventstore", "0009_effect_withdrawn"),
    ]

    operations = [
        migrations.AlterField(
            model_name="vaultedsecret",
            name="secret",
            field=models.TextField(
                help_text="The secret as a Fernet token (url-safe base64 text)."
            ),
        ),
        migrations.RunPython(encrypt_secrets_in_clear, decrypt_secrets),
    ]
