"""The orders service (see docs/SERVICES.md#orders)."""
