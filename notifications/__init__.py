"""The notifications service (see docs/SERVICES.md#notifications)."""
