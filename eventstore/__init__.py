"""The shared, append-only event store every service app builds on."""
