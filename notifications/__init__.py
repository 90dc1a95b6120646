"""The notifications service (see DESIGN.md)."""
