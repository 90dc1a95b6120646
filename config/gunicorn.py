"""gunicorn settings: `.venv/bin/gunicorn -c config/gunicorn.py config.wsgi` serves the project.

gunicorn refuses an over-long request line or header itself, with an HTML page. Its limits are
set above the API's own (API_MAX_URL_LENGTH, API_MAX_HEADER_FIELD_SIZE in config/settings/drf.py),
so Django answers first, as JSON (414, 431; config/middleware.py), while gunicorn still bounds
what a client can make it buffer. tests/config/test_middleware.py keeps the two in order.
"""

import os

# The longest request line ("GET <url> HTTP/1.1") gunicorn reads: its maximum, 8190 bytes.
limit_request_line = 8190
# The longest header line ("Name: value") gunicorn reads (its default: 8190 bytes).
limit_request_field_size = 16380
# Header lines per request (gunicorn's default).
limit_request_fields = 100


def child_exit(server, worker) -> None:
    """Multiprocess metrics (PROMETHEUS_MULTIPROC_DIR): forget an exited worker's live gauges;
    its counters and histograms stay in the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
