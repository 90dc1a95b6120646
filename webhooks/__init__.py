"""The webhooks service (see docs/WEBHOOKS.md)."""
