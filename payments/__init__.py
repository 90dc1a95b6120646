"""The payments service (see DESIGN.md)."""
