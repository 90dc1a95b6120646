"""The services' own settings: the fulfilment saga (orders), payments, notifications' Web Push
and webhooks."""

import base64
import os

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import DEBUG
from config.settings.env import env_flag, env_float, env_int

# Orders: the fulfilment saga. A request is given up on (the step fails, or a compensation is
# sent again) when the service's work on it ran SAGA_STEP_TIMEOUT seconds from the start of its
# first call without a reply, or when it waited SAGA_QUEUE_TIMEOUT seconds in our own queues
# without being started; a reply already recorded is always waited for. `manage.py
# expire_sagas` and every `process_events` pass enforce them (orders.saga.sagas_expire).
SAGA_STEP_TIMEOUT = env_float("SAGA_STEP_TIMEOUT", 30.0)
SAGA_QUEUE_TIMEOUT = env_float("SAGA_QUEUE_TIMEOUT", 300.0)
# Requests of one compensation left unanswered before the saga stops in compensation_failed.
SAGA_COMPENSATION_ATTEMPTS = env_int("SAGA_COMPENSATION_ATTEMPTS", 3)

# Payments: the gateway class (see payments/gateway.py); the simulated one decides by payment token.
PAYMENTS_GATEWAY = os.environ.get("PAYMENTS_GATEWAY", "payments.gateway.SimulatedGateway")
# Share of otherwise approved charges the simulated gateway declines (0 to 1), and its seed.
PAYMENTS_FAILURE_RATE = env_float("PAYMENTS_FAILURE_RATE", 0.0)
PAYMENTS_FAILURE_SEED = env_int("PAYMENTS_FAILURE_SEED", 0)
# Milliseconds the simulated gateway takes per charge or refund, like a real provider's answer.
PAYMENTS_GATEWAY_LATENCY_MS = env_int("PAYMENTS_GATEWAY_LATENCY_MS", 0)
# Hours a payment token may stay in the vault (eventstore.vault) at most. Payments erases it
# once the charge is decided; a token still there after this is erased by the next worker
# pass, and its order's payment then fails with token_expired.
PAYMENTS_TOKEN_RETENTION_HOURS = env_float("PAYMENTS_TOKEN_RETENTION_HOURS", 24.0)

# Notifications' Web Push: the VAPID key pushes are signed with, base64url of the raw 32-byte
# P-256 private key (`manage.py vapid_keys` makes a pair). Without it push delivery is off and
# email alone goes out; with DEBUG on a development key is used (public, like SECRET_KEY's).
VAPID_PRIVATE_KEY = os.environ.get("VAPID_PRIVATE_KEY", "").strip()
if not VAPID_PRIVATE_KEY and DEBUG:
    VAPID_PRIVATE_KEY = "eWmeVdVSmO24Cp9mYOa84O61E-YuOW8ys9yNGaTTjp8"
if VAPID_PRIVATE_KEY:
    try:
        _vapid_key = base64.urlsafe_b64decode(
            VAPID_PRIVATE_KEY + "=" * (-len(VAPID_PRIVATE_KEY) % 4)
        )
    except ValueError:
        _vapid_key = b""
    if len(_vapid_key) != 32:
        raise ImproperlyConfigured(
            "VAPID_PRIVATE_KEY must be the base64url of a 32-byte P-256 private key"
        )
# Who runs the pushing server, for push services to contact: a mailto: or https: URL.
VAPID_SUBJECT = os.environ.get("VAPID_SUBJECT", "mailto:webmaster@localhost").strip()
if not VAPID_SUBJECT.startswith(("mailto:", "https:")):
    raise ImproperlyConfigured("VAPID_SUBJECT must be a mailto: or https: URL")
# Accept push endpoints on loopback addresses over plain http: for tests and local push
# services only; production leaves it off, so such endpoints are refused.
NOTIFICATIONS_PUSH_ALLOW_LOOPBACK = env_flag("NOTIFICATIONS_PUSH_ALLOW_LOOPBACK")
# Seconds a push service has to answer one push.
NOTIFICATIONS_PUSH_TIMEOUT = env_float("NOTIFICATIONS_PUSH_TIMEOUT", 10.0)

# Webhooks (docs/WEBHOOKS.md): seconds to wait after each failed attempt (Standard Webhooks'
# schedule, about a day in all), the timeouts of one request, how long an endpoint may fail
# without a success before it is disabled, how long a rotated secret still signs.
WEBHOOKS_RETRY_SCHEDULE = os.environ.get(
    "WEBHOOKS_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000"
)
WEBHOOKS_CONNECT_TIMEOUT = env_float("WEBHOOKS_CONNECT_TIMEOUT", 5.0)
WEBHOOKS_TIMEOUT = env_float("WEBHOOKS_TIMEOUT", 15.0)
WEBHOOKS_DISABLE_AFTER = env_float("WEBHOOKS_DISABLE_AFTER", 5 * 24 * 3600.0)
WEBHOOKS_ROTATION_WINDOW = env_float("WEBHOOKS_ROTATION_WINDOW", 24 * 3600.0)
# Development and tests only (default: on when DEBUG): http:// URLs, and hosts with private
# or loopback addresses.
WEBHOOKS_ALLOW_HTTP = env_flag("WEBHOOKS_ALLOW_HTTP", DEBUG)
WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = env_flag("WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", DEBUG)
