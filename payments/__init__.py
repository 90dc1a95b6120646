"""The payments service (see docs/SERVICES.md#payments)."""
