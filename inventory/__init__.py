"""The inventory service (see DESIGN.md)."""
