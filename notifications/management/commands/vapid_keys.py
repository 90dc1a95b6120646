"""manage.py vapid_keys: print a new VAPID key pair for Web Push."""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management.base import BaseCommand

from notifications.webpush import b64url_encode


class Command(BaseCommand):
    help = (
        "Print a new VAPID key pair: VAPID_PRIVATE_KEY for the environment, and the public key "
        "browsers will see (GET /api/notifications/push-subscriptions/public-key/)."
    )

    def handle(self, *args, **options):
        key = ec.generate_private_key(ec.SECP256R1())
        private = b64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))
        public = b64url_encode(
            key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )
        self.stdout.write(f"VAPID_PRIVATE_KEY={private}\n# public key: {public}\n")
