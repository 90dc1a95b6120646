"""The inventory service (see docs/SERVICES.md#inventory)."""
