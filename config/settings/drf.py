"""The HTTP API: Django REST framework, its schema, the requests it refuses (too large, too
deep, too many) and the cache its throttles count in."""

import os

from django.core.exceptions import ImproperlyConfigured

from config.settings.env import env_rate

# Largest request body accepted; a larger one answers 413 under /api/ (config.api).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
# Under /api/, the longest URL (path and query string, in characters) and the longest header
# ("Name: value", in bytes) accepted: longer answers 414 or 431 as JSON (config.middleware).
# gunicorn's own limits (config/gunicorn.py) are higher, so these answer first.
API_MAX_URL_LENGTH = 4094
API_MAX_HEADER_FIELD_SIZE = 8190
# Deepest nesting of objects and arrays in a JSON body; deeper answers 400 (httpapi.parsers). Every
# request the API takes nests a few levels, and Python's parser and encoder recurse per level.
API_MAX_JSON_DEPTH = 32

# The default cache, where the throttles below count requests. CACHE_URL names a Redis server
# every process shares (redis://host:6379/0; rediss:// for TLS); unset, Django's LocMemCache
# counts in each process's own memory. CACHE_KEY_PREFIX starts every key, for deployments that
# share one Redis database. A Redis that does not answer costs a request at most
# CACHE_SOCKET_TIMEOUT seconds per call, and the throttles then let it through
# (httpapi.throttling).
CACHE_SOCKET_TIMEOUT = 1.0
_cache_url = os.environ.get("CACHE_URL", "").strip()
if not _cache_url:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
elif not _cache_url.startswith(("redis://", "rediss://")):
    # The URL is not quoted: it may carry a password.
    raise ImproperlyConfigured(
        "CACHE_URL must start with redis:// or rediss://, e.g. redis://127.0.0.1:6379/0"
    )
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _cache_url,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", ""),
            "OPTIONS": {
                "socket_connect_timeout": CACHE_SOCKET_TIMEOUT,
                "socket_timeout": CACHE_SOCKET_TIMEOUT,
            },
        }
    }

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies only: form and multipart bodies cannot carry the lists commands take (the
    # browsable API offers its raw-data form, which posts JSON). The parser refuses deep
    # nesting with a 400 (httpapi.parsers).
    "DEFAULT_PARSER_CLASSES": ["httpapi.parsers.JSONParser"],
    # The browsable API's command forms start from a body the API accepts once the required
    # fields are filled in (httpapi.renderers).
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "httpapi.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "eventstore.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "httpapi.schema.ApiSchema",
    "EXCEPTION_HANDLER": "httpapi.errors.exception_handler",
    # Too many requests answer 429 with Retry-After. Anonymous callers are counted by address,
    # users by account; placing orders has its own, stricter budget. The counts live in the
    # default cache (CACHES above): without CACHE_URL each process counts on its own, so with N
    # processes a caller gets up to N times the rate.
    "DEFAULT_THROTTLE_CLASSES": [
        "httpapi.throttling.AnonRateThrottle",
        "httpapi.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_rate("THROTTLE_ANON", "60/min"),
        "user": env_rate("THROTTLE_USER", "600/min"),
        "orders": env_rate("THROTTLE_ORDERS", "60/min"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Order processing API",
    "DESCRIPTION": (
        "Event-sourced order processing: orders, inventory, payments, notifications. "
        f"A request body is at most {DATA_UPLOAD_MAX_MEMORY_SIZE} bytes (larger: 413) and "
        f"nests objects and arrays at most {API_MAX_JSON_DEPTH} levels deep (deeper: 400)."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Operations are grouped by service, the first part of their path after /api/ (which their
    # ids start with too: orders_list, inventory_reserve); TAGS orders and describes the groups.
    "SCHEMA_PATH_PREFIX": r"/api/",
    "TAGS": [
        {"name": "orders", "description": "Place orders and follow them: status, events, saga."},
        {"name": "inventory", "description": "Products and their stock; reservations (staff)."},
        {"name": "payments", "description": "Charges and refunds (staff)."},
        {"name": "notifications", "description": "What customers were told, and by which email."},
        {"name": "webhooks", "description": "Signed webhooks to the shop's own systems (staff)."},
        {"name": "events", "description": "The event log every service appends to (staff)."},
        {"name": "health", "description": "Whether the service can take work (no login)."},
    ],
    # Several read models have a `status`; name each choice set after what it belongs to.
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.OrderSummary.Status",
        "SagaStepStatusEnum": "orders.serializers.SAGA_STEP_STATUSES",
        "WebhookDeliveryStatusEnum": "webhooks.models.Delivery.Status",
    },
}
