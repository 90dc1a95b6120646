"""Settings for the order-processing project, read from the environment.

DATABASE_URL  database (default: SQLite file db.sqlite3 in the project folder)
SECRET_KEY    required unless DEBUG is on
VAULT_KEYS    required unless DEBUG is on (Fernet keys the vault encrypts with)
VAPID_PRIVATE_KEY  Web Push signing key; push is off without it unless DEBUG is on
DEBUG         "1"/"true"/"yes" turns it on (default off)
ALLOWED_HOSTS comma-separated host names (default: localhost names when DEBUG)
(the README's configuration table lists every variable)
"""

import base64
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

Parsed = TypeVar("Parsed")  # not upper case: Django would take it for a setting


def env_flag(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable ("1", "true", "yes", "on" are true)."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_parsed(name: str, default: Parsed, parse: Callable[[str], Parsed], kind: str) -> Parsed:
    """`parse` of an environment variable (`default` when unset or empty), failing loudly with
    "<name> must be <kind>" on a value it refuses."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return parse(value)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be {kind}, got {value!r}") from error


def env_float(name: str, default: float) -> float:
    """Read a decimal number from the environment, failing loudly on anything else."""
    return _env_parsed(name, default, float, "a number")


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable, failing loudly on a non-integer."""
    return _env_parsed(name, default, int, "an integer")


# What DRF's throttles accept: requests per second, minute, hour or day ("60/min").
RATE_PATTERN = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$")


def env_rate(name: str, default: str) -> str:
    """Read a request rate ("60/min") from the environment, failing loudly on anything else."""
    value = (os.environ.get(name) or default).strip()
    if not RATE_PATTERN.match(value):
        raise ImproperlyConfigured(
            f"{name} must be a rate like 60/min (per s, min, hour or day), got {value!r}"
        )
    return value


def env_database(name: str, default: str, **options: Any) -> dict[str, Any]:
    """A DATABASES entry from a database URL in the environment (`default` when unset or
    empty), failing loudly with "<name> must be ..." on a URL that names no known database; the
    message never repeats the URL, which may hold a password."""
    value = os.environ.get(name) or default
    try:
        return dj_database_url.parse(value, **options)
    except ValueError as error:
        scheme = urlsplit(value).scheme if "://" in value else ""
        if not scheme:
            problem = "it has no scheme"
        elif isinstance(error, dj_database_url.UnknownSchemeError):
            problem = f"its scheme {scheme}:// is not a database's"
        else:
            problem = "it is not a URL (quote special characters of the password: @ as %40)"
        raise ImproperlyConfigured(
            f"{name} must be a database URL such as postgres://user:password@host:5432/name or "
            f"sqlite:////absolute/path/db.sqlite3: {problem}."
        ) from None


DEBUG = env_flag("DEBUG")

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "django-insecure-development-key-only-used-when-debug-is-on"

# The keys the vault (eventstore.vault) encrypts its secrets with: Fernet keys, comma-separated.
# The first encrypts, every one decrypts, so keys rotate: put a new key first, keep the old ones
# until `manage.py vault_rotate` has re-encrypted every secret (docs/OPERATIONS.md).
# `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`
VAULT_KEYS = [key.strip() for key in os.environ.get("VAULT_KEYS", "").split(",") if key.strip()]
if not VAULT_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured("VAULT_KEYS must be set when DEBUG is off")
    # base64 of b"development-vault-key-not-secret": public, like the development SECRET_KEY.
    VAULT_KEYS = ["ZGV2ZWxvcG1lbnQtdmF1bHQta2V5LW5vdC1zZWNyZXQ="]
for _number, _key in enumerate(VAULT_KEYS, start=1):
    try:
        Fernet(_key)
    except ValueError as error:
        # The key itself is never printed: the message may end up in a log.
        raise ImproperlyConfigured(
            f"VAULT_KEYS must be Fernet keys (32 url-safe base64-encoded bytes), comma-separated: "
            f"key {_number} of {len(VAULT_KEYS)} is not one"
        ) from error

# Web Push (notifications): the VAPID key pushes are signed with, base64url of the raw 32-byte
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

ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "").split(
        ","
    )
    if host.strip()
]

# HTTPS. With DEBUG off every default is the production one (`manage.py check --deploy` passes);
# with DEBUG on they allow plain http on 127.0.0.1 (`make run`). Each can be set either way.
# Redirect plain-http requests to https (301).
SECURE_SSL_REDIRECT = env_flag("SECURE_SSL_REDIRECT", not DEBUG)
# Except the health check: load balancers and orchestrators probe it over plain http.
SECURE_REDIRECT_EXEMPT = [r"^api/health/$"]
# Send the session and CSRF cookies over https only.
SESSION_COOKIE_SECURE = env_flag("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_flag("CSRF_COOKIE_SECURE", not DEBUG)
# HSTS: browsers that saw the header refuse plain http for this long (one year), subdomains
# included, and the site may be submitted to browsers' preload lists. Lower it while trying
# https out: a browser keeps the promise for the whole period.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_flag("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_flag("SECURE_HSTS_PRELOAD", not DEBUG)
# Behind a proxy that ends TLS: the header it sets to "https" on secure requests (e.g.
# X-Forwarded-Proto), so Django sees them as secure and does not redirect them again. Unset by
# default, since a header is only trustworthy when the proxy overwrites whatever the client sent.
_proxy_ssl_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "").strip()
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "eventstore",
    "orders",
    "inventory",
    "payments",
    "notifications",
    "webhooks",
    "demo",
]

MIDDLEWARE = [
    # Before all: every record of the request carries its id, every answer echoes it.
    "config.middleware.RequestIdMiddleware",
    # Then: an over-long URL or header under /api/ is refused before any other work.
    "config.middleware.RequestLimitsMiddleware",
    # Outside the API: the store's lock timeout or a lost connection answers a 503 page.
    "config.middleware.StoreUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's styles, the API docs' scripts) from the app itself, under
    # gunicorn as under runserver: no other server to configure.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Prometheus (docs/OPERATIONS.md): django-prometheus's HTTP series, its middleware outermost.
# GET /metrics answers staff only (session or token) unless METRICS_PUBLIC is on.
INSTALLED_APPS += ["django_prometheus"]
MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    *MIDDLEWARE,
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
METRICS_PUBLIC = env_flag("METRICS_PUBLIC")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The site's own templates (the admin index links the operations page).
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Databases. Appends must run in short transactions of their own, so ATOMIC_REQUESTS stays off.
# SQLite: WAL lets readers run beside the single writer; IMMEDIATE takes the write lock when a
# transaction begins, so writers queue (busy timeout) instead of failing mid-transaction, and
# event positions are assigned in commit order. synchronous=FULL syncs the WAL at every commit,
# so a commit that answered survives a power loss (a charged card stays recorded); NORMAL syncs
# only at checkpoints, faster, but the last commits before a power loss can vanish.
SQLITE_SYNCHRONOUS = os.environ.get("SQLITE_SYNCHRONOUS", "").strip().upper() or "FULL"
if SQLITE_SYNCHRONOUS not in {"NORMAL", "FULL"}:
    raise ImproperlyConfigured(
        f"SQLITE_SYNCHRONOUS must be NORMAL or FULL, got {os.environ['SQLITE_SYNCHRONOUS']!r}"
    )
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={SQLITE_SYNCHRONOUS};",
}

# A connection kept for CONN_MAX_AGE seconds is checked before each request's (and each Celery
# task's: config/celery.py) first query, so one the server ended while it sat idle (a restart,
# a fail-over) is replaced instead of failing that request; one lost mid-request answers 503
# (httpapi/errors.py) and is replaced when the request ends.
DATABASES = {
    "default": env_database(
        "DATABASE_URL",
        f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
# PostgreSQL: followers of the log wait for the oldest of the project's transactions still
# running in the database (eventstore.recorders.PostgresRecorder.follow_condition), so a
# connection left idle inside a transaction would hold every subscriber back: the server ends
# such a session after this many ms (0: never).
DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS = env_int("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60000)
# Every connection of the project (web, workers, commands) carries this application_name:
# followers wait only for transactions of sessions that carry it, so it must reach the server
# unchanged (printable ASCII, at most 63 bytes: the server replaces other characters and cuts
# longer names) and be the same in every process.
DATABASE_APPLICATION_NAME = os.environ.get("DATABASE_APPLICATION_NAME", "").strip() or (
    "order-processing"
)
if not re.fullmatch(r"[ -~]{1,63}", DATABASE_APPLICATION_NAME):
    raise ImproperlyConfigured(
        "DATABASE_APPLICATION_NAME must be 1 to 63 printable ASCII characters, "
        f"got {DATABASE_APPLICATION_NAME!r}"
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    # A DATABASE_URL query naming another application would silently make every follower
    # stop waiting for the project's own transactions.
    if _options.get("application_name", DATABASE_APPLICATION_NAME) != DATABASE_APPLICATION_NAME or (
        "application_name" in _options.get("options", "")
    ):
        raise ImproperlyConfigured(
            "DATABASE_URL sets application_name: set DATABASE_APPLICATION_NAME instead"
        )
    _options["application_name"] = DATABASE_APPLICATION_NAME
    _options["options"] = (
        f"{_options.get('options', '')} "
        f"-c idle_in_transaction_session_timeout={DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS}"
    ).strip()

# METRICS_DATABASE: the database through django-prometheus's backend (query and error series).
if env_flag("METRICS_DATABASE"):
    DATABASES["default"]["ENGINE"] = {
        "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
        "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
    }.get(DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"])

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `manage.py collectstatic` gathers them for WhiteNoise: compressed, and named after their
# content so that browsers may keep them for ever (a deployment runs collectstatic after each
# upgrade; `make cluster` does). With DEBUG on, runserver serves them from the apps unhashed.
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

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
    "DEFAULT_PAGINATION_CLASS": "eventstore.http.pagination.PageNumberPagination",
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

# Event store.
# Take a snapshot of an aggregate every N events; loading costs the snapshot plus < N events.
EVENTSTORE_SNAPSHOT_EVERY = env_int("EVENTSTORE_SNAPSHOT_EVERY", 25)
# Events read per query when replaying.
EVENTSTORE_BATCH_SIZE = env_int("EVENTSTORE_BATCH_SIZE", 500)
# Events a subscriber handles per transaction when catching up. Short: on PostgreSQL every
# other follower waits for the oldest running transaction of the project, so under a backlog
# long batches leave workers idle (BENCHMARKS.md, Overload).
EVENTSTORE_HANDLE_BATCH_SIZE = env_int("EVENTSTORE_HANDLE_BATCH_SIZE", 50)
# Wake subscribers after each commit; off, only `manage.py process_events` delivers.
EVENTSTORE_DISPATCH_ON_COMMIT = env_flag("EVENTSTORE_DISPATCH_ON_COMMIT", True)
# PostgreSQL: how long an append waits for a lock (a replay holding the log, another writer of
# the same stream version) before failing with AppendTimeout.
EVENTSTORE_LOCK_TIMEOUT_MS = env_int("EVENTSTORE_LOCK_TIMEOUT_MS", 5000)
# PostgreSQL: every append takes the log table's EXCLUSIVE lock until commit, as before appends
# ran concurrently. Off by default; the benchmark turns it on to compare the two designs.
EVENTSTORE_APPEND_LOCK = env_flag("EVENTSTORE_APPEND_LOCK", False)
# PostgreSQL: how long a commit's wake-up waits, at most, for older transactions still running
# to end, so that the subscribers it wakes can read its events (eventstore.follower.subscriptions).
EVENTSTORE_FOLLOW_WAIT = env_float("EVENTSTORE_FOLLOW_WAIT", 2.0)
# How many times a command handler reloads and decides again after a ConcurrencyError.
EVENTSTORE_COMMAND_RETRIES = env_int("EVENTSTORE_COMMAND_RETRIES", 5)
# Calls to the outside world (eventstore/follower/effects.py): calls of one effect before it is
# parked, the wait before the first retry in seconds (doubling each time, up to the cap), and how
# long a call may run before another worker takes it over (longer than any provider's timeout).
EVENTSTORE_EFFECT_ATTEMPTS = env_int("EVENTSTORE_EFFECT_ATTEMPTS", 5)
EVENTSTORE_EFFECT_BACKOFF = env_float("EVENTSTORE_EFFECT_BACKOFF", 2.0)
EVENTSTORE_EFFECT_BACKOFF_MAX = env_float("EVENTSTORE_EFFECT_BACKOFF_MAX", 300.0)
EVENTSTORE_EFFECT_LEASE = env_float("EVENTSTORE_EFFECT_LEASE", 60.0)

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

# Partitioned subscribers and how reactions run (eventstore/follower/subscriptions.py, tasks.py).
# Each subscriber's work is split into this many partitions by the key stored with each event
# (its correlation id, else its aggregate id): events of one key are handled in log order, and
# different partitions at once by different processes. 1 keeps a single checkpoint per
# subscriber; 16 suits a pool of Celery workers. Every process of one database must agree.
EVENTSTORE_PARTITIONS = env_int("EVENTSTORE_PARTITIONS", 1)
# inline: after a commit the request's own thread catches the subscribers up (no broker).
# celery: after a commit the touched partitions are woken by tasks on CELERY_BROKER_URL, and
# `celery -A config worker` catches them up; `celery -A config beat` sweeps for lost wake-ups.
EVENTSTORE_DISPATCH = os.environ.get("EVENTSTORE_DISPATCH", "inline")
if EVENTSTORE_DISPATCH not in ("inline", "celery"):
    raise ImproperlyConfigured(
        f"EVENTSTORE_DISPATCH must be inline or celery, not {EVENTSTORE_DISPATCH!r}"
    )
if EVENTSTORE_PARTITIONS < 1:
    raise ImproperlyConfigured("EVENTSTORE_PARTITIONS must be at least 1")
# Seconds between beat's sweeps: wake every partition whose backlog has waited that long, ask
# for the calls to the outside world due as long, and run the worker-pass housekeeping (overdue
# saga steps).
EVENTSTORE_SWEEP_INTERVAL = env_float("EVENTSTORE_SWEEP_INTERVAL", 5.0)

# The health check (GET /api/health/) answers 503 when a subscriber partition is more than this
# many events behind the log.
HEALTH_MAX_LAG_EVENTS = env_int("HEALTH_MAX_LAG_EVENTS", 10000)
# On PostgreSQL it also answers 503 when a transaction followers wait for (one of the
# project's, see DATABASE_APPLICATION_NAME) has run longer than this many seconds.
HEALTH_MAX_HELD_SECONDS = env_float("HEALTH_MAX_HELD_SECONDS", 30.0)

# Celery (celery mode only; config/celery.py reads every CELERY_* setting).
# Wake-ups travel over the broker, never events: the log stays the truth. RabbitMQ by default;
# redis://127.0.0.1:6379/0 works too.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
# Two queues: "events" (catching partitions up) and "effects" (calls to the outside world), so
# a slow provider never holds up the reactions. A worker started with no -Q serves both.
CELERY_TASK_DEFAULT_QUEUE = "events"
CELERY_TASK_QUEUES = {"events": {}, "effects": {}}
CELERY_TASK_ROUTES = {"eventstore.tasks.make_calls": {"queue": "effects"}}
# A task is acknowledged after it ran, so a worker that dies mid-task leaves it to another;
# each worker process reserves one task at a time.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Seconds a task may run before it is asked to stop (SoftTimeLimitExceeded), then killed.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 120)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 30
# Wake-ups need no results.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# A request's commit enqueues its wake-ups: a broker that does not answer costs the request at
# most this many seconds (the wake-up is then left to beat's sweep, and the request succeeds).
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 1.0)
# One attempt to connect per send. Without it kombu, after a refused connection (a broker that
# is down or restarting), sleeps its first retry interval (2 s) before a second attempt,
# whatever the timeout above: every request would then take over 2 s while the broker is down.
# Celery's own reconnection loops (the workers' consumers, beat) pass their retry counts
# explicitly (CELERY_BROKER_CONNECTION_MAX_RETRIES) and are not shortened by this.
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 0}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Database connections are closed by config/celery.py as CONN_MAX_AGE says; Celery's own
# closing of every connection around every task is kept for every this-many tasks only.
CELERY_DB_REUSE_MAX = 1000
# What a task prints (the console email backend's emails) goes to the worker's output as it
# is, not through a logger as warnings.
CELERY_WORKER_REDIRECT_STDOUTS = False
CELERY_BEAT_SCHEDULE = {
    "sweep": {"task": "eventstore.tasks.sweep", "schedule": EVENTSTORE_SWEEP_INTERVAL},
}

# Orders: the fulfilment saga. A request is given up on (the step fails, or a compensation is
# sent again) when the service's work on it ran SAGA_STEP_TIMEOUT seconds from the start of its
# first call without a reply, or when it waited SAGA_QUEUE_TIMEOUT seconds in our own queues
# without being started; a reply already recorded is always waited for. `manage.py
# expire_sagas` and every `process_events` pass enforce them (orders.saga.sagas_expire).
SAGA_STEP_TIMEOUT = env_float("SAGA_STEP_TIMEOUT", 30.0)
SAGA_QUEUE_TIMEOUT = env_float("SAGA_QUEUE_TIMEOUT", 300.0)
# New orders are refused (429 with Retry-After, nothing written) while the oldest work not yet
# started (an event a subscriber has yet to handle, a call owed and not begun) has waited longer
# than this many seconds: overload is met at the door (eventstore.follower.admission). 0: never
# refused.
ADMISSION_MAX_BACKLOG_SECONDS = env_float("ADMISSION_MAX_BACKLOG_SECONDS", 10.0)
# Requests of one compensation left unanswered before the saga stops in compensation_failed.
SAGA_COMPENSATION_ATTEMPTS = env_int("SAGA_COMPENSATION_ATTEMPTS", 3)

# Payments.
# The gateway class (see payments/gateway.py); the simulated one decides by payment token.
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

# Email: notifications are delivered through Django's mail framework.
# The backend: by default the console backend when DEBUG (`make run` prints each email), SMTP
# otherwise. django.core.mail.backends.filebased.EmailBackend writes them to EMAIL_FILE_PATH.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND") or (
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend"
)
# The SMTP server, and the account it is used with (both empty: no login).
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
# STARTTLS on the SMTP connection (port 587 servers usually require it).
EMAIL_USE_TLS = env_flag("EMAIL_USE_TLS")
# Seconds the SMTP connection waits on the server before the attempt fails (and is retried
# later). Keep it well under EVENTSTORE_EFFECT_LEASE, or a hung server lets a second worker
# send the same email meanwhile.
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 20.0)
# Folder the file-based backend writes emails to (unused by the other backends).
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "sent-emails"))
# The sender of every notification; its domain also names each email's Message-ID
# (<notification id@domain>).
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "orders@localhost")

# Logs: one JSON object per record (json, for log collectors) or readable lines (text). Records
# logged while a subscriber handles an event, or while a request is served, carry its fields
# (eventstore.observability.logs): correlation_id, causation_id, event_position, subscriber,
# request_id.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "").strip().lower() or ("text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "eventstore.observability.logs.LogContextFilter"}},
    "formatters": {
        "text": {
            "()": "eventstore.observability.logs.TextFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Django's own loggers print through the root handler only (not twice).
    "loggers": {"django": {"handlers": [], "propagate": True}},
}
