"""The orders service (see DESIGN.md)."""
