"""The request headers commands read: `Idempotency-Key`, and the client's preferences
(RFC 7240 `Prefer`)."""

from __future__ import annotations

import re

from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError

# What RFC 9110 (section 5.5) does not allow in a header value: the C0 controls but the
# horizontal tab, and DEL. Refused under /api/ before any view reads a header
# (config.middleware); gunicorn refuses the same set itself, before Django (docs/HTTP.md).
HEADER_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# The schema's pattern of a header value: none of those characters.
HEADER_VALUE_PATTERN = f"^[^{HEADER_CONTROL_CHARACTERS.pattern[1:-1]}]*$"

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX_LENGTH = 255
PREFER_HEADER = "Prefer"
# The longest `Prefer: wait=N` honoured, in seconds: a request holds a server worker that long.
PREFER_WAIT_MAX = 10


def idempotency_key(request) -> str | None:
    """The request's Idempotency-Key header (None when absent); 400 when it is empty or too long."""
    key = request.headers.get(IDEMPOTENCY_KEY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        raise ValidationError(
            {
                IDEMPOTENCY_KEY_HEADER: [
                    f"Must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} characters when given."
                ]
            }
        )
    return key


idempotency_key_parameter = OpenApiParameter(
    IDEMPOTENCY_KEY_HEADER,
    {
        "type": "string",
        "minLength": 1,
        "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH,
        "pattern": HEADER_VALUE_PATTERN,
    },
    OpenApiParameter.HEADER,
    required=False,
    description=(
        f"1 to {IDEMPOTENCY_KEY_MAX_LENGTH} characters, no control character. Repeating a "
        "request with the same key returns the first answer and changes nothing; the same key "
        "with a different body answers 422."
    ),
)


def prefer_wait(request) -> int | None:
    """The seconds the request's `Prefer: wait=N` asks the server to wait, at most
    PREFER_WAIT_MAX; None without one. As RFC 7240 says, a preference the server cannot read
    (not a whole number of seconds over 0) is ignored, other preferences beside it do not
    matter, and only the first `wait` counts."""
    header = request.headers.get(PREFER_HEADER, "")
    for preference in header.split(","):
        # token [= word] followed by ;-separated parameters, which `wait` does not take.
        name, _, value = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() != "wait":
            continue
        seconds = value.strip().strip('"').lstrip("0")
        if not re.fullmatch(r"[1-9][0-9]*", seconds):
            return None
        if len(seconds) > len(str(PREFER_WAIT_MAX)):
            return PREFER_WAIT_MAX  # over the cap (and int() refuses thousands of digits)
        return min(int(seconds), PREFER_WAIT_MAX)
    return None


prefer_parameter = OpenApiParameter(
    PREFER_HEADER,
    {"type": "string", "pattern": HEADER_VALUE_PATTERN},
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "Preferences (RFC 7240). `wait=N` (N whole seconds over 0) asks the server to answer "
        f"once the result is final or N seconds have passed, at most {PREFER_WAIT_MAX} (a larger "
        "N waits that long); a preference that cannot be read is ignored."
    ),
)
