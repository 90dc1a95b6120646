"""Test settings: the project's own, with throwaway secrets and a file-backed SQLite test DB."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
# base64 of b"tests-only-vault-key-not-secret!" (a Fernet key: 32 bytes).
os.environ.setdefault("VAULT_KEYS", "dGVzdHMtb25seS12YXVsdC1rZXktbm90LXNlY3JldCE=")
# A Web Push key for the tests only (not secret), and the tests' local push service on loopback.
os.environ.setdefault("VAPID_PRIVATE_KEY", "Ey7PdS0uUjgNtbn4yaRIK6Pz4vbB3LN385fAwB_vWwQ")
os.environ.setdefault("NOTIFICATIONS_PUSH_ALLOW_LOOPBACK", "1")
# Readable log lines in failing tests (production defaults to JSON).
os.environ.setdefault("LOG_FORMAT", "text")

from config.settings import *  # noqa: F403
from config.settings import BASE_DIR, DATABASES, REST_FRAMEWORK

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that threads in concurrency tests lock it like real processes do;
    # one per test process, so that two runs side by side never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f".pytest-db-{os.getpid()}.sqlite3")}
    # Django's SQLite backend with a flush that lifts the event table's append-only triggers
    # while pytest-django empties the database between transactional tests.
    DATABASES["default"]["ENGINE"] = "tests.sqlite_backend"

# The test client speaks plain http; the production https redirect is tested in a subprocess.
SECURE_SSL_REDIRECT = False

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Pages render without `collectstatic` having run (production's storage names files after a
# manifest it writes; tests/acceptance/test_static_files.py serves those under gunicorn).
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STATIC_ROOT = None  # nothing collected: WhiteNoise serves from the apps (as DEBUG would)

# Emails land in django.core.mail.outbox (pytest-django sets this too; say it where it is seen).
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# The suite makes many requests from one client in a second: no test is throttled by accident
# (tests/config/test_throttling.py sets low rates where it means to be).
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"anon": "100000/min", "user": "100000/min", "orders": "100000/min"},
}
